"""A child's case: invite, read the summary, reply, make someone responsible, erase."""

from __future__ import annotations

import io
import re
import tempfile
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from admin_cli.access import require
from admin_cli.i18n import _, refusal_text
from admin_cli.ops import Document, OpError, not_found, op

if TYPE_CHECKING:
    from bot.app import App

CHANNELS = ("console", "sms", "whatsapp", "web", "telegram", "rasa")
JOB_ID = re.compile(r"invite:[0-9a-f]{32}:0")


@op("POST", "/invitations")
def invite(app: App, actor: str, case: str, age: int, lang: str = "sv",
           channel: str = "console", to: str | None = None,
           questionnaire: str | None = None, unit: str | None = None,
           caseworker: str | None = None, phase: str | None = None) -> dict:
    """Invite a child to answer a questionnaire. `invitation` is what `tala invite --json`
    prints; `notes` say who will hear of the case's alerts when tala cannot reach them.
    `phase`: the case phase (forhandsbedomning, utredning, uppfoljning or placering), for the
    unit's indicators (`tala report --indicators`)."""
    from bot.service import InviteError

    from admin_cli.labels import phase_problem

    wrong_phase = phase_problem(phase)
    if wrong_phase:
        raise OpError(wrong_phase)
    if channel not in CHANNELS:
        raise OpError(_("channel ska vara en av {channels}.").format(
            channels=", ".join(CHANNELS)))
    user = require(app, actor, "invite", case_ref=case, unit=unit)
    if user is not None and user.role != "admin":
        unit = unit or user.unit
    try:
        inv = app.service.invite(case, age, lang=lang, channel=channel, contact=to,
                                 questionnaire_id=questionnaire, unit=unit,
                                 caseworker=caseworker, actor=actor, phase=phase)
    except InviteError as e:
        raise OpError(refusal_text(e)) from None
    sent = None
    by_sms = False
    if channel in ("sms", "whatsapp", "web"):
        from bot.fallback import went_by_sms

        # One try now; if Twilio is away, the worker (tala serve / tala worker) retries. The
        # web chat's link goes by SMS.
        app.service.send_queued("sms" if channel == "web" else channel, block_ms=0, max_jobs=1)
        delivery = app.db.invitation(inv.session_id)
        by_sms = bool(delivery and went_by_sms(delivery.delivery_error))
        if by_sms:  # WhatsApp refused it: the SMS in its place goes now too
            app.service.send_queued("sms", block_ms=0, max_jobs=1)
            delivery = app.db.invitation(inv.session_id)
        sent = delivery.delivery_status if delivery else None
    link = None
    if channel == "telegram":
        from bot.channels.telegram import deep_link

        link = deep_link(app.settings, inv.code)
    alerts_to, notes = _who_is_told(app, inv.case_ref)
    return {"invitation": {
        "case": inv.case_ref, "session_id": inv.session_id,
        "questionnaire": inv.questionnaire_id, "lang": inv.lang, "channel": inv.channel,
        "code": inv.code, "link": link, "expires_at": inv.expires_at.isoformat(),
        "delivery": sent, "by_sms": by_sms, "phase": phase}, "alerts_to": alerts_to, "notes": notes}


@op("POST", "/invitations/bulk", name="invite_bulk")
def invite_bulk(app: App, actor: str, csv: str, name: str = "invitations.csv") -> dict:
    """Invite everyone in a CSV file (columns case, age, to; optional lang, unit,
    questionnaire, caseworker, phase) by SMS. The worker sends the text messages at the configured
    rate: `jobs` (job id -> line) are followed with invite_bulk_jobs. The same file again
    invites nobody twice."""
    from admin_cli import bulk

    require(app, actor, "invite")
    began = bulk.start(app, csv.encode("utf-8"), name, actor)
    return {"rows": began.rows, "invited": began.invited, "failures": began.failures,
            "jobs": began.jobs}


@op("POST", "/invitations/bulk/jobs", name="invite_bulk_jobs")
def invite_bulk_jobs(app: App, actor: str, jobs: list) -> dict:
    """Where each bulk invitation's text message is (job id -> status, error, and whether it
    is left to the worker's later tries)."""
    from admin_cli import bulk

    require(app, actor, "invite")
    if len(jobs) > 10_000 or not all(JOB_ID.fullmatch(j) for j in jobs):
        raise OpError(_("jobs: de jobb-id som invite_bulk gav (högst 10 000)."))
    return {j: bulk.job_state(app, j) for j in jobs}


def _who_is_told(app: App, case_ref: str) -> tuple[str | None, list[str]]:
    """Who gets the case's alerts, and a warning when tala has no way to reach them."""
    child = app.db.child(case_ref)
    who = child.caseworker if child else None
    if not {"sms", "email"} & set(app.service.outbound):
        return None, ([_("Obs: varken sms (TWILIO_*) eller e-post (TALA_SMTP_URL) är "
                         "inställt här, så larmen väntar bara i `tala alerts`.")]
                      if app.db.has_users() else [])
    reachable = [c for c in app.db.contacts(names=[who])
                 if (c.phone and "sms" in app.service.outbound)
                 or (c.email and "email" in app.service.outbound)] if who else []
    if reachable:
        return who, []
    if app.db.has_users():
        return None, [_("Obs: tala kan inte nå {who} för {case} (inget jobbnummer eller "
                        "e-post), så ärendets larm går till enhetens chef. Lägg till ett med: "
                        "tala users add NAMN --role caseworker --unit ENHET --phone 070... "
                        "--email namn@kommun.se").format(
            who=who or _("någon ansvarig"), case=case_ref)]
    return None, []


def text_document(renderable: object, width: int, wrap: bool, color: bool) -> Document:
    """A Rich renderable as the terminal would show it: `wrap` false keeps long lines whole
    (the terminal wraps them), `color` keeps Rich's colours as ANSI codes."""
    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=width, soft_wrap=not wrap, force_terminal=color,
            color_system="truecolor" if color else None, highlight=True).print(renderable)
    return Document(buf.getvalue().encode("utf-8"), "text/plain; charset=utf-8")


MIN_WIDTH, MAX_WIDTH = 30, 1000  # a summary's text lines, in characters


def summary_data(app: App, actor: str, case: str, since: date | None = None,
                 until: date | None = None, compare: list | None = None) -> dict:
    """The summary's data, for whoever renders it (the `summary` op, the staff pages), after
    checking that `actor` may read the case; the read is in the audit log. A case that does
    not exist is not_found; a period or comparison that does not fit is an OpError."""
    from admin_cli import summary as s

    require(app, actor, "summary", case_ref=case)
    try:
        return s.build(app, case, actor, since=since, until=until,
                       compare=tuple(compare) if compare else None)
    except s.SummaryError as e:
        raise (not_found(str(e)) if app.db.child(case) is None else OpError(str(e))) from None


@op("GET", "/cases/{case}/summary")
def summary(app: App, actor: str, case: str, format: str = "json",
            since: date | None = None, until: date | None = None,
            compare: list | None = None, width: int = 100, wrap: bool = True,
            color: bool = False) -> Document:
    """What the child said, for the caseworker (format json, text, html or png). Every read
    is in the audit log. `compare`: BEFORE,AFTER (dates or session ids)."""
    from admin_cli import summary as s
    from admin_cli.safe import json_text

    if format not in ("json", "text", "html", "png"):
        raise OpError(_("format ska vara json, text, html eller png."))
    if not MIN_WIDTH <= width <= MAX_WIDTH:
        raise OpError(_("width ska vara ett tal från {lo} till {hi} (tecken per rad).").format(
            lo=MIN_WIDTH, hi=MAX_WIDTH))
    data = summary_data(app, actor, case, since=since, until=until, compare=compare)
    if format == "text":
        # Always wrapped at `width`: the summary never leaves a line to the terminal to cut.
        return text_document(s.render_text(app, data), width, True, color)
    if format == "html":
        return Document(s.render_html(app, data).encode("utf-8"), "text/html; charset=utf-8")
    if format == "png":
        with tempfile.TemporaryDirectory() as tmp:
            path = s.render_png(app, data, Path(tmp) / "summary.png")
            return Document(path.read_bytes(), "image/png")
    return Document((json_text(data) + "\n").encode("utf-8"), "application/json")


@op("POST", "/cases/{case}/replies")
def reply(app: App, actor: str, case: str, text: str) -> dict:
    """Send a short answer back to the child, on the channel the child used."""
    from bot.service import ReplyError

    require(app, actor, "reply", case_ref=case)
    if app.db.child(case) is None:  # said here, as a not-found (the API answers 404)
        raise not_found(_("Det finns inget ärende som heter {case}. Skriv `tala alerts` för "
                          "att se dina ärenden.").format(case=case))
    try:
        job_id = app.service.reply(case, text, actor)
    except ReplyError as e:
        raise OpError(refusal_text(e)) from None
    job = app.queue.job(job_id)
    app.service.send_queued(job.get("channel", "sms"), block_ms=0, max_jobs=1)
    return {"case": case, "status": app.queue.job(job_id).get("status", "queued")}


@op("PUT", "/cases/{case}/caseworker")
def assign(app: App, actor: str, case: str, name: str) -> dict:
    """Make someone responsible for a case: its alerts go to them from now on."""
    require(app, actor, "assign", case_ref=case)
    child = app.db.child(case)
    if child is None:
        raise not_found(_("Det finns inget ärende som heter {case}. Ett ärende skapas när "
                          "barnet bjuds in första gången: tala invite {case} --age N").format(
            case=case))
    if app.db.has_users():
        user = app.db.user(name)
        if user is None:
            raise OpError(_("Det finns ingen användare '{name}' i tala. Skriv `tala users "
                            "list` för att se vilka som finns.").format(name=name))
        if user.role != "admin" and child.unit and user.unit != child.unit:
            raise OpError(_("{name} arbetar i {unit}, men {case} hör till {other}.").format(
                name=name, unit=user.unit, case=case, other=child.unit))
    before = child.caseworker
    app.db.ensure_child(case, caseworker=name)
    app.db.audit(actor, "assign", case, f"{before or 'nobody'} -> {name}")
    return {"case": case, "caseworker": name}


@op("DELETE", "/cases/{case}", name="erase")
def erase(app: App, actor: str, case: str) -> dict:
    """Remove everything about a child and destroy their data keys. Cannot be undone."""
    require(app, actor, "erase", case_ref=case)
    if app.db.child(case) is None:
        raise not_found(_("Det finns inget ärende som heter {case}. Skriv `tala alerts` för "
                          "att se dina ärenden.").format(case=case))
    app.service.erase(case, actor)
    return {"case": case, "erased": True}
