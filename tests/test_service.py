"""The conversation service on real Redis and SQL: invite, talk, alert, finish, remind, expire."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from admin_cli import summary
from bot.service import InviteError
from storage.sql import Alert, AnswerRow, AuditLog, Invitation, SessionRow


def _texts(reply) -> str:
    return "\n".join(s.text + (s.prompt.text if s.prompt else "") for s in reply.says)


def test_invite_talk_alert_and_finish_reach_sql(app, clock):
    inv = app.service.invite("K-17", 9, unit="Nord", actor="anna")
    assert inv.questionnaire_id == "followup-6-11"
    sid = inv.session_id
    assert "Hur har du det" in _texts(app.service.open(sid))
    for reply in ["4", "ja", "5", "ja", "5", "5", "5"]:
        app.service.handle(sid, reply)
    # A safeguarding answer is in SQL at once, long before the session ends.
    assert app.service.state(sid).current == "safe_home"
    reply = app.service.handle(sid, "nej")
    assert "112" in _texts(reply)
    with app.db.Session() as s:
        alert = s.scalars(select(Alert)).one()
        assert (alert.question_id, alert.level, alert.topic) == ("safe_home", "urgent",
                                                                 "unsafe_home")
        assert s.scalars(select(SessionRow)).all() == []  # not finished yet
    assert app.service.state(sid).outbox == []  # written, so nothing waits for the worker

    for reply in ["inget särskilt", "nej", "ja", "nej", "4", "4", "sluta", "ja"]:
        app.service.handle(sid, reply)
    state = app.service.state(sid)
    assert state.status == "stopped"
    with app.db.Session() as s:
        row = s.get(SessionRow, sid)
        assert row.status == "stopped" and row.questionnaire_version == 1
        current = s.scalars(select(AnswerRow).where(AnswerRow.current.is_(True))).all()
        assert {a.question_id for a in current} >= {"home_feel", "home_adult", "safe_home"}
        inv_row = s.scalars(select(Invitation)).one()
        assert inv_row.status == "stopped"

    data = summary.build(app, "K-17", "anna")
    sess = data["sessions"][0]
    assert {k for k in sess} >= {"id", "questionnaire", "status", "language", "started_at",
                                 "completed_at", "answers"}
    home = next(a for a in sess["answers"] if a["question_id"] == "home_feel")
    assert (home["domain"], home["value"], home["label"]) == ("home", 4, "4 av 5 (Ganska bra)")
    free = next(a for a in sess["answers"] if a["question_id"] == "safe_home_more")
    assert free["text"] == "inget särskilt"
    assert data["alerts"][0]["topic"] == "unsafe_home"
    with app.db.Session() as s:
        reads = s.scalars(select(AuditLog).where(AuditLog.action == "summary")).all()
        assert [(r.actor, r.case_ref) for r in reads] == [("anna", "K-17")]


def test_a_repeated_message_id_is_answered_but_not_applied_twice(app, clock):
    sid = app.service.invite("K-1", 9).session_id
    app.service.open(sid)
    first = app.service.handle(sid, "4", message_id="m1", channel="sms")
    again = app.service.handle(sid, "4", message_id="m1", channel="sms")
    assert not first.duplicate and again.duplicate
    assert again.says == first.says and first.says  # a retry gets the same reply
    state = app.service.state(sid)
    assert state.seq == 1 and state.current == "home_adult"


def test_an_alert_survives_sql_being_down_and_the_worker_writes_it(app, clock, monkeypatch):
    sid = app.service.invite("K-2", 9).session_id
    app.service.open(sid)
    real = app.db.write_alert

    def down(*a, **k):
        raise OperationalError("INSERT", {}, Exception("database is down"))

    monkeypatch.setattr(app.db, "write_alert", down)
    reply = app.service.handle(sid, "mamma slår mig")
    assert "116 111" in _texts(reply)  # the child is still answered
    assert [i["topic"] for i in app.service.state(sid).outbox] == ["violence_or_abuse"]
    assert app.store.due(clock.now) == [sid]  # the worker will look at it now

    monkeypatch.setattr(app.db, "write_alert", real)
    app.service.run_due(clock.now)
    assert app.service.state(sid).outbox == []
    alert = app.db.alerts_for(app.db.child("K-2").id)[0]
    assert app.crypto.decrypt(alert.text_enc, sid) == "mamma slår mig"


def test_the_worker_reminds_once_then_expires_and_keeps_the_partial_answers(app, clock):
    sid = app.service.invite("K-3", 13).session_id
    app.service.open(sid)
    app.service.handle(sid, "7")
    policy = app.runtime.policy
    assert app.service.run_due(clock.now + timedelta(hours=1)) == []

    clock.now += policy.remind_after + timedelta(minutes=1)
    delivered = app.service.run_due(clock.now)
    assert [(st.session_id, "frågor kvar" in r.says[0].text) for st, r in delivered] == [
        (sid, True)]
    assert app.service.run_due(clock.now + timedelta(hours=1)) == []  # only one reminder

    clock.now += policy.expire_after
    app.service.run_due(clock.now)
    assert app.service.state(sid).status == "expired"
    with app.db.Session() as s:
        row = s.get(SessionRow, sid)
        assert row.status == "expired"
        answers = s.scalars(select(AnswerRow).where(AnswerRow.session_id == sid)).all()
        assert [(a.question_id, a.value_num) for a in answers] == [("home_feel", 7)]
    assert app.store.due(clock.now + timedelta(days=365)) == []


@pytest.mark.parametrize("case, age, kwargs, says", [
    ("19121212-1212", 9, {}, "ser ut som ett personnummer"),
    ("121212-1212", 9, {}, "ser ut som ett personnummer"),
    ("K 17", 9, {}, "bokstäver, siffror"),
    ("K-17", 40, {}, "--age 40 ser fel ut"),
    ("K-17", 9, {"lang": "xx"}, "Det finns ingen översättning till 'xx'"),
    ("K-17", 9, {"questionnaire_id": "nope"}, "Det finns inget frågeformulär 'nope'"),
])
def test_invite_refuses_bad_input_and_says_what_to_type(app, case, age, kwargs, says):
    with pytest.raises(InviteError, match=says):
        app.service.invite(case, age, **kwargs)
    assert app.db.child(case) is None


def test_an_invitation_nobody_starts_expires_without_an_empty_session(app, clock):
    sid = app.service.invite("K-4", 9).session_id
    assert 0 < app.store.r.ttl(app.store.state_key(sid))
    clock.now += app.runtime.policy.invitation_open + timedelta(minutes=1)
    app.service.run_due(clock.now)
    with app.db.Session() as s:
        assert s.get(SessionRow, sid) is None
        assert s.scalars(select(Invitation)).one().status == "expired"
    assert app.store.due(clock.now + timedelta(days=365)) == []


def test_a_late_message_after_the_end_is_read_and_the_session_still_goes_away(app, clock):
    sid = app.service.invite("K-5", 9, questionnaire_id="session-feedback").session_id
    app.service.open(sid)
    for reply in ["5", "5", "5", "5"]:
        app.service.handle(sid, reply)
    assert app.service.state(sid).status == "completed"
    reply = app.service.handle(sid, "pappa slår mig")
    assert "116 111" in _texts(reply)
    assert [a.topic for a in app.db.alerts_for(app.db.child("K-5").id)] == ["violence_or_abuse"]
    assert 0 < app.store.r.ttl(app.store.state_key(sid)) <= 24 * 3600


def test_a_language_button_answers_the_open_language_menu_and_only_it(app, clock):
    """Telegram's language buttons carry the menu's id ("_language") as their question: they
    must switch the language while the menu is open, and be stale once it is not."""
    from flows.engine import LANGUAGE_PROMPT

    sid = app.service.invite("L-1", 9, actor="anna").session_id
    app.service.open(sid)
    asked = app.service.state(sid).current
    menu = app.service.handle(sid, "språk")
    [prompt] = [s.prompt for s in menu.says if s.prompt]
    assert prompt.question_id == LANGUAGE_PROMPT
    english = next(key for key, label in prompt.choices if label == "English")
    reply = app.service.handle(sid, english, message_id="c1", expect=LANGUAGE_PROMPT)
    assert not reply.stale and app.service.state(sid).lang == "en"
    assert app.service.state(sid).current == asked  # the same question, now in English
    again = app.service.handle(sid, english, message_id="c2", expect=LANGUAGE_PROMPT)
    assert again.stale and app.service.state(sid).current == asked  # the menu is closed


def test_siblings_on_one_chat_each_keep_their_questions(app, clock):
    """A chat answering one invitation opens another (brothers and sisters share a phone):
    the first waits, paused and still tied to the chat, and comes back when the second ends."""
    svc = app.service
    first = svc.invite("S-1", 9, actor="anna")
    second = svc.invite("S-2", 12, actor="anna", questionnaire_id="session-feedback")
    sid1 = svc.claim_code("rasa", "chat-1", first.code)
    svc.open(sid1)
    svc.handle(sid1, "4")
    asked = svc.state(sid1).current

    sid2 = svc.claim_code("rasa", "chat-1", second.code)
    opened = svc.open(sid2)
    assert "andra frågor som inte är klara" in _texts(opened)
    waiting = svc.state(sid1)
    assert waiting.status == "paused" and waiting.contact == "chat-1"  # never left without it
    assert svc.session_for_contact("rasa", "chat-1") == sid2
    for answer in ["5", "5", "5", "5"]:
        last = svc.handle(svc.session_for_contact("rasa", "chat-1"), answer)
    assert svc.state(sid2).status == "completed"
    assert "fler frågor som väntar" in _texts(last)

    assert svc.session_for_contact("rasa", "chat-1") == sid1  # the chat is the first's again
    back = svc.handle(sid1, "hej")
    assert "Välkommen tillbaka" in _texts(back) and svc.state(sid1).current == asked
