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
from typing import TYPE_CHECKING, Optional

import typer

from admin_cli.common import allowed, built, call, err, fail, out
from admin_cli.campaign_cmds import campaign_app
from admin_cli.keys_cmds import keys_app
from admin_cli.staff_cmds import alerts_app, case_app, units_app, users_app

if TYPE_CHECKING:
    from bot.app import App

app = typer.Typer(help="tala: a child tells how they are, by text message.",
                  no_args_is_help=True, add_completion=False)
flows_app = typer.Typer(help="Questionnaires.", no_args_is_help=True)
db_app = typer.Typer(help="The results database.", no_args_is_help=True)
locales_app = typer.Typer(help="Translations (gettext catalogs in locales/).",
                          no_args_is_help=True)
app.add_typer(flows_app, name="flows")
app.add_typer(db_app, name="db")
app.add_typer(locales_app, name="locales")
app.add_typer(users_app, name="users")
app.add_typer(units_app, name="units")
app.add_typer(case_app, name="case")
app.add_typer(alerts_app, name="alerts")
app.add_typer(campaign_app, name="campaign")
app.add_typer(keys_app, name="keys")

DEMO_CASE = "DEMO-1"


class Channel(str, Enum):
    console = "console"
    sms = "sms"
    telegram = "telegram"
    rasa = "rasa"


@app.command()
def demo(
    lang: str = typer.Option("sv", "--lang", help="The language the child starts in."),
    age: int = typer.Option(9, "--age", help="The demo child's age: picks the questionnaire."),
    new: bool = typer.Option(False, "--new", help="Start over instead of continuing."),
    code: Optional[str] = typer.Option(None, "--code", help="Play an invitation made with "
                                       "'tala invite ... --channel console'."),
) -> None:
    """The whole product in the terminal: the terminal plays the child's phone, then the
    caseworker's summary is printed. Reads replies line by line when stdin is not a terminal."""
    from admin_cli import summary
    from bot.channels.console import ConsoleChannel
    from flows import engine

    with built() as a:
        case = DEMO_CASE
        sid = None
        if code:
            sid = a.service.session_for_code(code)
            if sid is None:
                fail(f"No open invitation has the code {code}. Check the code, or make a new "
                     "one with 'tala invite CASE --age N --channel console'.")
            state = a.store.get(sid)
            case = state.case_ref if state else case
        elif not new:
            sid = _open_demo_session(a)
        if sid is None:
            invited = a.service.invite(DEMO_CASE, age, lang=lang, channel="console",
                                       unit="Demo", actor=a.settings.user)
            sid = invited.session_id
            out.print(f"[dim]Demo: case {DEMO_CASE}, questionnaire {invited.questionnaire_id}. "
                      "You are the child now. (Stop with Ctrl-D: the next 'tala demo' goes on "
                      "where you were.)[/dim]\n")
        else:
            out.print("[dim]Continuing the demo where it was ('tala demo --new' starts "
                      "over).[/dim]\n")
        channel = ConsoleChannel(a.service, out, sys.stdin, interactive=sys.stdin.isatty())
        finished = channel.run(sid)
        if finished is None:
            state = a.store.get(sid)
            if state and state.status not in engine.FINISHED:
                out.print("[dim]No more replies. The answers so far are kept; 'tala demo' "
                          "continues from here.[/dim]\n")
        out.rule("What the caseworker sees: tala summary " + case)
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


@app.command()
def invite(
    case: Optional[str] = typer.Argument(None, help="The pseudonymous case reference, like "
                                         "K-17."),
    age: Optional[int] = typer.Option(None, "--age", help="The child's age in years."),
    lang: str = typer.Option("sv", "--lang", help="The language to start in (sv, en, ...)."),
    channel: Channel = typer.Option(Channel.console, "--channel"),
    to: Optional[str] = typer.Option(None, "--to", help="The child's mobile number, for "
                                     "--channel sms."),
    questionnaire: Optional[str] = typer.Option(None, "--questionnaire",
                                                help="Questionnaire id (default: by age)."),
    unit: Optional[str] = typer.Option(None, "--unit", help="The unit, for group reports."),
    caseworker: Optional[str] = typer.Option(None, "--caseworker", help="The tala user "
                                             "responsible for the case, who gets its alerts "
                                             "(default: you)."),
    from_csv: Optional[Path] = typer.Option(None, "--from-csv", help="Invite everyone in a CSV "
                                            "file (columns: case, age, to; optional: lang, "
                                            "unit, questionnaire, caseworker) by SMS."),
    as_json: bool = typer.Option(False, "--json", help="Print the invitation as JSON."),
) -> None:
    """Invite a child (or, with --from-csv, many) to answer a questionnaire."""
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
        fail("Give the case reference and the child's age, for example: "
             "tala invite K-17 --age 9 --channel sms --to 0701234567")
    res = call("invite", case=case, age=age, lang=lang, channel=channel.value, to=to,
               questionnaire=questionnaire, unit=unit, caseworker=caseworker)
    inv = res["invitation"]
    if as_json:
        out.print_json(json.dumps(inv))
        return
    out.print(f"Invited {inv['case']} to {inv['questionnaire']} ({inv['lang']}). "
              f"The invitation is open until {inv['expires_at'][:10]}.")
    if res["alerts_to"]:
        out.print(f"Alerts for {inv['case']} go to {res['alerts_to']}.")
    for note in res["notes"]:
        err.print(f"[yellow]{note}[/yellow]")
    if channel is Channel.sms:
        out.print(f"The text message: {inv['delivery'] or 'queued'}.")
    elif inv["link"]:
        out.print(f"Give the child this link (it works once): [bold]{inv['link']}[/bold]")
    elif channel is Channel.rasa:
        out.print("Give the child this code to write in the chat assistant (it works "
                  f"once), for example 'Jag har en kod: {inv['code']}': "
                  f"[bold]{inv['code']}[/bold]")
    else:
        out.print(f"To answer in this terminal: [bold]tala demo --code {inv['code']}[/bold]")


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
            err.print(f"Wrote {out_file}.")
        return
    text = doc.content.decode("utf-8")
    sys.stdout.write(text.lstrip("\ufeff") if strip_bom else text)
    sys.stdout.flush()


class SummaryFormat(str, Enum):
    text = "text"
    json = "json"
    html = "html"
    png = "png"


@app.command("summary")
def summary_cmd(
    case: str = typer.Argument(..., help="The case reference."),
    fmt: SummaryFormat = typer.Option(SummaryFormat.text, "--format"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write to this file."),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"]),
    until: Optional[datetime] = typer.Option(None, "--until", formats=["%Y-%m-%d"]),
    compare: Optional[tuple[str, str]] = typer.Option(
        None, "--compare", help="BEFORE AFTER: two dates (YYYY-MM-DD: the latest session on "
        "or before each) or session ids, e.g. before and after an intervention."),
) -> None:
    """What the child said, for the caseworker: by life area, what they want help with first,
    important answers marked, scale answers over time. Every read is in the audit log."""
    if fmt is SummaryFormat.png and not out_file:
        fail("A PNG needs a file: add --out summary.png")
    if compare is not None and None in compare:
        compare = None
    view = _text_view(out_file, 100) if fmt is SummaryFormat.text else {"format": fmt.value}
    doc = call("summary", case=case, since=since.date() if since else None,
               until=until.date() if until else None,
               compare=list(compare) if compare else None, **view)
    _write(doc, out_file)


@flows_app.command("check")
def flows_check(
    paths: Optional[list[Path]] = typer.Argument(None, help="Files to check (default: all "
                                                 "shipped questionnaires)."),
) -> None:
    """Check questionnaires: ids, targets, types, conditions, reachability, loops."""
    from flows.model import BUILTIN_DIR, QuestionnaireError, load_dir, load_file

    try:
        if paths:
            found = {}
            problems: list[str] = []
            for p in paths:
                try:
                    q = load_file(p)
                    found[q.id] = q
                except QuestionnaireError as e:
                    problems += e.problems
            if problems:
                raise QuestionnaireError(problems)
        else:
            found = load_dir(BUILTIN_DIR)
    except QuestionnaireError as e:
        for line in e.problems:
            err.print(f"[red]✗[/red] {line}")
        raise typer.Exit(1) from None
    for q in found.values():
        out.print(f"[green]✓[/green] {q.source}: {q.id} v{q.version}, ages {q.min_age}-"
                  f"{q.max_age}, {len(q.main_questions)} main questions, "
                  f"{len(q.questions)} in all")


@flows_app.command("cost")
def flows_cost() -> None:
    """What each questionnaire costs by SMS, per language: the shortest and the longest way
    through it, in real segments (GSM-7 160/153, UCS-2 70/67 characters)."""
    from rich.table import Table

    from admin_cli.cost import cost
    from bot.settings import Settings
    from flows.engine import Runtime, SafetyLexicon
    from flows.i18n import Catalogs
    from flows.model import BUILTIN_DIR, load_dir

    rt = Runtime(Catalogs.load(), SafetyLexicon.load())
    sender = Settings().sender_name
    table = Table("questionnaire", "lang", "shortest way", "longest way", "encoding",
                  title="SMS segments (separate messages) sent, from the invitation to the end")
    for qn in load_dir(BUILTIN_DIR).values():
        for lang in rt.catalogs.languages:
            c = cost(rt, qn, lang, sender)
            table.add_row(qn.id, lang, f"{c.shortest.segments} ({c.shortest.messages})",
                          f"{c.longest.segments} ({c.longest.messages})", c.longest.encoding)
    out.print(table)


@flows_app.command("safety-check")
def flows_safety_check(
    corpus: Optional[list[Path]] = typer.Argument(
        None, help="Corpus files (default: tests/safety_corpus/dev.yaml and heldout.yaml)."),
    show: bool = typer.Option(False, "--show", help="List the sentences missed and the "
                              "harmless ones that alerted."),
) -> None:
    """How the safeguarding phrases do on a corpus: recall and false alarms per language, and
    recall per topic. Fails (exit 1) below the targets (recall 95 % for sv and en, 85 % for
    the others; at most 5 % false alarms)."""
    from rich.table import Table

    from flows.safeguarding import CORPUS_DIR, SafetyLexicon, evaluate

    lex = SafetyLexicon.load()
    review = {lang.lang: lang.review for lang in lex.languages}
    failed = False
    for path in corpus or [CORPUS_DIR / "dev.yaml", CORPUS_DIR / "heldout.yaml"]:
        scores = evaluate(lex, path)
        table = Table("lang", "review", "recall", "target", "right topic", "false alarms",
                      title=f"{path.name}: alerts on harm sentences / on harmless ones")
        for sc in scores:
            failed |= not sc.ok
            table.add_row(sc.lang, review.get(sc.lang, "none"),
                          f"{sc.recall:.0%} ({sc.found}/{sc.harm})", f"{sc.target:.0%}",
                          f"{sc.right_topic}/{sc.harm}",
                          f"{sc.false_alarm_rate:.0%} ({sc.false_alarms}/{sc.harmless})",
                          style=None if sc.ok else "red")
        out.print(table)
        by_topic = Table("topic", *(sc.lang for sc in scores),
                         title=f"{path.name}: harm sentences alerted on, per topic")
        for topic, _ in lex.topics:
            by_topic.add_row(topic, *(f"{sc.by_topic[topic][0]}/{sc.by_topic[topic][1]}"
                                      if topic in sc.by_topic else "-" for sc in scores))
        out.print(by_topic)
        if show:
            for sc in scores:
                for text in sc.missed:
                    out.print(f"  {sc.lang} missed: {text}")
                for text in sc.alarmed:
                    out.print(f"  {sc.lang} false alarm: {text}")
    if failed:
        err.print("[red]✗[/red] below target")
        raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8080, "--port"),
    no_worker: bool = typer.Option(False, "--no-worker", help="Only HTTP: run the reminders, "
                                   "expiry and sending elsewhere ('tala worker')."),
    telegram_polling: bool = typer.Option(False, "--telegram-polling", help="Fetch Telegram "
                                          "updates instead of a webhook (no public URL "
                                          "needed)."),
) -> None:
    """The HTTP server for the channels (Twilio webhooks, /healthz, /metrics) and the staff
    API (/api/v1), and the background work unless --no-worker."""
    import logging

    from aiohttp import web

    from admin_cli.api import add_staff_api
    from bot.server import build_web_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with built() as a:
        a.build_all()
        if a.settings.telegram_bot_token:
            from bot.speech import Speech

            if not Speech(a.settings.data_path / "speech").available():
                err.print("[yellow]Read-aloud is off: it needs the Debian packages espeak-ng "
                          "and opus-tools (apt-get install espeak-ng opus-tools).[/yellow]")
        if not a.settings.public_url and a.settings.twilio_auth_token:
            err.print("[yellow]TALA_PUBLIC_URL is not set: Twilio's signatures are checked "
                      "against the forwarded or requested URL instead.[/yellow]")
        web_app = build_web_app(a, worker=not no_worker, telegram_polling=telegram_polling)
        add_staff_api(web_app, a)
        web.run_app(web_app, host=host, port=port, access_log=None,  # per-request lines: noise
                    shutdown_timeout=30, print=lambda *_: out.print(
                        f"tala serves on http://{host}:{port} (Ctrl-C stops it)"))


@app.command()
def login(
    server: str = typer.Option(..., "--server", help="The tala server, e.g. "
                               "https://tala.kommun.se"),
    token: Optional[str] = typer.Option(None, "--token", help="A personal token from an "
                                        "admin (tala users token NAME). Without it: sign in "
                                        "with the identity provider."),
    browser: Optional[bool] = typer.Option(None, "--browser/--device", help="Sign in in this "
                                           "computer's browser, or on another device with a "
                                           "code (default: with a code where the identity "
                                           "provider allows it)."),
) -> None:
    """Work with a tala server from this computer: every staff command goes to it from now on,
    as you. The login is kept in your config directory, readable by you only."""
    from admin_cli.client import ClientError, Server, check_url, save_login

    try:
        url = check_url(server)
        if token is None:
            token = _sign_in(Server(url), browser)
        who = json.loads(Server(url, token.strip()).request("GET", "/me").content)
        path = save_login(url, token.strip(), who)
    except ClientError as e:
        fail(e.message, e.code)
    out.print(f"Logged in to {url} as {who['name']} ({who['role']}"
              + (f", {who['unit']}" if who.get("unit") else "") + f"). Kept in {path}; "
              "'tala logout' forgets it.")


def _sign_in(server, browser: bool | None) -> str:
    """OpenID Connect with the server's identity provider: in this computer's browser
    (authorization code with PKCE) or on any device (device flow); a session token."""
    from admin_cli.client import ClientError
    from admin_cli.oidc import LoginError, browser_login, device_login, discover

    methods = json.loads(server.request("GET", "/login").content)
    if not methods.get("oidc"):
        raise ClientError(f"{server.url} signs in with personal tokens only: ask an admin for "
                          "one (tala users token NAME), then tala login --server ... --token ...")
    oidc = methods["oidc"]

    def show_code(url: str, code: str) -> None:
        err.print(f"Open {url} on your phone or computer, sign in, and type the code "
                  f"[bold]{code}[/bold]")
        err.print(f"code: {code}", style="dim")

    def open_page(url: str) -> None:
        import webbrowser

        err.print("Sign in in the browser window that opens. If none does, open this "
                  f"address:\n{url}")
        webbrowser.open(url)

    try:
        if browser is None:
            browser = "device_authorization_endpoint" not in discover(oidc["issuer"])
        if browser:
            id_token, nonce = browser_login(oidc["issuer"], oidc["client_id"], open_page)
        else:
            id_token, nonce = device_login(oidc["issuer"], oidc["client_id"], show_code), None
    except LoginError as e:
        raise ClientError(str(e), 3) from None
    reply = server.request("POST", "/login/oidc", body={"id_token": id_token, "nonce": nonce})
    return json.loads(reply.content)["token"]


@app.command()
def logout() -> None:
    """Forget the login on this computer (an admin can also revoke the token)."""
    from admin_cli.client import login_file

    path = login_file()
    if path.exists():
        path.unlink()
        out.print(f"Logged out: {path} is removed. Staff commands work on this computer's "
                  "own data directory again.")
    else:
        out.print("You were not logged in to a server.")


@app.command("rasa-actions")
def rasa_actions(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(5055, "--port"),
) -> None:
    """The Rasa action server: a Rasa assistant calls action_tala_step to hand the
    conversation to tala (see the README for the Rasa side). Every call must carry
    TALA_RASA_TOKEN; without one it listens on this machine (127.0.0.1) only."""
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
        out.print(f"tala's Rasa actions on http://{host}:{port}/webhook ({rasa.ACTION_NAME})")
        try:
            rasa.run(a.service, a.settings.rasa_token, host, port)
        finally:
            watch.stop()


@app.command()
def worker() -> None:
    """The background work alone: reminders (daytime only), expiry, and sending queued
    messages at the configured rate. Stops cleanly on Ctrl-C or SIGTERM."""
    import logging
    import signal

    from bot.server import Background

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with built() as a:
        a.build_all()
        bg = Background(a)
        signal.signal(signal.SIGTERM, lambda *_: bg.stopping.set())
        out.print("tala worker running (Ctrl-C stops it)")
        try:
            bg.run_forever()
        except KeyboardInterrupt:
            bg.stop()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the SQL schema up to date (run once after each upgrade of tala)."""
    from bot.settings import Settings
    from storage.sql import make_engine, upgrade

    settings = Settings()
    engine = make_engine(settings.database_url, settings.data_path)
    upgrade(engine)
    out.print(f"The database is up to date ({engine.url.render_as_string(hide_password=True)}).")


@locales_app.command("update")
def locales_update() -> None:
    """Extract every child-facing string (code and questionnaires) into locales/tala.pot and
    merge it into every language's catalog. New strings arrive untranslated, changed ones fuzzy:
    until translated, the child sees Swedish for those strings only."""
    from admin_cli.locales import POT, update

    for po in update():
        out.print(f"updated {po.relative_to(POT.parent.parent)}")
    out.print(f"template: {POT.relative_to(POT.parent.parent)}")


@app.command()
def reply(
    case: str = typer.Argument(..., help="The case reference."),
    text: str = typer.Argument(..., help="The message, in quotes."),
) -> None:
    """Send a short answer back to the child, on the channel the child used."""
    status = call("reply", case=case, text=text)["status"]
    out.print("Sent." if status == "sent" else
              "Queued: the worker sends it as soon as it can.")


@app.command()
def audit(
    case: Optional[str] = typer.Option(None, "--case"),
    actor: Optional[str] = typer.Option(None, "--user", help="Only what this user did."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Who read or did what, newest first."""
    from rich.table import Table

    data = call("audit", case=case, user=actor)
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
        return
    table = Table("when", "user", "action", "case", "detail")
    for d in data:
        table.add_row(d["at"][:16].replace("T", " "), d["user"], d["action"],
                      d["case"] or "", d["detail"] or "")
    out.print(table)


@app.command()
def erase(
    case: str = typer.Argument(..., help="The case reference."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask first."),
) -> None:
    """Remove everything about a child from SQL and Redis. Cannot be undone."""
    if not yes:
        if not sys.stdin.isatty():
            fail("Erasing cannot be undone: add --yes to confirm.")
        typer.confirm(f"Erase everything about {case}? This cannot be undone.", abort=True)
    call("erase", case=case)
    out.print(f"{case} is erased, and their data keys destroyed (README: Privacy). The "
              "audit log keeps only that an erasure happened.")


class ReportFormat(str, Enum):
    text = "text"
    json = "json"
    csv = "csv"
    html = "html"


@app.command("report")
def report_cmd(
    unit: Optional[str] = typer.Option(None, "--unit"),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"],
                                             help="From this date (rounded to its quarter)."),
    until: Optional[datetime] = typer.Option(None, "--until", formats=["%Y-%m-%d"]),
    questionnaire: Optional[str] = typer.Option(None, "--questionnaire"),
    fmt: ReportFormat = typer.Option(ReportFormat.text, "--format"),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write to this file."),
    campaign: Optional[str] = typer.Option(None, "--campaign", help="An anonymous survey's "
                                           "results (answers once it has closed)."),
) -> None:
    """Anonymised group results: participation and answer distributions, with small groups
    merged or left out and every number rounded to a multiple of 5 (see the README)."""
    if campaign and (unit or since or until or questionnaire):
        fail("--campaign goes alone: a survey's report covers the whole survey.")
    view = _text_view(out_file, 110) if fmt is ReportFormat.text else {"format": fmt.value}
    doc = call("report", unit=unit, since=since.date() if since else None,
               until=until.date() if until else None, questionnaire=questionnaire,
               campaign=campaign, **view)
    _write(doc, out_file)


@app.command("export")
def export_cmd(
    fmt: str = typer.Option("json", "--format", help="json, csv (one row per answer) or fhir "
                            "(FHIR R4 QuestionnaireResponse and Questionnaire)."),
    since: Optional[datetime] = typer.Option(None, "--since", formats=["%Y-%m-%d"]),
    until: Optional[datetime] = typer.Option(None, "--until", formats=["%Y-%m-%d"]),
    out_file: Optional[Path] = typer.Option(None, "--out", help="Write to this file."),
) -> None:
    """Finished sessions for the case system: never contact details. Written to the audit
    log."""
    doc = call("export", format=fmt, since=since.date() if since else None,
               until=until.date() if until else None)
    _write(doc, out_file, strip_bom=True)  # a file keeps the CSV's BOM, for Excel


@locales_app.command("status")
def locales_status() -> None:
    """Per language: translated share, fuzzy entries, review state, and the SMS cost of the
    longest way through the longest questionnaire."""
    from rich.table import Table

    from admin_cli.locales import status

    table = Table("lang", "name", "translated", "fuzzy", "review", "longest path (SMS)",
                  "safeguarding phrases")
    for st in status():
        table.add_row(st.lang, st.name, f"{st.share:.0%} ({st.translated}/{st.total})",
                      str(st.fuzzy), st.review_state, f"{st.longest_sms} segments",
                      f"{st.safety_phrases} ({st.safety_review})",
                      style=None if st.share == 1 else "yellow")
    out.print(table)


@locales_app.command("compile")
def locales_compile() -> None:
    """Write .mo files beside the catalogs (for other gettext tools; tala reads the .po)."""
    from admin_cli.locales import LOCALES, compile_all

    for mo in compile_all():
        out.print(f"compiled {mo.relative_to(LOCALES.parent)}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
