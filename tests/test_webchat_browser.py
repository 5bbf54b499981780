"""The web chat (bot/channels/web.py, bot/channels/webchat/) in a real headless Chromium: the
page a child opens from the SMS link, against tala's real server in this process (embedded
Redis and SQLite, SMS through the fake Twilio), in tests/browser.py's set-up as the staff pages.

It proves that chat.js, chat.css and the server work together as a child uses them: a whole
conversation on a phone by buttons, by typing and by a tool button, stored in the session, with
nothing fetched from anywhere but tala, no console error or CSP refusal and nothing axe-core
finds serious; Arabic laid out right to left and labelled in Arabic; read-aloud really plays
(the audio element's "playing" event, on tala's own OGG/Opus); switching language on the page
relabels it; the link on a second phone shows only that it is open elsewhere, and after the
end, on the first, only that it no longer works; "bigger text" makes the text bigger and is
kept over a reload. The same over plain HTTP: tests/test_webchat.py."""

from __future__ import annotations

import pytest

from bot.server import build_web_app
from bot.speech import Speech
from flows import engine
from flows import messages as M
from tests.browser import (  # noqa: F401 - browser is a fixture
    PHONE,
    assert_accessible,
    browser,
    console_errors,
    new_page,
)
from tests.conftest import _build, sms_env, wait_written
from tests.fakes.server import RunningServer
from tests.test_webchat import _invite, _token

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, saying what to install
    expect = None

INTRO = "Hej! Vi på socialtjänsten vill veta hur du har det"
HOME_FEEL = "Hur har du det där du bor just nu?"
TRUSTED = "Finns det någon vuxen som du litar på och kan prata med när något är svårt?"
LISTEN = "Hur mycket lyssnar de vuxna där du bor på vad du tycker?"


@pytest.fixture
def web_app(tmp_path, embedded_redis_url, fake, monkeypatch):
    sms_env(monkeypatch, fake)  # the web chat needs SMS and TALA_PUBLIC_URL
    monkeypatch.setenv("TALA_SENDER_NAME", "Socialtjänsten i Nacka")
    app = _build(tmp_path, "embedded", "sqlite", embedded_redis_url)
    yield app
    app.close()


@pytest.fixture
def server(web_app):
    with RunningServer(build_web_app(web_app, worker=False)) as running:
        yield running


def _t(app, lang: str, msgid: str) -> str:
    return app.runtime.catalogs.gettext(lang, msgid)


def _ready(page) -> str:
    return page.evaluate("document.body.dataset.ready || ''")


def _after(page, action) -> None:
    """Do `action` (a click, a key), then wait until the page has shown tala's answer."""
    before = _ready(page)
    action()
    page.wait_for_function("b => (document.body.dataset.ready || '') !== b", arg=before)


def _open(browser, server, token: str, viewport: dict = PHONE):  # noqa: F811
    """The child's link in a phone of its own, once the introduction and question are shown."""
    page = new_page(browser, viewport)
    _after(page, lambda: page.goto(f"{server.url}/c/{token}"))
    return page


def _asking(page) -> str:
    """The question whose buttons are shown."""
    return page.locator("#buttons").get_attribute("data-question")


def _button(page, name: str):
    return page.locator("#buttons").get_by_role("button", name=name, exact=True)


def _fits(page) -> bool:
    """Nothing wider than the phone: no sideways scrolling to reach a button."""
    return page.evaluate("document.documentElement.scrollWidth <= innerWidth")


def _answers(app, sid: str) -> dict:
    return {q: a["value"] for q, a in app.service.state(sid).answers.items()}


def test_a_whole_conversation_on_a_phone_by_buttons_typing_and_back(browser, web_app, fake,  # noqa: F811
                                                                    server):
    inv = _invite(web_app)
    page = new_page(browser, PHONE)
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    _after(page, lambda: page.goto(f"{server.url}/c/{_token(fake)}"))
    talk = page.locator("#log li.tala")
    expect(talk.filter(has_text=INTRO)).to_have_count(1)
    expect(talk.last).to_contain_text(HOME_FEEL)
    expect(page.locator("#buttons button.number")).to_have_count(11)  # 0 to 10
    assert_accessible(page, "the first question")

    _after(page, lambda: _button(page, "7").click())
    expect(page.locator("#log li.child").last).to_have_text("7")
    expect(talk.last).to_contain_text(TRUSTED)
    _after(page, lambda: _button(page, "Ja").click())
    expect(talk.last).to_contain_text(LISTEN)
    assert _asking(page) == "adults_listen"
    page.locator("#text").fill("8")
    _after(page, lambda: page.get_by_role("button", name=_t(web_app, "sv", M.WEB_SEND)).click())
    expect(page.locator("#log li.child").last).to_have_text("8")
    assert page.locator("#text").input_value() == ""
    assert _asking(page) == "contact_important"
    assert _answers(web_app, inv.session_id)["adults_listen"] == 8

    _after(page, lambda: page.locator('[data-command="/back"]').click())
    expect(talk.last).to_contain_text(LISTEN)
    assert _asking(page) == "adults_listen"
    _after(page, lambda: _button(page, "4").click())
    assert _asking(page) == "contact_important"
    state = web_app.service.state(inv.session_id)
    assert state.current == "contact_important"
    assert _answers(web_app, inv.session_id) == {"home_feel": 7, "trusted_adult": "yes",
                                                 "adults_listen": 4}
    assert _fits(page)
    assert_accessible(page, "the conversation so far")
    assert console_errors(page) == []
    assert asked and [u for u in asked if not u.startswith(server.url + "/")] == []
    page.context.close()


def test_arabic_is_right_to_left_and_labelled_in_arabic(browser, web_app, fake, server):  # noqa: F811
    inv = _invite(web_app, lang="ar")
    page = _open(browser, server, _token(fake))
    assert page.evaluate("[document.documentElement.dir, document.documentElement.lang]") == \
        ["rtl", "ar"]
    first = page.locator("#log li.tala").last
    expect(first).to_contain_text(_t(web_app, "ar", HOME_FEEL))
    assert first.evaluate("e => getComputedStyle(e).direction") == "rtl"
    # Right to left: tala's bubbles start on the right of the log, not the left.
    log, bubble = page.locator("#log").bounding_box(), first.bounding_box()
    assert abs((bubble["x"] + bubble["width"]) - (log["x"] + log["width"])) < 2
    assert bubble["x"] > log["x"] + 2
    expect(page.locator("#typed button")).to_have_text(_t(web_app, "ar", M.WEB_SEND))
    expect(page.locator('[data-command="/back"]')).to_have_text(_t(web_app, "ar", M.WEB_BACK))
    _after(page, lambda: _button(page, "7").click())
    expect(page.locator("#log li.tala").last).to_contain_text(_t(web_app, "ar", TRUSTED))
    yes = _t(web_app, "ar", M.WORDS_YES).split(",")[0].strip()
    expect(page.locator("#buttons button.choice").first).to_have_text(yes)
    _after(page, lambda: _button(page, yes).click())
    assert _answers(web_app, inv.session_id) == {"home_feel": 7, "trusted_adult": "yes"}
    assert _fits(page)
    assert_accessible(page, "the Arabic page")
    assert console_errors(page) == []
    page.context.close()


def test_read_aloud_plays_the_question(browser, web_app, fake, server):  # noqa: F811
    if not Speech(web_app.settings.data_path / "speech").available():
        pytest.skip("read-aloud needs espeak-ng and opus-tools (apt-get install espeak-ng "
                    "opus-tools)")
    _invite(web_app, age=9)  # followup-6-11: the questions read aloud for the youngest
    page = _open(browser, server, _token(fake))
    question = _asking(page)
    assert question == "home_feel"
    aloud = page.locator("#buttons button.aloud")
    expect(aloud).to_have_text("🔊 " + _t(web_app, "sv", M.READ_ALOUD))
    with page.expect_response(lambda r: "/aloud?q=" in r.url) as got:
        aloud.click()
    spoken = got.value
    assert spoken.status == 200 and spoken.headers["content-type"] == "audio/ogg"
    assert spoken.body().startswith(b"OggS")
    page.wait_for_function("q => document.body.dataset.played === q", arg=question)
    assert console_errors(page) == []
    page.context.close()


def test_the_language_is_switched_on_the_page(browser, web_app, fake, server):  # noqa: F811
    inv = _invite(web_app)
    page = _open(browser, server, _token(fake))
    _after(page, lambda: page.locator('[data-command="/language"]').click())
    assert _asking(page) == "_language"
    _after(page, lambda: _button(page, "English").click())
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("html")).to_have_attribute("dir", "ltr")
    expect(page.locator("#typed button")).to_have_text(_t(web_app, "en", M.WEB_SEND))
    expect(page.locator('[data-command="/stop"]')).to_have_text(_t(web_app, "en", M.WEB_STOP))
    expect(page.locator("#log li.tala").last).to_contain_text(_t(web_app, "en", HOME_FEEL))
    assert _asking(page) == "home_feel"
    assert web_app.service.state(inv.session_id).lang == "en"
    assert console_errors(page) == []
    page.context.close()


def test_a_second_phone_is_told_it_is_open_elsewhere_and_the_end_closes_it(
        browser, web_app, fake, server):  # noqa: F811 - the fixture
    inv = _invite(web_app)
    token = _token(fake)
    page = _open(browser, server, token)
    _after(page, lambda: _button(page, "7").click())
    other = new_page(browser, PHONE)
    seen = other.goto(f"{server.url}/c/{token}")
    assert seen.status == 409
    expect(other.locator("main p")).to_have_text(_t(web_app, "sv", M.WEB_ELSEWHERE))
    assert other.locator("#log, #buttons, script").count() == 0
    assert "Hur har du det" not in other.content()
    assert_accessible(other, "the link open elsewhere")
    assert console_errors(other) == []

    for text in ("/stop", "ja"):
        page.locator("#text").fill(text)
        _after(page, lambda: page.locator("#text").press("Enter"))
    stopped = page.locator("#log li.tala").filter(has_text=_t(web_app, "sv", M.STOPPED))
    expect(stopped).to_have_count(1)
    assert web_app.service.state(inv.session_id).status == engine.STOPPED
    wait_written(web_app, inv.session_id)  # by the server's SQL threads, before it stops
    closed = page.reload()
    assert closed.status == 404
    expect(page.locator("main")).to_contain_text(_t(web_app, "sv", M.WEB_CLOSED))
    body = page.locator("body").inner_text()
    assert "Hej" not in body and "7" not in body and page.locator("#log").count() == 0
    assert console_errors(page) == []
    other.context.close()
    page.context.close()


def test_bigger_text_is_bigger_and_kept_over_a_reload(browser, web_app, fake, server):  # noqa: F811
    _invite(web_app)
    page = _open(browser, server, _token(fake))
    size = "e => parseFloat(getComputedStyle(e).fontSize)"
    bubble = page.locator("#log li.tala").first
    before = bubble.evaluate(size)
    page.locator("#bigger").click()
    expect(page.locator("#bigger")).to_have_attribute("aria-pressed", "true")
    assert bubble.evaluate(size) > before * 1.2
    _after(page, lambda: page.reload())
    expect(page.locator("body")).to_have_class("big")
    expect(page.locator("#bigger")).to_have_attribute("aria-pressed", "true")
    assert page.locator("#log li.tala").first.evaluate(size) > before * 1.2
    assert _fits(page)
    assert_accessible(page, "the page with bigger text")
    assert console_errors(page) == []
    page.context.close()
