"""The `tala` command: one entry point for caseworkers, managers, translators and operators.

Each command imports what it uses when it runs: at import this module needs only Typer and
Rich, so `tala --help` (and a command that reads SQL only) does not pay for SQLAlchemy, Redis,
the channels or the settings' validation it does not use (bench/cli_start.py measures it)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from admin_cli import case_cmds, login_cmds, serve_cmds
from admin_cli.common import allowed, built, call, err, fail, out
from admin_cli.campaign_cmds import campaign_app
from admin_cli.flows_cmds import flows_app
from admin_cli.i18n import _, ngettext
from admin_cli.keys_cmds import keys_app
from admin_cli.serve_cmds import db_app
from admin_cli.staff_cmds import alerts_app, case_app, units_app, users_app

# Help texts are translated here, when the module is imported: staff_lang() reads TALA_LANG
# and the locale from the environment, which is set by then.
app = typer.Typer(help=_("tala: ett barn berättar hur hen har det, med sms eller chatt."),
                  no_args_is_help=True, add_completion=False)
locales_app = typer.Typer(help=_("Översättningar (gettext-kataloger i locales/)."),
                          no_args_is_help=True)
# demo, serve, worker, rasa-actions; login, logout; reply, audit, erase: in their own modules.
for commands in (serve_cmds.commands, login_cmds.commands, case_cmds.commands):
    app.add_typer(commands)
app.add_typer(flows_app, name="flows")
app.add_typer(db_app, name="db")
app.add_typer(locales_app, name="locales")
app.add_typer(users_app, name="users")
app.add_typer(units_app, name="units")
app.add_typer(case_app, name="case")
app.add_typer(alerts_app, name="alerts")
app.add_typer(campaign_app, name="campaign")
app.add_typer(keys_app, name="keys")


class Channel(str, Enum):
    console = "console"
    sms = "sms"
    whatsapp = "whatsapp"
    web = "web"
    telegram = "telegram"
    rasa = "rasa"


@app.command(help=_("Bjud in ett barn (eller, med --from-csv, många) att svara på ett "
                    "frågeformulär."))
def invite(
    case: Optional[str] = typer.Argument(None, help=_("Ärendets pseudonyma referens, t.ex. "
                                                      "K-17.")),
    age: Optional[int] = typer.Option(None, "--age", help=_("Barnets ålder i år.")),
    lang: str = typer.Option("sv", "--lang", help=_("Språket barnet börjar på (sv, en, ...).")),
    channel: Channel = typer.Option(Channel.console, "--channel", help=_("Hur barnet svarar.")),
    to: Optional[str] = typer.Option(None, "--to", help=_("Barnets mobilnummer, för --channel "
                                                          "sms, whatsapp och web.")),
    questionnaire: Optional[str] = typer.Option(None, "--questionnaire", help=_(
        "Frågeformulärets id (förvalt: efter ålder).")),
    unit: Optional[str] = typer.Option(None, "--unit", help=_("Enheten, för "
                                                              "gruppsammanställningar.")),
    caseworker: Optional[str] = typer.Option(None, "--caseworker", help=_(
        "Användaren i tala som är ansvarig för ärendet och får dess larm (förvalt: du).")),
    from_csv: Optional[Path] = typer.Option(None, "--from-csv", help=_(
        "Bjud in alla i en CSV-fil med sms (kolumner: case, age, to; valfria: lang, unit, "
        "questionnaire, caseworker, phase).")),
    as_json: bool = typer.Option(False, "--json", help=_("Skriv ut inbjudan som JSON.")),
    phase: Optional[str] = typer.Option(None, "--phase", help=_(
        "Ärendets fas, för enhetens indikatorer: forhandsbedomning, utredning, uppfoljning "
        "eller placering.")),
) -> None:
    if from_csv:
        from admin_cli import bulk
        from admin_cli.client import ClientError, remote

        try:
            server = remote()
            if server is not None:
                report = bulk.invite_through(server, from_csv, out)
            else:
                with built() as a:
                    allowed(a, "invite")
                    report = bulk.invite_from_csv(a, from_csv, a.settings.user, out)
        except ClientError as e:
            fail(e.message, e.code)
        raise typer.Exit(0 if not report.failures else 1)
    if not case or age is None:
        fail(_("Skriv ärendets referens och barnets ålder, till exempel: "
               "tala invite K-17 --age 9 --channel sms --to 0701234567"))
    res = call("invite", case=case, age=age, lang=lang, channel=channel.value, to=to,
               questionnaire=questionnaire, unit=unit, caseworker=caseworker, phase=phase)
    inv = res["invitation"]
    if as_json:
        out.print_json(json.dumps(inv))
        return
    from admin_cli.case_cmds import invited

    invited(inv, res, channel.value)


def _text_view(out_file: Path | None, file_width: int) -> dict:
    """How the server or the local run renders a text document: for a file at a fixed
    width without colours, for this terminal as wide as it is, with its colours."""
    if out_file:
        return {"format": "text", "width": file_width, "wrap": True, "color": False}
    return {"format": "text", "width": out.width, "wrap": False, "color": out.is_terminal}


def _write(doc, out_file: Path | None, strip_bom: bool = False) -> None:
    """A document as it came: to the file (then say so), or to standard output."""
    if out_file:
        out_file.write_bytes(doc.content)
        if not doc.media_type.startswith("text/plain"):
            err.print(_("Skrev {file}.").format(file=out_file))
        return
    text = doc.content.decode("utf-8")
    sys.stdout.write(text.lstrip("\ufeff") if strip_bom else text)
    sys.stdout.flush()


class SummaryFormat(str, Enum):
    text = "text"
    json = "json"
    html = "html"
    png = "png"


@app.command("summary", help=_(
    "Vad barnet har sagt, för handläggaren: per livsområde, det barnet vill ha hjälp med "
    "först, viktiga svar markerade, skalsvar över tid. Varje läsning skrivs i loggen."))
def summary_cmd(
    case: str = typer.Argument(..., help=_("Ärendets referens.")),
    fmt: SummaryFormat = typer.Option(SummaryFormat.text, "--format", help=_(
        "text, json, html eller png (png och html som fil till akten).")),
    out_file: Optional[Path] = typer.Option(None, "--out", help=_("Skriv till den här filen.")),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"],
                                             help=_("Från och med den här dagen.")),
    until: Optional[datetime] = typer.Option(None, "--until", formats=["%Y-%m-%d"],
                                             help=_("Till och med den här dagen.")),
    compare: Optional[tuple[str, str]] = typer.Option(None, "--compare", help=_(
        "FÖRE EFTER: två datum (ÅÅÅÅ-MM-DD: det senaste tillfället den dagen eller före) eller "
        "tillfällens id, till exempel före och efter en insats.")),
    width: Optional[int] = typer.Option(None, "--width", help=_(
        "Text: tecken per rad (förvalt: terminalens bredd, eller 100 i en fil). Raderna bryts "
        "mellan ord, aldrig mitt i.")),
) -> None:
    if fmt is SummaryFormat.png and not out_file:
        fail(_("En PNG behöver en fil: lägg till --out sammanfattning.png"))
    if compare is not None and None in compare:
        compare = None
    view = _text_view(out_file, 100) if fmt is SummaryFormat.text else {"format": fmt.value}
    if width is not None and fmt is SummaryFormat.text:
        view["width"] = width
    doc = call("summary", case=case, since=since.date() if since else None,
               until=until.date() if until else None,
               compare=list(compare) if compare else None, **view)
    _write(doc, out_file)


@locales_app.command("update", help=_(
    "Hämta varje text till sin mall (för barnen: locales/tala.pot, för personalen: "
    "locales/tala-staff.pot) och för in den i varje katalog för samma domän. Nya texter kommer "
    "oöversatta, ändrade som osäkra (fuzzy): tills de är översatta läser man svenska för just "
    "dem. Oförändrade källor lämnar alla filer som de var."))
def locales_update() -> None:
    from admin_cli.locales import DOMAINS, LOCALES, update_all

    for po in update_all():
        out.print(_("uppdaterade {path}").format(path=po.relative_to(LOCALES.parent)))
    for domain in DOMAINS:
        out.print(_("mall: {path}").format(path=domain.pot().relative_to(LOCALES.parent)))


class ReportFormat(str, Enum):
    text = "text"
    json = "json"
    csv = "csv"
    html = "html"


@app.command("report", help=_(
    "Avidentifierade resultat för grupper: deltagande och hur svaren fördelar sig, med små "
    "grupper sammanslagna eller utelämnade och små tal dolda (se README). --indicators: "
    "månadens indikatorer per fas i ärendet."))
def report_cmd(
    unit: Optional[str] = typer.Option(None, "--unit", help=_("Bara den här enheten.")),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"], help=_(
        "Från och med den här dagen (avrundat till sitt kvartal).")),
    until: Optional[datetime] = typer.Option(None, "--until", formats=["%Y-%m-%d"],
                                             help=_("Till och med den här dagen.")),
    questionnaire: Optional[str] = typer.Option(None, "--questionnaire",
                                                help=_("Bara det här frågeformuläret.")),
    fmt: ReportFormat = typer.Option(ReportFormat.text, "--format",
                                     help=_("text, json, csv eller html.")),
    out_file: Optional[Path] = typer.Option(None, "--out", help=_("Skriv till den här filen.")),
    campaign: Optional[str] = typer.Option(None, "--campaign", help=_(
        "En anonym enkäts resultat (svaren när den har stängt).")),
    indicators: bool = typer.Option(False, "--indicators", help=_(
        "Andelen barn som har kommit till tals per månad och fas, och placerade barn som har "
        "kommit till tals fyra gånger på tolv månader (text, json eller csv).")),
) -> None:
    if campaign and (unit or since or until or questionnaire):
        fail(_("--campaign står ensamt: en enkäts rapport gäller hela enkäten."))
    view = _text_view(out_file, 110) if fmt is ReportFormat.text else {"format": fmt.value}
    if indicators:
        if campaign or questionnaire or fmt is ReportFormat.html:
            fail(_("--indicators går med --unit, --since, --until och --format text, json "
                   "eller csv."))
        _write(call("indicators", unit=unit, since=since.date() if since else None,
                    until=until.date() if until else None, **view), out_file)
        return
    doc = call("report", unit=unit, since=since.date() if since else None,
               until=until.date() if until else None, questionnaire=questionnaire,
               campaign=campaign, **view)
    _write(doc, out_file)


@app.command("export", help=_("Avslutade tillfällen för ärendesystemet: aldrig "
                              "kontaktuppgifter. Skrivs i loggen över vem som gjort vad."))
def export_cmd(
    fmt: str = typer.Option("json", "--format", help=_(
        "json, csv (en rad per svar) eller fhir (FHIR R4 QuestionnaireResponse och "
        "Questionnaire).")),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"],
                                             help=_("Från och med den här dagen.")),
    until: Optional[datetime] = typer.Option(None, "--until", formats=["%Y-%m-%d"],
                                             help=_("Till och med den här dagen.")),
    out_file: Optional[Path] = typer.Option(None, "--out", help=_("Skriv till den här filen.")),
) -> None:
    doc = call("export", format=fmt, since=since.date() if since else None,
               until=until.date() if until else None)
    _write(doc, out_file, strip_bom=True)  # a file keeps the CSV's BOM, for Excel


@locales_app.command("status", help=_(
    "Per språk: andel översatt, osäkra (fuzzy) poster, granskningsläge och vad den längsta "
    "vägen genom det längsta frågeformuläret kostar med sms."))
def locales_status() -> None:
    from rich.table import Table

    from admin_cli.locales import status

    table = Table(_("språk"), _("namn"), _("översatt"), _("osäkra"), _("granskning"),
                  _("längsta vägen (sms)"), _("skyddsfraser"))
    for st in status():
        segments = ngettext("{n} segment", "{n} segment", st.longest_sms).format(
            n=st.longest_sms)
        table.add_row(st.lang, st.name, f"{st.share:.0%} ({st.translated}/{st.total})",
                      str(st.fuzzy), st.review_state, segments,
                      f"{st.safety_phrases} ({st.safety_review})",
                      style=None if st.share == 1 else "yellow")
    out.print(table)


@locales_app.command("compile", help=_("Skriv .mo-filer bredvid katalogerna (för andra "
                                        "gettext-verktyg; tala läser .po-filerna)."))
def locales_compile() -> None:
    from admin_cli.locales import LOCALES, compile_all

    for mo in compile_all():
        out.print(_("kompilerade {path}").format(path=mo.relative_to(LOCALES.parent)))


@locales_app.command("check", help=_(
    "Kontrollera varje översättning som barnen läser mot språkets ordlista "
    "(locales/<lang>/glossary.yaml), och att nummer som 112 och 116 111 och {platshållarna} "
    "finns kvar. Kod 1 anger varje språk, text och term som är fel."))
def locales_check(
    locales_dir: Optional[Path] = typer.Option(None, "--dir", help=_(
        "En annan locales-mapp (förvalt: projektets locales/).")),
) -> None:
    from admin_cli.locales import LOCALES
    from admin_cli.locales_check import report

    code, lines = report(locales_dir or LOCALES)
    for line in lines:
        typer.echo(line)
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
