"""The export for the case system (JSON, CSV, FHIR R4) on real Redis and SQL: real sessions made
through the conversation service, then read back as a case system would."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydantic import ValidationError
from sqlalchemy import event, select, update

from admin_cli.export import ExportError, export
from flows.engine import FINISHED
from storage.sql import AnswerRow, AuditLog, Invitation, SessionRow
from tests.conftest import T0

PHONE = "+46701234567"
EQUALS_TEXT = '=HYPERLINK("http://x.se") Jag saknar mormor på Åland, öäå'
PLUS_TEXT = "+ tack för att ni frågar"
STABLE_HEADER = ["case", "unit", "session_id", "questionnaire", "questionnaire_version",
                 "session_status", "language", "channel", "started_at", "completed_at",
                 "question_id", "domain", "question", "value", "label", "text", "skipped",
                 "answered_at"]

# followup-6-11, completed, with a changed answer, a skip and an urgent alert.
REPLIES_6_11 = {
    "home_feel": "4", "home_adult": "ja", "school_feel": "5", "friends_have": "ja",
    "free_time": "5", "body_feel": "5", "mood_feel": "5", "safe_home": "nej",
    "safe_home_more": "Det är mycket bråk hemma", "hurt_by_adult": "nej", "safe_school": "ja",
    "very_sad": "nej", "caseworker_talk": "4", "help_wanted": "1 och 3",
}
# followup-12-18, completed: a 0-10 scale that opens a multi_choice, free texts that a
# spreadsheet would run as formulas.
REPLIES_12_18 = {
    "home_feel": "2", "home_hard": "1 och 4", "home_more": EQUALS_TEXT, "trusted_adult": "ja",
    "adults_listen": "7", "contact_important": "1", "school_feel": "8", "school_attend": "1",
    "friends_have": "ja", "free_time": "9", "body_feel": "8", "mood_feel": "6",
    "safe_home": "ja", "hurt_by_someone": "nej", "safe_outside": "ja", "self_harm": "nej",
    "not_live": "nej", "caseworker_talk": "6", "caseworker_heard": "5", "caseworker_reach": "1",
    "help_wanted": "3 och 7", "anything_else": PLUS_TEXT,
}


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Made:
    completed: str   # followup-6-11, K-A1
    stopped: str     # followup-6-11, K-B2, stopped half-way
    older: str       # followup-12-18, K-C3
    codes: list[str]


def _talk(app, clock: Clock, sid: str, replies: dict[str, str], stop_at: str | None = None,
          prelude: tuple[str, ...] = ()) -> None:
    """Answer like a child: the reply for the question asked, "hoppa över" for any other."""
    app.service.open(sid)
    for text in prelude:
        clock.now += timedelta(minutes=1)
        app.service.handle(sid, text)
    for _ in range(120):
        state = app.service.state(sid)
        if state.status in FINISHED:
            return
        clock.now += timedelta(minutes=1)
        if state.current == stop_at:
            app.service.handle(sid, "sluta")
            app.service.handle(sid, "ja")
            assert app.service.state(sid).status == "stopped"
            return
        app.service.handle(sid, replies.get(state.current, "hoppa över"))
    raise AssertionError(f"session {sid} never finished")


def _make(app) -> Made:
    clock = Clock(T0)  # 2026-03-02 15:00 UTC
    app.service.clock = clock
    a = app.service.invite("K-A1", 9, unit="Nord", actor="anna", channel="console")
    # Home: 3 first, then back and 4: only the 4 is current.
    _talk(app, clock, a.session_id, REPLIES_6_11, prelude=("3", "tillbaka"))
    clock.now = T0 + timedelta(days=3)
    b = app.service.invite("K-B2", 10, unit="Nord", actor="anna", channel="console")
    _talk(app, clock, b.session_id, {"home_feel": "5", "home_adult": "ja"},
          stop_at="school_feel")
    # 23:10 UTC on 9 March is already 10 March in Stockholm.
    clock.now = datetime(2026, 3, 9, 23, 10, tzinfo=timezone.utc)
    c = app.service.invite("K-C3", 14, unit="Syd", actor="bo", channel="console")
    _talk(app, clock, c.session_id, REPLIES_12_18)
    # As if the first child had been invited by SMS: the contact sits on the invitation.
    with app.db.Session.begin() as s:
        s.execute(update(Invitation).where(Invitation.session_id == a.session_id).values(
            contact_enc=app.crypto.encrypt(PHONE), contact_hash=app.crypto.lookup_hash(PHONE)))
    made = Made(a.session_id, b.session_id, c.session_id, [a.code, b.code, c.code])
    with app.db.Session() as s:
        status = dict(s.execute(select(SessionRow.id, SessionRow.status)).all())
    assert status == {made.completed: "completed", made.stopped: "stopped",
                      made.older: "completed"}
    return made


def _current(app) -> dict[str, list[AnswerRow]]:
    with app.db.Session() as s:
        rows = s.scalars(select(AnswerRow).where(AnswerRow.current.is_(True))
                         .order_by(AnswerRow.session_id, AnswerRow.seq)).all()
    out: dict[str, list[AnswerRow]] = {}
    for r in rows:
        out.setdefault(r.session_id, []).append(r)
    return out


def _no_contact_details(app, content: str, made: Made) -> None:
    for code in made.codes:
        assert code and code not in content
    for secret in (PHONE, PHONE[3:], "0" + PHONE[3:], app.crypto.lookup_hash(PHONE),
                   "contact_enc", "contact_hash", "delivery"):
        assert secret not in content
    # "contact" only where it is a question or option id of the questionnaires themselves.
    allowed = {i for qn in app.questionnaires.values() for q in qn.questions
               for i in [q.id, *(o.id for o in q.options)] if "contact" in i}
    assert allowed  # the 12-18 questionnaire asks about contact with important people
    rest = content
    for word in sorted(allowed, key=len, reverse=True):
        rest = rest.replace(word, "")
    assert "contact" not in rest.lower()


def _audits(app) -> list[tuple[str, str, str | None, str]]:
    with app.db.Session() as s:
        return [(r.actor, r.action, r.case_ref, r.detail) for r in s.scalars(
            select(AuditLog).where(AuditLog.action == "export").order_by(AuditLog.id))]


# --------------------------------------------------------------------------- json


def test_json_has_every_current_answer_labelled_in_swedish_and_no_contact(app):
    made = _make(app)
    content = export(app, "json", "anna")
    _no_contact_details(app, content, made)
    data = json.loads(content)
    assert [s["session_id"] for s in data] == [made.completed, made.stopped, made.older]
    current = _current(app)
    for s in data:
        assert set(s) == {"case", "unit", "session_id", "questionnaire", "questionnaire_version",
                          "status", "language", "channel", "started_at", "completed_at",
                          "answers", "alerts"}
        assert [a["question_id"] for a in s["answers"]] == [
            r.question_id for r in current[s["session_id"]]]
        for a in s["answers"]:
            assert set(a) == {"question_id", "domain", "question", "value", "label", "text",
                              "skipped", "answered_at"}
            assert a["question"]  # the Swedish question text
            if a["skipped"]:
                assert a["label"] == "(hoppade över)"
            elif a["text"] is None:
                assert a["label"], a
    first, stopped, older = data
    assert (first["case"], first["unit"], first["status"], first["channel"]) == (
        "K-A1", "Nord", "completed", "console")
    by = {a["question_id"]: a for a in first["answers"]}
    # Changed from 3 to 4: only the current answer is exported.
    assert (by["home_feel"]["value"], by["home_feel"]["label"]) == (4, "4 av 5 (Ganska bra)")
    assert [a["question_id"] for a in first["answers"]].count("home_feel") == 1
    assert (by["home_adult"]["value"], by["home_adult"]["label"]) == ("yes", "Ja")
    assert (by["safe_home"]["value"], by["safe_home"]["label"]) == ("no", "Nej")
    assert by["safe_home_more"]["text"] == "Det är mycket bråk hemma"
    assert by["help_wanted"]["value"] == ["home", "feelings"]
    assert by["help_wanted"]["label"] == "Något där jag bor, Hur jag mår"
    assert by["help_other"]["skipped"] is True
    assert by["home_feel"]["question"] == "Hur har du det där du bor?"
    assert first["alerts"] == [{"question_id": "safe_home", "level": "urgent",
                                "topic": "unsafe_home",
                                "created_at": first["alerts"][0]["created_at"]}]
    assert stopped["status"] == "stopped" and stopped["alerts"] == []
    assert [a["question_id"] for a in stopped["answers"]] == ["home_feel", "home_adult"]
    by = {a["question_id"]: a for a in older["answers"]}
    assert (by["home_feel"]["value"], by["home_feel"]["label"]) == (2, "2 av 10")
    assert by["home_hard"]["value"] == ["arguing", "miss_someone"]
    assert by["home_hard"]["label"] == "Det blir mycket bråk, Jag saknar någon"
    assert by["home_more"]["text"] == EQUALS_TEXT  # JSON keeps the child's words as written
    assert older["questionnaire"] == "followup-12-18" and older["questionnaire_version"] == 1


# --------------------------------------------------------------------------- csv


def test_csv_is_excel_safe_utf8_one_row_per_answer(app):
    made = _make(app)
    content = export(app, "csv", "anna")
    raw = content.encode("utf-8")
    assert raw.startswith(codecs.BOM_UTF8)
    assert re.search(r"(?<!\r)\n", content) is None  # every line ends in \r\n
    _no_contact_details(app, content, made)
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert rows[0] == STABLE_HEADER
    body = [dict(zip(STABLE_HEADER, r, strict=True)) for r in rows[1:]]
    assert all(len(r) == len(STABLE_HEADER) for r in rows)
    current = _current(app)
    assert [(r["session_id"], r["question_id"]) for r in body] == [
        (sid, a.question_id) for sid in (made.completed, made.stopped, made.older)
        for a in current[sid]]
    older = {r["question_id"]: r for r in body if r["session_id"] == made.older}
    # Formula injection: a cell that starts with = + - @ is defused with an apostrophe.
    assert older["home_more"]["text"] == "'" + EQUALS_TEXT
    assert older["anything_else"]["text"] == "'" + PLUS_TEXT
    assert "öäå" in older["home_more"]["text"] and "Åland" in older["home_more"]["text"]
    assert older["home_hard"]["value"] == "arguing;miss_someone"
    assert older["home_hard"]["label"] == "Det blir mycket bråk, Jag saknar någon"
    assert (older["home_feel"]["value"], older["home_feel"]["label"]) == ("2", "2 av 10")
    assert older["home_feel"]["question"] == "Hur har du det där du bor just nu?"
    assert (older["help_other"]["skipped"], older["help_other"]["label"]) == (
        "true", "(hoppade över)")
    head = older["home_feel"]
    assert (head["case"], head["unit"], head["session_status"], head["language"]) == (
        "K-C3", "Syd", "completed", "sv")
    for r in body:
        for cell in r.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    stopped = [r for r in body if r["session_id"] == made.stopped]
    assert {r["session_status"] for r in stopped} == {"stopped"}


# --------------------------------------------------------------------------- fhir


def _parse_bundle(content: str) -> Bundle:
    if hasattr(Bundle, "model_validate_json"):
        return Bundle.model_validate_json(content)
    return Bundle.parse_raw(content)  # pragma: no cover - fhir.resources 7


def test_fhir_bundle_validates_and_says_what_the_child_answered(app):
    made = _make(app)
    content = export(app, "fhir", "anna")
    _no_contact_details(app, content, made)
    bundle = _parse_bundle(content)
    assert bundle.type == "collection"
    resources = [e.resource for e in bundle.entry]
    questionnaires = {(q.url, q.version): q for q in resources
                      if q.get_resource_type() == "Questionnaire"}
    responses = {r.identifier.value: r for r in resources
                 if r.get_resource_type() == "QuestionnaireResponse"}
    assert set(questionnaires) == {("urn:tala:questionnaire:followup-6-11", "1"),
                                   ("urn:tala:questionnaire:followup-12-18", "1")}
    assert set(responses) == {made.completed, made.stopped, made.older}
    assert responses[made.stopped].status == "stopped"
    assert responses[made.completed].status == responses[made.older].status == "completed"
    for r in responses.values():
        url, version = r.questionnaire.split("|")
        assert (url, version) in questionnaires
        assert r.subject.identifier.system == "urn:tala:case"
        assert r.subject.identifier.value in {"K-A1", "K-B2", "K-C3"}

    q1218 = questionnaires[("urn:tala:questionnaire:followup-12-18", "1")]
    assert q1218.status == "active" and q1218.title == "Hur har du det just nu?"
    defs = {i.linkId: i for i in q1218.item}
    assert defs["intro"].type == "display"
    assert defs["trusted_adult"].type == "boolean"
    assert defs["home_more"].type == "text"
    assert defs["contact_important"].type == "choice" and not defs["contact_important"].repeats
    assert defs["home_hard"].type == "choice" and defs["home_hard"].repeats is True
    assert defs["home_feel"].type == "integer"
    ext = {e.url: e.valueInteger for e in defs["home_feel"].extension}
    assert ext == {"http://hl7.org/fhir/StructureDefinition/minValue": 0,
                   "http://hl7.org/fhir/StructureDefinition/maxValue": 10}

    older = {i.linkId: i for i in responses[made.older].item}
    assert [a.valueInteger for a in older["home_feel"].answer] == [2]
    assert [a.valueBoolean for a in older["trusted_adult"].answer] == [True]
    assert [a.valueString for a in older["home_more"].answer] == [EQUALS_TEXT]
    codings = [a.valueCoding for a in older["home_hard"].answer]
    assert [c.code for c in codings] == ["arguing", "miss_someone"]
    offered = {(o.valueCoding.system, o.valueCoding.code): o.valueCoding.display
               for o in defs["home_hard"].answerOption}
    for c in codings:
        assert offered[(c.system, c.code)] == c.display
    assert "help_other" not in older  # skipped: no item
    assert responses[made.older].authored is not None

    first = {i.linkId: i for i in responses[made.completed].item}
    assert [a.valueBoolean for a in first["safe_home"].answer] == [False]
    assert [a.valueInteger for a in first["home_feel"].answer] == [4]
    stopped = {i.linkId for i in responses[made.stopped].item}
    assert stopped == {"home_feel", "home_adult"}


def test_an_invalid_fhir_resource_stops_the_export(app):
    made = _make(app)
    with app.db.Session.begin() as s:
        s.execute(update(AnswerRow).where(AnswerRow.session_id == made.completed,
                                          AnswerRow.question_id == "home_feel",
                                          AnswerRow.current.is_(True)).values(value_num=2.5))
    with pytest.raises(ValidationError, match="valueInteger"):
        export(app, "fhir", "anna")
    assert _audits(app) == []  # nothing was exported


def test_a_version_tala_no_longer_holds_is_not_shown_with_another_versions_questions(app):
    made = _make(app)
    with app.db.Session.begin() as s:
        s.execute(update(SessionRow).where(SessionRow.id == made.stopped)
                  .values(questionnaire_version=7))
    bundle = _parse_bundle(export(app, "fhir", "anna"))
    resources = [e.resource for e in bundle.entry]
    old = next(r for r in resources if r.get_resource_type() == "Questionnaire"
               and r.version == "7")
    assert (old.url, old.status, old.item) == (
        "urn:tala:questionnaire:followup-6-11", "unknown", None)
    response = next(r for r in resources if r.get_resource_type() == "QuestionnaireResponse"
                    and r.identifier.value == made.stopped)
    assert response.questionnaire == "urn:tala:questionnaire:followup-6-11|7"
    items = {i.linkId: i for i in response.item}
    assert [a.valueInteger for a in items["home_feel"].answer] == [5]
    assert [a.valueBoolean for a in items["home_adult"].answer] == [True]
    assert items["home_feel"].text is None


# --------------------------------------------------------------------------- window, audit


def test_since_and_until_are_days_in_stockholm_both_included(app):
    made = _make(app)
    with app.db.Session() as s:
        older = s.get(SessionRow, made.older)
        ended = older.completed_at
    assert ended.date() == date(2026, 3, 9)  # in UTC; already 10 March in Stockholm

    def ids(**window) -> list[str]:
        return [s["session_id"] for s in json.loads(export(app, "json", "anna", **window))]

    assert ids() == [made.completed, made.stopped, made.older]
    assert ids(since=date(2026, 3, 2), until=date(2026, 3, 2)) == [made.completed]
    assert ids(since=date(2026, 3, 3)) == [made.stopped, made.older]
    assert ids(until=date(2026, 3, 5)) == [made.completed, made.stopped]
    assert ids(until=date(2026, 3, 9)) == [made.completed, made.stopped]
    assert ids(since=date(2026, 3, 10)) == [made.older]
    assert ids(since=date(2026, 3, 11)) == []
    rows = export(app, "csv", "anna", since=date(2026, 3, 5), until=date(2026, 3, 5))
    body = list(csv.reader(io.StringIO(rows.encode().decode("utf-8-sig"), newline="")))[1:]
    assert {r[2] for r in body} == {made.stopped}
    bundle = _parse_bundle(export(app, "fhir", "anna", since=date(2026, 3, 10)))
    kinds = [e.resource.get_resource_type() for e in bundle.entry]
    assert kinds == ["Questionnaire", "QuestionnaireResponse"]
    with pytest.raises(ExportError, match="after"):
        export(app, "json", "anna", since=date(2026, 3, 10), until=date(2026, 3, 2))


def test_every_export_writes_one_audit_entry(app):
    _make(app)
    export(app, "json", "anna")
    export(app, "csv", "bo", since=date(2026, 3, 3))
    export(app, "fhir", "cilla", until=date(2026, 3, 1))
    assert _audits(app) == [("anna", "export", None, "json, 3 sessions"),
                            ("bo", "export", None, "csv, 2 sessions"),
                            ("cilla", "export", None, "fhir, 0 sessions")]
    with pytest.raises(ExportError, match="Formats: json, csv, fhir"):
        export(app, "xml", "anna")
    assert len(_audits(app)) == 3


def test_the_export_reads_in_a_fixed_number_of_queries(app):
    _make(app)
    selects: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    event.listen(app.db.engine, "before_cursor_execute", seen)
    try:
        export(app, "json", "anna")
    finally:
        event.remove(app.db.engine, "before_cursor_execute", seen)
    assert len(selects) == 2  # sessions with their answers, then their alerts


def test_an_empty_export_is_still_well_formed(app):
    assert json.loads(export(app, "json", "anna")) == []
    rows = export(app, "csv", "anna").encode().decode("utf-8-sig")
    assert rows == ",".join(STABLE_HEADER) + "\r\n"
    assert _parse_bundle(export(app, "fhir", "anna")).entry is None
