"""The export for the municipality's case system: finished sessions as JSON, CSV or FHIR R4.

`export(app, fmt, actor, since, until)` returns the file content. It reads finished sessions
(completed, stopped by the child, expired) from SQL with their current answers, in two queries
(sessions joined with children and answers, then their alerts), never from Redis, and never
touches the invitation's contact details or code: the case system gets the pseudonymous case
reference and what the child said, nothing that reaches the child. Every export is a read of
children's answers, so it writes one audit entry.

- json: a list of sessions, each with its answers (labelled in Swedish) and alerts (without
  the child's words: those stay behind `tala summary`).
- csv: one row per answer, stable columns (CSV_COLUMNS), UTF-8 with a BOM and CRLF so Excel
  shows å, ä, ö; cells that a spreadsheet would run as a formula get a leading apostrophe.
- fhir: a FHIR R4 Bundle (collection) of one Questionnaire per questionnaire version used and
  one QuestionnaireResponse per session, each validated with fhir.resources' R4B models, so a
  resource that does not validate stops the export instead of being written.

The window [since, until] is by date in TALA_TIMEZONE (Europe/Stockholm), both days included,
on the session's completed_at, or its started_at when it never completed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select

from admin_cli.safe import json_text, shown
from admin_cli.labels import answer_label, answer_value, iso
from bot.app import App
from flows.model import Question, Questionnaire
from storage.sql import Alert, AnswerRow, Child, SessionRow

FORMATS = ("json", "csv", "fhir")

# The CSV header: a contract with the case system. Add columns at the end, never rename.
CSV_COLUMNS = ("case", "unit", "session_id", "questionnaire", "questionnaire_version",
               "session_status", "language", "channel", "started_at", "completed_at",
               "question_id", "domain", "question", "value", "label", "text", "skipped",
               "answered_at")

# A spreadsheet runs a cell that starts with one of these as a formula (OWASP CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

FHIR_TYPES = {"yes_no": "boolean", "scale": "integer", "choice": "choice",
              "multi_choice": "choice", "free_text": "text", "info": "display"}
FHIR_STATUS = {"completed": "completed", "stopped": "stopped", "expired": "stopped"}
MIN_VALUE = "http://hl7.org/fhir/StructureDefinition/minValue"
MAX_VALUE = "http://hl7.org/fhir/StructureDefinition/maxValue"


class ExportError(ValueError):
    """The export was asked for something it cannot do (a format, a window)."""


@dataclass
class _Session:
    row: SessionRow
    case_ref: str
    unit: str | None
    answers: list[AnswerRow] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)


def export(app: App, fmt: str, actor: str, since: date | None = None,
           until: date | None = None) -> str:
    """The export file's content in `fmt` (json, csv or fhir) for the finished sessions whose
    completed_at (started_at when it has none) falls between `since` and `until`, both days
    included. Writes one audit entry; raises ExportError for an unknown format or window."""
    if fmt not in FORMATS:
        raise ExportError(f"Unknown export format '{fmt}'. Formats: {', '.join(FORMATS)}.")
    if since and until and since > until:
        raise ExportError(f"--since {since} is after --until {until}: nothing can be in "
                          "between.")
    sessions = _read(app, since, until)
    if fmt == "json":
        content = _to_json(app, sessions)
    elif fmt == "csv":
        content = _to_csv(app, sessions)
    else:
        content = _to_fhir(app, sessions)
    app.db.audit(actor, "export", None, f"{fmt}, {len(sessions)} sessions")
    return content


# --------------------------------------------------------------------------- reading


def _bounds(app: App, since: date | None, until: date | None
            ) -> tuple[datetime | None, datetime | None]:
    """[since 00:00, the day after until 00:00) local time, as UTC: SQLite keeps tala's UTC
    times without their offset, so the bounds are compared in UTC too."""
    tz = ZoneInfo(app.settings.timezone)

    def start_of(day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=tz).astimezone(timezone.utc)

    return (start_of(since) if since else None,
            start_of(until + timedelta(days=1)) if until else None)


def _read(app: App, since: date | None, until: date | None) -> list[_Session]:
    lo, hi = _bounds(app, since, until)
    when = func.coalesce(SessionRow.completed_at, SessionRow.started_at)
    window = []
    if lo is not None:
        window.append(when >= lo)
    if hi is not None:
        window.append(when < hi)
    with app.db.Session() as db:
        # One query: the sessions in the window, their child, and their current answers.
        rows = db.execute(
            select(SessionRow, Child.case_ref, Child.unit, AnswerRow)
            .join(Child, Child.id == SessionRow.child_id)
            .outerjoin(AnswerRow, and_(AnswerRow.session_id == SessionRow.id,
                                       AnswerRow.current.is_(True)))
            .where(*window)
            .order_by(when, SessionRow.id, AnswerRow.seq)).all()
        sessions: dict[str, _Session] = {}
        for s, case_ref, unit, answer in rows:
            entry = sessions.setdefault(s.id, _Session(s, case_ref, unit))
            if answer is not None:
                entry.answers.append(answer)
        # And one for their alerts (an alert keeps its session id, not a foreign key).
        alerts = db.scalars(
            select(Alert).join(SessionRow, SessionRow.id == Alert.session_id)
            .where(*window).order_by(Alert.created_at, Alert.id)).all()
        for al in alerts:
            if al.session_id in sessions:
                sessions[al.session_id].alerts.append(al)
    return list(sessions.values())


def _definition(app: App, s: SessionRow) -> Questionnaire | None:
    """The questionnaire as tala knows it now (answers are stored by stable ids, so its
    question texts and labels are used like `tala summary` does)."""
    return app.questionnaires.get(s.questionnaire_id)


def _question(qn: Questionnaire | None, qid: str) -> Question | None:
    return qn.question(qid) if qn is not None and qn.has(qid) else None


def _answer_dict(app: App, qn: Questionnaire | None, a: AnswerRow) -> dict[str, Any]:
    value = answer_value(a)
    q = _question(qn, a.question_id)
    return {
        "question_id": a.question_id,
        "domain": a.domain,
        "question": q.text if q else None,
        "value": value,
        "label": answer_label(qn, a.question_id, value, a.skipped),
        "text": app.crypto.decrypt(a.text_enc, a.session_id) if a.text_enc else None,
        "skipped": a.skipped,
        "answered_at": iso(a.answered_at),
    }


# --------------------------------------------------------------------------- json


def _session_head(s: _Session) -> dict[str, Any]:
    r = s.row
    return {"case": s.case_ref, "unit": s.unit, "session_id": r.id,
            "questionnaire": r.questionnaire_id, "questionnaire_version": r.questionnaire_version,
            "status": r.status, "language": r.lang, "channel": r.channel,
            "started_at": iso(r.started_at), "completed_at": iso(r.completed_at)}


def _to_json(app: App, sessions: list[_Session]) -> str:
    out = []
    for s in sessions:
        qn = _definition(app, s.row)
        out.append({
            **_session_head(s),
            "answers": [_answer_dict(app, qn, a) for a in s.answers],
            "alerts": [{"question_id": al.question_id, "level": al.level, "topic": al.topic,
                        "created_at": iso(al.created_at)} for al in s.alerts],
        })
    return json_text(out) + "\n"


# --------------------------------------------------------------------------- csv


def _cell(value: Any) -> str:
    """A cell as text, defused: a leading apostrophe keeps a spreadsheet from running it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, list):
        text = ";".join(str(v) for v in value)
    else:
        text = shown(str(value))  # a child's words: nothing in them acts on a terminal
    return "'" + text if text.startswith(_FORMULA_START) else text


def _to_csv(app: App, sessions: list[_Session]) -> str:
    buf = io.StringIO()
    buf.write("\ufeff")  # the BOM: Excel reads the file as UTF-8 only with it
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for s in sessions:
        qn = _definition(app, s.row)
        head = _session_head(s)
        head["session_status"] = head.pop("status")
        for a in s.answers:
            row = {**head, **_answer_dict(app, qn, a)}
            writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return buf.getvalue()


# --------------------------------------------------------------------------- fhir


def _validated(model: Any, data: dict[str, Any]) -> Any:
    """Validate with the installed fhir.resources: 8.x is pydantic 2, 7.x pydantic 1."""
    if hasattr(model, "model_validate"):
        return model.model_validate(data)
    return model.parse_obj(data)  # pragma: no cover - fhir.resources 7


def _json_of(resource: Any) -> str:
    if hasattr(resource, "model_dump_json"):
        return resource.model_dump_json()
    return resource.json()  # pragma: no cover - fhir.resources 7


def _canonical(qid: str) -> str:
    return f"urn:tala:questionnaire:{qid}"


def _fhir_id(text: str) -> str:
    """A FHIR id: letters, digits, - and ., at most 64."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:64]


def _fhir_item(qn: Questionnaire, q: Question) -> dict[str, Any]:
    item: dict[str, Any] = {"linkId": q.id, "text": q.text, "type": FHIR_TYPES[q.type]}
    if q.type == "multi_choice":
        item["repeats"] = True
    if q.options:
        item["answerOption"] = [{"valueCoding": {
            "system": f"{_canonical(qn.id)}:{q.id}", "code": o.id, "display": o.text}}
            for o in q.options]
    if q.scale is not None:
        item["extension"] = [{"url": MIN_VALUE, "valueInteger": q.scale.min},
                             {"url": MAX_VALUE, "valueInteger": q.scale.max}]
    return item


def _fhir_questionnaire(app: App, qid: str, version: int) -> Any:
    """The questionnaire a response answers. When tala no longer holds that version (it has
    moved on), the resource says so instead of showing another version's questions."""
    from fhir.resources.R4B.questionnaire import Questionnaire as FhirQuestionnaire

    qn = app.questionnaires.get(qid)
    data: dict[str, Any] = {"resourceType": "Questionnaire",
                            "id": _fhir_id(f"{qid}-v{version}"), "url": _canonical(qid),
                            "version": str(version), "title": qn.title if qn else qid}
    if qn is not None and qn.version == version:
        data["status"] = "active"
        data["item"] = [_fhir_item(qn, q) for q in qn.questions]
    else:
        data["status"] = "unknown"
        data["description"] = (f"Version {version} av frågeformuläret finns inte längre i "
                               "tala; svaren har frågornas och svarsalternativens id.")
    return _validated(FhirQuestionnaire, data)


def _fhir_answers(app: App, qid: str, q: Question | None, a: AnswerRow,
                  same_version: bool) -> list[dict[str, Any]]:
    """The FHIR answer values of one (not skipped) answer. `q` is the question as tala knows
    it now: its type decides the value type; its option texts are shown only when it is the
    version the child answered."""
    value = answer_value(a)
    qtype = q.type if q else None
    if a.text_enc and qtype in (None, "free_text"):
        return [{"valueString": app.crypto.decrypt(a.text_enc, a.session_id)}]
    if qtype == "yes_no" or (qtype is None and value in ("yes", "no")):
        return [{"valueBoolean": value == "yes"}]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [{"valueInteger": value}]  # a scale; a fraction fails validation, loudly
    if isinstance(value, (str, list)):
        out = []
        for code in value if isinstance(value, list) else [value]:
            coding = {"system": f"{_canonical(qid)}:{a.question_id}", "code": code}
            option = q.option(code) if q is not None and same_version else None
            if option is not None:
                coding["display"] = option.text
            out.append({"valueCoding": coding})
        return out
    return []


def _fhir_response(app: App, s: _Session) -> Any:
    from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

    r = s.row
    known = _definition(app, r)
    same = known is not None and known.version == r.questionnaire_version
    items = []
    for a in s.answers:
        if a.skipped:
            continue
        q = _question(known, a.question_id)
        answers = _fhir_answers(app, r.questionnaire_id, q, a, same)
        if not answers:
            continue
        item: dict[str, Any] = {"linkId": a.question_id, "answer": answers}
        if q is not None and same:
            item["text"] = q.text
        items.append(item)
    data: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "id": _fhir_id(r.id),
        "identifier": {"system": "urn:tala:session", "value": r.id},
        "questionnaire": f"{_canonical(r.questionnaire_id)}|{r.questionnaire_version}",
        "status": FHIR_STATUS.get(r.status, "stopped"),
        "subject": {"identifier": {"system": "urn:tala:case", "value": s.case_ref}},
        "authored": iso(r.completed_at or r.started_at),
    }
    if items:
        data["item"] = items
    return _validated(QuestionnaireResponse, data)


def _to_fhir(app: App, sessions: list[_Session]) -> str:
    # fhir.resources only for this format: its models take longer to import (about 0.2 s)
    # than a JSON or CSV export takes.
    from fhir.resources.R4B.bundle import Bundle

    used = sorted({(s.row.questionnaire_id, s.row.questionnaire_version) for s in sessions})
    resources = [_fhir_questionnaire(app, qid, version) for qid, version in used]
    resources += [_fhir_response(app, s) for s in sessions]
    bundle = _validated(Bundle, {
        "resourceType": "Bundle", "type": "collection",
        "timestamp": datetime.now(timezone.utc).isoformat(),
        "entry": [{"resource": r} for r in resources]})
    return json_text(json.loads(_json_of(bundle))) + "\n"
