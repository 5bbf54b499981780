"""Anonymous group surveys: a class answers by SMS keyword and by Telegram link; results only
in aggregate, and nothing links an answer back to a phone or a chat once a session ends."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from admin_cli import summary  # noqa: F401 - the summary module must import beside campaigns
from bot.channels.telegram import campaign_link
from bot.server import build_web_app
from bot.service import CampaignError
from storage.sql import Alert, Campaign, SessionRow
from tests.conftest import APP_BACKENDS, _build, sms_env, telegram_env, wait_written
from tests.fakes.server import RunningServer
from tests.test_sms import Phone
from tests.test_staff import _everything
from tests.test_telegram import Chat

QUESTIONNAIRE = "school-survey"
# The campaign's days are Stockholm's days (as the service counts them), not the machine's:
# between midnight in Sweden and midnight UTC, the two differ.
def today():
    """Stockholm's date when the test runs (not when the file was imported: a suite that runs
    across midnight would otherwise make campaigns that closed yesterday)."""
    return datetime.now(ZoneInfo("Europe/Stockholm")).date()


@pytest.fixture
def both(request, tmp_path, embedded_redis_url, fake, tg, monkeypatch):
    """An app with SMS (the fake Twilio) and Telegram (the fake Bot API), and its server."""
    sms_env(monkeypatch, fake)
    telegram_env(monkeypatch, tg)
    app = _build(tmp_path, *APP_BACKENDS[-1], embedded_redis_url)
    with RunningServer(build_web_app(app, worker=False)) as server:
        yield app, fake, tg, server
    app.close()


def _answer_for(app, state, rng: random.Random) -> str:
    """What a pupil might answer to the question being asked (never a disclosure)."""
    q = app.questionnaires[state.questionnaire_id].question(state.current)
    if q.type == "scale":
        return str(rng.randint(max(q.scale.min, q.scale.max - 4), q.scale.max))
    if q.type == "yes_no":
        safe = next((r for r in q.safeguarding), None)
        return "nej" if safe and safe.when.equals == "yes" else "ja"
    if q.type in ("choice", "multi_choice"):
        harmless = [i for i, o in enumerate(q.options, 1)
                    if not any(r.when.matches(o.id if q.type == "choice" else [o.id])
                               for r in q.safeguarding)]
        return str(rng.choice(harmless))
    return "hoppa över"


def _play_sms(app, server, fake, number: str, keyword: str, rng: random.Random) -> str:
    phone = Phone(server, fake.auth_token, number=number)
    phone.text(f"{keyword} hej")  # the first word is the keyword
    sid = app.service.session_for_contact("sms", number)
    for _ in range(80):
        state = app.service.state(sid)
        if state.status != "active":
            break
        phone.text(_answer_for(app, state, rng))
    return sid


def _play_telegram(app, server, tg, chat_id: int, code: str, rng: random.Random) -> str:
    chat = Chat(server, tg, chat_id)
    chat.type(f"/start c_{code}")
    sid = app.service.session_for_contact("telegram", str(chat_id))
    for _ in range(80):
        state = app.service.state(sid)
        if state.status != "active":
            break
        chat.type(_answer_for(app, state, rng))
    return sid


def test_a_class_answers_by_sms_keyword_and_telegram_link_and_leaves_no_trace(both):
    app, fake, tg, server = both
    c = app.service.create_campaign("ak8", QUESTIONNAIRE, "Skola8", today() - timedelta(days=1),
                                    today() + timedelta(days=10), unit="Nord",
                                    langs=["sv", "ar"], actor="mia")
    link = campaign_link(app.settings, c.code)
    assert link.startswith(f"https://t.me/{tg.username}?start=c_")
    rng = random.Random(8)
    numbers = [f"+4670{3000000 + i}" for i in range(30)]
    # Ten digits starting 99: no timestamp (epoch seconds 17..., microseconds) contains them.
    chats = [9_900_000_000 + i for i in range(30)]
    sids = [_play_sms(app, server, fake, n, "SKÖLA8" if i % 3 == 0 else "skola8", rng)
            for i, n in enumerate(numbers)]
    sids += [_play_telegram(app, server, tg, ch, c.code, rng) for ch in chats]
    assert all(app.service.state(s).status == "completed" for s in sids)
    for sid in sids:  # the server's SQL threads write each one just after its last reply
        wait_written(app, sid)

    with app.db.Session() as s:
        rows = s.scalars(select(SessionRow).where(SessionRow.campaign_id == c.id)).all()
        assert len(rows) == 60 and all(r.child_id is None for r in rows)
    assert len(fake.messages) == 0  # everything went back as replies; nothing sent first

    # No phone number, chat id or keyed hash of one is left anywhere, in SQL or Redis.
    everything = _everything(app)
    for contact in numbers + [str(ch) for ch in chats]:
        assert contact not in everything, contact
        assert app.crypto.lookup_hash(contact) not in everything, contact
    assert app.service.session_for_contact("sms", numbers[0]) is None
    # Sixty pupils wrote nothing to the key store: their keys are derived from one root.
    from storage.keys import data_keys

    with app.crypto.keys.engine.connect() as conn:
        subjects = set(conn.scalars(select(data_keys.c.subject)))
    assert subjects <= {"_anonymous", "_lookup"}, subjects


def test_a_disclosure_in_a_survey_helps_the_child_and_only_counts(both):
    app, fake, tg, server = both
    app.service.create_campaign("ak9", QUESTIONNAIRE, "ak9", today(), today(), actor="mia")
    phone = Phone(server, fake.auth_token, number="+46705550099")
    phone.text("AK9")
    reply = phone.text("pappa slår mig")
    assert "anonyma" in reply and "elevhälsan" in reply and "116 111" in reply
    with app.db.Session() as s:
        assert s.scalars(select(Alert)).all() == []  # no caseworker: nobody to alert
        assert s.scalars(select(Campaign)).one().flagged == 1


def test_keywords_outside_their_dates_get_a_polite_answer(both):
    app, fake, tg, server = both
    app.service.create_campaign("later", QUESTIONNAIRE, "later1", today() + timedelta(days=3),
                                today() + timedelta(days=9), actor="mia")
    app.service.create_campaign("over", QUESTIONNAIRE, "over1", today() - timedelta(days=9),
                                today() + timedelta(days=9), actor="mia")
    app.service.close_campaign("over", "mia")
    phone = Phone(server, fake.auth_token, number="+46705550098")
    assert "öppnar" in phone.text("later1")
    assert "stängd" in phone.text("over1")
    assert app.service.session_for_contact("sms", "+46705550098") is None


def test_keywords_never_clash_with_reserved_words_or_an_open_campaign(app):
    app.service.create_campaign("a", QUESTIONNAIRE, "klass7", today(), today(), actor="mia")
    for word in ("STOP", "start", "Hjälp", "ja"):
        with pytest.raises(CampaignError, match="redan använder"):
            app.service.create_campaign("b", QUESTIONNAIRE, word, today(), today())
    with pytest.raises(CampaignError, match="används redan av kampanjen a"):
        app.service.create_campaign("b", QUESTIONNAIRE, "KLASS7", today(), today())
    app.service.create_campaign("b", QUESTIONNAIRE, "klass7", today() + timedelta(days=1),
                                today() + timedelta(days=2))  # no overlap: fine


def test_the_class_report_shows_distributions_and_four_answers_are_suppressed(both):
    from admin_cli.report import build_campaign_report, to_json
    app, fake, tg, server = both
    c = app.service.create_campaign("ak7", QUESTIONNAIRE, "ak7", today() - timedelta(days=1),
                                    today() + timedelta(days=3), actor="mia")
    rng = random.Random(7)
    for i in range(15):
        _play_sms(app, server, fake, f"+4670{4000000 + i}", "ak7", rng)
    for i in range(15):
        _play_telegram(app, server, tg, 990000 + i, c.code, rng)
    small = app.service.create_campaign("liten", QUESTIONNAIRE, "liten", today(), today(),
                                        actor="mia")
    for i in range(4):
        _play_sms(app, server, fake, f"+4670{5000000 + i}", "liten", rng)
    app.service.close_campaign("ak7", "mia")
    app.service.close_campaign(small.name, "mia")

    report = build_campaign_report(app, "mia", "ak7")
    assert not report["too_few"]
    started = sum(p["started"] for p in report["participation"]["periods"])
    assert started == report["participation"]["total"]["started"] >= 5
    school = next(q for q in report["questions"] if q["question_id"] == "school_feel")
    shown = [v for v in school["values"] if isinstance(v.get("count"), int)]
    assert shown and all(not 0 < v["count"] < 5 for v in shown)  # small counts hidden
    tiny = build_campaign_report(app, "mia", "liten")
    assert tiny["too_few"] and not tiny["questions"]
    assert '"count"' not in to_json(tiny)


def test_the_keyword_again_is_never_an_answer(both):
    """'SKOLA8' sent twice (or retried by Twilio) must not answer the first 0-10 question 8."""
    app, fake, tg, server = both
    app.service.create_campaign("ak10", QUESTIONNAIRE, "Skola8", today(), today(), actor="mia")
    phone = Phone(server, fake.auth_token, number="+46705550097")
    first = phone.text("SKOLA8", sid="SMkeyword00000000000000000000001")
    retried = phone.text("SKOLA8", sid="SMkeyword00000000000000000000001")
    assert retried == first
    again = phone.text("skola8")  # the pupil sends it once more
    sid = app.service.session_for_contact("sms", "+46705550097")
    assert app.service.state(sid).answers == {}
    assert "Välkommen tillbaka" in again
