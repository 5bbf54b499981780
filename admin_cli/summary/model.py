"""What a summary says, as plain data every renderer lays out alike (text, HTML, PNG): the
case and its sessions, what the child wants help with from every session, the important
answers, each life area with every session's answers and the scale answers over time.

`make(app, data)` turns `queries.build`'s JSON-ready data into a `Summary`; every title in it
is already in the staff language, and the child's words are exactly as the child wrote them
(each renderer makes them safe for its medium).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from admin_cli.i18n import _, ngettext
from admin_cli.labels import (CHANGE_WORDS, DOMAIN_TITLES, LEVEL_TITLES, OUTSIDE_QUESTIONS,
                              STATUS_TITLES, TOPIC_TITLES, domain_order, title)
from admin_cli.summary.rules import (clock_time, date_and_time, language_note, local,
                                     sv_date, threshold_rule_sv, zone)
from bot.app import App


@dataclass
class Session:
    id: str
    number: int          # 1 for the oldest session in the summary
    day: str             # YYYY-MM-DD, local
    when: str            # "2 mars 2026", or "2 mars 2026 kl. 16.00" when a day has two
    axis: str            # the short label under a chart, unique within the summary
    questionnaire: str
    title: str
    status: str
    language: str
    short_id: str


@dataclass
class Answer:
    question_id: str
    question: str
    domain: str
    label: str           # the answer as the child saw it ('' for free text)
    text: str | None     # the child's own words
    skipped: bool
    alert: str | None    # the alert level this answer raised
    alert_title: str
    value: Any
    scale: dict | None
    type: str | None


@dataclass
class Wish:
    session: Session
    items: list[str]
    words: list[tuple[str, str]]   # (question, the child's words)
    skipped: bool


@dataclass
class Alert:
    level: str
    level_title: str
    topic: str           # "Barnet känner sig inte trygg där hen bor"
    question: str
    answer: str | None
    words: str | None
    followups: list[tuple[str, str]]
    when: str
    handled: str | None  # "Hanterat 3 juni 2026 kl. 09.00 av anna"; None: not yet
    in_period: bool
    session: Session | None


@dataclass
class TrendRow:
    question: str
    scale: str                       # "1–5"
    values: dict[str, float]         # session id -> value
    change: str | None               # "bättre (3 → 4)"; None: cannot be compared
    change_word: str | None          # better / worse / unchanged (a style)


@dataclass
class Area:
    domain: str
    title: str
    sessions: list[tuple[Session, list[Answer]]]   # newest first
    trend: list[TrendRow] = field(default_factory=list)


@dataclass
class Summary:
    case: str
    unit: str | None
    facts: list[tuple[str, str]]     # (heading, value) for the top of every rendering
    sessions: list[Session]          # oldest first
    wishes: list[Wish]               # newest first, one per session that asked
    alerts: list[Alert]              # open first, urgent first
    notes: list[tuple[str, str]]     # (the child's words after the end, when)
    areas: list[Area]
    open_sessions: list[str]
    columns: list[tuple[Session, str]]   # the sessions in the trend tables, with their mark
    compare_sentence: str
    rule: str
    mode: str
    data: dict                       # what it was made from (the charts read over_time)


def _sessions(data: dict, tz) -> list[Session]:
    rows = data["sessions"]
    starts = [local(s["started_at"] or s["completed_at"], tz) for s in rows]
    days = [s.get("date") or "" for s in rows]
    out = []
    for i, (s, start, day) in enumerate(zip(rows, starts, days, strict=True)):
        same_day = [j for j, d in enumerate(days) if d == day]
        when = sv_date(day)
        axis = "\n".join(sv_date(day, short=True).rsplit(" ", 1)) if day else "?"
        if len(same_day) > 1 and start is not None:
            when += " " + clock_time(start)
            axis += " " + clock_time(start)
            same_minute = [j for j in same_day if starts[j] is not None
                           and f"{starts[j]:%H%M}" == f"{start:%H%M}"]
            if len(same_minute) > 1:
                axis += f" ({same_minute.index(i) + 1})"
                when += f" ({same_minute.index(i) + 1})"
        out.append(Session(s["id"], i + 1, day, when, axis, s["questionnaire"], "",
                           title(STATUS_TITLES, s["status"]),
                           language_note(s["language"], s["translation"]), s["id"][:8]))
    return out


def _answer(a: dict) -> Answer:
    level = a.get("alert")
    return Answer(a["question_id"], a["question"] or a["question_id"], a["domain"],
                  a["label"] or "", a["text"], a["skipped"], level,
                  title(LEVEL_TITLES, level) if level else "", a["value"], a.get("scale"),
                  a.get("type"))


def followup_words(app: App, data: dict, alert: dict) -> list[tuple[str, str]]:
    """What the child wrote in the follow-up questions right after the answer that raised the
    alert (same session): (question, text)."""
    session = next((s for s in data["sessions"] if s["id"] == alert["session_id"]), None)
    qn = app.questionnaires.get(session["questionnaire"]) if session else None
    if session is None or qn is None or not qn.has(alert["question_id"]):
        return []
    ids = [q.id for q in qn.questions]
    followups = set()
    for q in qn.questions[ids.index(alert["question_id"]) + 1:]:
        if not q.followup:
            break
        followups.add(q.id)
    return [(a["question"] or a["question_id"], a["text"]) for a in session["answers"]
            if a["question_id"] in followups and a["text"]]


def _alert_question(app: App, data: dict, alert: dict) -> str:
    if alert.get("question"):
        return alert["question"]
    qn_id = next((s["questionnaire"] for s in data["sessions"] + data["open_sessions"]
                  if s["id"] == alert["session_id"]), None)
    qn = app.questionnaires.get(qn_id) if qn_id else None
    if qn and qn.has(alert["question_id"]):
        return qn.question(alert["question_id"]).text
    return title(OUTSIDE_QUESTIONS, alert["question_id"])


def _alert_answer(data: dict, alert: dict) -> str | None:
    for s in data["sessions"]:
        if s["id"] == alert["session_id"]:
            for a in s["answers"]:
                if a["question_id"] == alert["question_id"]:
                    return a["label"]
    return None


def _alerts(app: App, data: dict, tz, by_id: dict[str, Session]) -> list[Alert]:
    out = []
    shown = [a for a in data["alerts"] if a["level"] != "note"]
    for al in sorted(shown, key=lambda x: (x["acked_at"] is not None, x["level"] != "urgent",
                                           x["created_at"] or "")):
        handled = None
        if al["acked_at"]:
            handled = _("Hanterat {when}").format(when=date_and_time(al["acked_at"], tz))
            if al["acked_by"]:
                handled += " " + _("av {name}").format(name=al["acked_by"])
        out.append(Alert(
            al["level"], title(LEVEL_TITLES, al["level"]),
            _("Barnet {topic}").format(topic=title(TOPIC_TITLES, al["topic"])),
            _alert_question(app, data, al), _alert_answer(data, al), al["text"],
            followup_words(app, data, al), date_and_time(al["created_at"], tz), handled,
            al.get("in_period", True), by_id.get(al["session_id"])))
    return out


def _wishes(data: dict, sessions: list[Session]) -> list[Wish]:
    out = []
    for s, info in zip(reversed(data["sessions"]), reversed(sessions), strict=True):
        rows = [a for a in s["answers"] if a["domain"] == "help"]
        if not rows:
            continue
        items: list[str] = []
        words = []
        for a in rows:
            if a["skipped"]:
                continue
            if a["label"] and a["type"] == "multi_choice":
                items += [part for part in a["label"].split(", ") if part]
            elif a["label"]:
                items.append(a["label"])
            if a["text"]:
                words.append((a["question"] or a["question_id"], a["text"]))
        out.append(Wish(info, items, words, not items and not words))
    return out


def _trend(questions: list[dict]) -> list[TrendRow]:
    rows = []
    for q in questions:
        ch = q.get("change")
        phrase = (f"{title(CHANGE_WORDS, ch['word'])} "
                  f"({ch['before']['value']:g} → {ch['after']['value']:g})" if ch else None)
        rows.append(TrendRow(q["question"] or q["question_id"],
                             f"{q['scale']['min']}–{q['scale']['max']}",
                             {p["session_id"]: p["value"] for p in q["series"]}, phrase,
                             ch["word"] if ch else None))
    return rows


def _compare_sentence(data: dict) -> str:
    ot = data.get("over_time") or {}
    found = ot.get("pairs") or []
    if not found:
        return ""
    p = found[0]
    b, a = sv_date(p["before"]["date"]), sv_date(p["after"]["date"])
    if ot.get("mode") == "compare":
        return _("Jämförelse: före ({before}) och efter ({after}).").format(before=b, after=a)
    return _("Jämförelse: senaste tillfället ({after}) och det förra ({before}).").format(
        before=b, after=a)


def _facts(app: App, data: dict, sessions: list[Session]) -> list[tuple[str, str]]:
    facts = [(_("Ärende"), data["case"])]
    if data.get("unit"):
        facts.append((_("Enhet"), data["unit"]))
    latest = max((s.day for s in sessions if s.day), default=None)
    facts.append((_("Senaste tillfälle"), sv_date(latest) if latest else _("inget än")))
    if sessions:
        n = len(sessions)
        first, last = sessions[0].day, sessions[-1].day
        span = sv_date(first) if first == last else f"{sv_date(first)} – {sv_date(last)}"
        facts.append((_("Tillfällen"), ngettext("{n} tillfälle ({span})",
                                                "{n} tillfällen ({span})", n).format(
            n=n, span=span)))
    period = data.get("period") or {}
    if period.get("since") or period.get("until"):
        # Outside the f-string: Babel's extractor does not look inside one on Python 3.11.
        since = sv_date(period.get("since")) or _("från början")
        until = sv_date(period.get("until")) or _("i dag")
        facts.append((_("Period"), f"{since} – {until}"))
    return facts


def _open_line(o: dict) -> str:
    line = _("Öppen inbjudan ({questionnaire}, {channel}): {status}, {n} svar hittills.").format(
        questionnaire=o["questionnaire"], channel=o["channel"],
        status=title(STATUS_TITLES, o["status"]), n=o["answered"])
    if o["waiting_because"] == "opted_out":
        line += " " + _("Barnet har svarat STOP: inga fler sms skickas förrän barnet skriver "
                        "START.")
    from bot.fallback import went_by_sms

    if went_by_sms(o["delivery_error"]):
        line += " " + _("WhatsApp kunde inte ta emot allt, så det skickades som sms i stället.")
    if o["delivery"] in ("undelivered", "failed"):
        line += " " + _("Sms:et kom inte fram ({why}).").format(
            why=o["delivery_error"] or o["delivery"])
    return line


def make(app: App, data: dict) -> Summary:
    """The summary to render, from queries.build's data."""
    tz = zone(app.settings.timezone)
    sessions = _sessions(data, tz)
    for s in sessions:
        qn = app.questionnaires.get(s.questionnaire)
        s.title = qn.title if qn else s.questionnaire
    by_id = {s.id: s for s in sessions}
    areas: dict[str, Area] = {}
    for raw, info in zip(reversed(data["sessions"]), reversed(sessions), strict=True):
        by_domain: dict[str, list[Answer]] = {}
        for a in raw["answers"]:
            if a["domain"] != "help":
                by_domain.setdefault(a["domain"], []).append(_answer(a))
        for domain, answers in by_domain.items():
            areas.setdefault(domain, Area(domain, title(DOMAIN_TITLES, domain), []))
            areas[domain].sessions.append((info, answers))
    ot = data.get("over_time") or {}
    by_domain_q: dict[str, list[dict]] = {}
    for q in ot.get("questions", []):
        by_domain_q.setdefault(q["domain"], []).append(q)
    for domain, qs in by_domain_q.items():
        areas.setdefault(domain, Area(domain, title(DOMAIN_TITLES, domain), []))
        areas[domain].trend = _trend(qs)
    names = (_("före"), _("efter")) if ot.get("mode") == "compare" else (_("förra"),
                                                                        _("senast"))
    marks = {p[k]["session_id"]: name for p in ot.get("pairs", [])
             for k, name in zip(("before", "after"), names, strict=True)}
    in_trend = {p["session_id"] for q in ot.get("questions", []) for p in q["series"]}
    notes = [(a["text"], date_and_time(a["created_at"], tz)) for a in data["alerts"]
             if a["level"] == "note" and a["text"]]
    return Summary(
        data["case"], data.get("unit"), _facts(app, data, sessions), sessions,
        _wishes(data, sessions), _alerts(app, data, tz, by_id), notes,
        [areas[d] for d in sorted(areas, key=domain_order)],
        [_open_line(o) for o in data["open_sessions"]],
        [(s, marks.get(s.id, "")) for s in sessions if s.id in in_trend],
        _compare_sentence(data), threshold_rule_sv(), ot.get("mode", "latest"), data)


def printed_today(app: App) -> str:
    return sv_date(datetime.now(zone(app.settings.timezone)).date())
