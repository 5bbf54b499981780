"""WhatsApp through Twilio (issue 21): `tala invite --channel whatsapp --to ...` sends the
approved template, the child answers on the same signed webhook as SMS, free text goes only
within the 24 hours after the child's last message, and whatever WhatsApp cannot take goes by
SMS instead, with the caseworker told. Against the fake Twilio at the wire (Messages API with
Content templates), tala's real HTTP server, and the embedded or the machine's Redis and SQL.
The channel x feature cells are tests/test_matrix.py's."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import requests

from bot.server import build_web_app
from bot.service import InviteError, ReplyError
from bot.settings import Settings, SettingsError
from tests.conftest import (APP_BACKENDS, WHATSAPP_FROM, WHATSAPP_TEMPLATE, _build, sms_env,
                            staff_cli, whatsapp_env)
from tests.fakes.server import RunningServer
from tests.test_sms import Phone, callback

CHILD = "+46701234567"
WA = "whatsapp:" + CHILD


@pytest.fixture(params=APP_BACKENDS, ids=lambda p: f"{p[0]}-redis+{p[1]}")
def wa_app(request, tmp_path, embedded_redis_url, fake, monkeypatch):
    """SMS and WhatsApp both configured, as a municipality with both would run them."""
    sms_env(monkeypatch, fake)
    whatsapp_env(monkeypatch, fake)
    monkeypatch.setenv("TALA_SENDER_NAME", "Socialtjänsten i Nacka")
    app = _build(tmp_path, *request.param, embedded_redis_url)
    yield app
    app.close()


@pytest.fixture
def server(wa_app):
    with RunningServer(build_web_app(wa_app, worker=False)) as running:
        yield running


def _invite(app, case="K-17", number="070-123 45 67"):
    inv = app.service.invite(case, 14, channel="whatsapp", contact=number, actor="anna")
    app.service.send_queued("whatsapp", block_ms=0)
    return inv


def _close_window(app, number=CHILD):
    """What Redis does 23 hours after the child's last message: the window's key expires."""
    key = app.store.window_key("whatsapp", app.crypto.lookup_hash(number))
    assert app.store.r.delete(key) == 1


def test_the_invitation_is_the_template_and_the_child_answers_on_whatsapp(wa_app, fake, server):
    inv = _invite(wa_app)
    [sent] = fake.wait_for(1)
    assert (sent["to"], sent["from"]) == (WA, "whatsapp:" + WHATSAPP_FROM)
    assert sent["content_sid"] == WHATSAPP_TEMPLATE
    assert json.loads(sent["content_variables"]) == {"1": "Socialtjänsten i Nacka"}
    assert "Socialtjänsten i Nacka vill gärna veta" in sent["body"]
    assert wa_app.db.invitation(inv.session_id).delivery_status == "sent"

    phone = Phone(server, fake.auth_token, WA)
    first = phone.text("Hej")
    assert "Hej! Vi på socialtjänsten vill veta hur du har det" in first
    phone.text("7")
    state = wa_app.service.state(inv.session_id)
    assert (state.channel, state.contact) == ("whatsapp", CHILD)
    assert state.answers["home_feel"]["value"] == 7
    # The child wrote: tala may write freely for 23 hours (a little under WhatsApp's 24).
    key = wa_app.store.window_key("whatsapp", wa_app.crypto.lookup_hash(CHILD))
    assert 22 * 3600 < wa_app.store.r.ttl(key) <= 23 * 3600
    assert len(fake.messages) == 1  # the answers went back in TwiML, nothing by REST


def test_emoji_are_kept_and_a_long_message_is_split_at_1600_characters():
    from bot.channels.whatsapp import render_whatsapp
    from flows.engine import Say

    assert render_whatsapp([Say("Hur har du det? 😊")]) == ["Hur har du det? 😊"]
    long = [Say("Ett två tre fyra. " * 60), Say("Fem sex sju. " * 60)]
    parts = render_whatsapp(long)
    assert len(parts) == 2 and all(len(p) <= 1600 for p in parts)
    assert " ".join(parts).split() == " ".join(s.text for s in long).split()


def test_after_24_hours_a_reminder_and_a_reply_go_by_sms(wa_app, fake, server):
    inv = _invite(wa_app)
    phone = Phone(server, fake.auth_token, WA)
    phone.text("Hej")
    phone.text("7")
    svc = wa_app.service

    # Within the window, the caseworker's reply is a WhatsApp message.
    job = svc.reply("K-17", "Hej! Vi ses på torsdag.", "anna")
    svc.send_queued("whatsapp", block_ms=0)
    assert (fake.messages[-1]["to"], fake.messages[-1]["body"]) == (WA, "Hej! Vi ses på torsdag.")
    assert wa_app.queue.job(job)["status"] == "sent"

    _close_window(wa_app)
    later = datetime.now(timezone.utc) + timedelta(days=2)
    svc.run_due(wa_app.runtime.policy.daytime(later))
    assert svc.send_queued("whatsapp", block_ms=0) == 0  # nothing WhatsApp would refuse
    svc.send_queued("sms", block_ms=0)
    reminder = fake.messages[-1]
    assert reminder["to"] == CHILD and reminder["from"] == "+46700000000"
    assert "frågor kvar" in reminder["body"]

    job = svc.reply("K-17", "Ring mig när du vill.", "anna")
    assert wa_app.queue.job(job)["channel"] == "sms"
    svc.send_queued("sms", block_ms=0)
    assert (fake.messages[-1]["to"], fake.messages[-1]["body"]) == (CHILD, "Ring mig när du vill.")
    replies = [e.detail for e in wa_app.db.audit_entries("K-17") if e.action == "reply"]
    assert replies == ["via sms (WhatsApp's 24 hours had passed)", "via whatsapp"]

    # The child answers the SMS: the same conversation, where it stood.
    answered = Phone(server, fake.auth_token, CHILD).text("ja")
    assert "<Message>" in answered
    assert svc.state(inv.session_id).answers["trusted_adult"]["value"] == "yes"


def test_a_refused_template_goes_by_sms_and_the_caseworker_is_told(wa_app, fake, server):
    fake.templates.clear()  # the template is not (or no longer) approved: Twilio's 21655
    inv = _invite(wa_app)
    refused, = fake.messages
    assert refused["status_code"] == 400 and refused["content_sid"] == WHATSAPP_TEMPLATE
    wa_app.service.send_queued("sms", block_ms=0)
    sms = fake.messages[-1]
    assert sms["to"] == CHILD and sms["sid"] and "bestämmer själv" in sms["body"]
    row = wa_app.db.invitation(inv.session_id)
    assert row.delivery_status == "sent"
    assert row.delivery_error == ("WhatsApp could not take it (Twilio 21655); sent by SMS "
                                  "instead")
    reply = Phone(server, fake.auth_token, CHILD).text("Hej")  # the child answers the SMS
    assert "Vi på socialtjänsten vill veta" in reply


def test_an_undelivered_report_sends_the_invitation_by_sms(wa_app, fake, server):
    """WhatsApp may take the template and not deliver it (the number has no WhatsApp: 63003);
    Twilio says so in a delivery report."""
    inv = _invite(wa_app)
    [sent] = fake.messages
    status = Phone(server, fake.auth_token, WA).post(
        callback(sent), {"MessageSid": sent["sid"], "MessageStatus": "undelivered",
                         "ErrorCode": "63003"})
    assert status.status_code == 204
    wa_app.service.send_queued("sms", block_ms=0)
    assert [m["to"] for m in fake.messages] == [WA, CHILD]
    row = wa_app.db.invitation(inv.session_id)
    assert (row.delivery_status, row.delivery_error) == (
        "sent", "WhatsApp could not take it (error 63003); sent by SMS instead")
    # Twilio sends its report again: the SMS is not sent twice.
    Phone(server, fake.auth_token, WA).post(
        callback(sent), {"MessageSid": sent["sid"], "MessageStatus": "undelivered",
                         "ErrorCode": "63003"})
    assert wa_app.service.send_queued("sms", block_ms=0) == 0
    # Another failure (a bad number, say) is recorded, not sent by SMS.
    other = _invite(wa_app, case="K-18", number="+46701112233")
    Phone(server, fake.auth_token, WA).post(
        callback(fake.messages[-1]), {"MessageSid": fake.messages[-1]["sid"],
                                      "MessageStatus": "failed", "ErrorCode": "30008"})
    assert wa_app.service.send_queued("sms", block_ms=0) == 0
    assert wa_app.db.invitation(other.session_id).delivery_status == "failed"


def test_stop_on_whatsapp_is_confirmed_and_nothing_more_is_sent_anywhere(wa_app, fake, server):
    inv = _invite(wa_app)
    phone = Phone(server, fake.auth_token, WA)
    phone.text("Hej")
    phone.text("7")
    svc = wa_app.service
    assert svc.send_queued("whatsapp", block_ms=0) == 1  # the next question, with its buttons
    # Twilio does not act on STOP for WhatsApp: tala stops, and says so itself.
    said = phone.text("STOP")
    assert "vi slutar här" in said
    state = svc.state(inv.session_id)
    assert state.hold == "opted_out" and state.answers["home_feel"]["value"] == 7
    _close_window(wa_app)
    svc.run_due(wa_app.runtime.policy.daytime(datetime.now(timezone.utc) + timedelta(days=2)))
    assert svc.send_queued("whatsapp", block_ms=0) == 0
    assert svc.send_queued("sms", block_ms=0) == 0  # and no SMS in its place
    with pytest.raises(ReplyError, match="STOP"):
        svc.reply("K-17", "Hej!", "anna")
    with pytest.raises(InviteError, match="STOP"):
        svc.invite("K-19", 14, channel="whatsapp", contact=CHILD)
    assert "<Message>" not in phone.text("hej")  # nothing is answered until START
    assert "<Message>" not in phone.text("START")  # the question has buttons: queued
    assert svc.send_queued("whatsapp", block_ms=0) == 2
    welcome, question = fake.messages[-2:]
    assert "Välkommen tillbaka" in welcome["body"] and question["content_sid"] in fake.contents
    assert svc.state(inv.session_id).hold is None


def test_a_forged_whatsapp_webhook_is_refused(wa_app, fake, server):
    inv = _invite(wa_app)
    phone = Phone(server, "not-the-token", WA)
    params = {"MessageSid": "SMforged", "From": WA, "To": "whatsapp:" + WHATSAPP_FROM,
              "Body": "7"}
    assert phone.post("/sms/twilio", params).status_code == 403
    assert wa_app.service.state(inv.session_id).status == "invited"


def test_whatsapp_alone_without_sms(tmp_path, embedded_redis_url, fake, monkeypatch):
    """A WhatsApp-only installation: no SMS channel, so outside the window a reply cannot go
    and the caseworker is told why."""
    whatsapp_env(monkeypatch, fake)
    app = _build(tmp_path, "embedded", "sqlite", embedded_redis_url)
    try:
        assert set(app.service.outbound) == {"whatsapp"}
        with RunningServer(build_web_app(app, worker=False)) as server:
            _invite(app)
            Phone(server, fake.auth_token, WA).text("Hej")
            # An SMS to the webhook of an installation without SMS gets no answer.
            assert "<Message>" not in Phone(server, fake.auth_token, CHILD).text("Hej")
        _close_window(app)
        with pytest.raises(ReplyError, match="senaste dygnet"):
            app.service.reply("K-17", "Hej!", "anna")
        assert app.queue.in_line() == 0
    finally:
        app.close()


def test_settings_say_what_whatsapp_needs(monkeypatch):
    def settings(**env) -> Settings:
        return Settings(_env_file=None, **env)

    with pytest.raises(SettingsError, match="TWILIO_WHATSAPP_TEMPLATES"):
        settings(TWILIO_ACCOUNT_SID="AC1", TWILIO_AUTH_TOKEN="t",
                 TWILIO_WHATSAPP_FROM="+46700000009").check_channels()
    with pytest.raises(SettingsError, match="is not a Content SID"):
        settings(TWILIO_ACCOUNT_SID="AC1", TWILIO_AUTH_TOKEN="t",
                 TWILIO_WHATSAPP_FROM="+46700000009",
                 TWILIO_WHATSAPP_TEMPLATES="sv=HX12").check_channels()
    with pytest.raises(SettingsError, match="TWILIO_AUTH_TOKEN"):
        settings(TWILIO_WHATSAPP_FROM="+46700000009",
                 TWILIO_WHATSAPP_TEMPLATES=f"sv={WHATSAPP_TEMPLATE}").check_channels()
    ok = settings(TWILIO_ACCOUNT_SID="AC1", TWILIO_AUTH_TOKEN="t",
                  TWILIO_WHATSAPP_FROM="+46700000009",
                  TWILIO_WHATSAPP_TEMPLATES=f"sv={WHATSAPP_TEMPLATE}, ar=HX{'0' * 32}")
    ok.check_channels()
    assert not ok.sms_on and ok.whatsapp_templates == {"sv": WHATSAPP_TEMPLATE,
                                                       "ar": "HX" + "0" * 32}


def test_a_child_writing_in_arabic_gets_the_arabic_template(wa_app, fake, monkeypatch):
    arabic = "HX" + "a1" * 16
    fake.templates[arabic] = "مرحبا! {{1}}"
    monkeypatch.setattr(wa_app.service.outbound["whatsapp"].sender, "templates",
                        {"sv": WHATSAPP_TEMPLATE, "ar": arabic})
    wa_app.service.invite("K-20", 14, lang="ar", channel="whatsapp", contact=CHILD)
    wa_app.service.invite("K-21", 14, lang="fi", channel="whatsapp", contact="+46701112244")
    wa_app.service.send_queued("whatsapp", block_ms=0)
    assert [m["content_sid"] for m in fake.messages] == [arabic, WHATSAPP_TEMPLATE]


def test_metrics_count_whatsapp_apart(wa_app, fake, server):
    _invite(wa_app)
    Phone(server, fake.auth_token, WA).text("Hej")
    metrics = requests.get(server.url + "/metrics", timeout=10).text
    assert 'tala_messages_total{channel="whatsapp",direction="in"} 1.0' in metrics
    assert 'tala_messages_total{channel="whatsapp",direction="out"} 1.0' in metrics


def test_tala_invite_channel_whatsapp(wa_app, fake, monkeypatch):
    """`tala invite --channel whatsapp --to ...` as a caseworker types it: the template goes
    at once; a mistyped number, or no number, is told how to write it."""
    done = staff_cli(wa_app, monkeypatch, "anna", "invite", "K-30", "--age", "12", "--channel",
                     "whatsapp", "--to", "070-123 45 67", columns=250)
    assert done.exit_code == 0, done.output
    assert "Inbjudan skickad till barnet i ärende K-30 via WhatsApp." in done.output
    assert [m["to"] for m in fake.messages] == [WA]
    typo = staff_cli(wa_app, monkeypatch, "anna", "invite", "K-31", "--age", "12",
                     "--channel", "whatsapp", "--to", "070-12", columns=250)
    assert typo.exit_code != 0 and "+46701234567" in typo.output, typo.output
    none = staff_cli(wa_app, monkeypatch, "anna", "invite", "K-32", "--age", "12",
                     "--channel", "whatsapp", columns=250)
    assert none.exit_code != 0 and "behöver --to" in none.output, none.output

    fake.templates.clear()  # refused: the caseworker reads that it went by SMS
    by_sms = staff_cli(wa_app, monkeypatch, "anna", "invite", "K-33", "--age", "12",
                       "--channel", "whatsapp", "--to", "+46701112255", columns=250)
    assert by_sms.exit_code == 0, by_sms.output
    assert "WhatsApp tog inte emot inbjudan till barnet i ärende K-33, så den skickades som " \
           "sms i stället." in by_sms.output
    assert fake.messages[-1]["to"] == "+46701112255" and fake.messages[-1]["sid"]
    summary = staff_cli(wa_app, monkeypatch, "anna", "summary", "K-33", columns=250)
    assert summary.exit_code == 0, summary.output
    assert "WhatsApp kunde inte ta emot allt, så det skickades som sms i stället." in \
        " ".join(summary.output.split())


def test_erasing_a_whatsapp_child_leaves_no_binding_window_or_job(wa_app, fake, server):
    """Erased after the invitation went by SMS instead: neither channel's binding, the
    window, nor a job of theirs is left, and the number starts afresh."""
    fake.templates.clear()
    inv = _invite(wa_app)
    wa_app.service.send_queued("sms", block_ms=0)
    Phone(server, fake.auth_token, WA).text("Hej")  # and the child wrote on WhatsApp too
    h = wa_app.crypto.lookup_hash(CHILD)
    assert wa_app.store.lookup("sms", h) == inv.session_id
    assert wa_app.store.lookup("whatsapp", h) == inv.session_id
    assert wa_app.service.erase("K-17", "admin")
    r = wa_app.store.r
    assert wa_app.store.lookup("sms", h) is None and wa_app.store.lookup("whatsapp", h) is None
    assert not r.exists(wa_app.store.window_key("whatsapp", h))
    assert [k for k in r.scan_iter() if inv.session_id.encode() in k] == []
    assert wa_app.queue.job(f"invite:{inv.session_id}:0:sms:0") == {}


@pytest.mark.slow  # whole processes started and stopped
def test_serve_and_the_cli_as_separate_processes(tmp_path):
    """`tala serve` in one process, the caseworker's `tala invite` and `tala reply` in others,
    on one data directory: the template goes, the child answers on WhatsApp through the
    server, and the reply goes back on WhatsApp."""
    import signal
    import subprocess
    import sys

    from tests.conftest import WHATSAPP_TEMPLATE_TEXT
    from tests.fakes.twilio_api import FakeTwilio
    from tests.test_bulk import _env, _stop_embedded_redis
    from tests.test_serve import PUBLIC, _free_port, _wait_healthy
    from twilio.request_validator import RequestValidator

    with FakeTwilio(templates={WHATSAPP_TEMPLATE: WHATSAPP_TEMPLATE_TEXT}) as fake:
        env = {**_env(fake, tmp_path / "data"), "TALA_PUBLIC_URL": PUBLIC,
               "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
               "TWILIO_WHATSAPP_TEMPLATES": f"sv={WHATSAPP_TEMPLATE}", "COLUMNS": "200"}

        def tala(*args: str) -> str:
            done = subprocess.run([sys.executable, "-m", "admin_cli.main", *args], env=env,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            return " ".join(done.stdout.split())

        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "serve", "--port",
                                   str(port)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url)
            said = tala("invite", "K-1", "--age", "14", "--channel", "whatsapp", "--to",
                        "070-123 45 67")
            # Sent by the CLI, or (when the server's worker took the job first) about to be.
            assert ("Inbjudan skickad till barnet i ärende K-1 via WhatsApp." in said
                    or "Inbjudan till barnet i ärende K-1 ligger i kö för WhatsApp" in said), said
            [invitation] = fake.wait_for(1)
            assert invitation["to"] == WA and invitation["content_sid"] == WHATSAPP_TEMPLATE
            params = {"MessageSid": "SMwa" + "0" * 28, "From": WA,
                      "To": "whatsapp:" + WHATSAPP_FROM, "Body": "Hej"}
            sig = RequestValidator(fake.auth_token).compute_signature(PUBLIC + "/sms/twilio",
                                                                      params)
            answered = requests.post(url + "/sms/twilio", data=params, timeout=30,
                                     headers={"X-Twilio-Signature": sig})
            assert answered.status_code == 200 and "Vi på socialtjänsten" in answered.text
            tala("reply", "K-1", "Hej! Vi ses på torsdag.")
            replied = fake.wait_for(2)[-1]
            assert (replied["to"], replied["body"]) == (WA, "Hej! Vi ses på torsdag.")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            finally:
                if server.poll() is None:
                    server.kill()
                _stop_embedded_redis(tmp_path / "data")


# --------------------------------------------------------------------------- buttons

def _answered_with_buttons(wa_app, fake, phone, text: str, **extra) -> dict:
    """The child's message, and the question with buttons it was answered with (queued)."""
    assert "<Message>" not in phone.text(text, **extra)
    wa_app.service.send_queued("whatsapp", block_ms=0)
    last = fake.messages[-1]
    assert last["content_sid"] in fake.contents, last
    return fake.contents[last["content_sid"]]


def test_a_yes_or_no_comes_with_quick_replies_and_a_press_answers(wa_app, fake, server):
    inv = _invite(wa_app)
    phone = Phone(server, fake.auth_token, WA)
    phone.text("Hej")
    made = _answered_with_buttons(wa_app, fake, phone, "7")
    assert made["language"] == "sv"
    actions = made["types"]["twilio/quick-reply"]["actions"]
    assert actions == [{"title": "Ja", "id": "trusted_adult|1"},
                       {"title": "Nej", "id": "trusted_adult|2"}]
    # Where buttons cannot be shown, the numbered text: typing always works.
    assert "1. Ja" in made["types"]["twilio/text"]["body"]
    phone.text("Ja", ButtonPayload="trusted_adult|1", ButtonText="Ja")
    state = wa_app.service.state(inv.session_id)
    assert state.answers["trusted_adult"]["value"] == "yes"
    # The same button again (WhatsApp keeps it on screen): nothing changes.
    again = phone.text("Nej", ButtonPayload="trusted_adult|2", ButtonText="Nej")
    assert "Det har du redan svarat på." in again
    assert wa_app.service.state(inv.session_id).answers["trusted_adult"]["value"] == "yes"


def test_the_same_question_reuses_its_template_and_a_1_to_5_scale_is_a_list(
        wa_app, fake, server):
    for case, number in (("K-1", "+46701111111"), ("K-2", "+46702222222")):
        wa_app.service.invite(case, 14, channel="whatsapp", contact=number, actor="anna")
        wa_app.service.send_queued("whatsapp", block_ms=0)
        phone = Phone(server, fake.auth_token, "whatsapp:" + number)
        phone.text("Hej")
        _answered_with_buttons(wa_app, fake, phone, "7")
    assert len(fake.contents) == 1  # one template for the question in Swedish, used twice
    # A younger child: the 1-5 scale with smileys, as a list to pick from.
    wa_app.service.invite("K-3", 9, channel="whatsapp", contact=CHILD, actor="anna")
    wa_app.service.send_queued("whatsapp", block_ms=0)
    phone = Phone(server, fake.auth_token, WA)
    wa_app.service.send_queued("whatsapp", block_ms=0)
    made = _answered_with_buttons(wa_app, fake, phone, "Hej")
    picker = made["types"]["twilio/list-picker"]
    assert len(picker["items"]) == 5 and picker["items"][0]["item"].startswith("😢")
    assert picker["button"] == "Välj ett svar" and all(len(i["item"]) <= 24
                                                       for i in picker["items"])
    first = picker["items"][4]["id"]
    phone.text(picker["items"][4]["item"], ListId=first)
    state = wa_app.service.state(wa_app.service.session_for_contact("whatsapp", CHILD))
    question, key = first.split("|")
    assert state.answers[question]["value"] == int(key)


def test_without_the_content_api_the_question_goes_numbered(wa_app, fake, server):
    inv = _invite(wa_app)
    fake.content_down = True
    phone = Phone(server, fake.auth_token, WA)
    phone.text("Hej")
    assert "<Message>" not in phone.text("7")
    wa_app.service.send_queued("whatsapp", block_ms=0)
    last = fake.messages[-1]
    assert last["content_sid"] is None and "1. Ja" in last["body"] and "2. Nej" in last["body"]
    phone.text("1")
    assert wa_app.service.state(inv.session_id).answers["trusted_adult"]["value"] == "yes"


def test_a_forged_button_changes_nothing(wa_app, fake, server):
    inv = _invite(wa_app)
    phone = Phone(server, fake.auth_token, WA)
    phone.text("Hej")
    said = phone.text("x", ButtonPayload="some_other_question|1")
    assert "Det har du redan svarat på." in said
    assert wa_app.service.state(inv.session_id).answers == {}
    phone.text("7", ButtonPayload="garbage-without-a-bar")  # not a button of ours: the text
    assert wa_app.service.state(inv.session_id).answers["home_feel"]["value"] == 7
