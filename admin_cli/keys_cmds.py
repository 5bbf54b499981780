"""`tala keys ...`: the installation key (bot/rotation.py). Registered on the `tala` command
by admin_cli/main.py."""

from __future__ import annotations

import sys

import typer

from admin_cli.common import allowed, built, err, fail, out

keys_app = typer.Typer(help="The installation key that wraps every child's data key.",
                       no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(
    yes: bool = typer.Option(False, "--yes", help="Do not ask first."),
) -> None:
    """A new installation key: every data key and staff contact detail is encrypted again
    with it, and the old key is of no more use. Stop tala serve and tala worker first, and
    start them again afterwards. Safe to run again if it was interrupted."""
    from admin_cli.client import load_login
    from bot.rotation import rotate

    if load_login():
        fail("tala keys rotate works on the installation's own key, so it runs on the "
             "server's machine, by its operator: it is not sent to the server you are logged "
             "in to ('tala logout' first if this is that machine).")
    with built() as a:
        allowed(a, "keys")
        if not yes:
            if not sys.stdin.isatty():
                fail("Stop every other tala process first, then add --yes to confirm.")
            typer.confirm("Rotate the installation key? Stop tala serve and tala worker "
                          "first.", abort=True)

        def announce(new_key: str, both: str) -> None:
            err.print("TALA_SECRET_KEY is set, so tala cannot write the new key itself. "
                      "Until this command has finished, run tala with both keys:\n"
                      f"  TALA_SECRET_KEY=\"{both}\"\n"
                      "and afterwards with the new key alone:\n"
                      f"  TALA_SECRET_KEY={new_key}")

        done = rotate(a, announce)
        a.db.audit(a.settings.user, "keys", None, "rotated the installation key")
        for step in done.steps:
            out.print(f"- {step}")
        if done.new_key:
            out.print(f"Now set TALA_SECRET_KEY={done.new_key} for every tala process, "
                      "then start them again.")
        else:
            out.print("The installation key is rotated. Start tala serve and tala worker "
                      "again.")
