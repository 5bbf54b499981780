"""Who is told of an alert, by which route, at which hours (issue 13): the responsible
caseworker's work phone and e-mail in office hours, the unit's on-call number at night, several
alerts in a few minutes as one message, an undelivered message escalated at once. SMS goes to
the fake Twilio, e-mail to a real SMTP server with STARTTLS (tests/mailbox.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from bot.server import Background, build_web_app
from flows import messages as M
from tests.conftest import APP_BACKENDS, Clock, _build, sms_env
from tests.fakes.server import RunningServer
from tests.mailbox import Mailbox
from tests.test_sms import Phone, job_of
from tests.test_staff import _cli

CHILD = "+46701234567"
ANNA, ANNA_MAIL = "+46705550001", "anna@nacka.example"  # the responsible caseworker
MIA, MIA_MAIL = "+46705550002", "mia@nacka.example"  # the unit's manager
JOUR = "+46705559999"  # the unit's on-call number (socialjour)
# Wednesday 4 March 2026: 09:00 and 02:00 in Stockholm.
DAY = datetime(2026, 3, 4, 8, 0, tzinfo=timezone.utc)
NIGHT = datetime(2026, 3, 4, 1, 0, tzinfo=timezone.utc)
SECRETS = ("pappa", "slår", "violence", "självskada", "dö")


@pytest.fixture
def mailbox(tmp_path):
    with Mailbox(tmp_path) as box:
        yield box


@pytest.fixture(params=APP_BACKENDS, ids=lambda p: f"{p[0]}-redis+{p[1]}")
def staff_app(request, tmp_path, embedded_redis_url, fake, mailbox, monkeypatch):
    """SMS and e-mail alerts both configured; anna is responsible for Nord's cases, mia is
    Nord's manager; the clock is the service's."""
    sms_env(monkeypatch, fake)
    monkeypatch.setenv("TALA_SMTP_URL", mailbox.url)
    monkeypatch.setenv("TALA_ALERT_FROM", "tala@nacka.example")
    app = _build(tmp_path, *request.param, embedded_redis_url)
    app.db.add_user("anna", "caseworker", "Nord", ANNA, ANNA_MAIL)
    app.db.add_user("mia", "manager", "Nord", MIA, MIA_MAIL)
    app.service.clock = Clock()
    app.service.clock.now = DAY
    yield app
    app.close()


def _send_all(app) -> None:
    for route in ("sms", "email"):
        app.service.send_queued(route, block_ms=0)


def _invite(app, case="K-17", **kw):
    inv = app.service.invite(case, 14, channel="sms", contact=CHILD, unit="Nord",
                             actor="anna", **kw)
    app.service.send_queued("sms", block_ms=0)
    app.service.handle(inv.session_id, "Hej", message_id="m0", channel="sms")
    return inv.session_id


def _said(reply) -> str:
    return " ".join(s.text for s in reply.says)


def _sms_to(fake, number: str) -> list[dict]:
    return [m for m in fake.messages if m["to"] == number]


def _content_free(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text.lower()


def test_in_office_hours_a_disclosure_reaches_the_caseworkers_phone_and_email(staff_app, fake,
                                                                                mailbox):
    sid = _invite(staff_app)
    reply = staff_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    said = _said(reply)
    assert "112" in said and "116 111" in said
    assert staff_app.runtime.catalogs.gettext("sv", M.SAFETY) in said  # "... får veta det nu"
    _send_all(staff_app)

    [sms] = _sms_to(fake, ANNA)
    assert "K-17" in sms["body"] and "tala alerts" in sms["body"]
    [mail] = mailbox.wait_for(ANNA_MAIL)
    assert "K-17" in mail["Subject"] and mail["From"] == "tala@nacka.example"
    assert "tala summary K-17" in mail.get_content()
    assert mailbox.tls_used == [True]  # STARTTLS, on a certificate the URL's cafile names
    for text in (sms["body"], mail["Subject"], mail.get_content()):
        _content_free(text)
    assert not _sms_to(fake, MIA) and not mailbox.to(MIA_MAIL)

    [(alert, _)] = staff_app.db.open_alerts()
    told = staff_app.db.notices_of([alert.id])[alert.id]
    assert sorted((n.recipient, n.route, n.status) for n in told) == [
        ("anna", "email", "sent"), ("anna", "sms", "sent")]


def test_at_night_an_urgent_answer_goes_to_the_on_call_number_and_the_child_is_told(
        staff_app, fake, mailbox):
    staff_app.service.notifier.set_unit("Nord", on_call=JOUR)
    sid = _invite(staff_app)
    staff_app.service.clock.now = NIGHT
    reply = staff_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    said = _said(reply)
    assert staff_app.runtime.catalogs.gettext("sv", M.SAFETY_ON_CALL) in said
    assert "jobbar just nu" in said and "112" in said and "116 111" in said
    _send_all(staff_app)

    [to_jour] = _sms_to(fake, JOUR)
    assert "K-17" in to_jour["body"] and "Nord" in to_jour["body"]
    _content_free(to_jour["body"])
    assert not _sms_to(fake, ANNA)  # instead of the phone nobody reads at night ...
    assert len(mailbox.wait_for(ANNA_MAIL)) == 1  # ... the e-mail she reads in the morning

    # A concern, not urgent, waits for the caseworker: the on-call service is not woken.
    other = staff_app.service.invite("K-20", 14, unit="Nord", actor="anna").session_id
    state = staff_app.service.state(other)
    child = staff_app.db.child("K-20")
    alert_id, _ = staff_app.db.write_alert(state, child.id, {
        "key": "q:low_mood", "question_id": "q", "level": "concern", "topic": "low_mood",
        "at": NIGHT.isoformat()})
    assert staff_app.service.notifier.notify(alert_id, child, "concern") == 2
    _send_all(staff_app)
    assert len(_sms_to(fake, JOUR)) == 1 and len(_sms_to(fake, ANNA)) == 1


def test_at_night_without_an_on_call_number_the_child_is_told_the_office_is_closed(
        staff_app, fake, mailbox):
    sid = _invite(staff_app)
    staff_app.service.clock.now = NIGHT
    reply = staff_app.service.handle(sid, "jag vill dö", message_id="m1", channel="sms")
    said = _said(reply)
    assert staff_app.runtime.catalogs.gettext("sv", M.SAFETY_CLOSED) in said
    assert "stängd" in said and "får veta det nu" not in said
    assert "112" in said and "116 111" in said and "90101" in said
    _send_all(staff_app)
    assert len(_sms_to(fake, ANNA)) == 1 and len(mailbox.wait_for(ANNA_MAIL)) == 1


def test_several_alerts_for_one_case_within_minutes_are_one_message(staff_app, fake, mailbox):
    sid = _invite(staff_app)
    staff_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    staff_app.service.clock.now = DAY + timedelta(minutes=2)
    staff_app.service.handle(sid, "jag vill dö", message_id="m2", channel="sms")
    _send_all(staff_app)
    alerts = staff_app.db.open_alerts()
    assert len(alerts) == 2
    assert len(_sms_to(fake, ANNA)) == 1 and len(mailbox.wait_for(ANNA_MAIL)) == 1
    told = staff_app.db.notices_of([a.id for a, _ in alerts])
    assert all(told[a.id] for a, _ in alerts)  # every alert says who was told of it

    # Later than that, a new alert is a new message.
    staff_app.service.clock.now = DAY + timedelta(minutes=30)
    staff_app.service.handle(sid, "7", message_id="m3", channel="sms")  # the next question
    staff_app.service.handle(sid, "mamma slår mig", message_id="m4", channel="sms")
    _send_all(staff_app)
    assert len(_sms_to(fake, ANNA)) == 2


def test_an_undelivered_alert_goes_to_the_manager_at_once(staff_app, fake, mailbox):
    mailbox.refuse.add(ANNA_MAIL)  # her mailbox is gone
    sid = _invite(staff_app)
    staff_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    _send_all(staff_app)
    [sms] = _sms_to(fake, ANNA)
    [(alert, _)] = staff_app.db.open_alerts()
    # Twilio says the work phone could not be reached, too.
    staff_app.service.record_delivery(sms["sid"], "undelivered", "30003", job_id=job_of(sms))
    statuses = {(n.route, n.status, n.error) for n in
                staff_app.db.notices_of([alert.id])[alert.id]}
    assert ("sms", "undelivered", "error 30003") in statuses
    assert ("email", "failed", "SMTP 550: recipient refused") in statuses

    # Minutes later, not four hours: the unit's manager hears of it, by phone and e-mail.
    assert staff_app.service.escalate_alerts(DAY + timedelta(minutes=1)) == 1
    _send_all(staff_app)
    [to_mia] = _sms_to(fake, MIA)
    assert "K-17" in to_mia["body"] and "kunde inte" in to_mia["body"]
    assert len(mailbox.wait_for(MIA_MAIL)) == 1
    assert staff_app.service.escalate_alerts(DAY + timedelta(hours=5)) == 0  # once


def test_an_unacknowledged_alert_escalates_in_office_hours_not_at_night(staff_app, fake):
    sid = _invite(staff_app)
    staff_app.service.clock.now = DAY + timedelta(hours=7)  # 16:00
    staff_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    assert staff_app.service.escalate_alerts(DAY + timedelta(hours=12)) == 0  # 21:00
    assert staff_app.service.escalate_alerts(DAY + timedelta(hours=23, minutes=5)) == 1  # 08:05
    _send_all(staff_app)
    [to_mia] = _sms_to(fake, MIA)
    assert "inte kvitterats" in to_mia["body"]


def test_the_responsible_caseworker_follows_the_newest_invitation_and_case_assign(
        staff_app, fake, monkeypatch):
    staff_app.db.add_user("admin", "admin", None, None)
    staff_app.db.add_user("bo", "caseworker", "Nord", "+46705550004")
    staff_app.service.invite("K-9", 10, unit="Nord", actor="anna")
    assert staff_app.db.child("K-9").caseworker == "anna"
    staff_app.service.invite("K-9", 10, unit="Nord", actor="bo")  # bo invites: bo is responsible
    assert staff_app.db.child("K-9").caseworker == "bo"

    moved = _cli(staff_app, monkeypatch, "admin", "case", "assign", "K-9", "anna")
    assert moved.exit_code == 0, moved.output
    assert "anna" in moved.output and staff_app.db.child("K-9").caseworker == "anna"
    typo = _cli(staff_app, monkeypatch, "admin", "case", "assign", "K-9", "ana")
    assert typo.exit_code == 2 and "tala users list" in typo.output
    nocase = _cli(staff_app, monkeypatch, "admin", "case", "assign", "K-99", "anna")
    assert nocase.exit_code == 2 and "K-99" in nocase.output
    wrong = _cli(staff_app, monkeypatch, "admin", "invite", "K-9", "--age", "10",
                 "--caseworker", "nobody")
    assert wrong.exit_code == 2 and "nobody" in wrong.output
    trail = json.loads(_cli(staff_app, monkeypatch, "admin", "audit", "--json").output)
    assert ("admin", "assign", "K-9") in [(e["user"], e["action"], e["case"]) for e in trail]


def test_units_set_and_tala_alerts_shows_who_was_told(staff_app, fake, mailbox, monkeypatch):
    staff_app.db.add_user("admin", "admin", None, None)
    set_ = _cli(staff_app, monkeypatch, "admin", "units", "set", "Nord", "--on-call",
                "070-555 99 99", "--hours", "mon-thu 08:00-16:30")
    assert set_.exit_code == 0, set_.output
    unit = staff_app.db.unit("Nord")
    assert unit.office_hours == "mon-thu 08:00-16:30" and staff_app.db.on_call(unit) == JOUR
    listed = _cli(staff_app, monkeypatch, "admin", "units")
    assert "Nord" in listed.output and "mon-thu 08:00-16:30" in listed.output
    assert "99 99" in listed.output or "9999" in listed.output
    bad = _cli(staff_app, monkeypatch, "admin", "units", "set", "Nord", "--hours", "sometimes")
    assert bad.exit_code == 2 and "mon-fri 08:00-17:00" in bad.output
    denied = _cli(staff_app, monkeypatch, "anna", "units", "set", "Nord", "--on-call", ANNA)
    assert denied.exit_code == 3

    sid = _invite(staff_app)
    staff_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    _send_all(staff_app)
    [sms] = _sms_to(fake, ANNA)
    staff_app.service.record_delivery(sms["sid"], "delivered", None, job_id=job_of(sms))
    [alert] = json.loads(_cli(staff_app, monkeypatch, "anna", "alerts", "--json").output)
    told = {(t["who"], t["route"], t["status"]) for t in alert["told"]}
    assert told == {("anna", "sms", "delivered"), ("anna", "email", "sent")}
    assert all(t["at"] for t in alert["told"])
    table = _cli(staff_app, monkeypatch, "anna", "alerts").output
    assert "anna" in table and "levererat" in table


def test_a_disclosure_through_the_running_server_reaches_phone_and_mail_within_seconds(
        staff_app, fake, mailbox):
    """The whole system: a signed webhook to `tala serve`, the worker's SMS and e-mail senders
    running; in the day to anna's phone and mailbox, at night to the on-call number."""
    staff_app.service.notifier.set_unit("Nord", on_call=JOUR)
    background = Background(staff_app, interval=0.2)
    with RunningServer(build_web_app(staff_app, worker=False)) as server:
        background.start()
        try:
            staff_app.service.invite("K-17", 14, channel="sms", contact=CHILD, unit="Nord",
                                     actor="anna")
            fake.wait_for(1)
            phone = Phone(server, fake.auth_token)
            phone.text("Hej")
            twiml = phone.text("pappa slår mig")
            assert "112" in twiml and "116 111" in twiml and "får veta det nu" in twiml
            mailbox.wait_for(ANNA_MAIL)
            fake.wait_for(2)
            assert len(_sms_to(fake, ANNA)) == 1 and not _sms_to(fake, JOUR)

            staff_app.service.clock.now = NIGHT
            night = Phone(server, fake.auth_token, "+46701234599")
            staff_app.service.invite("K-18", 14, channel="sms", contact=night.number,
                                     unit="Nord", actor="anna")
            fake.wait_for(3)
            night.text("Hej")
            twiml = night.text("jag vill dö")
            assert "jobbar just nu" in twiml and "112" in twiml and "90101" in twiml
            fake.wait_for(4)
            [to_jour] = _sms_to(fake, JOUR)
            assert "K-18" in to_jour["body"]
            assert len(_sms_to(fake, ANNA)) == 1  # still only the day's
            assert len(mailbox.wait_for(ANNA_MAIL, 2)) == 2
        finally:
            background.stop()


def test_an_unreachable_mail_server_is_tried_again_and_bad_settings_are_refused(tmp_path):
    import socket

    from bot.mail import EmailSender, MailSettingsError
    from bot.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens there once closed
    sender = EmailSender(Settings(TALA_SMTP_URL=f"smtp://localhost:{port}",
                                  TALA_ALERT_FROM="tala@nacka.example"))
    result = sender.send(ANNA_MAIL, "subject\n\ntext")
    assert not result.ok and not result.permanent  # the queue tries again, backing off
    assert ANNA_MAIL not in result.error
    for url, sender_address in (("http://mail.example", "tala@nacka.example"),
                                ("smtp://mail.example", "nobody")):
        with pytest.raises(MailSettingsError, match="TALA_"):
            EmailSender(Settings(TALA_SMTP_URL=url, TALA_ALERT_FROM=sender_address))


def test_a_text_after_the_end_reaches_the_caseworker_and_a_thank_you_is_kept_quietly(
        staff_app, fake, mailbox, monkeypatch):
    from admin_cli import summary

    inv = staff_app.service.invite("K-30", 12, channel="sms", contact=CHILD, unit="Nord",
                                   actor="anna", questionnaire_id="session-feedback")
    sid = inv.session_id
    staff_app.service.handle(sid, "Hej", message_id="m0", channel="sms")
    for i, answer in enumerate(["5", "4", "5", "5"], 1):
        staff_app.service.handle(sid, answer, message_id=f"m{i}", channel="sms")
    assert staff_app.service.state(sid).status == "completed"
    staff_app.service.send_queued("sms", block_ms=0)
    before = len(fake.messages)

    said = _said(staff_app.service.handle(sid, "Kan du ringa mig?", message_id="m9",
                                          channel="sms"))
    assert "får läsa det du skrev" in said
    _send_all(staff_app)
    [to_anna] = fake.messages[before:]
    assert to_anna["to"] == ANNA and "K-30" in to_anna["body"]
    assert "ringa" not in to_anna["body"] and "ringa" not in mailbox.wait_for(ANNA_MAIL)[0]\
        .get_content()
    [alert] = json.loads(_cli(staff_app, monkeypatch, "anna", "alerts", "--json").output)
    assert (alert["case"], alert["level"], alert["question_id"]) == ("K-30", "message",
                                                                     "_after_end")

    said = _said(staff_app.service.handle(sid, "Tack!", message_id="m10", channel="sms"))
    assert "redan svarat på alla frågor" in said
    _send_all(staff_app)
    assert len(fake.messages) == before + 1  # a thank-you wakes nobody
    assert len(json.loads(_cli(staff_app, monkeypatch, "anna", "alerts", "--json").output)) == 1
    text = summary.render_text(staff_app, summary.build(staff_app, "K-30", "anna"))
    from io import StringIO

    from rich.console import Console

    console = Console(width=200, record=True, file=StringIO())
    console.print(text)
    shown = console.export_text()
    assert "Kan du ringa mig?" in shown and "Tack!" in shown
    assert "efter sista frågan" in shown
    # A message is the caseworker's to read, not the manager's to be woken for.
    assert staff_app.service.escalate_alerts(DAY + timedelta(hours=5)) == 0
