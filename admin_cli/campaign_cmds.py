"""`tala campaign ...`: anonymous group surveys a class answers by keyword or one Telegram
link, and their posters. Registered on the `tala` command by admin_cli/main.py."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from admin_cli.common import call, err, fail, out
from admin_cli.i18n import _

campaign_app = typer.Typer(help=_("Anonyma enkäter för grupper: en klass svarar med ett "
                                  "nyckelord."), no_args_is_help=True)


@campaign_app.command("create", help=_(
    "Starta en anonym enkät: eleverna skickar nyckelordet (eller öppnar Telegramlänken) och "
    "svarar utan namn; resultaten bara för hela gruppen (tala report --campaign NAMN)."))
def campaign_create(
    name: str = typer.Option(..., "--name", help=_("Ett kort namn, t.ex. ak8-hosten-2026.")),
    questionnaire: str = typer.Option("school-survey", "--questionnaire",
                                      help=_("Frågeformulärets id.")),
    keyword: str = typer.Option(..., "--keyword", help=_("Ordet eleverna skickar, t.ex. "
                                                         "SKOLA8.")),
    unit: Optional[str] = typer.Option(None, "--unit", help=_("Enheten.")),
    opens: datetime = typer.Option(..., "--opens", formats=["%Y-%m-%d"],
                                   help=_("Den första dagen den är öppen.")),
    closes: datetime = typer.Option(..., "--closes", formats=["%Y-%m-%d"],
                                    help=_("Den sista dagen den är öppen.")),
    lang: Optional[list[str]] = typer.Option(None, "--lang", help=_(
        "Språk på affischen och att börja på (upprepa: --lang sv --lang ar).")),
) -> None:
    c = call("campaign_create", name=name, questionnaire=questionnaire, keyword=keyword,
             unit=unit, opens=opens.date(), closes=closes.date(), lang=lang or None)
    keyword = f"[bold]{c['keyword']}[/bold]"
    if c["sms_number"]:
        out.print(_("Kampanj {name}: skicka {keyword} till {number}, öppen {opens} - {closes}.")
                  .format(name=c["name"], keyword=keyword, number=c["sms_number"],
                          opens=c["opens"], closes=c["closes"]))
    else:
        out.print(_("Kampanj {name}: skicka {keyword}, öppen {opens} - {closes}.").format(
            name=c["name"], keyword=keyword, opens=c["opens"], closes=c["closes"]))
    if c["telegram"]:
        out.print(f"Telegram: {c['telegram']}")
    out.print(_("Affisch: tala campaign poster {name} --out affisch.pdf").format(name=c["name"]))


@campaign_app.command("list", help=_("Alla kampanjer, öppna och stängda."))
def campaign_list() -> None:
    from rich.table import Table

    table = Table(_("namn"), _("nyckelord"), _("frågeformulär"), _("enhet"), _("öppen"),
                  _("läge"))
    for c in call("campaign_list"):
        table.add_row(c["name"], c["keyword"], c["questionnaire"], c["unit"] or "",
                      f"{c['opens']} - {c['closes']}",
                      _("stängd") if c["closed"] else _("öppen"))
    out.print(table)


@campaign_app.command("poster", help=_(
    "En A4-affisch för klassrummets vägg: nyckelordet och numret, en QR-kod för Telegram, en "
    "rad om att eleven är anonym, på kampanjens språk."))
def campaign_poster(
    name: str = typer.Argument(..., help=_("Kampanjens namn.")),
    out_file: Path = typer.Option(..., "--out", help=_("affisch.pdf eller affisch.png (A4).")),
) -> None:
    suffix = out_file.suffix.lower().lstrip(".")
    if suffix not in ("pdf", "png"):
        fail(_("Affischen är en PDF eller en PNG: --out {stem}.pdf").format(stem=out_file.stem))
    doc = call("campaign_poster", name=name, format=suffix)
    out_file.write_bytes(doc.content)
    missing = call("campaign_untranslated", name=name)
    if missing:
        err.print("[yellow]" + _("Inte med på affischen (inte översatt än): {langs}.").format(
            langs=", ".join(missing)) + "[/yellow]")
    out.print(_("Skrev {file}.").format(file=out_file))


@campaign_app.command("close", help=_("Stäng en kampanj nu: nyckelordet får sedan ett vänligt "
                                      "svar om att enkäten är stängd."))
def campaign_close(name: str = typer.Argument(..., help=_("Kampanjens namn."))) -> None:
    call("campaign_close", name=name)
    out.print(_("Kampanj {name} är stängd.").format(name=name))
