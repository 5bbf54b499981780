"""The staff pages in a real headless Chromium (issue 19), against the whole product running as
an installation runs it: `tala serve` and the `tala` CLI as processes of their own on one data
directory, every channel configured (tests/browser.py).

`world` is that installation once per module, with people and a case in it: an admin, anna
(caseworker in Nord, with a work phone and an e-mail), anna's personal token, and a child
invited by SMS whose text told of harm, so anna has one open, notified alert."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

from tests.browser import (  # noqa: F401 - browser is a fixture
    DESKTOP,
    StaffServer,
    assert_accessible,
    browser,
    console_errors,
    new_page,
    staff_server,
)

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
