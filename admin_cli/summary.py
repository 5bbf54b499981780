"""The caseworker's summary of one case: what the child said, by life area, newest first.

Built from SQL (finished sessions) plus what is still open in Redis. Every call is a read of a
child's answers, so every call writes the audit log.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from bot.app import App
from flows import engine
from flows.model import Questionnaire
from storage.sql import AnswerRow, _as_utc

# Caseworker-facing, in Swedish: the order areas are shown in, "wants help with" first.
DOMAIN_TITLES = {
    "help": "Vill ha hjälp med",
    "safety": "Trygghet",
    "home": "Hemma och viktiga vuxna",
    "school": "Skolan",
    "friends": "Kompisar och fritid",
    "health": "Hälsa och mående",
    "caseworker": "Kontakten med socialtjänsten",
    "feedback": "Om träffen",
    "general": "Övrigt",
}
STATUS_TITLES = {"completed": "klar", "stopped": "avbruten av barnet",
                 "expired": "inte klar (tiden gick ut)", "invited": "inte påbörjad",
                 "active": "pågår", "paused": "pausad"}
LEVEL_TITLES = {"urgent": "BRÅDSKANDE", "concern": "Oro"}


class SummaryError(LookupError):
    pass


def _iso(dt: Any) -> str | None:
    dt = _as_utc(dt)
    return dt.isoformat() if dt else None


def _label(qn: Questionnaire | None, qid: str, value: Any, skipped: bool) -> str | None:
    """The answer in Swedish, as the child saw it."""
    if skipped:
        return "(hoppade över)"
    if qn is None or not qn.has(qid):
        return None
    q = qn.question(qid)
    if q.type == "yes_no":
        return {"yes": "Ja", "no": "Nej"}.get(value)
    if q.type == "scale" and isinstance(value, int):
        word = q.scale.labels.get(value)
        return f"{value} av {q.scale.max}" + (f" ({word})" if word else "")
    if q.type in ("choice", "multi_choice"):
        ids = value if isinstance(value, list) else [value]
        return ", ".join(q.option(i).text for i in ids if q.option(i))
    return None


def _answer_value(a: AnswerRow) -> Any:
    if a.value_options is not None:
        return list(a.value_options)
    if a.value_option is not None:
        return a.value_option
    if a.value_num is not None:
        return int(a.value_num) if float(a.value_num).is_integer() else a.value_num
    return None


def build(app: App, case_ref: str, actor: str) -> dict:
    child = app.db.child(case_ref)
    if child is None:
        raise SummaryError(f"There is no case '{case_ref}'. A case is made by "
                           f"'tala invite {case_ref} --age N'.")
    app.db.audit(actor, "summary", case_ref)
    sessions = []
    for s, answers in app.db.sessions_for(child.id):
        qn = app.questionnaires.get(s.questionnaire_id)
        rows = []
        for a in answers:
            value = _answer_value(a)
            q = qn.question(a.question_id) if qn and qn.has(a.question_id) else None
            rows.append({
                "question_id": a.question_id,
                "question": q.text if q else None,
                "domain": a.domain,
                "value": value,
                "label": _label(qn, a.question_id, value, a.skipped),
                "text": app.crypto.decrypt(a.text_enc) if a.text_enc else None,
                "skipped": a.skipped,
            })
        sessions.append({
            "id": s.id, "questionnaire": s.questionnaire_id,
            "questionnaire_version": s.questionnaire_version, "status": s.status,
            "language": s.lang, "channel": s.channel, "started_at": _iso(s.started_at),
            "completed_at": _iso(s.completed_at), "answers": rows,
        })
    written = {s["id"] for s in sessions}
    open_sessions = []
    for inv in app.db.invitations(child.id):
        if inv.session_id in written:
            continue
        state = app.store.get(inv.session_id)
        if state is None or state.status in engine.FINISHED:
            continue
        open_sessions.append({
            "id": inv.session_id, "questionnaire": inv.questionnaire_id, "status": state.status,
            "language": state.lang, "channel": inv.channel, "invited_at": _iso(inv.created_at),
            "answered": sum(1 for a in state.answers.values() if not a["skipped"]),
            "waiting_because": state.hold, "delivery": inv.delivery_status,
            "delivery_error": inv.delivery_error,
        })
    alerts = [{
        "id": al.id, "session_id": al.session_id, "question_id": al.question_id,
        "level": al.level, "topic": al.topic, "created_at": _iso(al.created_at),
        "text": app.crypto.decrypt(al.text_enc) if al.text_enc else None,
        "acked_at": _iso(al.acked_at), "acked_by": al.acked_by,
    } for al in app.db.alerts_for(child.id)]
    return {"case": case_ref, "unit": child.unit, "sessions": sessions,
            "open_sessions": open_sessions, "alerts": alerts}


def _scale_bar(value: int, qn: Questionnaire | None, qid: str) -> str:
    if qn is None or not qn.has(qid) or qn.question(qid).scale is None:
        return ""
    sc = qn.question(qid).scale
    filled = value - sc.min + 1
    return "■" * filled + "□" * (sc.max - value) + "  "


def render(app: App, summary: dict) -> Group:
    parts: list[Any] = [Text(f"Sammanfattning: {summary['case']}", style="bold")]
    open_alerts = [a for a in summary["alerts"] if not a["acked_at"]]
    if open_alerts:
        lines = Text()
        for a in open_alerts:
            lines.append(f"{LEVEL_TITLES.get(a['level'], a['level'])}: {a['topic']} "
                         f"(fråga {a['question_id']}, {a['created_at'][:16].replace('T', ' ')})",
                         style="bold red")
            if a["text"]:
                lines.append(f"\n  Barnets ord: \"{a['text']}\"", style="red")
            lines.append("\n")
        parts.append(Panel(lines, title="Viktiga svar", border_style="red"))
    if not summary["sessions"] and not summary["open_sessions"]:
        parts.append(Text("Inga svar än."))
    for s in reversed(summary["sessions"]):
        qn = app.questionnaires.get(s["questionnaire"])
        when = (s["completed_at"] or s["started_at"] or "")[:10]
        head = (f"{qn.title if qn else s['questionnaire']} - {when} - "
                f"{STATUS_TITLES.get(s['status'], s['status'])} - språk: {s['language']}")
        table = Table(show_header=False, box=None, pad_edge=False, expand=False)
        table.add_column(ratio=3)
        table.add_column(ratio=2)
        by_domain: dict[str, list[dict]] = {}
        for a in s["answers"]:
            by_domain.setdefault(a["domain"], []).append(a)
        for domain in sorted(by_domain, key=lambda d: list(DOMAIN_TITLES).index(d)
                             if d in DOMAIN_TITLES else 99):
            table.add_row(Text(DOMAIN_TITLES.get(domain, domain), style="bold underline"), "")
            for a in by_domain[domain]:
                answer = a["label"] or ""
                if isinstance(a["value"], int) and not a["skipped"]:
                    answer = _scale_bar(a["value"], qn, a["question_id"]) + answer
                if a["text"]:
                    answer = f"\"{a['text']}\""
                table.add_row(a["question"] or a["question_id"], answer)
        parts.append(Panel(table, title=head, title_align="left"))
    for o in summary["open_sessions"]:
        line = (f"Öppen inbjudan ({o['questionnaire']}, {o['channel']}): "
                f"{STATUS_TITLES.get(o['status'], o['status'])}, {o['answered']} svar hittills.")
        if o["waiting_because"] == "opted_out":
            line += " Barnet har svarat STOP: inga fler sms skickas förrän barnet skriver START."
        if o["delivery"] in ("undelivered", "failed"):
            line += f" Sms:et kom inte fram ({o['delivery_error'] or o['delivery']})."
        parts.append(Text(line, style="yellow"))
    return Group(*parts)
