"""Staff commands: users, units (office hours and on-call numbers), who is responsible for a
case, and alerts. Registered on the `tala` command by admin_cli/main.py."""

from __future__ import annotations

from typing import Optional

import typer

from admin_cli.common import allowed, built, fail, out
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
    from admin_cli.access import ROLES
    from bot.channels.sms import NumberError, normalise_number

    if role not in ROLES:
        fail(f"--role must be one of {', '.join(ROLES)}.")
    if role != "admin" and not unit:
        fail(f"A {role} needs --unit (the unit whose cases they work with).")
    with built() as a:
        first = not a.db.has_users()
        if not first:
            allowed(a, "users")
        elif role != "admin":
            fail("The first user must be an admin (until then everyone may do everything): "
                 f"tala users add {a.settings.user} --role admin")
        try:
            number = normalise_number(phone, a.settings.sms_default_region) if phone else None
        except NumberError as e:
            fail(str(e))
        if email and not _EMAIL.fullmatch(email.strip()):
            fail(f"'{email}' does not look like an e-mail address (name@kommun.se).")
        a.db.add_user(name, role, unit, number, email.strip() if email else None)
        a.db.audit(a.settings.user, "users", None, f"{name}: {role} {unit or ''}".strip())
        out.print(f"{name} is {'an' if role == 'admin' else 'a'} {role}"
                  + (f" in {unit}" if unit else "") + ".")


@users_app.command("list")
def users_list() -> None:
    """Everyone who may use tala."""
    from rich.table import Table

    with built() as a:
        allowed(a, "users")
        table = Table("name", "role", "unit", "alerts by SMS", "alerts by e-mail")
        for u in a.db.users():
            table.add_row(u.name, u.role, u.unit or "", "yes" if u.phone_enc else "no",
                          "yes" if u.email_enc else "no")
        out.print(table)


_EMAIL = __import__("re").compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
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


def _age(dt) -> str:
    from storage.sql import as_utc, utcnow

    minutes = int((utcnow() - as_utc(dt)).total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


@alerts_app.callback()
def alerts_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="As JSON."),
) -> None:
    """Open alerts (important answers nobody has acknowledged yet), oldest first."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    with built() as a:
        user = allowed(a, "alerts")
        unit = user.unit if user is not None and user.role != "admin" else None
        rows = a.db.open_alerts(unit)
        told = a.db.notices_of([al.id for al, _ in rows])
        a.db.audit(a.settings.user, "alerts", None, f"{len(rows)} open")
        data = [{"id": al.id, "case": c.case_ref, "unit": c.unit, "level": al.level,
                 "topic": al.topic, "question_id": al.question_id,
                 "created_at": al.created_at.isoformat(), "age": _age(al.created_at),
                 "notified": al.notified_at is not None,
                 "escalated": al.escalated_at is not None,
                 "told": [{"who": n.recipient, "route": n.route, "kind": n.kind,
                           "at": n.queued_at.isoformat(), "status": n.status,
                           "error": n.error} for n in told[al.id]]}
                for al, c in rows]
        if as_json:
            typer.echo(json_text(data))
            return
        if not data:
            out.print("No open alerts.")
            return
        table = Table("id", "case", "unit", "level", "about", "age", "told")
        for d in data:
            told = "\n".join(_told(t, a.settings.timezone) for t in d["told"]) or "nobody yet"
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
    with built() as a:
        row = a.db.alert(alert_id)
        if row is None:
            fail(f"There is no alert {alert_id}. 'tala alerts' lists the open ones.")
        allowed(a, "ack", case_ref=a.db.case_ref_of(row.child_id))
        if row.acked_at is not None:
            fail(f"Alert {alert_id} was acknowledged already by {row.acked_by}.", code=1)
        a.db.ack_alert(alert_id, a.settings.user, note)
        a.db.audit(a.settings.user, "ack", a.db.case_ref_of(row.child_id), f"alert {alert_id}")
        out.print(f"Alert {alert_id} acknowledged.")


@units_app.callback()
def units_list(ctx: typer.Context) -> None:
    """The units, their office hours and on-call numbers."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from bot.hours import DEFAULT_HOURS

    with built() as a:
        allowed(a, "units")
        table = Table("unit", "office hours", "on-call number (urgent alerts outside them)")
        for u in a.db.units():
            table.add_row(u.name, u.office_hours or DEFAULT_HOURS,
                          a.db.on_call(u) or "none: urgent alerts wait for the office")
        out.print(table)
        out.print(f"A unit not listed has the office hours {DEFAULT_HOURS} and no on-call "
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
    from bot.channels.sms import NumberError, normalise_number
    from bot.hours import HoursError

    if on_call is None and hours is None:
        fail(f"Say what to set, for example: tala units set {unit} --on-call 0701234567 "
             "--hours \"mon-fri 08:00-17:00\"")
    with built() as a:
        allowed(a, "units", unit=unit)
        try:
            number = (normalise_number(on_call, a.settings.sms_default_region)
                      if on_call else on_call)
            a.service.notifier.set_unit(unit, on_call=number, office_hours=hours)
        except (NumberError, HoursError) as e:
            fail(str(e))
        a.db.audit(a.settings.user, "units", None,
                   f"{unit}: " + ", ".join(part for part in (
                       "on-call number " + ("set" if number else "removed")
                       if on_call is not None else "",
                       f"hours {hours}" if hours else "") if part))
        row = a.db.unit(unit)
        from bot.hours import DEFAULT_HOURS

        out.print(f"{unit}: office hours {row.office_hours or DEFAULT_HOURS}; on-call number "
                  f"{a.db.on_call(row) or 'none'}.")
        if "sms" not in a.service.outbound and a.db.on_call(row):
            out.print("Note: SMS is not set up here (TWILIO_*), so the on-call number cannot "
                      "be texted yet.")


@case_app.command("assign")
def case_assign(
    case: str = typer.Argument(..., help="The case reference."),
    name: str = typer.Argument(..., help="The tala user who is now responsible."),
) -> None:
    """Make someone responsible for a case: its alerts go to them from now on."""
    with built() as a:
        allowed(a, "assign", case_ref=case)
        child = a.db.child(case)
        if child is None:
            fail(f"There is no case '{case}'. It is made by its first invitation: "
                 f"tala invite {case} --age N")
        if a.db.has_users():
            user = a.db.user(name)
            if user is None:
                fail(f"There is no tala user '{name}'. 'tala users list' shows who there is.")
            if user.role != "admin" and child.unit and user.unit != child.unit:
                fail(f"{name} works in {user.unit}, and {case} is in {child.unit}.")
        before = child.caseworker
        a.db.ensure_child(case, caseworker=name)
        a.db.audit(a.settings.user, "assign", case, f"{before or 'nobody'} -> {name}")
        out.print(f"{name} is now responsible for {case}; its alerts go to {name}.")
