"""Running tala: `tala demo`, `tala serve`, `tala worker`, `tala rasa-actions` and `tala db
upgrade`. Merged into the `tala` command by admin_cli/main.py; like it, this module needs only
Typer and Rich at import, and every command imports what it uses when it runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

import typer

from admin_cli.common import built, err, fail, out
from admin_cli.i18n import _

if TYPE_CHECKING:
    from bot.app import App

commands = typer.Typer()
db_app = typer.Typer(help=_("Resultatdatabasen."), no_args_is_help=True)

DEMO_CASE = "DEMO-1"


@commands.command(help=_(
    "Hela tala i terminalen: terminalen spelar barnets telefon, sedan skrivs handläggarens "
    "sammanfattning ut. Läser svaren rad för rad när standard in inte är en terminal."))
def demo(
    lang: str = typer.Option("sv", "--lang", help=_("Språket barnet börjar på.")),
    age: int = typer.Option(9, "--age", help=_("Demobarnets ålder: väljer frågeformulär.")),
    new: bool = typer.Option(False, "--new", help=_("Börja om i stället för att fortsätta.")),
    code: Optional[str] = typer.Option(None, "--code", help=_(
        "Spela en inbjudan som gjorts med 'tala invite ... --channel console'.")),
) -> None:
    from admin_cli import summary
    from admin_cli.i18n import refusal_text
    from bot.channels.console import ConsoleChannel
    from bot.service import InviteError
    from flows import engine

    with built() as a:
        case = DEMO_CASE
        sid = None
        if code:
            sid = a.service.session_for_code(code)
            if sid is None:
                fail(_("Ingen öppen inbjudan har koden {code}. Kontrollera koden, eller gör en "
                       "ny med 'tala invite ÄRENDE --age N --channel console'.").format(code=code))
            state = a.store.get(sid)
            case = state.case_ref if state else case
        elif not new:
            sid = _open_demo_session(a)
        if sid is None:
            try:
                invited = a.service.invite(DEMO_CASE, age, lang=lang, channel="console",
                                           unit="Demo", actor=a.settings.user)
            except InviteError as e:  # --lang or --age mistyped: say what to type instead
                fail(refusal_text(e))
            sid = invited.session_id
            out.print("[dim]" + _(
                "Demo: ärende {case}, frågeformulär {questionnaire}. Nu är du barnet. (Avsluta "
                "med Ctrl-D: nästa 'tala demo' fortsätter där du var.)").format(
                case=DEMO_CASE, questionnaire=invited.questionnaire_id) + "[/dim]\n")
        else:
            out.print("[dim]" + _("Demon fortsätter där den var ('tala demo --new' börjar "
                                  "om).") + "[/dim]\n")
        channel = ConsoleChannel(a.service, out, sys.stdin, interactive=sys.stdin.isatty())
        finished = channel.run(sid)
        if finished is None:
            state = a.store.get(sid)
            if state and state.status not in engine.FINISHED:
                out.print("[dim]" + _("Inga fler svar. Svaren hittills är sparade; 'tala demo' "
                                      "fortsätter härifrån.") + "[/dim]\n")
        out.rule(_("Det här ser handläggaren: tala summary {case}").format(case=case))
        out.print(summary.render(a, summary.build(a, case, a.settings.user)))


def _open_demo_session(a: App) -> str | None:
    from flows import engine

    child = a.db.child(DEMO_CASE)
    if child is None:
        return None
    for inv in reversed(a.db.invitations(child.id)):
        state = a.store.get(inv.session_id)
        if inv.channel == "console" and state and state.status not in engine.FINISHED:
            return inv.session_id
    return None


@commands.command(help=_(
    "HTTP-servern för kanalerna (Twilios webhooks, /healthz, /metrics) och personalens API "
    "(/api/v1), och bakgrundsarbetet om inte --no-worker anges."))
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    no_worker: bool = typer.Option(False, "--no-worker", help=_(
        "Bara HTTP: kör påminnelser, utgång och sändning någon annanstans ('tala worker').")),
    telegram_polling: bool = typer.Option(False, "--telegram-polling", help=_(
        "Hämta Telegrams uppdateringar i stället för en webhook (ingen publik adress "
        "behövs).")),
) -> None:
    import logging

    from aiohttp import web

    from admin_cli.api import add_staff_api
    from admin_cli.web import add_staff_pages
    from bot.server import build_web_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with built() as a:
        a.build_all()
        if a.settings.telegram_bot_token:
            from bot.speech import Speech

            if not Speech(a.settings.data_path / "speech").available():
                err.print("[yellow]" + _(
                    "Uppläsning är avstängd: den behöver Debianpaketen espeak-ng och "
                    "opus-tools (apt-get install espeak-ng opus-tools).") + "[/yellow]")
        if not a.settings.public_url and a.settings.twilio_auth_token:
            err.print("[yellow]" + _(
                "TALA_PUBLIC_URL är inte satt: Twilios signaturer kontrolleras mot den "
                "vidarebefordrade eller begärda adressen i stället.") + "[/yellow]")
        web_app = build_web_app(a, worker=not no_worker, telegram_polling=telegram_polling)
        add_staff_pages(web_app, add_staff_api(web_app, a))
        web.run_app(web_app, host=host, port=port, access_log=None,  # per-request lines: noise
                    shutdown_timeout=30, print=lambda *__: out.print(_(
                        "tala svarar på http://{host}:{port} (Ctrl-C stoppar)").format(
                        host=host, port=port)))


@commands.command("rasa-actions", help=_(
    "Rasas actionserver: en Rasa-assistent anropar action_tala_step för att lämna över "
    "samtalet till tala (se README för Rasa-delen). Varje anrop måste ha TALA_RASA_TOKEN; "
    "utan den lyssnar servern bara på den här datorn (127.0.0.1)."))
def rasa_actions(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(5055, "--port"),
) -> None:
    from bot.channels import rasa
    from bot.settings import Settings

    try:
        warning = rasa.check_exposure(Settings().rasa_token, host)
    except rasa.ExposureError as e:
        fail(str(e))
    if warning:
        err.print(f"[yellow]{warning}[/yellow]")
    from bot.server import Background

    with built() as a:
        a.build_all()
        watch = Background(a)
        watch.start(work=False)  # only the embedded Redis's watch: `tala serve` does the rest
        out.print(_("tala:s Rasa-actions på http://{host}:{port}/webhook ({action})").format(
            host=host, port=port, action=rasa.ACTION_NAME))
        try:
            rasa.run(a.service, a.settings.rasa_token, host, port)
        finally:
            watch.stop()


@commands.command(help=_(
    "Bara bakgrundsarbetet: påminnelser (bara dagtid), utgång och sändning av köade "
    "meddelanden i den inställda takten. Stannar snyggt vid Ctrl-C eller SIGTERM."))
def worker() -> None:
    import logging
    import signal

    from bot.server import Background

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with built() as a:
        a.build_all()
        bg = Background(a)
        signal.signal(signal.SIGTERM, lambda *__: bg.stopping.set())
        out.print(_("tala worker är igång (Ctrl-C stoppar)"))
        try:
            bg.run_forever()
        except KeyboardInterrupt:
            bg.stop()


@db_app.command("upgrade", help=_("Uppdatera SQL-schemat (kör en gång efter varje "
                                  "uppgradering av tala)."))
def db_upgrade() -> None:
    from bot.settings import Settings
    from storage.sql import make_engine, upgrade

    settings = Settings()
    engine = make_engine(settings.database_url, settings.data_path)
    upgrade(engine)
    out.print(_("Databasen är uppdaterad ({url}).").format(
        url=engine.url.render_as_string(hide_password=True)))
