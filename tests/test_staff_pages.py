"""The staff pages over real HTTP (tala's aiohttp app on 127.0.0.1), below the browser: the
session cookie and what it may do, CSRF and origin checks on every form, the
Content-Security-Policy, signing in with a token or the identity provider, signing out on the
server, and the alerts page. tests/test_staff_browser.py drives the same pages in Chromium."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from admin_cli.api import add_staff_api
from admin_cli.web import add_staff_pages
from admin_cli.web.session import COOKIE, CSP
from bot.server import build_web_app
from tests.fakes.idp import FakeIdP
from tests.fakes.server import RunningServer
from tests.test_staff_api import staff_people
from tests.webclient import STAFF, Browser, csrf_of, raise_alert, sign_in


@pytest.fixture
def pages(app):
    web_app = build_web_app(app, worker=False)
    add_staff_pages(web_app, add_staff_api(web_app, app))
    with RunningServer(web_app) as server:
        yield app, server.url


def test_signing_in_gives_a_secure_httponly_samesite_cookie_and_signing_out_revokes_it(pages):
    app, url = pages
    t = staff_people(app)
    b = Browser(url)
    first = b.get(STAFF + "/alerts-nowhere")
    assert first.status_code == 303 and first.headers["Location"].startswith(
        STAFF + "/login?next=")
    login = b.get(STAFF + "/login")
    assert login.status_code == 200 and login.headers["Content-Security-Policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert login.headers["X-Frame-Options"] == "DENY"
    assert '<html lang="sv">' in login.text and "Logga in" in login.text
    wrong = b.post(STAFF + "/login", {"csrf": csrf_of(login.text), "token": "tala_nope"})
    assert wrong.status_code == 401 and "Den token gäller inte" in wrong.text
    done = sign_in(b, t["anna"])
    assert done.status_code == 303 and done.headers["Location"] == STAFF + "/"
    session = next(h for h in b.set_cookie if h.startswith(COOKIE + "="))
    attrs = {a.strip().lower() for a in session.split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax", "path=/staff"} <= attrs
    # The cookie is a session token of its own, not the personal token typed in.
    assert b.cookies[COOKIE] != t["anna"]
    user, row = app.db.token_user(b.cookies[COOKIE])
    assert user.name == "anna" and row.kind == "web"
    home = b.get(STAFF + "/")
    assert home.status_code == 200 and "anna" in home.text and "Inga öppna larm" in home.text
    logout = b.post(STAFF + "/logout", {"csrf": csrf_of(home.text)})
    assert logout.status_code == 303
    assert app.db.token_user(session.split(";")[0].split("=", 1)[1]) == "revoked"
    again = b.get(STAFF + "/")
    assert again.status_code == 303 and "/login" in again.headers["Location"]
    entries = [(e.actor, e.action, e.detail) for e in app.db.audit_entries()]
    assert any(a == "anna" and act == "login" and "web" in d for a, act, d in entries)
    assert any(a == "anna" and act == "logout" for a, act, d in entries)
    assert any(act == "refused" and "web sign-in: token unknown" in d
               for a, act, d in entries)


def test_the_alerts_page_is_content_free_and_an_alert_is_acknowledged_with_a_note(pages):
    app, url = pages
    t = staff_people(app)
    alert_id = raise_alert(app)
    b = Browser(url)
    sign_in(b, t["anna"])
    home = b.get(STAFF + "/")
    assert home.status_code == 200
    assert "1 öppet larm" in home.text and "N-1" in home.text
    assert "BRÅDSKANDE" in home.text and "/staff/cases/N-1" in home.text
    assert "dö" not in home.text  # what the child wrote is only on the child's page
    ack = b.post(f"{STAFF}/alerts/{alert_id}/ack", {"csrf": csrf_of(home.text),
                                                    "note": "Ringde barnet."})
    assert ack.status_code == 303
    row = app.db.alert(alert_id)
    assert row.acked_by == "anna" and row.ack_note == "Ringde barnet."
    after = b.follow(ack)
    assert f"Larm {alert_id} är kvitterat." in after.text and "Inga öppna larm" in after.text
    twice = b.post(f"{STAFF}/alerts/{alert_id}/ack", {"csrf": csrf_of(home.text)})
    assert twice.status_code == 409 and "redan kvitterat av anna" in twice.text


def test_a_form_without_its_csrf_token_or_from_another_site_changes_nothing(pages):
    app, url = pages
    t = staff_people(app)
    alert_id = raise_alert(app)
    b = Browser(url)
    sign_in(b, t["anna"])
    home = b.get(STAFF + "/")
    for data, headers in (({}, {}), ({"csrf": "0" * 40}, {}),
                          ({"csrf": csrf_of(home.text)}, {"Origin": "https://evil.example"})):
        refused = b.post(f"{STAFF}/alerts/{alert_id}/ack", data, headers=headers)
        assert refused.status_code == 403, data
        assert "Formuläret" in refused.text
    assert app.db.alert(alert_id).acked_at is None
    # Another user's page's token is not this session's.
    other = Browser(url)
    sign_in(other, t["admin"])
    stolen = b.post(f"{STAFF}/alerts/{alert_id}/ack", {"csrf": csrf_of(
        other.get(STAFF + "/").text)})
    assert stolen.status_code == 403 and app.db.alert(alert_id).acked_at is None
    # The login form has its own token too.
    fresh = Browser(url)
    assert fresh.post(STAFF + "/login", {"token": t["anna"]}).status_code == 403
    refused = [e.detail for e in app.db.audit_entries() if e.action == "refused"]
    assert sum("CSRF" in d for d in refused) >= 3 and any("another origin" in d
                                                          for d in refused)


def test_after_signing_in_the_browser_goes_only_to_a_page_of_ours(pages):
    app, url = pages
    t = staff_people(app)
    for target, lands in (("//evil.example/x", STAFF + "/"), ("https://evil.example", STAFF
                                                              + "/"),
                          (STAFF + "/reports", STAFF + "/reports")):
        b = Browser(url)
        assert sign_in(b, t["mia"], target).headers["Location"] == lands


def test_the_pages_speak_english_when_asked_and_swedish_by_default(pages):
    app, url = pages
    t = staff_people(app)
    b = Browser(url)
    sign_in(b, t["anna"])
    assert "Inga öppna larm" in b.get(STAFF + "/", headers={"Accept-Language": "en-US"}).text
    switched = b.get(STAFF + "/lang/en?next=/staff/")
    assert switched.status_code == 303 and switched.headers["Location"] == STAFF + "/"
    page = b.get(STAFF + "/")
    assert '<html lang="en">' in page.text and "No open alerts" in page.text
    assert "På svenska" in page.text
    assert b.get(STAFF + "/lang/de").status_code == 404


def test_plain_http_from_elsewhere_is_refused(pages):
    app, url = pages
    resp = requests.get(url + STAFF + "/login", timeout=10,
                        headers={"X-Forwarded-Proto": "http"})
    assert resp.status_code == 403 and "HTTPS" in resp.text


@pytest.fixture
def oidc_pages(app):
    with FakeIdP() as idp:
        app.settings.oidc_issuer = idp.issuer
        app.settings.oidc_client_id = idp.client_id
        web_app = build_web_app(app, worker=False)
        add_staff_pages(web_app, add_staff_api(web_app, app))
        with RunningServer(web_app) as server:
            app.settings.public_url = server.url
            yield app, server.url, idp


def test_signing_in_with_the_identity_provider_uses_pkce_and_gives_a_session(oidc_pages):
    app, url, idp = oidc_pages
    staff_people(app)
    b = Browser(url)
    login = b.get(STAFF + "/login")
    assert "Logga in med kommunens inloggning" in login.text
    start = b.get(STAFF + "/login/oidc?next=/staff/")
    assert start.status_code == 303
    authorize = start.headers["Location"]
    assert authorize.startswith(idp.issuer + "/authorize")
    assert "code_challenge_method=S256" in authorize
    assert "redirect_uri=" + requests.utils.quote(url + STAFF + "/login/oidc/callback",
                                                  safe="") in authorize
    back = requests.get(authorize, allow_redirects=False, timeout=10)  # anna signs in there
    callback = back.headers["Location"]
    # The same code and state from a browser without the sign-in cookie: refused.
    stranger = Browser(url).get(callback[len(url):])
    assert stranger.status_code == 400
    done = b.get(callback[len(url):])
    assert done.status_code == 303 and done.headers["Location"] == STAFF + "/"
    home = b.get(STAFF + "/")
    assert home.status_code == 200 and "anna" in home.text
    # The state is used once.
    assert b.get(urlsplit(callback).path + "?" + urlsplit(callback).query).status_code == 400
    assert any(e.action == "login" and "OIDC (web)" in e.detail
               for e in app.db.audit_entries())
