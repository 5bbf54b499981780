"""Staff commands: users, units (office hours and on-call numbers), who is responsible for a
case, and alerts. Registered on the `tala` command by admin_cli/main.py."""

from __future__ import annotations

from typing import Optional

import typer

from admin_cli.common import call, out
from admin_cli.safe import json_text

users_app = typer.Typer(help="Who may use tala: roles, units, and where their alerts go.",
                        no_args_is_help=True)
alerts_app = typer.Typer(help="Important answers waiting for a caseworker.",
                         invoke_without_command=True)
units_app = typer.Typer(help="Units: office hours, and the on-call number (socialjour) for "
                        "urgent alerts outside them.", invoke_without_command=True)
case_app = typer.Typer(help="A child's case: who is responsible for it.", no_args_is_help=True)


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="The name TALA_USER will carry (e.g. anna.svensson)."),
    role: str = typer.Option(..., "--role", help="caseworker, manager or admin."),
    unit: Optional[str] = typer.Option(None, "--unit", help="The unit they work in."),
    phone: Optional[str] = typer.Option(None, "--phone", help="Work phone for alerts (SMS)."),
    email: Optional[str] = typer.Option(None, "--email", help="E-mail address for alerts."),
) -> None:
    """Add a user or change one. The first user ends open mode: add an admin first."""
    call("users_add", name=name, role=role, unit=unit, phone=phone, email=email)
    out.print(f"{name} is {'an' if role == 'admin' else 'a'} {role}"
              + (f" in {unit}" if unit else "") + ".")


@users_app.command("list")
def users_list() -> None:
    """Everyone who may use tala."""
    from rich.table import Table

    table = Table("name", "role", "unit", "alerts by SMS", "alerts by e-mail")
    for u in call("users"):
        table.add_row(u["name"], u["role"], u["unit"] or "", "yes" if u["sms"] else "no",
                      "yes" if u["email"] else "no")
    out.print(table)


@users_app.command("token")
def users_token(
    name: str = typer.Argument(..., help="Whose token: a tala user."),
    days: int = typer.Option(90, "--days", help="How long it works (at most 366 days)."),
    label: Optional[str] = typer.Option(None, "--label", help="What it is for, e.g. "
                                        "\"Annas laptop\"."),
) -> None:
    """A personal API token, for `tala login --token` on the user's own computer. Shown once:
    tala keeps only a hash of it."""
    t = call("users_token", name=name, days=days, label=label)
    out.print(f"A token for {t['name']}, until {t['expires_at'][:10]} (id {t['id']}). It is "
              "shown only now: give it to them in person or by another safe way.")
    typer.echo(t["token"])
    out.print("On their own computer they run: tala login --server https://THIS-SERVER "
              "--token THE-TOKEN")


@users_app.command("tokens")
def users_tokens(name: Optional[str] = typer.Argument(None, help="Only this user's.")) -> None:
    """The API tokens: whose, what for, until when, last used (never the tokens)."""
    from rich.table import Table

    table = Table("id", "user", "kind", "label", "until", "last used", "revoked")
    for t in call("users_tokens", name=name):
        table.add_row(t["id"], t["name"], t["kind"], t["label"] or "",
                      t["expires_at"][:10], (t["last_used_at"] or "never")[:16].replace("T", " "),
                      (t["revoked_at"] or "")[:16].replace("T", " "))
    out.print(table)


@users_app.command("revoke")
def users_revoke(
    name: Optional[str] = typer.Argument(None, help="Revoke every token of this user."),
    token: Optional[str] = typer.Option(None, "--token", help="Revoke only this token (its "
                                        "id, from 'tala users tokens')."),
) -> None:
    """Make API tokens stop working at once (a lost laptop, someone who left)."""
    n = call("users_revoke", name=name, token=token)["revoked"]
    out.print(f"{n} token{'s' if n != 1 else ''} revoked.")


ROUTE_NAMES = {"sms": "SMS", "email": "e-mail"}


def _told(t: dict, tz: str) -> str:
    """One notice as the table shows it: "anna SMS 09:01 delivered"."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    at = datetime.fromisoformat(t["at"])
    at = at if at.tzinfo else at.replace(tzinfo=ZoneInfo("UTC"))
    who = "on-call number" if t["who"] == "on-call" else t["who"]
    return (f"{who} {ROUTE_NAMES.get(t['route'], t['route'])} "
            f"{at.astimezone(ZoneInfo(tz)):%d %b %H:%M} {t['status']}"
            + (" (escalated)" if t["kind"] == "escalate" else ""))


@alerts_app.callback()
def alerts_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="As JSON."),
) -> None:
    """Open alerts (important answers nobody has acknowledged yet), oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    res = call("alerts")
    data = res["alerts"]
    if as_json:
        typer.echo(json_text(data))
        return
    if not data:
        out.print("No open alerts.")
        return
    table = Table("id", "case", "unit", "level", "about", "age", "told")
    for d in data:
        told = "\n".join(_told(t, res["timezone"]) for t in d["told"]) or "nobody yet"
        table.add_row(str(d["id"]), d["case"], d["unit"] or "", d["level"], d["topic"],
                      d["age"], told, style="red" if d["level"] == "urgent" else None)
    out.print(table)
    out.print("Read the answers with: tala summary CASE. When handled: "
              "tala alerts ack ID --note \"what was done\"")


@alerts_app.command("ack")
def alerts_ack(
    alert_id: int = typer.Argument(..., help="The alert's id, from 'tala alerts'."),
    note: Optional[str] = typer.Option(None, "--note", help="What was done."),
) -> None:
    """Record that an alert was handled, by whom, and how."""
    call("ack", alert_id=alert_id, note=note)
    out.print(f"Alert {alert_id} acknowledged.")


@units_app.callback()
def units_list(ctx: typer.Context) -> None:
    """The units, their office hours and on-call numbers."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    res = call("units")
    table = Table("unit", "office hours", "on-call number (urgent alerts outside them)")
    for u in res["units"]:
        table.add_row(u["name"], u["office_hours"],
                      u["on_call"] or "none: urgent alerts wait for the office")
    out.print(table)
    out.print(f"A unit not listed has the office hours {res['default_hours']} and no on-call "
              "number. Swedish public holidays are outside office hours.")


@units_app.command("set")
def units_set(
    unit: str = typer.Argument(..., help="The unit, as users and cases name it (e.g. Nord)."),
    on_call: Optional[str] = typer.Option(None, "--on-call", help="The on-call number "
                                          "(socialjour) for urgent alerts outside office "
                                          "hours; \"\" removes it."),
    hours: Optional[str] = typer.Option(None, "--hours", help="Office hours, e.g. "
                                        "\"mon-fri 08:00-17:00\" or \"always\"."),
) -> None:
    """Set a unit's on-call number and office hours."""
    u = call("units_set", unit=unit, on_call=on_call, hours=hours)
    out.print(f"{unit}: office hours {u['office_hours']}; on-call number "
              f"{u['on_call'] or 'none'}.")
    if not u["sms"] and u["on_call"]:
        out.print("Note: SMS is not set up here (TWILIO_*), so the on-call number cannot "
                  "be texted yet.")


@case_app.command("assign")
def case_assign(
    case: str = typer.Argument(..., help="The case reference."),
    name: str = typer.Argument(..., help="The tala user who is now responsible."),
) -> None:
    """Make someone responsible for a case: its alerts go to them from now on."""
    call("assign", case=case, name=name)
    out.print(f"{name} is now responsible for {case}; its alerts go to {name}.")
