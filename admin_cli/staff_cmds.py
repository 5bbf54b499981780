"""Staff commands: users, units (office hours and on-call numbers), who is responsible for a
case, and alerts. Registered on the `tala` command by admin_cli/main.py. Everything they print
is in the staff language (admin_cli/i18n.py)."""

from __future__ import annotations

from typing import Optional

import typer

from admin_cli.common import call, out
from admin_cli.i18n import N_, _, ngettext
from admin_cli.safe import json_text

users_app = typer.Typer(help=_("Vem som får använda tala: roller, enheter och vart larmen går."),
                        no_args_is_help=True)
alerts_app = typer.Typer(help=_("Viktiga svar som väntar på en handläggare."),
                         invoke_without_command=True)
units_app = typer.Typer(help=_("Enheter: kontorstider och numret till socialjouren för "
                               "brådskande larm utanför dem."), invoke_without_command=True)
case_app = typer.Typer(help=_("Ett barns ärende: vem som är ansvarig."), no_args_is_help=True)


def _yes(value: bool) -> str:
    return _("ja") if value else _("nej")


@users_app.command("add", help=_("Lägg till en användare eller ändra en. Den första användaren "
                                 "avslutar det öppna läget: lägg till en administratör först."))
def users_add(
    name: str = typer.Argument(..., help=_("Namnet som TALA_USER får (t.ex. anna.svensson).")),
    role: str = typer.Option(..., "--role", help=_("caseworker (handläggare), manager (chef) "
                                                   "eller admin (administratör).")),
    unit: Optional[str] = typer.Option(None, "--unit", help=_("Enheten hen arbetar i.")),
    phone: Optional[str] = typer.Option(None, "--phone", help=_("Jobbnummer för larm (sms).")),
    email: Optional[str] = typer.Option(None, "--email", help=_("E-postadress för larm.")),
) -> None:
    from admin_cli.access import role_title

    call("users_add", name=name, role=role, unit=unit, phone=phone, email=email)
    if unit:
        out.print(_("{name} har nu rollen {role} i {unit}.").format(
            name=name, role=role_title(role), unit=unit))
    else:
        out.print(_("{name} har nu rollen {role}.").format(name=name, role=role_title(role)))


@users_app.command("list", help=_("Alla som får använda tala."))
def users_list() -> None:
    from rich.table import Table

    from admin_cli.access import role_title

    table = Table(_("namn"), _("roll"), _("enhet"), _("larm med sms"), _("larm med e-post"))
    for u in call("users"):
        table.add_row(u["name"], role_title(u["role"]), u["unit"] or "", _yes(u["sms"]),
                      _yes(u["email"]))
    out.print(table)


@users_app.command("token", help=_("En personlig token för `tala login --token` på användarens "
                                   "egen dator. Visas en gång: tala sparar bara en hash av "
                                   "den."))
def users_token(
    name: str = typer.Argument(..., help=_("Vems token: en användare i tala.")),
    days: int = typer.Option(90, "--days", help=_("Hur länge den gäller (högst 366 dagar).")),
    label: Optional[str] = typer.Option(None, "--label", help=_("Vad den är till för, t.ex. "
                                                                "\"Annas laptop\".")),
) -> None:
    t = call("users_token", name=name, days=days, label=label)
    out.print(_("En token för {name}, till och med {until} (id {id}). Den visas bara nu: ge den "
                "till hen personligen eller på ett annat säkert sätt.").format(
        name=t["name"], until=t["expires_at"][:10], id=t["id"]))
    typer.echo(t["token"])
    out.print(_("På sin egen dator skriver hen: tala login --server https://DEN-HAR-SERVERN "
                "--token DIN-TOKEN"))


@users_app.command("tokens", help=_("API-token: vems, vad de är till för, hur länge de gäller, "
                                    "senast använda (aldrig själva token)."))
def users_tokens(name: Optional[str] = typer.Argument(None, help=_("Bara den här "
                                                                   "användarens."))) -> None:
    from rich.table import Table

    table = Table("id", _("användare"), _("slag"), _("etikett"), _("gäller till"),
                  _("senast använd"), _("spärrad"))
    for t in call("users_tokens", name=name):
        table.add_row(t["id"], t["name"], t["kind"], t["label"] or "",
                      t["expires_at"][:10],
                      (t["last_used_at"] or _("aldrig"))[:16].replace("T", " "),
                      (t["revoked_at"] or "")[:16].replace("T", " "))
    out.print(table)


@users_app.command("revoke", help=_("Spärra API-token direkt (en borttappad dator, någon som "
                                    "har slutat)."))
def users_revoke(
    name: Optional[str] = typer.Argument(None, help=_("Spärra alla den här användarens "
                                                      "token.")),
    token: Optional[str] = typer.Option(None, "--token", help=_("Spärra bara den här token "
                                                                "(dess id, från `tala users "
                                                                "tokens`).")),
) -> None:
    n = call("users_revoke", name=name, token=token)["revoked"]
    out.print(ngettext("{n} token spärrad.", "{n} token spärrade.", n).format(n=n))


ROUTE_NAMES = {"sms": N_("sms"), "email": N_("e-post")}
NOTICE_STATUS = {"queued": N_("i kö"), "sent": N_("skickat"), "delivered": N_("levererat"),
                 "undelivered": N_("inte levererat"), "failed": N_("misslyckades")}


def _told(t: dict, tz: str) -> str:
    """One notice as the table shows it: "anna sms 2 mar 09:01 levererat"."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from babel.dates import format_datetime

    from admin_cli.i18n import staff_lang
    from admin_cli.labels import title

    at = datetime.fromisoformat(t["at"])
    at = at if at.tzinfo else at.replace(tzinfo=ZoneInfo("UTC"))
    who = _("jourtelefonen") if t["who"] == "on-call" else t["who"]
    when = format_datetime(at.astimezone(ZoneInfo(tz)), "d MMM HH:mm", locale=staff_lang())
    return (f"{who} {title(ROUTE_NAMES, t['route'])} {when} {title(NOTICE_STATUS, t['status'])}"
            + (" " + _("(eskalerat)") if t["kind"] == "escalate" else ""))


@alerts_app.callback(help=_("Öppna larm (viktiga svar som ingen har kvitterat än), äldst "
                            "först."))
def alerts_list(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help=_("Som JSON.")),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    from admin_cli.labels import LEVEL_TITLES, TOPIC_TITLES, title

    res = call("alerts")
    data = res["alerts"]
    if as_json:
        typer.echo(json_text(data))
        return
    if not data:
        out.print(_("Inga öppna larm."))
        return
    table = Table("id", _("ärende"), _("enhet"), _("nivå"), _("handlar om"), _("väntat"),
                  _("meddelat till"))
    for d in data:
        told = "\n".join(_told(t, res["timezone"]) for t in d["told"]) or _("ingen än")
        table.add_row(str(d["id"]), d["case"], d["unit"] or "", title(LEVEL_TITLES, d["level"]),
                      title(TOPIC_TITLES, d["topic"]), d["age"], told,
                      style="red" if d["level"] == "urgent" else None)
    out.print(table)
    out.print(_("Läs svaren med: tala summary ÄRENDE. När larmet är hanterat: "
                "tala alerts ack ID --note \"vad som gjordes\""))


@alerts_app.command("ack", help=_("Kvittera att ett larm är hanterat: av vem och hur."))
def alerts_ack(
    alert_id: int = typer.Argument(..., help=_("Larmets id, från `tala alerts`.")),
    note: Optional[str] = typer.Option(None, "--note", help=_("Vad som gjordes.")),
) -> None:
    call("ack", alert_id=alert_id, note=note)
    out.print(_("Larm {id} är kvitterat.").format(id=alert_id))


@units_app.callback(help=_("Enheterna, deras kontorstider och jourtelefon."))
def units_list(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    res = call("units")
    table = Table(_("enhet"), _("kontorstider"),
                  _("jourtelefon (för brådskande larm utanför kontorstid)"))
    for u in res["units"]:
        table.add_row(u["name"], u["office_hours"],
                      u["on_call"] or _("ingen: brådskande larm väntar till kontoret öppnar"))
    out.print(table)
    out.print(_("En enhet som inte finns här har kontorstiderna {hours} och ingen jourtelefon. "
                "Svenska helgdagar räknas som utanför kontorstid.").format(
        hours=res["default_hours"]))


@units_app.command("set", help=_("Ställ in en enhets jourtelefon och kontorstider."))
def units_set(
    unit: str = typer.Argument(..., help=_("Enheten, som användare och ärenden kallar den "
                                           "(t.ex. Nord).")),
    on_call: Optional[str] = typer.Option(None, "--on-call", help=_(
        "Numret till socialjouren för brådskande larm utanför kontorstid; \"\" tar bort det.")),
    hours: Optional[str] = typer.Option(None, "--hours", help=_(
        "Kontorstider, t.ex. \"mon-fri 08:00-17:00\" eller \"always\".")),
) -> None:
    u = call("units_set", unit=unit, on_call=on_call, hours=hours)
    out.print(_("{unit}: kontorstider {hours}; jourtelefon {number}.").format(
        unit=unit, hours=u["office_hours"], number=u["on_call"] or _("ingen")))
    if not u["sms"] and u["on_call"]:
        out.print(_("Obs: sms är inte inställt här (TWILIO_*), så jourtelefonen kan inte få sms "
                    "än."))


@case_app.command("assign", help=_("Gör någon ansvarig för ett ärende: ärendets larm går till "
                                   "hen från och med nu."))
def case_assign(
    case: str = typer.Argument(..., help=_("Ärendets referens.")),
    name: str = typer.Argument(..., help=_("Användaren i tala som nu är ansvarig.")),
) -> None:
    call("assign", case=case, name=name)
    out.print(_("{name} är nu ansvarig för {case}; ärendets larm går till {name}.").format(
        name=name, case=case))
