"""The reads behind a summary: one case's finished sessions and answers (SQL), what is still
open (Redis), and its alerts, as JSON-ready data (`tala summary --format json`).

Every call of `build` is a read of a child's answers, so every call writes exactly one
audit-log entry, before anything is decrypted.
"""

from __future__ import annotations

from datetime import date

from admin_cli.i18n import _
from admin_cli.labels import answer_label, answer_value, iso
from admin_cli.summary.overtime import over_time
from admin_cli.summary.rules import CompareError, SummaryError, local_day, zone
from bot.app import App
from flows import engine


def _translation(app: App, lang: str) -> str:
    """"source" (Swedish), "reviewed" or "draft": how far the child's questions can be
    trusted to say what the Swedish ones say."""
    cat = app.runtime.catalogs.by_lang.get(lang)
    return cat.review_state if cat else "unknown"


def _outside(day: date | None, since: date | None, until: date | None) -> bool:
    return bool(day and ((since and day < since) or (until and day > until)))


def build(app: App, case_ref: str, actor: str, since: date | None = None,
          until: date | None = None, compare: tuple[str, str] | None = None) -> dict:
    """Everything the caseworker may read about one case, as JSON-ready data.

    since/until keep the sessions (and alerts) whose local date lies in that period, both days
    included; an alert nobody has acknowledged is always kept, and so are open invitations.
    compare=(BEFORE, AFTER) compares those two sessions instead of the latest and the previous
    one: each is a date YYYY-MM-DD (the latest session on or before it) or the start of a
    session id. Raises SummaryError (CompareError for a bad compare) with what to type.
    """
    child = app.db.child(case_ref)
    if child is None:
        raise SummaryError(_("Det finns inget ärende {case}. Ett ärende skapas med "
                             "'tala invite {case} --age N'.").format(case=case_ref))
    if since and until and since > until:
        raise SummaryError(_("--since {since} är efter --until {until}: ge det tidigare datumet "
                             "till --since.").format(since=since, until=until))
    if compare is not None and len(compare) != 2:
        raise CompareError(_("--compare tar två värden: FÖRE EFTER, till exempel "
                             "--compare 2026-01-31 2026-06-30."))
    detail = " ".join(f"{k}={v}" for k, v in (("since", since), ("until", until),
                                             ("compare", compare and ",".join(compare)))
                      if v)
    app.db.audit(actor, "summary", case_ref, detail)  # the one entry for this read
    tz = zone(app.settings.timezone)

    alert_rows = app.db.alerts_for(child.id)
    flagged: dict[tuple[str, str], str] = {}
    for al in alert_rows:
        key = (al.session_id, al.question_id)
        if flagged.get(key) != "urgent":
            flagged[key] = al.level

    sessions = []
    all_written: set[str] = set()
    for s, answers in app.db.sessions_for(child.id):
        all_written.add(s.id)
        day = local_day(s.started_at or s.completed_at, tz)
        if _outside(day, since, until):
            continue
        qn = app.questionnaires.get(s.questionnaire_id)
        rows = []
        for a in answers:
            value = answer_value(a)
            q = qn.question(a.question_id) if qn and qn.has(a.question_id) else None
            rows.append({
                "question_id": a.question_id,
                "question": q.text if q else None,
                "domain": a.domain,
                "value": value,
                "label": answer_label(qn, a.question_id, value, a.skipped),
                "text": app.crypto.decrypt(a.text_enc, a.session_id) if a.text_enc else None,
                "skipped": a.skipped,
                "type": q.type if q else None,
                "scale": {"min": q.scale.min, "max": q.scale.max} if q and q.scale else None,
                "alert": flagged.get((s.id, a.question_id)),
            })
        sessions.append({
            "id": s.id, "questionnaire": s.questionnaire_id,
            "questionnaire_version": s.questionnaire_version, "status": s.status,
            "language": s.lang, "translation": _translation(app, s.lang),
            "channel": s.channel, "started_at": iso(s.started_at),
            "completed_at": iso(s.completed_at), "date": day.isoformat() if day else None,
            "answers": rows,
        })
    open_sessions = []
    invitations = app.db.invitations(child.id)
    qn_of = {inv.session_id: inv.questionnaire_id for inv in invitations}
    for inv in invitations:
        if inv.session_id in all_written:
            continue
        state = app.store.get(inv.session_id)
        if state is None or state.status in engine.FINISHED:
            continue
        open_sessions.append({
            "id": inv.session_id, "questionnaire": inv.questionnaire_id, "status": state.status,
            "language": state.lang, "channel": inv.channel, "invited_at": iso(inv.created_at),
            "answered": sum(1 for a in state.answers.values() if not a["skipped"]),
            "waiting_because": state.hold, "delivery": inv.delivery_status,
            "delivery_error": inv.delivery_error,
        })
    alerts = []
    for al in alert_rows:
        in_period = not _outside(local_day(al.created_at, tz), since, until)
        if not in_period and al.acked_at is not None:
            continue
        qn = app.questionnaires.get(qn_of.get(al.session_id, ""))
        alerts.append({
            "id": al.id, "session_id": al.session_id, "question_id": al.question_id,
            "level": al.level, "topic": al.topic, "created_at": iso(al.created_at),
            "text": app.crypto.decrypt(al.text_enc, al.session_id) if al.text_enc else None,
            "acked_at": iso(al.acked_at), "acked_by": al.acked_by,
            "question": qn.question(al.question_id).text
            if qn and qn.has(al.question_id) else None,
            "in_period": in_period,
        })
    return {"case": case_ref, "unit": child.unit, "sessions": sessions,
            "open_sessions": open_sessions, "alerts": alerts,
            "period": {"since": since.isoformat() if since else None,
                       "until": until.isoformat() if until else None},
            "over_time": over_time(sessions, compare, case_ref)}
