"""SMS end to end: tala's real HTTP server, signed Twilio webhooks over real HTTP, a local fake
Twilio API for what tala sends, and real Redis and SQL underneath."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from admin_cli import summary
from bot.app import create_app
from bot.server import build_web_app
from bot.service import InviteError
from flows import messages as M
from storage.sql import Invitation
from tests.conftest import PUBLIC_URL, _settings, wait_written
from tests.fakes.server import RunningServer

CHILD = "+46701234567"


@pytest.fixture
def server(sms_app):
    with RunningServer(build_web_app(sms_app, worker=False)) as running:
        yield running


class Phone:
    """The child's phone as Twilio sees it: every text becomes a signed webhook call."""

    def __init__(self, server: RunningServer, token: str, number: str = CHILD):
        self.server, self.number, self.n = server, number, 0
        self.validator = RequestValidator(token)

    def post(self, path: str, params: dict, signature: str | None = None) -> requests.Response:
        sig = signature if signature is not None else \
            self.validator.compute_signature(PUBLIC_URL + path, params)
        return requests.post(self.server.url + path, data=params,
                             headers={"X-Twilio-Signature": sig}, timeout=30)

    def text(self, body: str, sid: str | None = None, **extra) -> str:
        self.n += 1
        params = {"MessageSid": sid or f"SMin{self.n:030d}", "AccountSid": "AC" + "0" * 32,
                  "From": self.number, "To": "+46700000000", "Body": body, **extra}
        resp = self.post("/sms/twilio", params)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"].startswith("application/xml")
        return resp.text


def callback(sent: dict) -> str:
    """The path (with its query) of the delivery report URL Twilio was given for `sent`."""
    return sent["status_callback"].removeprefix(PUBLIC_URL)


def job_of(sent: dict) -> str:
    """The job its delivery report's URL names."""
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(sent["status_callback"]).query)["job"][0]


def _invite(app, fake, case="K-17", age=14, number=CHILD, **kw):
    inv = app.service.invite(case, age, channel="sms", contact=number, actor="anna", **kw)
    app.service.send_queued("sms", block_ms=0)
    return inv


SCRIPT_12_18 = ["7", "ja", "8", "1", "3", "1 4", "Det är svårt att orka", "nästan varje dag",
                "ja", "10", "6", "5", "ja", "nej", "ja", "hoppa över", "nej", "9", "tillbaka",
                "8", "8", "1", "3, 7", "hoppa över", "Inget mer"]


def test_a_whole_followup_12_18_conversation_by_sms(sms_app, fake, server):
    inv = _invite(sms_app, fake, number="070-123 45 67")  # written as people write it
    [sent] = fake.wait_for(1)
    assert sent["to"] == CHILD and sent["from"] == "+46700000000"
    assert sent["status_callback"] == \
        f"{PUBLIC_URL}/sms/twilio/status?job=invite%3A{inv.session_id}%3A0"  # signed by Twilio
    assert "Socialtjänsten i Nacka" in sent["body"] and "bestämmer själv" in sent["body"]
    assert sms_app.db.invitation(inv.session_id).delivery_status == "sent"

    phone = Phone(server, fake.auth_token)
    first = phone.text("Hej")
    assert "Hur har du det" in first and "0 till 10" in first
    for reply in SCRIPT_12_18:
        twiml = phone.text(reply)
        assert "förstod inte" not in twiml, (reply, twiml)
    assert "Tack" in twiml and "116 111" in twiml  # the closing text
    state = sms_app.service.state(inv.session_id)
    assert state.status == "completed"
    wait_written(sms_app, inv.session_id)  # by the server's SQL threads, after the reply

    data = summary.build(sms_app, "K-17", "anna")
    [session] = data["sessions"]
    assert session["channel"] == "sms" and session["status"] == "completed"
    got = {a["question_id"]: a for a in session["answers"]}
    assert set(got) == set(state.answers)  # every answer reached SQL
    assert got["caseworker_talk"]["value"] == 8 and got["home_feel"]["value"] == 7
    assert got["school_attend"]["value"] == "almost_always"
    assert got["anything_else"]["text"] == "Inget mer"
    assert len(fake.messages) == 1  # everything else went back as TwiML replies
    # Every message, its alerts' and its ending's too, had its Redis work on the event loop.
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert f'tala_messages_on_loop_total{{channel="sms"}} {1 + len(SCRIPT_12_18)}.0' in metrics


def test_a_message_goes_to_a_thread_when_it_would_block_the_event_loop(sms_app, fake, server):
    """A session whose data key is not in memory has it read from the key store (SQL) in a
    thread, then its messages are on the loop; STOP and a number with nothing bound are
    threads' work from the start. The answers land alike either way."""
    inv = _invite(sms_app, fake)
    sms_app.crypto.keys._cache.clear()  # as in a process that has not met this session yet
    phone = Phone(server, fake.auth_token)

    def on_loop() -> float:
        text = requests.get(server.url + "/metrics", timeout=10).text
        line = [x for x in text.splitlines() if x.startswith("tala_messages_on_loop_total")]
        return float(line[0].split()[-1]) if line else 0.0

    assert "Hur har du det" in phone.text("Hej") and on_loop() == 0
    assert "förstod inte" not in phone.text("7") and on_loop() == 1
    assert sms_app.service.state(inv.session_id).answers["home_feel"]["value"] == 7
    assert Phone(server, fake.auth_token, "+46709999999").text("Hej") and on_loop() == 1
    phone.text("STOP")
    assert on_loop() == 1 and sms_app.service.is_opted_out("sms", CHILD)


def test_the_last_reply_does_not_wait_on_sql(sms_app, fake, server, monkeypatch):
    """The message that finishes a session is answered at once; the session is written to SQL
    after it, by the server's own SQL threads (here held back until the reply is in)."""
    inv = _invite(sms_app, fake)
    release, real = threading.Event(), sms_app.db.write_session
    monkeypatch.setattr(sms_app.db, "write_session",
                        lambda *a, **k: release.wait(30) and real(*a, **k))
    phone = Phone(server, fake.auth_token)
    phone.text("Hej")
    for reply in SCRIPT_12_18:
        twiml = phone.text(reply)
    assert "116 111" in twiml  # the closing text came back while SQL was held
    assert [i["kind"] for i in sms_app.service.state(inv.session_id).outbox] == ["finish"]
    assert sms_app.db.sessions_for(sms_app.db.child("K-17").id) == []
    release.set()
    wait_written(sms_app, inv.session_id)
    [(row, answers)] = sms_app.db.sessions_for(sms_app.db.child("K-17").id)
    assert row.status == "completed" and len(answers) >= len(SCRIPT_12_18) - 2


def test_a_forged_or_missing_signature_gets_403_and_touches_nothing(sms_app, fake, server):
    inv = _invite(sms_app, fake)
    before = sms_app.store.r.get(sms_app.store.state_key(inv.session_id))
    phone = Phone(server, "not-the-token")
    params = {"MessageSid": "SMforged", "From": CHILD, "To": "+46700000000", "Body": "Hej"}
    assert phone.post("/sms/twilio", params).status_code == 403
    assert phone.post("/sms/twilio", params, signature="").status_code == 403
    good = Phone(server, fake.auth_token)
    signed_elsewhere = good.validator.compute_signature("https://evil.example/sms/twilio",
                                                        params)
    assert good.post("/sms/twilio", params, signature=signed_elsewhere).status_code == 403
    assert sms_app.store.r.get(sms_app.store.state_key(inv.session_id)) == before
    assert len(fake.messages) == 1
    status = good.post("/sms/twilio/status", {"MessageSid": "SMx", "MessageStatus": "failed"},
                       signature="bad")
    assert status.status_code == 403
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'tala_errors_total{channel="sms",kind="forbidden"} 4.0' in metrics


def test_behind_a_proxy_the_forwarded_url_is_what_twilio_signed(sms_app, fake, server):
    """Only without TALA_PUBLIC_URL (with it set, forwarded headers are not believed), and
    only from a proxy named in TALA_TRUSTED_PROXIES: from anyone else they change nothing."""
    sms_app.settings.public_url = None
    _invite(sms_app, fake)
    params = {"MessageSid": "SMproxy1", "From": CHILD, "To": "+46700000000", "Body": "Hej"}
    sig = RequestValidator(fake.auth_token).compute_signature(
        "https://sms.kommun.se/sms/twilio", params)

    def post():
        return requests.post(server.url + "/sms/twilio", data=params, timeout=30, headers={
            "X-Twilio-Signature": sig, "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "sms.kommun.se"})

    assert post().status_code == 403  # no proxy trusted: the headers are anyone's
    sms_app.settings.trusted_proxies = "10.1.2.3, 192.168.0.0/16"  # not this test's address
    assert post().status_code == 403
    sms_app.settings.trusted_proxies = "10.1.2.3, 127.0.0.0/8"  # the proxy on this machine
    resp = post()
    assert resp.status_code == 200 and "Hur har du det" in resp.text


def test_a_replayed_message_sid_is_answered_alike_but_applied_once(sms_app, fake, server):
    inv = _invite(sms_app, fake)
    phone = Phone(server, fake.auth_token)
    phone.text("Hej")
    first = phone.text("7", sid="SMretry0000000000000000000000001")
    again = phone.text("7", sid="SMretry0000000000000000000000001")
    assert first == again and "vuxen" in first.lower()
    state = sms_app.service.state(inv.session_id)
    assert state.seq == 1 and state.answers["home_feel"]["value"] == 7


def test_an_unknown_number_gets_one_discreet_reply_a_day(sms_app, fake, server):
    _invite(sms_app, fake)
    stranger = Phone(server, fake.auth_token, number="+46709999999")
    first = stranger.text("Hej, vem är detta?")
    unknown = sms_app.runtime.catalogs.gettext("sv", M.UNKNOWN_NUMBER)
    assert unknown in first
    assert "K-17" not in first and "Hur har du det" not in first  # reveals nothing
    assert "<Message>" not in stranger.text("Hallå?")  # not again the same day
    assert len(fake.messages) == 1  # and nothing was sent to the stranger


def test_stop_mid_way_pauses_and_nothing_more_is_sent_until_start(sms_app, fake, server):
    inv = _invite(sms_app, fake)
    phone = Phone(server, fake.auth_token)
    phone.text("Hej")
    phone.text("7")
    assert "<Message>" not in phone.text("STOP", OptOutType="STOP")  # Twilio replies itself
    state = sms_app.service.state(inv.session_id)
    assert state.status == "paused" and state.hold == "opted_out"
    assert state.answers["home_feel"]["value"] == 7  # nothing lost
    assert sms_app.db.invitation(inv.session_id).delivery_status == "opted_out"
    [open_session] = summary.build(sms_app, "K-17", "anna")["open_sessions"]
    assert open_session["waiting_because"] == "opted_out"

    # No reminder goes out to a number that said STOP, and no new invitation can be made.
    later = datetime.now(timezone.utc) + timedelta(days=2)
    sms_app.service.run_due(sms_app.runtime.policy.daytime(later))
    sms_app.service.send_queued("sms", block_ms=0)
    assert len(fake.messages) == 1
    with pytest.raises(InviteError, match="STOP"):
        sms_app.service.invite("K-18", 14, channel="sms", contact=CHILD)

    back = phone.text("START", OptOutType="START")
    assert "Välkommen tillbaka" in back and "vuxen" in back.lower()
    assert sms_app.service.state(inv.session_id).hold is None


def test_a_report_is_taken_only_for_the_message_its_job_sent(sms_app, fake, server):
    inv = _invite(sms_app, fake)
    [sent] = fake.wait_for(1)
    phone = Phone(server, fake.auth_token)
    other = {"MessageSid": "SM" + "9" * 32, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    assert phone.post(callback(sent), other).status_code == 204
    assert sms_app.db.invitation(inv.session_id).delivery_status == "sent"  # not its message
    # A message a version before sent: its report's URL names no job; Redis leads to it.
    sms_app.store.r.set(sms_app.queue.message_key(sent["sid"]), f"invite:{inv.session_id}:0")
    report = {"MessageSid": sent["sid"], "MessageStatus": "delivered"}
    assert phone.post("/sms/twilio/status", report).status_code == 204
    assert sms_app.db.invitation(inv.session_id).delivery_status == "delivered"
    sms_app.store.r.delete(sms_app.queue.message_key(sent["sid"]))
    assert sms_app.store.r.keys("tala:msg:*") == []  # tala itself writes none now


def test_a_21610_in_a_delivery_report_marks_the_number_opted_out(sms_app, fake, server):
    inv = _invite(sms_app, fake)
    [sent] = fake.wait_for(1)
    # The job's text is gone once it is sent: the number comes from the session.
    assert sms_app.queue.text(f"invite:{inv.session_id}:0",
                              sms_app.queue.job(f"invite:{inv.session_id}:0")) is None
    report = {"MessageSid": sent["sid"], "MessageStatus": "undelivered", "ErrorCode": "21610"}
    assert Phone(server, fake.auth_token).post(callback(sent), report).status_code == 204
    assert sms_app.service.is_opted_out("sms", CHILD)
    assert sms_app.service.state(inv.session_id).hold == "opted_out"


def test_a_21610_on_send_marks_the_number_opted_out(sms_app, fake):
    fake.fail_for(CHILD, 21610)
    inv = _invite(sms_app, fake)
    [refused] = fake.messages
    assert refused["status_code"] == 400 and refused["sid"] is None
    assert sms_app.service.is_opted_out("sms", CHILD)
    assert sms_app.db.invitation(inv.session_id).delivery_status == "opted_out"
    fake.reset()
    sms_app.service.run_due(datetime.now(timezone.utc) + timedelta(days=3))
    sms_app.service.send_queued("sms", block_ms=0)
    assert fake.messages == []


def test_an_invalid_number_and_a_server_error_are_told_apart(sms_app, fake):
    with pytest.raises(InviteError, match="är inte ett telefonnummer"):
        sms_app.service.invite("K-1", 9, channel="sms", contact="12345")
    fake.fail_for("+46701112233", 21211)
    bad = _invite(sms_app, fake, case="K-2", number="+46701112233")
    inv = sms_app.db.invitation(bad.session_id)
    assert inv.delivery_status == "failed" and "21211" in inv.delivery_error
    fake.fail_next(2, status=503)  # Twilio has a bad moment: tried again, sent once
    ok = _invite(sms_app, fake, case="K-3", number="+46701112244")
    assert sms_app.db.invitation(ok.session_id).delivery_status == "sent"
    assert [m["status_code"] for m in fake.messages if m["to"] == "+46701112244"] == [
        503, 503, 201]


def test_delivery_reports_are_recorded_and_shown_to_the_caseworker(sms_app, fake, server):
    inv = _invite(sms_app, fake)
    [sent] = fake.messages
    phone = Phone(server, fake.auth_token)
    resp = phone.post(callback(sent), {"MessageSid": sent["sid"],
                                       "MessageStatus": "undelivered", "ErrorCode": "30003"})
    assert resp.status_code == 204
    row = sms_app.db.invitation(inv.session_id)
    assert (row.delivery_status, row.delivery_error) == ("undelivered", "error 30003")
    [open_session] = summary.build(sms_app, "K-17", "anna")["open_sessions"]
    assert open_session["delivery"] == "undelivered"


def test_a_reminder_by_sms_waits_for_the_daytime(sms_app, fake, server):
    inv = _invite(sms_app, fake)
    phone = Phone(server, fake.auth_token)
    phone.text("Hej")
    phone.text("7")
    svc, policy = sms_app.service, sms_app.runtime.policy
    local = ZoneInfo(policy.timezone)
    # Well past the reminder time, but at half past eleven at night, Swedish time.
    night = (datetime.now(local) + policy.remind_after + timedelta(days=1)).replace(
        hour=23, minute=30)
    svc.run_due(night)
    svc.send_queued("sms", block_ms=0)
    assert len(fake.messages) == 1  # not at half past eleven at night
    morning = policy.daytime(night)
    assert morning.astimezone(local).hour == 8 and morning > night
    svc.run_due(morning + timedelta(minutes=1))
    svc.send_queued("sms", block_ms=0)
    reminder = fake.messages[-1]
    assert len(fake.messages) == 2 and reminder["to"] == CHILD
    assert "frågor kvar" in reminder["body"]
    assert svc.state(inv.session_id).reminded


def test_healthz_and_metrics(sms_app, fake, server):
    _invite(sms_app, fake)
    Phone(server, fake.auth_token).text("Hej")
    health = requests.get(server.url + "/healthz", timeout=10)
    assert health.status_code == 200 and health.json() == {"redis": "ok", "sql": "ok"}
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'tala_messages_total{channel="sms",direction="in"} 1.0' in metrics
    assert 'tala_messages_total{channel="sms",direction="out"} 1.0' in metrics
    assert "tala_sessions_started_total 1.0" in metrics
    assert 'tala_handle_seconds_count{channel="sms"} 1.0' in metrics


def test_healthz_says_when_sql_answers_but_takes_no_writes(sms_app, fake, server):
    """A database that answers but cannot write (a full disk, a read-only replica after a
    failover) is unhealthy until a write gets through again; the child is answered all the
    same and nothing is lost: the worker writes it once SQL takes writes."""
    from sqlalchemy import event

    engine = sms_app.db.engine
    read_only = ("PRAGMA query_only = ON" if engine.dialect.name == "sqlite" else
                 "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")

    def no_writes(dbapi_conn, _):
        cur = dbapi_conn.cursor()
        cur.execute(read_only)
        cur.close()
        dbapi_conn.commit()  # PostgreSQL undoes a SET in a transaction rolled back

    inv = _invite(sms_app, fake)
    phone = Phone(server, fake.auth_token)
    phone.text("Hej")
    event.listen(engine, "connect", no_writes)
    engine.dispose()  # every connection from now on is read-only
    try:
        for answer in SCRIPT_12_18[:6]:  # answers, then a disclosure: its alert must reach SQL
            phone.text(answer)
        reply = phone.text("Pappa slår mig när han är full")
        assert "116 111" in reply  # the child is told where to get help now, SQL or not
        health = requests.get(server.url + "/healthz", timeout=10)
        assert health.status_code == 503, health.text
        assert health.json()["redis"] == "ok" and "writes failing" in health.json()["sql"]
    finally:
        event.remove(engine, "connect", no_writes)
        engine.dispose()
    sms_app.service.run_due()  # the worker's round: what waited is written now
    health = requests.get(server.url + "/healthz", timeout=10)
    assert health.status_code == 200 and health.json() == {"redis": "ok", "sql": "ok"}
    assert sms_app.db.alerts_for(sms_app.db.child(inv.case_ref).id)


def test_sms_settings_errors_are_clear(tmp_path, embedded_redis_url, monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "t")
    monkeypatch.delenv("TWILIO_FROM_NUMBER", raising=False)
    monkeypatch.delenv("TWILIO_MESSAGING_SERVICE_SID", raising=False)
    with pytest.raises(RuntimeError, match="TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"):
        create_app(_settings(tmp_path, embedded_redis_url, None), migrate=True)


def test_invitations_are_in_sql_with_the_number_encrypted(sms_app, fake):
    inv = _invite(sms_app, fake)
    with sms_app.db.Session() as s:
        row = s.scalars(select(Invitation)).one()
    assert CHILD.encode() not in row.contact_enc
    assert sms_app.crypto.decrypt(row.contact_enc, row.session_id) == CHILD
    assert row.contact_hash == sms_app.crypto.lookup_hash(CHILD)
    assert row.session_id == inv.session_id


def test_a_trusted_proxy_that_is_no_address_is_refused_at_start(tmp_path):
    from bot.settings import Settings, SettingsError

    bad = Settings(TALA_DATA_DIR=str(tmp_path), TALA_TRUSTED_PROXIES="10.0.0.5, proxy.kommun")
    with pytest.raises(SettingsError, match="'proxy.kommun' is not an address"):
        bad.check_channels()
