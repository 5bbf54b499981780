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
from rich.console import Console

from admin_cli.common import allowed, built, err, fail, out
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
    from bot.service import InviteError

    if from_csv:
        from admin_cli.bulk import invite_from_csv

        with built() as a:
            allowed(a, "invite")
            report = invite_from_csv(a, from_csv, a.settings.user, out)
        raise typer.Exit(0 if not report.failures else 1)
    if not case or age is None:
        fail("Give the case reference and the child's age, for example: "
             "tala invite K-17 --age 9 --channel sms --to 0701234567")
    with built() as a:
        user = allowed(a, "invite", case_ref=case, unit=unit)
        if user is not None and user.role != "admin":
            unit = unit or user.unit
        try:
            inv = a.service.invite(case, age, lang=lang, channel=channel.value, contact=to,
                                   questionnaire_id=questionnaire, unit=unit,
                                   caseworker=caseworker, actor=a.settings.user)
        except InviteError as e:
            fail(str(e))
        sent = None
        if channel is Channel.sms:
            # One try now; if Twilio is away, the worker (tala serve / tala worker) retries.
            a.service.send_queued("sms", block_ms=0, max_jobs=1)
            delivery = a.db.invitation(inv.session_id)
            sent = delivery.delivery_status if delivery else None
        link = None
        if channel is Channel.telegram:
            from bot.channels.telegram import deep_link

            link = deep_link(a.settings, inv.code)
        if as_json:
            out.print_json(json.dumps({
                "case": inv.case_ref, "session_id": inv.session_id,
                "questionnaire": inv.questionnaire_id, "lang": inv.lang,
                "channel": inv.channel, "code": inv.code, "link": link,
                "expires_at": inv.expires_at.isoformat(), "delivery": sent}))
            return
        out.print(f"Invited {inv.case_ref} to {inv.questionnaire_id} ({inv.lang}). "
                  f"The invitation is open until {inv.expires_at:%Y-%m-%d}.")
        _say_who_is_told(a, inv.case_ref)
        if channel is Channel.sms:
            out.print(f"The text message: {sent or 'queued'}.")
        elif link:
            out.print(f"Give the child this link (it works once): [bold]{link}[/bold]")
        elif channel is Channel.rasa:
            out.print(f"Give the child this code to write in the chat assistant (it works "
                      f"once), for example 'Jag har en kod: {inv.code}': [bold]{inv.code}[/bold]")
        else:
            out.print(f"To answer in this terminal: [bold]tala demo --code {inv.code}[/bold]")


def _say_who_is_told(a: App, case_ref: str) -> None:
    """Who gets the case's alerts, and a warning when tala has no way to reach them."""
    child = a.db.child(case_ref)
    who = child.caseworker if child else None
    if not {"sms", "email"} & set(a.service.outbound):
        if a.db.has_users():
            err.print("[yellow]Note: neither SMS (TWILIO_*) nor e-mail (TALA_SMTP_URL) is set "
                      "up here, so alerts only wait in 'tala alerts'.[/yellow]")
        return
    reachable = [c for c in a.db.contacts(names=[who])
                 if (c.phone and "sms" in a.service.outbound)
                 or (c.email and "email" in a.service.outbound)] if who else []
    if reachable:
        out.print(f"Alerts for {case_ref} go to {who}.")
    elif a.db.has_users():
        err.print(f"[yellow]Note: tala cannot reach {who or 'anyone responsible'} for "
                  f"{case_ref} (no work phone or e-mail), so its alerts go to the unit's "
                  "manager. Add one with: tala users add NAME --role caseworker --unit UNIT "
                  "--phone 070... --email name@kommun.se[/yellow]")


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
    from admin_cli import summary

    if fmt is SummaryFormat.png and not out_file:
        fail("A PNG needs a file: add --out summary.png")
    if compare is not None and None in compare:
        compare = None
    with built() as a:
        allowed(a, "summary", case_ref=case)
        try:
            data = summary.build(a, case, a.settings.user, since=since.date() if since else None,
                                 until=until.date() if until else None, compare=compare)
        except summary.SummaryError as e:
            fail(str(e))
        if fmt is SummaryFormat.png:
            summary.render_png(a, data, out_file)
            err.print(f"Wrote {out_file}.")
            return
        if fmt is SummaryFormat.text:
            if out_file:
                with out_file.open("w", encoding="utf-8") as fh:
                    Console(file=fh, width=100).print(summary.render_text(a, data))
            else:
                out.print(summary.render_text(a, data))
            return
        from admin_cli.safe import json_text

        text = (json_text(data) + "\n" if fmt is SummaryFormat.json
                else summary.render_html(a, data))
        if out_file:
            out_file.write_text(text, encoding="utf-8")
            err.print(f"Wrote {out_file}.")
        else:
            sys.stdout.write(text)


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
    """The HTTP server for the channels (Twilio webhooks, /healthz, /metrics), and the
    background work unless --no-worker."""
    import logging

    from aiohttp import web

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
        web.run_app(build_web_app(a, worker=not no_worker, telegram_polling=telegram_polling),
                    host=host, port=port, access_log=None,  # per-request lines: noise
                    shutdown_timeout=30, print=lambda *_: out.print(
                        f"tala serves on http://{host}:{port} (Ctrl-C stops it)"))


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
    from bot.service import ReplyError

    with built() as a:
        allowed(a, "reply", case_ref=case)
        try:
            job_id = a.service.reply(case, text, a.settings.user)
        except ReplyError as e:
            fail(str(e))
        job = a.queue.job(job_id)
        a.service.send_queued(job.get("channel", "sms"), block_ms=0, max_jobs=1)
        status = a.queue.job(job_id).get("status", "queued")
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

    with built() as a:
        allowed(a, "audit")
        rows = a.db.audit_entries(case_ref=case, actor=actor)
        a.db.audit(a.settings.user, "audit", case, "")
        data = [{"at": r.at.isoformat(), "user": r.actor, "action": r.action,
                 "case": r.case_ref, "detail": r.detail} for r in rows]
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
    with built() as a:
        allowed(a, "erase", case_ref=case)
        if a.db.child(case) is None:
            fail(f"There is no case '{case}'.")
        if not yes:
            if not sys.stdin.isatty():
                fail("Erasing cannot be undone: add --yes to confirm.")
            typer.confirm(f"Erase everything about {case}? This cannot be undone.", abort=True)
        a.service.erase(case, a.settings.user)
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
    from admin_cli import report

    if campaign and (unit or since or until or questionnaire):
        fail("--campaign goes alone: a survey's report covers the whole survey.")
    with built() as a:
        try:
            if campaign:
                c = a.db.campaign(campaign)
                user = allowed(a, "report", unit=c.unit if c else None)
                if c is None or (user is not None and user.role == "manager"
                                 and c.unit != user.unit):
                    fail(f"There is no campaign '{campaign}'. 'tala campaign list' shows "
                         "them.")
                data = report.build_campaign_report(a, a.settings.user, campaign,
                                                    min_group=a.settings.min_group_size)
            else:
                user = allowed(a, "report", unit=unit)
                if user is not None and user.role == "manager":
                    unit = user.unit  # a manager sees their own unit
                data = report.build_report(a, a.settings.user, unit=unit,
                                           since=since.date() if since else None,
                                           until=until.date() if until else None,
                                           questionnaire=questionnaire,
                                           min_group=a.settings.min_group_size)
        except report.ReportError as e:
            fail(str(e))
        if fmt is ReportFormat.text:
            if out_file:
                with out_file.open("w", encoding="utf-8") as fh:
                    Console(file=fh, width=110).print(report.render_text(data))
            else:
                out.print(report.render_text(data))
            return
        content = {"json": report.to_json, "csv": report.to_csv,
                   "html": report.to_html}[fmt.value](data)
        if out_file:
            out_file.write_text(content, encoding="utf-8")
            err.print(f"Wrote {out_file}.")
        else:
            sys.stdout.write(content)


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
    from admin_cli.export import ExportError, export

    with built() as a:
        allowed(a, "export")
        try:
            content = export(a, fmt, a.settings.user, since.date() if since else None,
                             until.date() if until else None)
        except ExportError as e:
            fail(str(e))
        if out_file:
            out_file.write_bytes(content.encode("utf-8"))  # the CSV carries its own BOM
            err.print(f"Wrote {out_file}.")
        else:
            sys.stdout.write(content.lstrip("\ufeff"))


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
