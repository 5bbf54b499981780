"""The child's page and the invitation page over real HTTP (admin_cli/web/cases.py and
invite.py): the summary inside the staff layout with what the child wrote as text, the same
access checks, refusals and audit entries as the CLI and the API, acknowledging an alert and
replying to the child from the page, and inviting a child by SMS or by a Telegram link and
its QR code. tests/test_staff_browser.py drives the same pages in Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from html import unescape

import pytest
from PIL import Image

from admin_cli import ops
from admin_cli.api import add_staff_api
from admin_cli.web import add_staff_pages
from admin_cli.web.session import CSP
from bot.server import build_web_app
from tests.fakes.server import RunningServer
from tests.test_staff_api import staff_people
from tests.test_summary import UNSAFE_WORDS, three_sessions
from tests.webclient import STAFF, Browser, csrf_of, raise_alert, sign_in

SCRIPT = "<script>alert('x')</script>"  # what the child typed in three_sessions


def _serve(app):
    web_app = build_web_app(app, worker=False)
    add_staff_pages(web_app, add_staff_api(web_app, app))
    return RunningServer(web_app)


@pytest.fixture
def pages(app):
    with _serve(app) as server:
        yield app, server.url


@pytest.fixture
def both_pages(both_app):
    """SMS (the fake Twilio) and Telegram (the fake Bot API) switched on."""
    with _serve(both_app) as server:
        yield both_app, server.url


def _signed_in(url: str, token: str) -> Browser:
    b = Browser(url)
    assert sign_in(b, token).status_code == 303
    return b


def _text(resp) -> str:
    """The page's text with the HTML entities read (a message's quotes come as &#39;)."""
    return unescape(resp.text)


def _audit(app, action: str) -> list[tuple[str, str | None, str]]:
    return [(e.actor, e.case_ref, e.detail or "") for e in app.db.audit_entries()
            if e.action == action]


def test_the_childs_page_shows_the_summary_with_the_childs_words_as_text(pages, clock):
    app, url = pages
    three_sessions(app, clock)
    t = staff_people(app)
    b = _signed_in(url, t["anna"])
    page = b.get(STAFF + "/cases/K-30")
    assert page.status_code == 200 and page.headers["Content-Security-Policy"] == CSP
    html = page.text
    assert html.count("<h1") == 1 and "<h1>Ärende K-30</h1>" in html
    assert 'id="summary-title">Barnets svar</h2>' in html
    assert f'href="{STAFF}/static/summary.css"' in html
    assert UNSAFE_WORDS in html  # the child's own words, in the page
    # The <script> the child typed is text, never a tag; and the page has no inline code.
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert SCRIPT not in html and html.count("<script") == 1  # staff.js only
    assert "<style" not in html and " style=" not in html and " onclick" not in html
    assert 'src="data:image/svg+xml;base64,' in html and 'alt="' in html
    assert "data-print" in html  # the print button
    assert sum(1 for a, case, _d in _audit(app, "summary") if (a, case) == ("anna", "K-30")) == 1
    # A period: the read is audited with it, and an earlier session is left out.
    later = b.get(STAFF + "/cases/K-30?since=2026-06-01&until=")
    assert later.status_code == 200
    assert ("anna", "K-30", "since=2026-06-01") in _audit(app, "summary")
    assert later.text.count("Tidigare svar") < html.count("Tidigare svar")
    assert 'value="2026-06-01"' in later.text
    bad = b.get(STAFF + "/cases/K-30?since=igår")
    assert bad.status_code == 200 and "Skriv datumet som ÅÅÅÅ-MM-DD" in bad.text
    assert 'aria-invalid="true"' in bad.text and UNSAFE_WORDS in bad.text


def test_only_the_caseworkers_of_the_unit_read_a_childs_page(pages):
    app, url = pages
    t = staff_people(app)
    bo = _signed_in(url, t["bo"])  # Syd; N-1 is Nord's
    refused = bo.get(STAFF + "/cases/N-1")
    assert refused.status_code == 403 and "Det finns inget ärende 'N-1' i din enhet" in \
        _text(refused)
    assert "Barnets svar" not in refused.text
    assert ("bo", "N-1", "summary") in _audit(app, "refused")
    mia = _signed_in(url, t["mia"])  # Nord's manager: no child's answers, no replies
    manager = mia.get(STAFF + "/cases/N-1")
    assert manager.status_code == 403 and "Som chef får mia inte läsa ett barns svar" in \
        _text(manager)
    before = len(_audit(app, "reply"))
    no_reply = mia.post(STAFF + "/cases/N-1/reply", {"csrf": csrf_of(manager.text),
                                                     "text": "Hej!"})
    assert no_reply.status_code == 403 and len(_audit(app, "reply")) == before
    assert ("mia", "N-1", "reply") in _audit(app, "refused")
    assert not [a for a, case, _d in _audit(app, "summary") if a in ("bo", "mia")]
    # A case that is nowhere: a caseworker is told as for another unit's, an admin 404.
    admin = _signed_in(url, t["admin"])
    missing = admin.get(STAFF + "/cases/N-404")
    assert missing.status_code == 404 and "Det finns inget ärende N-404" in _text(missing)


def test_an_alert_is_acknowledged_on_the_childs_page_and_the_page_comes_back(pages):
    app, url = pages
    t = staff_people(app)
    first, second = raise_alert(app, "N-1"), raise_alert(app, "N-2")
    b = _signed_in(url, t["anna"])
    page = b.get(STAFF + "/cases/N-1")
    assert "1 öppet larm" in page.text and f'action="{STAFF}/alerts/{first}/ack"' in page.text
    assert f"/alerts/{second}/ack" not in page.text  # another case's alert
    assert "jag vill dö" in page.text  # the child's words, on the child's page
    ack = b.post(f"{STAFF}/alerts/{first}/ack", {"csrf": csrf_of(page.text),
                                                 "note": "Ringde.", "back": STAFF + "/cases/N-1"})
    assert ack.status_code == 303 and ack.headers["Location"] == \
        f"{STAFF}/cases/N-1?acked={first}"
    after = b.follow(ack)
    assert f"Larm {first} är kvitterat." in after.text and "öppet larm" not in after.text
    assert app.db.alert(first).ack_note == "Ringde."
    # `back` leads only to a page of ours.
    elsewhere = b.post(f"{STAFF}/alerts/{second}/ack", {"csrf": csrf_of(page.text),
                                                        "back": "https://evil.example/x"})
    assert elsewhere.status_code == 303 and elsewhere.headers["Location"] == \
        f"{STAFF}/?acked={second}#alerts"


def test_a_reply_goes_to_the_child_on_the_childs_channel_and_needs_the_csrf_token(
        both_pages, fake):
    app, url = both_pages
    t = staff_people(app)
    b = _signed_in(url, t["anna"])
    form = b.get(STAFF + "/invite")
    made = b.post(STAFF + "/invite", {"csrf": csrf_of(form.text), "case": "N-5", "age": "9",
                                      "lang": "sv", "channel": "sms", "to": "070-123 45 67",
                                      "phase": ""})
    assert made.status_code == 200, made.text
    assert "Inbjudan skickad till barnet i ärende N-5 via sms." in made.text
    assert fake.wait_for(1)[0]["to"] == "+46701234567"
    page = b.get(STAFF + "/cases/N-5")
    assert page.status_code == 200 and 'name="text"' in page.text
    assert b.post(STAFF + "/cases/N-5/reply", {"text": "Hej!"}).status_code == 403
    assert not _audit(app, "reply") and len(fake.messages) == 1
    long_text = "Ett alldeles för långt svar. " * 20
    too_long = b.post(STAFF + "/cases/N-5/reply", {"csrf": csrf_of(page.text),
                                                   "text": long_text})
    assert too_long.status_code == 400 and "Håll det kort: högst 459 tecken" in too_long.text
    assert long_text in _text(too_long) and 'aria-invalid="true"' in too_long.text
    sent = b.post(STAFF + "/cases/N-5/reply", {"csrf": csrf_of(page.text),
                                               "text": "Vi ses på torsdag <b>kl 10</b>."})
    assert sent.status_code == 303
    assert sent.headers["Location"] == f"{STAFF}/cases/N-5?replied=sent#reply"
    assert "Ditt svar är skickat." in b.follow(sent).text
    assert fake.wait_for(2)[1]["body"] == "Vi ses på torsdag <b>kl 10</b>."
    assert ("anna", "N-5", "via sms") in _audit(app, "reply")


def _qr_png(html: str) -> bytes:
    src = re.search(r'<img class="qr" src="data:image/png;base64,([^"]+)" alt="([^"]+)"',
                    html)
    assert src and "QR-kod" in src.group(2)
    return base64.b64decode(src.group(1), validate=True)


def test_inviting_by_telegram_gives_the_link_and_a_qr_code_to_print(both_pages, tmp_path):
    app, url = both_pages
    t = staff_people(app)
    b = _signed_in(url, t["anna"])
    form = b.get(STAFF + "/invite")
    assert form.status_code == 200 and 'name="unit"' not in form.text  # anna's own unit
    assert '<option value="ar" lang="ar">العربية (ar)</option>' in form.text
    assert 'type="radio"' in form.text and 'value="console"' not in form.text
    made = b.post(STAFF + "/invite", {"csrf": csrf_of(form.text), "case": "N-7", "age": "13",
                                      "lang": "ar", "channel": "telegram", "to": "",
                                      "phase": "utredning"})
    assert made.status_code == 200, made.text
    link = re.search(r'<a href="(https://t\.me/[^"?]+\?start=([A-Za-z0-9]+))">', made.text)
    assert link, made.text
    code = link.group(2)
    assert f'<dd class="code">{code}</dd>' in made.text and "data-print" in made.text
    assert f'href="{STAFF}/cases/N-7"' in made.text
    png = _qr_png(made.text)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.width == image.height >= 21 * 8
    if shutil.which("zbarimg"):  # zbar-tools: read the code back
        (tmp_path / "qr.png").write_bytes(png)
        read = subprocess.run(["zbarimg", "-q", "--raw", str(tmp_path / "qr.png")],
                              capture_output=True, text=True, check=True)
        assert read.stdout.strip() == link.group(1)
    child = app.db.child("N-7")
    assert child.unit == "Nord" and child.caseworker == "anna"
    assert ("anna", "N-7") in [(a, c) for a, c, _d in _audit(app, "invite")]
    # An admin names the unit; a manager may not invite at all.
    admin = _signed_in(url, t["admin"])
    assert 'name="unit"' in admin.get(STAFF + "/invite").text
    mia = _signed_in(url, t["mia"])
    assert mia.get(STAFF + "/invite").status_code == 403


def test_a_bad_number_is_refused_in_the_clis_words_and_the_form_keeps_what_was_typed(
        both_pages):
    app, url = both_pages
    t = staff_people(app)
    b = _signed_in(url, t["anna"])
    form = b.get(STAFF + "/invite")
    bad = b.post(STAFF + "/invite", {"csrf": csrf_of(form.text), "case": "N-8", "age": "9",
                                     "lang": "en", "channel": "sms", "to": "12345",
                                     "phase": "placering"})
    assert bad.status_code == 400
    assert "'12345' är inte ett telefonnummer som vi kan skicka sms till" in _text(bad)
    assert 'class="problem" role="alert"' in bad.text
    for kept in ('name="case" value="N-8"', 'name="age" value="9"', 'name="to" value="12345"',
                 '<option value="en" lang="en" selected>',
                 '<option value="placering" selected>', 'value="sms" checked'):
        assert kept in bad.text, kept
    assert app.db.child("N-8") is None


def test_inviting_by_sms_where_twilio_is_not_set_up_says_what_the_operation_says(pages):
    app, url = pages
    t = staff_people(app)
    b = _signed_in(url, t["anna"])
    form = b.get(STAFF + "/invite")
    params = {"case": "N-9", "age": "10", "lang": "sv", "channel": "sms",
              "to": "070-123 45 67"}
    page = b.post(STAFF + "/invite", {"csrf": csrf_of(form.text), "phase": "", **params})
    with pytest.raises(ops.OpError) as op:
        ops.run(app, "anna", "invite", params)
    assert "--channel sms är inte inställd" in op.value.message
    assert page.status_code == op.value.status == 400
    assert op.value.message in _text(page) and 'value="070-123 45 67"' in page.text
    assert app.db.child("N-9") is None


def test_inviting_by_whatsapp_sends_the_template_and_says_so(both_pages, fake):
    """Where WhatsApp is set up the form offers it; the page says what `tala invite` says."""
    app, url = both_pages
    t = staff_people(app)
    b = _signed_in(url, t["anna"])
    form = b.get(STAFF + "/invite")
    assert 'value="whatsapp"' in form.text
    made = b.post(STAFF + "/invite", {"csrf": csrf_of(form.text), "case": "N-10", "age": "14",
                                      "lang": "sv", "channel": "whatsapp",
                                      "to": "070-123 45 99", "phase": ""})
    assert made.status_code == 200, made.text
    assert "Inbjudan skickad till barnet i ärende N-10 via WhatsApp." in _text(made)
    [sent] = [m for m in fake.messages if m["to"] == "whatsapp:+46701234599"]
    assert sent["content_sid"] and sent["sid"]


def test_whatsapp_is_not_offered_where_it_is_not_set_up(pages):
    app, url = pages
    form = _signed_in(url, staff_people(app)["anna"]).get(STAFF + "/invite")
    assert form.status_code == 200 and 'value="sms"' in form.text
    assert 'value="whatsapp"' not in form.text
