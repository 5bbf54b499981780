"""The web chat (issue 21): `tala invite --channel web --to ...` texts a link, the page at
/c/<token> is the conversation, on one device at a time; reminders and a caseworker's reply go
by SMS. Over HTTP against tala's real server, the fake Twilio at the wire, and the embedded or
the machine's Redis and SQL. The page itself in a real Chromium: tests/test_webchat_browser.py;
the channel x feature cells: tests/test_matrix.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests

from bot.server import build_web_app
from bot.service import InviteError
from flows import engine
from flows import messages as M
from tests.conftest import APP_BACKENDS, PUBLIC_URL, _build, sms_env
from tests.fakes.server import RunningServer
from tests.test_sms import Phone

CHILD = "+46701234567"
LINK = re.compile(re.escape(PUBLIC_URL) + r"/c/([A-Z2-9]{22})")


@pytest.fixture(params=APP_BACKENDS, ids=lambda p: f"{p[0]}-redis+{p[1]}")
def web_app(request, tmp_path, embedded_redis_url, fake, monkeypatch):
    sms_env(monkeypatch, fake)  # the web chat needs SMS and TALA_PUBLIC_URL: both set here
    monkeypatch.setenv("TALA_SENDER_NAME", "Socialtjänsten i Nacka")
    app = _build(tmp_path, *request.param, embedded_redis_url)
    yield app
    app.close()


@pytest.fixture
def server(web_app):
    with RunningServer(build_web_app(web_app, worker=False)) as running:
        yield running


class Browser:
    """One phone's browser: its own cookies, and the page's JSON calls as chat.js makes them."""

    def __init__(self, server, token: str):
        self.http = requests.Session()
        self.base = f"{server.url}/c/{token}"
        self.n = 0

    def load(self) -> requests.Response:
        return self.http.get(self.base, timeout=10)

    def _post(self, path: str, payload: dict, mid: str | None = None) -> requests.Response:
        self.n += 1
        return self.http.post(self.base + path, json={"id": mid or f"msg{self.n:08d}",
                                                       **payload}, timeout=10)

    def open(self) -> dict:
        r = self._post("/open", {})
        assert r.status_code == 200, r.text
        return r.json()

    def say(self, text: str, mid: str | None = None) -> dict:
        r = self._post("/say", {"text": text}, mid)
        assert r.status_code == 200, r.text
        return r.json()

    def press(self, question: str, answer: str) -> dict:
        r = self._post("/say", {"question": question, "answer": answer})
        assert r.status_code == 200, r.text
        return r.json()


def _invite(app, case="K-17", number="070-123 45 67", lang="sv", age=14):
    inv = app.service.invite(case, age, channel="web", contact=number, lang=lang, actor="anna")
    app.service.send_queued("sms", block_ms=0)
    return inv


def _token(fake, number=CHILD) -> str:
    [body] = [m["body"] for m in fake.messages if m["to"] == number][:1]
    return LINK.search(body).group(1)


def _texts(reply: dict) -> str:
    return " ".join(" ".join(m["text"].split()) for m in reply["messages"])


def test_the_link_goes_by_sms_and_the_page_is_the_conversation(web_app, fake, server):
    inv = _invite(web_app)
    assert inv.code == ""  # the token is only ever in the child's SMS
    [sms] = fake.messages
    assert sms["to"] == CHILD and "Socialtjänsten i Nacka" in sms["body"]
    assert "STOP" in sms["body"] and LINK.search(sms["body"])
    assert web_app.db.invitation(inv.session_id).delivery_status == "sent"
    phone = Browser(server, _token(fake))
    page = phone.load()
    assert page.status_code == 200 and '<html lang="sv" dir="ltr">' in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Strict" in \
        page.headers["Set-Cookie"]
    first = phone.open()
    assert "Hej! Vi på socialtjänsten vill veta hur du har det" in _texts(first)
    [asked] = [m for m in first["messages"] if m.get("question")]
    assert asked["question"] == "home_feel" and asked["scale"] == [0, 10]
    state = web_app.service.state(inv.session_id)
    assert (state.status, state.channel, state.contact) == (engine.ACTIVE, "web", CHILD)
    reply = phone.press("home_feel", "7")
    assert web_app.service.state(inv.session_id).answers["home_feel"]["value"] == 7
    [yes_no] = [m for m in reply["messages"] if m.get("question")]
    assert yes_no["question"] == "trusted_adult"
    assert [c["label"] for c in yes_no["choices"]] == ["Ja", "Nej"]
    again = phone.press("home_feel", "3")  # the old question's button: changes nothing
    assert _texts(again) == web_app.runtime.catalogs.gettext("sv", M.ALREADY_ANSWERED)
    assert web_app.service.state(inv.session_id).answers["home_feel"]["value"] == 7


def test_a_message_sent_again_counts_once(web_app, fake, server):
    """The page sends a message again with the same id after a network failure."""
    inv = _invite(web_app)
    phone = Browser(server, _token(fake))
    phone.load()
    phone.open()
    first = phone.say("7", mid="retry-0001")
    again = phone.say("7", mid="retry-0001")
    assert _texts(again) == _texts(first)
    state = web_app.service.state(inv.session_id)
    assert state.seq == 1 and state.current == "trusted_adult"


def test_one_device_at_a_time_and_nothing_after_the_end(web_app, fake, server):
    inv = _invite(web_app)
    token = _token(fake)
    phone = Browser(server, token)
    phone.load()
    phone.open()
    other = Browser(server, token)  # someone else who has the link
    seen = other.load()
    assert seen.status_code == 409 and "redan öppen" in seen.text
    assert "Set-Cookie" not in seen.headers
    assert other._post("/say", {"text": "7"}).status_code == 403
    assert other.http.get(other.base + "/aloud", timeout=10).status_code == 403
    assert web_app.service.state(inv.session_id).answers == {}
    phone.say("7")
    phone.say("sluta")
    over = phone.say("ja")
    assert over["over"] is True
    # The child's own page still answers (what they answered, a text for the caseworker) ...
    assert "7" in _texts(phone.say("mina svar"))
    # ... but the link opened again, on any device, shows only that it no longer works.
    for browser in (phone, other, Browser(server, token)):
        closed = browser.load()
        assert closed.status_code == 404 and "fungerar inte längre" in closed.text
        assert "116 111" in closed.text and "Hej" not in closed.text and "7" not in \
            closed.text.split("<body>")[1]
    wrong = Browser(server, "A" * 22).load()
    assert wrong.status_code == 404 and wrong.text == closed.text  # the same, whatever it is


def test_garbled_and_forged_requests_get_4xx(web_app, fake, server):
    _invite(web_app)
    phone = Browser(server, _token(fake))
    phone.load()
    phone.open()
    post = phone.http.post
    assert post(phone.base + "/say", data="text=7", timeout=10).status_code == 415
    assert post(phone.base + "/say", data=b"{", headers={"Content-Type": "application/json"},
                timeout=10).status_code == 400
    assert post(phone.base + "/say", json=["7"], timeout=10).status_code == 400
    assert post(phone.base + "/say", json={"text": "7"}, timeout=10).status_code == 400  # no id
    assert phone._post("/say", {"text": "x" * 5000}).status_code in (400, 413)
    assert phone._post("/say", {"question": 7, "answer": "1"}).status_code == 400
    assert phone._post("/say", {"text": ""}).status_code == 400
    assert requests.get(f"{server.url}/c/static/nothing.js", timeout=10).status_code == 404
    js = requests.get(f"{server.url}/c/static/chat.js", timeout=10)
    assert js.status_code == 200 and "innerHTML" not in js.text  # text only, never markup


def test_reminders_and_the_caseworkers_reply_go_by_sms_and_the_sms_answers_too(
        web_app, fake, server):
    inv = _invite(web_app)
    token = _token(fake)
    phone = Browser(server, token)
    phone.load()
    phone.open()
    phone.say("7")
    policy = web_app.runtime.policy  # a reminder goes in the daytime, whenever the test runs
    web_app.service.run_due(policy.daytime(web_app.service.clock() + policy.remind_after
                                           + timedelta(minutes=1)))
    web_app.service.send_queued("sms", block_ms=0)
    reminder = fake.messages[-1]
    assert reminder["to"] == CHILD and token in reminder["body"]
    assert "frågor kvar" in reminder["body"]
    job = web_app.service.reply("K-17", "Vi ses på torsdag.", "anna")
    assert web_app.queue.job(job)["channel"] == "sms"
    web_app.service.send_queued("sms", block_ms=0)
    assert fake.messages[-1]["body"] == "Vi ses på torsdag." and fake.messages[-1]["to"] == CHILD
    # A child who answers the SMS instead goes on in the same conversation.
    Phone(server, fake.auth_token, CHILD).text("1")
    assert web_app.service.state(inv.session_id).answers["trusted_adult"]["value"] == "yes"


def test_arabic_is_laid_out_right_to_left(web_app, fake, server):
    _invite(web_app, lang="ar")
    phone = Browser(server, _token(fake))
    page = phone.load()
    assert '<html lang="ar" dir="rtl">' in page.text
    first = phone.open()
    assert first["dir"] == "rtl" and first["lang"] == "ar"
    assert first["labels"]["send"] != "Skicka"


def test_web_needs_sms_and_the_public_url(tmp_path, embedded_redis_url, fake, monkeypatch):
    sms_env(monkeypatch, fake)
    monkeypatch.delenv("TALA_PUBLIC_URL")
    app = _build(tmp_path, "embedded", "sqlite", embedded_redis_url)
    try:
        with pytest.raises(InviteError, match="TALA_PUBLIC_URL"):
            app.service.invite("K-1", 12, channel="web", contact=CHILD, actor="anna")
    finally:
        app.close()


def test_erasing_the_child_closes_the_link(web_app, fake, server):
    inv = _invite(web_app)
    token = _token(fake)
    phone = Browser(server, token)
    phone.load()
    phone.open()
    phone.say("7")
    assert web_app.service.erase("K-17", "anna")
    assert phone.load().status_code == 404
    r = phone._post("/say", {"text": "8"})
    assert r.status_code == 403
    h = web_app.crypto.lookup_hash(token)
    assert web_app.store.lookup("web", h) is None and web_app.store.lookup("webdevice", h) is None
    assert web_app.store.lookup("sms", web_app.crypto.lookup_hash(CHILD)) is None
    assert not list(web_app.store.r.scan_iter(match=web_app.store.session_pattern(
        inv.session_id)))


@pytest.mark.parametrize("lang", ["sv", "ar"])
def test_flows_cost_counts_the_one_sms_with_the_link_as_it_is_sent(web_app, fake, lang):
    from admin_cli.cost import cost
    from bot.channels.sms_text import segments

    inv = _invite(web_app, lang=lang)
    [sms] = fake.messages
    qn = web_app.questionnaires[inv.questionnaire_id]
    counted = cost(web_app.runtime, qn, lang, "Socialtjänsten i Nacka", PUBLIC_URL)
    assert counted.web == segments(sms["body"]).count
    assert counted.web < counted.longest.segments  # the answers cost no SMS


def test_redis_away_is_a_503_the_page_sends_again_and_it_counts_once(web_app, fake, server,
                                                                     monkeypatch):
    import redis

    inv = _invite(web_app)
    phone = Browser(server, _token(fake))
    phone.load()
    phone.open()
    real = web_app.service.receive

    def away(*args, **kwargs):
        raise redis.ConnectionError("Redis is restarting")

    monkeypatch.setattr(web_app.service, "receive", away)
    assert phone._post("/say", {"text": "7"}, mid="again-0001").status_code == 503
    monkeypatch.setattr(web_app.service, "receive", real)
    phone.say("7", mid="again-0001")
    phone.say("7", mid="again-0001")
    assert web_app.service.state(inv.session_id).seq == 1


def test_tala_invite_channel_web_says_the_link_went_by_sms(web_app, fake, monkeypatch):
    from tests.conftest import staff_cli

    done = staff_cli(web_app, monkeypatch, "anna", "invite", "K-40", "--age", "10",
                     "--channel", "web", "--to", "070-123 45 67", columns=250)
    assert done.exit_code == 0, done.output
    assert "Ett sms med länken till webbchatten skickat till barnet i ärende K-40." in \
        done.output
    [sms] = fake.messages
    token = LINK.search(sms["body"]).group(1)
    assert token not in done.output  # the link is the child's: staff never see it
    summary = staff_cli(web_app, monkeypatch, "anna", "summary", "K-40", columns=250)
    assert summary.exit_code == 0 and token not in summary.output, summary.output
    none = staff_cli(web_app, monkeypatch, "anna", "invite", "K-41", "--age", "10",
                     "--channel", "web", columns=250)
    assert none.exit_code != 0 and "behöver --to" in none.output, none.output
