"""`tala keys ...`: the installation key (bot/rotation.py). Registered on the `tala` command
by admin_cli/main.py."""

from __future__ import annotations

import sys

import typer

from admin_cli.common import allowed, built, err, fail, out
from admin_cli.i18n import _

keys_app = typer.Typer(help=_("Installationsnyckeln som skyddar varje barns datanyckel."),
                       no_args_is_help=True)


@keys_app.command("rotate")
def keys_rotate(
    yes: bool = typer.Option(False, "--yes", help=_("Fråga inte först.")),
) -> None:
    """A new installation key: every data key and staff contact detail is encrypted again
    with it, and the old key is of no more use. Stop tala serve and tala worker first, and
    start them again afterwards. Safe to run again if it was interrupted."""
    from admin_cli.client import load_login
    from bot.rotation import rotate

    if load_login():
        fail(_("tala keys rotate byter installationens egen nyckel och körs därför på "
               "serverns dator, av den som driver den: kommandot skickas inte till servern du "
               "är inloggad på (skriv 'tala logout' först om det är den datorn)."))
    with built() as a:
        allowed(a, "keys")
        if not yes:
            if not sys.stdin.isatty():
                fail(_("Stoppa alla andra tala-processer först och lägg sedan till --yes "
                       "för att bekräfta."))
            typer.confirm(_("Byta installationsnyckeln? Stoppa tala serve och tala worker "
                            "först."), abort=True)

        def announce(new_key: str, both: str) -> None:
            err.print(_("TALA_SECRET_KEY är satt, så tala kan inte skriva den nya nyckeln "
                        "själv. Tills kommandot är klart kör du tala med båda nycklarna:\n"
                        "  TALA_SECRET_KEY=\"{both}\"\n"
                        "och därefter med den nya nyckeln ensam:\n"
                        "  TALA_SECRET_KEY={new_key}").format(both=both, new_key=new_key))

        done = rotate(a, announce)
        a.db.audit(a.settings.user, "keys", None, "rotated the installation key")
        for step in done.steps:
            out.print(f"- {step}")
        if done.new_key:
            out.print(_("Sätt nu TALA_SECRET_KEY={key} för varje tala-process och starta "
                        "dem igen.").format(key=done.new_key))
        else:
            out.print(_("Installationsnyckeln är bytt. Starta tala serve och tala worker "
                        "igen."))
