"""A caseworker's and an admin's everyday commands on one case: `tala reply`, `tala erase`, and
`tala audit` (who read or did what). Merged into the `tala` command by admin_cli/main.py; only
Typer and Rich at import."""

from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from admin_cli.common import call, err, fail, out
from admin_cli.i18n import _

commands = typer.Typer()


@commands.command(help=_("Skicka ett kort svar till barnet, i den kanal barnet använde."))
def reply(
    case: str = typer.Argument(..., help=_("Ärendets referens.")),
    text: str = typer.Argument(..., help=_("Meddelandet, inom citattecken.")),
) -> None:
    status = call("reply", case=case, text=text)["status"]
    out.print(_("Svaret är skickat till barnet i ärende {case}.").format(case=case)
              if status == "sent" else
              _("Svaret till barnet i ärende {case} ligger i kö: det skickas så snart det "
                "går.").format(case=case))


@commands.command(help=_("Vem som läste eller gjorde vad, det senaste först."))
def audit(
    case: Optional[str] = typer.Option(None, "--case", help=_("Bara det här ärendet.")),
    actor: Optional[str] = typer.Option(None, "--user", help=_("Bara det den här användaren "
                                                               "gjorde.")),
    as_json: bool = typer.Option(False, "--json", help=_("Som JSON.")),
) -> None:
    from rich.table import Table

    data = call("audit", case=case, user=actor)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    table = Table(_("när"), _("användare"), _("händelse"), _("ärende"), _("detaljer"))
    for d in data:
        table.add_row(d["at"][:16].replace("T", " "), d["user"], d["action"],
                      d["case"] or "", d["detail"] or "")
    out.print(table)


@commands.command(help=_("Ta bort allt om ett barn ur SQL och Redis. Går inte att ångra."))
def erase(
    case: str = typer.Argument(..., help=_("Ärendets referens.")),
    yes: bool = typer.Option(False, "--yes", help=_("Fråga inte först.")),
) -> None:
    if not yes:
        if not sys.stdin.isatty():
            fail(_("Det går inte att ångra en radering: lägg till --yes för att bekräfta."))
        typer.confirm(_("Radera allt om {case}? Det går inte att ångra.").format(case=case),
                      abort=True)
    call("erase", case=case)
    out.print(_("{case} är raderat, och barnets datanycklar är förstörda (README: Privacy). "
                "Loggen behåller bara att en radering har skett.").format(case=case))


def invited(inv: dict, res: dict, channel: str) -> None:
    """What `tala invite` prints once the invitation is made: where it went, until when it is
    open, who hears of the case's alerts, and how the child answers."""
    case = inv["case"]
    from admin_cli.labels import delivery_text

    said = delivery_text(inv)
    if said is None:
        out.print(_("Barnet i ärende {case} är inbjudet.").format(case=case))
    elif said[1]:
        err.print(f"[yellow]{said[0]}[/yellow]")
    else:
        out.print(said[0])
    out.print(_("Frågeformulär {questionnaire}, språk {lang}. Inbjudan gäller till och med "
                "{until}.").format(questionnaire=inv["questionnaire"], lang=inv["lang"],
                                   until=inv["expires_at"][:10]))
    if res["alerts_to"]:
        out.print(_("Larm i ärende {case} går till {who}.").format(case=case,
                                                                   who=res["alerts_to"]))
    for note in res["notes"]:
        err.print(f"[yellow]{note}[/yellow]")
    code = f"[bold]{inv['code']}[/bold]"
    if channel in ("sms", "whatsapp", "web"):
        return
    if inv["link"]:
        out.print(_("Ge barnet den här länken (den fungerar en gång): {link}").format(
            link=f"[bold]{inv['link']}[/bold]"))
    elif channel == "rasa":
        out.print(_("Ge barnet den här koden att skriva i chattassistenten (den fungerar en "
                    "gång), till exempel 'Jag har en kod: {plain}': {code}").format(
            plain=inv["code"], code=code))
    else:
        out.print(_("Svara i den här terminalen: {command}").format(
            command=f"[bold]tala demo --code {inv['code']}[/bold]"))
