"""Staff read tala in their language: Swedish by default, English with TALA_LANG=en or an
English locale. The CLI as a caseworker runs it (invite, alerts, ack, reply, and a mistake),
`tala --help` in a process of its own, and the staff API, which answers in the language the
request asks for (Accept-Language), also from its pool of worker threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from tests.conftest import staff_cli
from tests.test_staff_api import API, staff_people, served  # noqa: F401 - `served` is a fixture

CHILD = "0701234567"

# What each language says at each step: the important words, exactly.
SAID = {
    "sv": {
        "invited": "Inbjudan skickad till barnet i ärende K-1 via sms.",
        "open_until": "Inbjudan gäller till och med",
        "level": "BRÅDSKANDE",
        "topic": "skriver om att skada sig själv eller inte vilja leva",
        "how_to_ack": "När larmet är hanterat: tala alerts ack ID",
        "acked": "Larm {id} är kvitterat.",
        "replied": "Svaret är skickat till barnet i ärende K-1.",
        "no_case": "Det finns inget ärende som heter K-2.",
        "no_alert": "Det finns inget larm 999.",
        "bad_role": "--role ska vara en av caseworker, manager, admin.",
        "none_open": "Inga öppna larm.",
    },
    "en": {
        "invited": "Invitation sent to the child in case K-1 by SMS.",
        "open_until": "The invitation is open until",
        "level": "URGENT",
        "topic": "writes about hurting themselves or not wanting to live",
        "how_to_ack": "When handled: tala alerts ack ID",
        "acked": "Alert {id} acknowledged.",
        "replied": "The reply is sent to the child in case K-1.",
        "no_case": "There is no case called K-2.",
        "no_alert": "There is no alert 999.",
        "bad_role": "--role must be one of caseworker, manager, admin.",
        "none_open": "No open alerts.",
    },
}


def _cli(app, monkeypatch, *args: str):
    # COLUMNS=250: a table cell on one line, for the assertions
    return staff_cli(app, monkeypatch, "anna", *args, columns=250)


@pytest.mark.parametrize("lang", ["sv", "en"])
def test_invite_alerts_ack_reply_and_mistakes_in_the_staff_language(sms_app, fake, monkeypatch,
                                                                    lang):
    monkeypatch.setenv("TALA_LANG", lang)
    said = SAID[lang]
    invited = _cli(sms_app, monkeypatch, "invite", "K-1", "--age", "9", "--channel", "sms",
                   "--to", CHILD, "--unit", "Nord")
    assert invited.exit_code == 0, invited.output
    assert said["invited"] in invited.output and said["open_until"] in invited.output

    sid = sms_app.db.invitations(sms_app.db.child("K-1").id)[-1].session_id
    sms_app.service.handle(sid, "Hej", message_id="m0", channel="sms")
    sms_app.service.handle(sid, "jag vill dö", message_id="m1", channel="sms")
    table = _cli(sms_app, monkeypatch, "alerts")
    assert table.exit_code == 0, table.output
    assert said["level"] in table.output and said["topic"] in table.output
    assert said["how_to_ack"] in table.output
    assert "self_harm" not in table.output and "urgent" not in table.output  # words, not ids
    [alert] = json.loads(_cli(sms_app, monkeypatch, "alerts", "--json").output)
    assert (alert["level"], alert["topic"]) == ("urgent", "self_harm")  # JSON keeps the ids

    acked = _cli(sms_app, monkeypatch, "alerts", "ack", str(alert["id"]), "--note", "Ringde")
    assert acked.exit_code == 0 and said["acked"].format(id=alert["id"]) in acked.output
    assert said["none_open"] in _cli(sms_app, monkeypatch, "alerts").output

    replied = _cli(sms_app, monkeypatch, "reply", "K-1", "Tack för att du berättade.")
    assert replied.exit_code == 0 and said["replied"] in replied.output, replied.output
    assert fake.messages[-1]["body"] == "Tack för att du berättade."

    typo = _cli(sms_app, monkeypatch, "case", "assign", "K-2", "anna")
    assert typo.exit_code == 2 and said["no_case"] in typo.output, typo.output
    typo = _cli(sms_app, monkeypatch, "reply", "K-2", "Hej!")
    assert typo.exit_code == 2 and said["no_case"] in typo.output, typo.output
    no_alert = _cli(sms_app, monkeypatch, "alerts", "ack", "999")
    assert no_alert.exit_code == 2 and said["no_alert"] in no_alert.output
    bad_role = _cli(sms_app, monkeypatch, "users", "add", "bo", "--role", "boss")
    assert bad_role.exit_code == 2 and said["bad_role"] in bad_role.output


@pytest.mark.parametrize("lang, says", [
    (None, "--age 40 ser fel ut: skriv barnets ålder i år (6–18)."),
    ("en", "--age 40 looks wrong: give the child's age in years (6–18)."),
])
def test_a_refusal_made_in_bot_reaches_staff_in_their_language(app, monkeypatch, lang, says):
    for var in ("TALA_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(var, raising=False)
    if lang:
        monkeypatch.setenv("TALA_LANG", lang)
    wrong = _cli(app, monkeypatch, "invite", "K-1", "--age", "40")
    assert wrong.exit_code == 2 and says in wrong.output, wrong.output
    assert app.db.child("K-1") is None


def test_a_refusal_is_its_swedish_text_with_its_values_filled_in():
    from admin_cli.i18n import refusal_text, use_lang
    from bot.refusal import Refusal, staff_text
    from bot.service import InviteError

    e = InviteError(staff_text("--age {age} ser fel ut: skriv barnets ålder i år (6–18)."),
                    age=40)
    assert isinstance(e, Refusal) and isinstance(e, ValueError)
    assert str(e) == "--age 40 ser fel ut: skriv barnets ålder i år (6–18)."
    assert e.params == {"age": 40} and "{age}" in e.template
    with use_lang("en"):
        assert refusal_text(e) == "--age 40 looks wrong: give the child's age in years (6–18)."
        assert refusal_text(KeyError("x")) == "'x'"  # anything else as it says itself


def test_an_english_locale_means_english_and_any_other_swedish(app, monkeypatch):
    monkeypatch.delenv("TALA_LANG")
    for var in ("LC_ALL", "LC_MESSAGES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    assert "No open alerts." in _cli(app, monkeypatch, "alerts").output
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    assert "Inga öppna larm." in _cli(app, monkeypatch, "alerts").output
    monkeypatch.setenv("TALA_LANG", "en")  # TALA_LANG comes before the locale
    assert "No open alerts." in _cli(app, monkeypatch, "alerts").output


@pytest.mark.parametrize("lang, summaries", [
    ("sv", ["Bjud in ett barn", "Öppna larm", "Skicka ett kort svar till barnet"]),
    ("en", ["Invite a child", "Open alerts", "Send a short answer back to the child"]),
])
def test_tala_help_names_the_commands_in_the_staff_language(lang, summaries):
    env = {**os.environ, "TALA_LANG": lang, "COLUMNS": "250"}
    shown = subprocess.run([sys.executable, "-m", "admin_cli.main", "--help"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    for words in summaries:
        assert words in shown.stdout, shown.stdout


def test_the_staff_api_answers_in_the_language_the_request_asks_for(served):  # noqa: F811
    app, url = served
    t = staff_people(app)

    def summary(token: str | None, **headers: str) -> requests.Response:
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(url + API + "/cases/S-1/summary", headers=headers, timeout=30)

    # The same refusal, made by the operation in a worker thread, in each language.
    swedish = summary(t["anna"], **{"Accept-Language": "sv"})
    english = summary(t["anna"], **{"Accept-Language": "en-GB,en;q=0.8"})
    assert swedish.status_code == english.status_code == 403
    assert swedish.json()["error"].startswith("Det finns inget ärende 'S-1' i din enhet (Nord).")
    assert english.json()["error"].startswith("There is no case 'S-1' in your unit (Nord).")
    # One made by the API's own guard, before any operation runs.
    assert summary(None, **{"Accept-Language": "en"}).json()["error"] == \
        "No token: send Authorization: Bearer TOKEN."
    assert summary(None, **{"Accept-Language": "sv"}).json()["error"] == \
        "Ingen token: skicka Authorization: Bearer TOKEN."
    # An English request leaves nothing behind in the pool's threads: without the header
    # the server's own language (TALA_LANG=sv in the tests) answers, every time.
    for _ in range(6):
        assert summary(t["anna"], **{"Accept-Language": "en"}).json()["error"].startswith(
            "There is no case")
        assert summary(t["anna"]).json()["error"].startswith("Det finns inget ärende")


def test_the_staff_catalog_takes_bot_s_refusals_and_none_of_its_child_texts():
    import io

    from babel.messages.pofile import read_po

    from admin_cli.locales import ROOT, STAFF
    from flows.babel_extract import extract_python

    source = b'N_("Hej!")\nstaff_text("Fel {x}.")\n_("Annat")\n'
    only = extract_python(io.BytesIO(source), ["_", "N_", "staff_text"], [],
                          {"keywords": {"staff_text": None}})
    assert [(f, m) for _, f, m, _ in only] == [("staff_text", "Fel {x}.")]
    # The option as older Babel passes it, the text of the config line.
    only = extract_python(io.BytesIO(source), ["_", "N_", "staff_text"], [], {"keywords": "N_ _"})
    assert [m for _, _, m, _ in only] == ["Hej!", "Annat"]

    with STAFF.pot().open("rb") as fh:
        from_bot = {m.id for m in read_po(fh)
                    if m.id and any(f.startswith("bot/") for f, _ in m.locations)}
    assert "--age {age} ser fel ut: skriv barnets ålder i år (6–18)." in from_bot
    marked: dict[str, set[str]] = {"staff_text": set(), "N_": set()}
    for path in (ROOT / "bot").rglob("*.py"):
        with path.open("rb") as fh:
            for _, f, m, _ in extract_python(fh, list(marked), [], {}):
                marked[f].add(m)
    assert from_bot == marked["staff_text"] and not marked["N_"] & from_bot
