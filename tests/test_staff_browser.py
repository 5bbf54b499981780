"""The staff pages in a real headless Chromium (issue 19), against the whole product running as
an installation runs it: `tala serve` and the `tala` CLI as processes of their own on one data
directory, every channel configured (tests/browser.py).

`world` is that installation once per module, with people and a case in it: an admin, anna
(caseworker in Nord, with a work phone and an e-mail), anna's personal token, and a child
invited by SMS whose text told of harm, so anna has one open, notified alert."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser import (  # noqa: F401 - browser is a fixture
    DESKTOP,
    PHONE,
    StaffServer,
    assert_accessible,
    browser,
    console_errors,
    new_page,
    staff_server,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips, saying what to install
    expect = None

pytestmark = pytest.mark.slow  # a server process, a dozen CLI processes and a browser

CASE = "K-17"
CHILD = "+46701234567"  # the child's mobile, as Twilio writes it (invited as 0701234567)
ANNA_PHONE, ANNA_MAIL = "+46705550001", "anna@nacka.example"
DISCLOSURE = "pappa slår mig"  # a text the safeguarding lexicon reads as harm: an alert


@dataclass
class World:
    server: StaffServer
    token: str  # anna's personal token, to sign in with
    alert: dict  # anna's open alert, as `tala alerts --json` shows it
    twiml: str  # what tala answered the child's disclosure
    manager_token: str | None = None  # mia's, made by the first manager test


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    with staff_server(tmp_path_factory.mktemp("staff-browser")) as server:
        tala = server.tala
        tala("users", "add", "admin", "--role", "admin")
        tala("users", "add", "anna", "--role", "caseworker", "--unit", "Nord", "--phone",
             ANNA_PHONE, "--email", ANNA_MAIL)
        # Office hours always: anna (not the on-call number) is told, whatever the hour.
        tala("units", "set", "Nord", "--hours", "always")
        [token] = re.findall(r"^tala_\S+$", tala("users", "token", "anna").stdout, re.M)
        tala("invite", CASE, "--age", "14", "--channel", "sms", "--to", "0701234567",
             "--unit", "Nord", "--caseworker", "anna")
        [invitation] = server.wait_sms(CHILD)
        assert "Socialtjänsten i Nacka" in invitation["body"]
        assert "<Message>" in server.sms_in(CHILD, "Hej")
        twiml = server.sms_in(CHILD, DISCLOSURE)
        [alert] = json.loads(tala("alerts", "--json", user="anna").stdout)
        # Settled before any page test: anna has been told by SMS and by e-mail.
        server.wait_sms(ANNA_PHONE)
        server.mailbox.wait_for(ANNA_MAIL)
        yield World(server, token, alert, twiml)


def test_the_installation_runs_a_child_s_sms_raises_an_alert_and_chromium_reaches_it(
        browser, world):  # noqa: F811 - the fixture
    server = world.server
    # The child heard at once where to get help; anna was told, without what the child said.
    assert "112" in world.twiml and "116 111" in world.twiml
    assert world.alert["case"] == CASE
    [to_anna] = server.wait_sms(ANNA_PHONE)
    [mail] = server.mailbox.wait_for(ANNA_MAIL)
    assert CASE in to_anna["body"] and CASE in mail["Subject"]
    for text in (to_anna["body"], mail["Subject"], mail.get_content()):
        assert "slår" not in text and "pappa" not in text.lower()
    assert server.twilio.unhandled == [] and server.telegram.unhandled == []

    page = new_page(browser, DESKTOP)
    loaded = page.goto(server.url + "/healthz")
    assert loaded.status == 200
    assert json.loads(page.inner_text("body")) == {"redis": "ok", "sql": "ok"}
    assert console_errors(page) == []

    # The helpers catch what they are there for: a CSP refusal and an image without a text
    # (a page made here, at the server's address; it never reaches the server).
    page.route(server.url + "/broken", lambda route: route.fulfill(
        status=200, content_type="text/html",
        headers={"Content-Security-Policy": "script-src 'self'"},
        body='<!doctype html><html lang="sv"><title>Trasig</title><main><h1>Trasig</h1>'
             '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="><script>1</script>'
             '</main></html>'))
    page.goto(server.url + "/broken")
    [refused] = console_errors(page)
    assert "inline" in refused and "Content Security Policy" in refused, refused
    with pytest.raises(AssertionError, match=r"image-alt \(critical\).*-> img"):
        assert_accessible(page, "the broken page")
    page.context.close()


# --------------------------------------------------------------------------- the pages

SHOTS = os.environ.get("TALA_SCREENSHOTS")  # a folder: the README's screenshots are made here


def _checked(page, what: str, name: str) -> None:
    """Each page at phone and at desktop width: axe-core finds nothing serious, the CSP refused
    nothing, and its picture goes into TALA_SCREENSHOTS when that is set (the README's:
    TALA_SCREENSHOTS=docs/screenshots pytest tests/test_staff_browser.py)."""
    own = page.viewport_size
    for size, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(viewport)
        assert_accessible(page, f"{what} ({size})")
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            height = min(page.evaluate("document.documentElement.scrollHeight"), 2400)
            page.screenshot(path=str(Path(SHOTS) / f"{name}-{size}.png"), full_page=True,
                            clip={"x": 0, "y": 0, "width": viewport["width"],
                                  "height": height})  # a long report: its top
    page.set_viewport_size(own)
    assert console_errors(page) == [], what


def _sign_in(chromium, world_url: str, token: str, viewport: dict, shot: bool = False):
    page = new_page(chromium, viewport)
    page.goto(world_url + "/staff/")
    assert page.url.startswith(world_url + "/staff/login")  # not signed in yet
    if shot:
        _checked(page, "the login page", "login")
    page.get_by_label("Din personliga token").fill(token)
    page.get_by_role("button", name="Logga in").click()
    page.wait_for_url(world_url + "/staff/")
    return page


def _user(server: StaffServer, name: str, role: str, unit: str) -> str:
    server.tala("users", "add", name, "--role", role, "--unit", unit)
    [token] = re.findall(r"^tala_\S+$", server.tala("users", "token", name).stdout, re.M)
    return token


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_caseworker_signs_in_sees_the_alert_and_reads_the_child_s_summary(
        browser, world, viewport):  # noqa: F811 - the fixture
    url = world.server.url
    page = _sign_in(browser, url, world.token, viewport, shot=True)
    # Alerts first: the child's SMS conversation raised one, and the list tells nothing of
    # what the child wrote.
    expect(page.get_by_role("heading", level=1)).to_have_text("Larm")
    card = page.get_by_role("listitem").filter(has_text=CASE)
    expect(card).to_contain_text("BRÅDSKANDE")
    assert "slår" not in page.content()
    _checked(page, "the alerts page", "alerts")
    card.get_by_role("link", name="Läs sammanfattningen").click()
    page.wait_for_url(f"{url}/staff/cases/{CASE}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(CASE)
    expect(page.locator("main")).to_contain_text(DISCLOSURE)  # the child's own words
    expect(page.get_by_role("button", name="Skriv ut sammanfattningen")).to_be_visible()
    _checked(page, "the child's page", "case")
    # Printed on A4, the page is the summary only: no menu, no forms.
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")
    page.context.close()


def test_the_caseworker_acknowledges_the_alert_and_invites_a_child_with_the_keyboard_too(
        browser, world):  # noqa: F811 - the fixture
    url = world.server.url
    page = _sign_in(browser, url, world.token, DESKTOP)
    card = page.get_by_role("listitem").filter(has_text=CASE)
    card.get_by_label("Vad har du gjort? (anteckning, frivillig)").fill(
        "Ringde barnet och mamma.")
    card.get_by_role("button", name="Kvittera larmet").click()
    expect(page.get_by_role("status")).to_contain_text(f"Larm {world.alert['id']} är kvitterat")
    expect(page.locator("main")).to_contain_text("Inga öppna larm")
    shown = json.loads(world.server.tala("alerts", "--json", user="anna").stdout)
    assert shown == []  # acknowledged for the CLI too: one installation
    _checked(page, "the alerts page after acknowledging", "alerts-done")

    # Invite by Telegram, with the keyboard alone: the link and its QR code to show or print.
    page.get_by_role("link", name="Bjud in ett barn").click()
    _checked(page, "the invite form", "invite")
    page.get_by_label("Ärendets referens").focus()
    page.keyboard.type("K-18")
    page.keyboard.press("Tab")
    page.keyboard.type("10")
    page.get_by_label(re.compile("^Telegram")).check()
    page.get_by_role("button", name="Bjud in barnet").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Till barnet")).to_be_visible()
    expect(page.locator("main")).to_contain_text("https://t.me/")
    qr = page.get_by_role("img", name=re.compile("QR"))
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.naturalWidth") > 100  # a real picture, drawn
    _checked(page, "the invitation made", "invite-done")
    # A mistyped phone number gets the CLI's words, and what was typed stays.
    page.goto(url + "/staff/invite")
    page.get_by_label("Ärendets referens").fill("K-19")
    page.get_by_label("Barnets ålder").fill("12")
    page.get_by_label("Sms till barnets telefon").check()
    page.get_by_label("Barnets mobilnummer (för sms)").fill("070-12")
    page.get_by_role("button", name="Bjud in barnet").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_label("Ärendets referens")).to_have_value("K-19")
    _checked(page, "the invite form with a problem", "invite-problem")
    page.context.close()


def test_a_caseworker_of_another_unit_cannot_open_the_child_s_page(browser, world):  # noqa: F811
    url = world.server.url
    token = _user(world.server, "bo", "caseworker", "Syd")
    page = _sign_in(browser, url, token, PHONE)
    answer = page.goto(f"{url}/staff/cases/{CASE}")
    assert answer.status == 403
    expect(page.get_by_role("alert")).to_contain_text(f"Det finns inget ärende '{CASE}'")
    assert DISCLOSURE not in page.content()
    _checked(page, "the refusal", "refused")
    page.context.close()
    audit = world.server.tala("audit", "--case", CASE, "--json").stdout
    assert any(e["user"] == "bo" and e["action"] == "refused" for e in json.loads(audit))


def _managed(world: World) -> str:
    """mia, manager of Nord, once per module; and a year of made-up children (2025, the seed
    script's year) in the database, so her report has figures to show."""
    if world.manager_token is None:
        world.manager_token = _user(world.server, "mia", "manager", "Nord")
        done = subprocess.run([sys.executable, "-m", "admin_cli.seed", "--children", "200"],
                              capture_output=True, text=True, timeout=120,
                              env=world.server.env)
        assert done.returncode == 0, done.stdout + done.stderr
    return world.manager_token


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_manager_reads_the_unit_s_report_indicators_and_surveys(browser, world, viewport):  # noqa: F811
    url = world.server.url
    page = _sign_in(browser, url, _managed(world), viewport)
    page.get_by_role("link", name="Rapporter").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    main = page.locator("main")
    # Every quarter with answers at first: the made-up year, and the one child of today.
    expect(main).to_contain_text("Period: 2025 kv1 - 2026 kv4")
    expect(page.get_by_role("row", name=re.compile(r"^Nord \d+ ")).first).to_be_visible()
    # A period, in whole quarters as `tala report` counts them.
    page.get_by_label("Från och med").fill("2025-04-01")
    page.get_by_label("Till och med").fill("2025-06-30")
    page.get_by_role("button", name="Visa", exact=True).click()
    page.wait_for_url(re.compile(r"since=2025-04-01"))
    expect(main).to_contain_text("Period: 2025 kv2 - 2025 kv2")
    expect(page.get_by_role("heading", name="Deltagande")).to_be_visible()
    assert page.get_by_role("table").count() >= 3
    assert DISCLOSURE not in page.content()
    _checked(page, "the report", "report")
    page.get_by_role("link", name="Indikatorer per månad och fas").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("kommit till tals")
    shares = page.get_by_role("region", name=re.compile("per månad och fas"))
    expect(shares.get_by_role("row", name=re.compile("2025"))).not_to_have_count(0)
    _checked(page, "the indicators", "indicators")
    page.get_by_role("link", name="Enkäter").click()
    expect(page.get_by_role("heading", name="Starta en ny enkät")).to_be_visible()
    _checked(page, "the surveys", "surveys")
    page.context.close()
