"""The caseworker's summary of one case: what the child said, by life area, and how the child's
answers have moved over time.

Built from SQL (finished sessions) plus what is still open in Redis. Every call of `build` is a
read of a child's answers, so every call writes exactly one audit-log entry.

`build` returns plain JSON-ready data; the renderers only lay it out:
- `render_text` (alias `render`): Rich, for the terminal;
- `render_html`: one self-contained HTML file (inline CSS and inline SVG charts, nothing fetched
  from the network), laid out to print on A4;
- `render_png`: one picture of the scale answers over time, to paste into a case file.
"""

from __future__ import annotations

import html
import math
import re
from datetime import date, datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from admin_cli.labels import (CHANGE_WORDS, DOMAIN_TITLES, LEVEL_TITLES, OUTSIDE_QUESTIONS,
                              STATUS_TITLES, TOPIC_TITLES, answer_label, answer_value,
                              domain_order, iso)
from admin_cli.safe import shown_all
from bot.app import App
from flows import engine
from flows.model import Questionnaire
from storage.sql import as_utc


CHANGE_THRESHOLD = Fraction(1, 5)
"""When an answer on a scale counts as changed: the difference between two sessions must be at
least one fifth (20 %) of the scale's range, rounded up to whole steps. That is 1 step on a 1-5
scale and 2 steps on a 0-10 scale. A smaller difference is called "unchanged" ("ingen tydlig
förändring"): a child's answer moves a little from day to day, and one step on a 0-10 scale is
not something to act on. On every tala scale a higher number is better, so a rise is "better"
and a fall "worse". This is our own rule of thumb for reading one child's answers, not a
validated clinical cut-off."""

MAX_POINTS_TEXT = 8  # the terminal shows at most this many of the latest values per question
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class SummaryError(LookupError):
    pass


class CompareError(SummaryError):
    """--compare named something that is not a session of this case; the message says what to
    type instead."""


# --------------------------------------------------------------------------- small helpers


def threshold_steps(lo: int, hi: int) -> int:
    """How many steps an answer must move on the scale lo-hi to count as a change."""
    return max(1, math.ceil(CHANGE_THRESHOLD * (hi - lo)))


def change_word(before: float, after: float, lo: int, hi: int) -> str:
    """"better", "worse" or "unchanged" (see CHANGE_THRESHOLD)."""
    diff = after - before
    if abs(diff) < threshold_steps(lo, hi):
        return "unchanged"
    return "better" if diff > 0 else "worse"


def change_phrase(change: dict) -> str:
    """The change in Swedish with the two answers it compares: "sämre (4 → 2)"."""
    b, a = change["before"]["value"], change["after"]["value"]
    return f"{CHANGE_WORDS[change['word']]} ({b:g} → {a:g})"


def threshold_rule_sv() -> str:
    """The threshold in one Swedish sentence, for everything a caseworker reads."""
    pct = int(CHANGE_THRESHOLD * 100)
    return (f"En förändring räknas först när svaret har flyttat minst {pct} % av skalan: "
            f"{threshold_steps(1, 5)} steg på skalan 1–5, {threshold_steps(0, 10)} steg på "
            "0–10. Mindre skillnader kallas ”ingen tydlig förändring”. Högre siffra är bättre.")


def _tz(app: App) -> ZoneInfo:
    try:
        return ZoneInfo(app.settings.timezone)
    except Exception:  # a wrong TALA_TIMEZONE must not hide a child's answers
        return ZoneInfo("Europe/Stockholm")


def _local_day(dt: datetime | str | None, tz: ZoneInfo) -> date | None:
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    dt = as_utc(dt)
    return dt.astimezone(tz).date() if dt else None


def sv_date(day: str | date | None, short: bool = False) -> str:
    """2 mars 2026 (or 2 mars 2026 / 2 sep. 2026 with short=True); '' for None."""
    if not day:
        return ""
    if isinstance(day, str):
        day = date.fromisoformat(day[:10])
    return format_date(day, "d MMM y" if short else "d MMMM y", locale="sv")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# --------------------------------------------------------------------------- build


def _translation(app: App, lang: str) -> str:
    """"source" (Swedish), "reviewed" or "draft": how far the child's questions can be
    trusted to say what the Swedish ones say."""
    cat = app.runtime.catalogs.by_lang.get(lang)
    return cat.review_state if cat else "unknown"


def language_note(lang: str, translation: str) -> str:
    """The language the child answered in, for the caseworker, in Swedish."""
    from babel import Locale

    name = Locale.parse(lang).get_display_name("sv") or lang
    if translation == "source":
        return f"språk: {name}"
    if translation == "reviewed":
        return f"språk: {name} (granskad översättning)"
    return f"språk: {name} (översättningen är ett utkast, inte granskad)"


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
        raise SummaryError(f"There is no case '{case_ref}'. A case is made by "
                           f"'tala invite {case_ref} --age N'.")
    if since and until and since > until:
        raise SummaryError(f"--since {since} is after --until {until}: give the earlier date "
                           "to --since.")
    if compare is not None and len(compare) != 2:
        raise CompareError("--compare takes two values: BEFORE AFTER, for example "
                           "--compare 2026-01-31 2026-06-30.")
    detail = " ".join(f"{k}={v}" for k, v in (("since", since), ("until", until),
                                             ("compare", compare and ",".join(compare)))
                      if v)
    app.db.audit(actor, "summary", case_ref, detail)  # the one entry for this read
    tz = _tz(app)

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
        day = _local_day(s.started_at or s.completed_at, tz)
        if (since and day and day < since) or (until and day and day > until):
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
        day = _local_day(al.created_at, tz)
        in_period = not ((since and day and day < since) or (until and day and day > until))
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
            "over_time": _over_time(sessions, compare, case_ref)}


def _session_list(sessions: list[dict]) -> str:
    return "; ".join(f"{s['date']} {s['id'][:8]} ({s['questionnaire']})" for s in sessions)


def _resolve(ref: str, which: str, sessions: list[dict], case_ref: str) -> tuple[str, Any]:
    """('date', date) or ('session', session dict); CompareError when it matches nothing."""
    ref = ref.strip()
    howto = ("Type a date as YYYY-MM-DD (the latest session on or before that day is used) or "
             "the start of a session id")
    listing = (f"Sessions of {case_ref} in this summary: {_session_list(sessions)}."
               if sessions else f"{case_ref} has no finished sessions in this summary.")
    if _DATE.match(ref):
        try:
            day = date.fromisoformat(ref)
        except ValueError:
            raise CompareError(f"--compare {which} '{ref}' is not a real date. {howto}. "
                               f"{listing}") from None
        if not any(s["date"] and s["date"] <= ref for s in sessions):
            raise CompareError(f"--compare {which} {ref}: there is no session on or before that "
                               f"day. {howto}. {listing}")
        return "date", day
    prefix = ref.lower()
    found = [s for s in sessions if prefix and s["id"].startswith(prefix)]
    if not found:
        raise CompareError(f"--compare {which} '{ref}' matches no session. {howto}. {listing}")
    if len(found) > 1:
        raise CompareError(f"--compare {which} '{ref}' matches {len(found)} sessions: type more "
                           f"of the id. {_session_list(found)}.")
    return "session", found[0]


def _pairs(sessions: list[dict], compare: tuple[str, str] | None,
           case_ref: str) -> list[tuple[dict, dict]]:
    """(before, after) per questionnaire: the previous and latest session, or what compare
    names."""
    by_qn: dict[str, list[dict]] = {}
    for s in sessions:  # already oldest first
        by_qn.setdefault(s["questionnaire"], []).append(s)
    if compare is None:
        return [(ss[-2], ss[-1]) for ss in by_qn.values() if len(ss) >= 2]
    before = _resolve(compare[0], "BEFORE", sessions, case_ref)
    after = _resolve(compare[1], "AFTER", sessions, case_ref)
    fixed = {r[1]["questionnaire"] for r in (before, after) if r[0] == "session"}
    if len(fixed) > 1:
        raise CompareError("--compare: the two sessions are from different questionnaires "
                           f"({', '.join(sorted(fixed))}), so their answers cannot be compared. "
                           f"Sessions: {_session_list(sessions)}.")

    def pick(r: tuple[str, Any], ss: list[dict]) -> dict | None:
        if r[0] == "session":
            return r[1]
        day = r[1].isoformat()
        on_or_before = [s for s in ss if s["date"] and s["date"] <= day]
        return on_or_before[-1] if on_or_before else None

    out = []
    for qid, ss in by_qn.items():
        if fixed and qid not in fixed:
            continue
        b, a = pick(before, ss), pick(after, ss)
        if b is None or a is None or b["id"] == a["id"]:
            continue
        if (b["started_at"] or "") > (a["started_at"] or ""):
            raise CompareError(f"--compare: BEFORE ({b['date']}, {b['id'][:8]}) is later than "
                               f"AFTER ({a['date']}, {a['id'][:8]}): give the earlier one "
                               "first, as --compare BEFORE AFTER.")
        out.append((b, a))
    if not out:
        raise CompareError(f"--compare {compare[0]} {compare[1]}: both point at the same "
                           "session, so there is nothing to compare. Pick a BEFORE with a session "
                           f"of its own. Sessions: {_session_list(sessions)}.")
    return out


def _over_time(sessions: list[dict], compare: tuple[str, str] | None, case_ref: str) -> dict:
    """Scale answers matched across sessions by (questionnaire, question id): a series per
    question answered in more than one session, and the change between the pair compared.

    Questionnaire versions are matched by question id; the scale is the one the questionnaire
    has now, and a value outside it (the scale was changed) is left out of the series."""
    pairs = _pairs(sessions, compare, case_ref)
    pair_of = {b["questionnaire"]: (b, a) for b, a in pairs}
    series: dict[tuple[str, str], dict] = {}
    for s in sessions:
        for i, a in enumerate(s["answers"]):
            sc = a.get("scale")
            if a["skipped"] or not sc or not _is_number(a["value"]):
                continue
            if not sc["min"] <= a["value"] <= sc["max"]:
                continue
            item = series.setdefault((s["questionnaire"], a["question_id"]), {
                "questionnaire": s["questionnaire"], "question_id": a["question_id"],
                "question": a["question"], "domain": a["domain"], "scale": dict(sc),
                "threshold": threshold_steps(sc["min"], sc["max"]), "order": i,
                "series": []})
            item["series"].append({"session_id": s["id"], "date": s["date"],
                                   "value": a["value"]})
    questions = []
    for item in series.values():
        if len(item["series"]) < 2:
            continue
        item["change"] = None
        if item["questionnaire"] in pair_of:
            b, a = pair_of[item["questionnaire"]]
            pb = next((p for p in item["series"] if p["session_id"] == b["id"]), None)
            pa = next((p for p in item["series"] if p["session_id"] == a["id"]), None)
            if pb and pa:
                sc = item["scale"]
                item["change"] = {
                    "before": pb, "after": pa, "difference": pa["value"] - pb["value"],
                    "word": change_word(pb["value"], pa["value"], sc["min"], sc["max"])}
        questions.append(item)
    questions.sort(key=lambda q: (domain_order(q["domain"]), q["questionnaire"], q["order"]))
    for q in questions:
        del q["order"]
    return {
        "mode": "compare" if compare else "latest",
        "compare": {"before": compare[0], "after": compare[1]} if compare else None,
        "threshold": {"share_of_range": float(CHANGE_THRESHOLD),
                      "steps_1_5": threshold_steps(1, 5), "steps_0_10": threshold_steps(0, 10)},
        "pairs": [{"questionnaire": b["questionnaire"],
                   "before": {"session_id": b["id"], "date": b["date"]},
                   "after": {"session_id": a["id"], "date": a["date"]}} for b, a in pairs],
        "questions": questions,
    }


# --------------------------------------------------------------------------- shared by renderers


def _session_day(s: dict) -> str:
    return s.get("date") or (s["completed_at"] or s["started_at"] or "")[:10]


def latest_session_date(data: dict) -> str | None:
    days = [_session_day(s) for s in data["sessions"] if _session_day(s)]
    return max(days) if days else None


def _latest_per_questionnaire(data: dict) -> list[dict]:
    latest: dict[str, dict] = {}
    for s in data["sessions"]:
        latest[s["questionnaire"]] = s  # oldest first, so the last one wins
    return sorted(latest.values(), key=_session_day, reverse=True)


def _compare_sentence(data: dict) -> str:
    ot = data.get("over_time") or {}
    pairs = ot.get("pairs") or []
    if not pairs:
        return ""
    p = pairs[0]
    b, a = sv_date(p["before"]["date"]), sv_date(p["after"]["date"])
    if ot.get("mode") == "compare":
        return f"Jämförelse: före ({b}) och efter ({a})."
    return f"Jämförelse: senaste tillfället ({a}) och det förra ({b})."


def _alert_question(app: App, data: dict, alert: dict) -> str:
    if alert.get("question"):
        return alert["question"]
    qn_id = next((s["questionnaire"] for s in data["sessions"] + data["open_sessions"]
                  if s["id"] == alert["session_id"]), None)
    qn = app.questionnaires.get(qn_id) if qn_id else None
    if qn and qn.has(alert["question_id"]):
        return qn.question(alert["question_id"]).text
    return OUTSIDE_QUESTIONS.get(alert["question_id"], alert["question_id"])


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


def _alert_answer(data: dict, alert: dict) -> str | None:
    for s in data["sessions"]:
        if s["id"] == alert["session_id"]:
            for a in s["answers"]:
                if a["question_id"] == alert["question_id"]:
                    return a["label"]
    return None


def _local_time(app: App, iso: str | None) -> str:
    if not iso:
        return ""
    dt = datetime.fromisoformat(iso)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    local = dt.astimezone(_tz(app))
    return f"{sv_date(local.date())} kl. {local:%H.%M}"


# --------------------------------------------------------------------------- terminal (Rich)


def _scale_bar(value: int, qn: Questionnaire | None, qid: str) -> str:
    if qn is None or not qn.has(qid) or qn.question(qid).scale is None:
        return ""
    sc = qn.question(qid).scale
    filled = value - sc.min + 1
    return "■" * filled + "□" * (sc.max - value) + "  "


_SPARKS = "▁▂▃▄▅▆▇█"
_CHANGE_STYLE = {"better": "bold green", "worse": "bold red", "unchanged": "dim"}


def _spark(values: list[float], lo: int, hi: int) -> str:
    return "".join(_SPARKS[round((v - lo) / (hi - lo) * (len(_SPARKS) - 1))] for v in values)


def _change_text(change: dict | None) -> Text:
    if change is None:
        return Text("inte besvarad båda gångerna", style="dim")
    return Text(change_phrase(change), style=_CHANGE_STYLE[change["word"]])


def _over_time_panel(data: dict) -> Panel | None:
    ot = data.get("over_time") or {}
    if not ot.get("questions"):
        return None
    table = Table(show_header=False, box=None, pad_edge=False, expand=False)
    table.add_column(ratio=4)
    table.add_column(no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=2)
    domain = None
    for q in ot["questions"]:
        if q["domain"] != domain:
            domain = q["domain"]
            table.add_row(Text(DOMAIN_TITLES.get(domain, domain), style="bold underline"),
                          "", "", "")
        pts = q["series"][-MAX_POINTS_TEXT:]
        values = [p["value"] for p in pts]
        shown = ("… " if len(q["series"]) > len(pts) else "") + " ".join(f"{v:g}" for v in values)
        sc = q["scale"]
        table.add_row(q["question"] or q["question_id"], shown + "  ",
                      _spark(values, sc["min"], sc["max"]) + f"  ({sc['min']}–{sc['max']})  ",
                      _change_text(q["change"]))
    first = min(p["date"] for q in ot["questions"] for p in q["series"] if p["date"])
    last = max(p["date"] for q in ot["questions"] for p in q["series"] if p["date"])
    notes = Text(f"\n{_compare_sentence(data)} {threshold_rule_sv()}", style="dim")
    return Panel(Group(table, notes), title=f"Över tid: {sv_date(first)} – {sv_date(last)}",
                 title_align="left", border_style="cyan")


def render_text(app: App, summary: dict) -> Group:
    """The summary for the terminal: alerts first, the answers over time, then each session
    (newest first) by life area. Every text in it is made terminal-safe first (admin_cli/safe.py):
    a child's words cannot act on the caseworker's terminal."""
    summary = shown_all(summary)
    parts: list[Any] = [Text(f"Sammanfattning: {summary['case']}", style="bold")]
    period = summary.get("period") or {}
    if period.get("since") or period.get("until"):
        parts.append(Text(f"Period: {sv_date(period.get('since')) or 'från början'} – "
                          f"{sv_date(period.get('until')) or 'i dag'}", style="dim"))
    open_alerts = [a for a in summary["alerts"] if not a["acked_at"] and a["level"] != "note"]
    if open_alerts:
        lines = Text()
        for a in open_alerts:
            topic = TOPIC_TITLES.get(a["topic"], a["topic"])
            lines.append(f"{LEVEL_TITLES.get(a['level'], a['level'])}: {topic} "
                         f"({_local_time(app, a['created_at'])})", style="bold red")
            lines.append(f"\n  Fråga: {_alert_question(app, summary, a)}"
                         + (f" – svar: {_alert_answer(summary, a)}"
                            if _alert_answer(summary, a) else ""), style="red")
            if a["text"]:
                lines.append(f"\n  Barnets ord: \"{a['text']}\"", style="red")
            for _question, text in followup_words(app, summary, a):
                lines.append(f"\n  Barnets ord efteråt: \"{text}\"", style="red")
            lines.append("\n")
        lines.rstrip()
        parts.append(Panel(lines, title="Viktiga svar", border_style="red"))
    notes = [a for a in summary["alerts"] if a["level"] == "note" and a["text"]]
    if notes:
        parts.append(Text("Barnet skrev efter sista frågan: " + ", ".join(
            f"\"{a['text']}\" ({_local_time(app, a['created_at'])})" for a in notes)))
    if not summary["sessions"] and not summary["open_sessions"]:
        parts.append(Text("Inga svar än."))
    over_time = _over_time_panel(summary)
    if over_time is not None:
        parts.append(over_time)
    for s in reversed(summary["sessions"]):
        qn = app.questionnaires.get(s["questionnaire"])
        head = (f"{qn.title if qn else s['questionnaire']} - {sv_date(_session_day(s))} - "
                f"{STATUS_TITLES.get(s['status'], s['status'])} - "
                f"{language_note(s['language'], s['translation'])} - id {s['id'][:8]}")
        table = Table(show_header=False, box=None, pad_edge=False, expand=False)
        table.add_column(ratio=3)
        table.add_column(ratio=2)
        by_domain: dict[str, list[dict]] = {}
        for a in s["answers"]:
            by_domain.setdefault(a["domain"], []).append(a)
        for domain in sorted(by_domain, key=domain_order):
            table.add_row(Text(DOMAIN_TITLES.get(domain, domain), style="bold underline"), "")
            for a in by_domain[domain]:
                answer = a["label"] or ""
                if isinstance(a["value"], int) and not a["skipped"]:
                    answer = _scale_bar(a["value"], qn, a["question_id"]) + answer
                if a["text"]:
                    answer = f"\"{a['text']}\""
                cell = Text(answer)
                if a.get("alert"):
                    cell = Text(f"{answer}  ⚠ viktigt svar", style="bold red")
                table.add_row(a["question"] or a["question_id"], cell)
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


render = render_text  # the name admin_cli.main and `tala demo` call


# --------------------------------------------------------------------------- HTML

_CSS = """
:root { --ink:#1a1a1a; --muted:#5b5b5b; --line:#d6d6d6; --red:#b00020; --redbg:#fdecee;
  --amber:#8a5300; --amberbg:#fff4e0; --green:#1b6e3a; --blue:#0b4f8a; }
* { box-sizing: border-box; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
html { background: #f3f3f3; }
body { font-family: "Segoe UI", Calibri, "Helvetica Neue", Arial, sans-serif; color: var(--ink);
  font-size: 11pt; line-height: 1.45; max-width: 185mm; margin: 0 auto; padding: 12mm 12mm;
  background: #fff; }
h1 { font-size: 19pt; margin: 0 0 2mm; }
h2 { font-size: 14pt; margin: 7mm 0 2mm; padding-bottom: 1mm; border-bottom: 2px solid var(--ink);
  break-after: avoid; page-break-after: avoid; }
h3 { font-size: 11pt; margin: 4mm 0 1.5mm; color: var(--muted); font-weight: 600;
  break-after: avoid; page-break-after: avoid; }
.meta { margin: 0; color: var(--muted); }
.meta b { color: var(--ink); font-weight: 600; }
.secret { display: inline-block; margin: 2mm 0 0; padding: 0.5mm 2mm; border: 1px solid var(--ink);
  font-size: 9pt; text-transform: uppercase; letter-spacing: 0.04em; }
.box { border: 1px solid var(--line); border-radius: 2mm; padding: 3mm 4mm; margin: 2mm 0;
  break-inside: avoid; page-break-inside: avoid; }
.help { border: 2px solid var(--blue); background: #eef5fc; }
.help ul { margin: 0 0 1mm; padding-left: 6mm; font-size: 12pt; }
.help .words { margin: 2mm 0 0; color: var(--muted); font-size: 9.5pt; }
.alert { border: 2px solid var(--red); background: var(--redbg); }
.alert.concern { border-color: var(--amber); background: var(--amberbg); }
.badge { display: inline-block; font-weight: 700; font-size: 9pt; padding: 0.3mm 1.6mm;
  border-radius: 1mm; color: #fff; background: var(--red); margin-right: 1.5mm; }
.concern .badge, .badge.concern { background: var(--amber); }
.alert .what { font-weight: 700; }
.alert .then { margin-top: 1.5mm; font-size: 9.5pt; color: var(--muted); }
.alert .state { font-size: 9.5pt; color: var(--muted); }
.alert .state.open { color: var(--red); font-weight: 700; }
.qa { display: grid; grid-template-columns: 1fr 0.9fr; gap: 0 5mm; padding: 1.3mm 0;
  border-bottom: 1px solid var(--line); break-inside: avoid; page-break-inside: avoid; }
.qa:last-child { border-bottom: 0; }
.qa .q { color: var(--ink); }
.qa .a { font-weight: 600; }
.qa.flag { border-left: 4px solid var(--red); padding-left: 2mm; background: var(--redbg); }
.qa.flag.concern { border-left-color: var(--amber); background: var(--amberbg); }
.skipped { color: var(--muted); font-weight: 400; font-style: italic; }
.dots { letter-spacing: 0.08em; color: var(--blue); margin-right: 1.5mm; white-space: nowrap; }
blockquote { margin: 1mm 0 0; padding: 1.5mm 3mm; border-left: 3px solid var(--blue);
  background: #f5f8fb; font-style: italic; font-weight: 400; white-space: pre-wrap; }
.qa blockquote { grid-column: 1 / -1; }
figure { margin: 2mm 0 1mm; break-inside: avoid; page-break-inside: avoid; }
figure svg { width: 100%; height: auto; display: block; }
figcaption { font-size: 9pt; color: var(--muted); }
table.trend { width: 100%; border-collapse: collapse; font-size: 9.5pt; margin: 1mm 0 2mm;
  break-inside: avoid; page-break-inside: avoid; }
.trend th, .trend td { border-bottom: 1px solid var(--line); padding: 1mm 1.5mm; text-align: left;
  vertical-align: top; }
.trend th { font-weight: 600; color: var(--muted); }
.trend td.n, .trend th.n { text-align: center; white-space: nowrap; }
.trend .cmp { background: #eeeeee; }
.nw { white-space: nowrap; }
.trend .mark { font-weight: 400; font-style: italic; }
.better { color: var(--green); font-weight: 700; }
.worse { color: var(--red); font-weight: 700; }
.unchanged, .none { color: var(--muted); }
.earlier { font-size: 10pt; }
.earlier .when { color: var(--muted); font-size: 9pt; }
.earlier > div + div { margin-top: 1.5mm; }
section.area { break-inside: auto; }
.about { font-size: 9.5pt; color: var(--muted); }
.about table { border-collapse: collapse; margin-top: 1mm; }
.about td { padding: 0.5mm 3mm 0.5mm 0; }
.open { color: var(--amber); }
@page { size: A4 portrait; margin: 15mm 14mm 16mm 14mm; }
@media print {
  html { background: #fff; }
  body { max-width: none; margin: 0; padding: 0; font-size: 10.5pt; }
  h2 { margin-top: 5mm; }
}
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _dots(value: Any, sc: dict | None) -> str:
    if not sc or not _is_number(value):
        return ""
    filled = int(round(value - sc["min"] + 1))
    total = sc["max"] - sc["min"] + 1
    return (f'<span class="dots" aria-hidden="true">{"●" * filled}{"○" * (total - filled)}'
            "</span>")


def _answer_html(a: dict) -> str:
    if a["skipped"]:
        return '<span class="skipped">hoppade över</span>'
    if a["type"] == "free_text" or (a["text"] and not a["label"]):
        return ""
    return _dots(a["value"], a.get("scale")) + _e(a["label"] or a["value"] or "")


def _qa_html(a: dict) -> str:
    cls = "qa"
    mark = ""
    if a.get("alert"):
        cls += " flag" + (" concern" if a["alert"] == "concern" else "")
        mark = (f'<span class="badge {"concern" if a["alert"] == "concern" else ""}">'
                f'{_e("Viktigt svar")}</span>')
    quote = (f'<blockquote dir="auto">”{_e(a["text"])}”</blockquote>' if a["text"] else "")
    answer = _answer_html(a)
    if a["type"] == "free_text" and not a["skipped"]:
        answer = '<span class="skipped">med egna ord:</span>' if a["text"] else ""
    return (f'<div class="{cls}"><div class="q">{mark}{_e(a["question"] or a["question_id"])}'
            f'</div><div class="a">{answer}</div>{quote}</div>')


def _trend_table(questions: list[dict], compare: dict[str, str]) -> str:
    """The values behind an area's chart, one column per session; compare maps the two
    compared session ids to what to call them (förra/senast or före/efter)."""
    days: list[tuple[str, str]] = []
    for q in questions:
        for p in q["series"]:
            if (p["date"], p["session_id"]) not in days:
                days.append((p["date"], p["session_id"]))
    days.sort()
    head = ""
    for d, sid in days:
        day, year = (sv_date(d, short=True).rsplit(" ", 1) + [""])[:2]
        mark = f'<br><span class="mark">{_e(compare[sid])}</span>' if sid in compare else ""
        cls = "n cmp" if sid in compare else "n"
        head += f'<th class="{cls}">{_e(day)}<br>{_e(year)}{mark}</th>'
    rows = []
    for q in questions:
        by_sid = {p["session_id"]: p["value"] for p in q["series"]}
        cells = "".join(f'<td class="n{" cmp" if sid in compare else ""}">'
                        f'{_e(f"{by_sid[sid]:g}") if sid in by_sid else "–"}</td>'
                        for _, sid in days)
        ch = q.get("change")
        if ch:
            word = (f'<span class="{ch["word"]}">{_e(CHANGE_WORDS[ch["word"]])}</span> '
                    f'({ch["before"]["value"]:g} → {ch["after"]["value"]:g})')
        else:
            word = '<span class="none">kan inte jämföras</span>'
        sc = q["scale"]
        rows.append(f'<tr><td>{_e(q["question"] or q["question_id"])} '
                    f'<span class="none nw">({sc["min"]}–{sc["max"]})</span></td>{cells}'
                    f'<td class="nw">{word}</td></tr>')
    return (f'<table class="trend"><thead><tr><th>Fråga (skala)</th>{head}<th>Förändring</th>'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def render_html(app: App, data: dict) -> str:
    """One self-contained HTML page (no network: inline CSS, charts as inline SVG) that reads
    well on screen and prints on A4. In Swedish, for the caseworker."""
    from admin_cli import charts

    case = data["case"]
    latest = latest_session_date(data)
    days = sorted(_session_day(s) for s in data["sessions"] if _session_day(s))
    period = data.get("period") or {}
    out: list[str] = []
    meta = [f"<b>Ärende:</b> {_e(case)}"]
    if data.get("unit"):
        meta.append(f"<b>Enhet:</b> {_e(data['unit'])}")
    meta.append(f"<b>Senaste tillfälle:</b> {_e(sv_date(latest)) if latest else 'inget än'}")
    if len(days) == 1:
        meta.append(f"<b>Tillfällen:</b> 1 ({_e(sv_date(days[0]))})")
    elif days:
        meta.append(f"<b>Tillfällen:</b> {len(days)} ({_e(sv_date(days[0]))} – "
                    f"{_e(sv_date(days[-1]))})")
    if period.get("since") or period.get("until"):
        meta.append(f"<b>Period:</b> {_e(sv_date(period.get('since')) or 'från början')} – "
                    f"{_e(sv_date(period.get('until')) or 'i dag')}")
    today = datetime.now(_tz(app)).date()
    out.append(f'<header><h1>Barnets svar</h1><p class="meta">{" · ".join(meta)}</p>'
               f'<p class="meta">Utskrivet {_e(sv_date(today))}</p>'
               '<p class="secret">Sekretess – uppgifter om ett barn</p></header>')

    latest_sessions = _latest_per_questionnaire(data)

    # 1. What the child wants help with
    help_rows = [(s, a) for s in latest_sessions for a in s["answers"] if a["domain"] == "help"]
    out.append(f'<section><h2>{_e(DOMAIN_TITLES["help"])}</h2>')
    if help_rows:
        items, quotes = [], []
        for _s, a in help_rows:
            if a["skipped"]:
                continue
            if a["label"] and a["type"] == "multi_choice":
                items += [f"<li>{_e(part)}</li>" for part in a["label"].split(", ") if part]
            elif a["label"]:
                items.append(f"<li>{_e(a['label'])}</li>")
            if a["text"]:
                quotes.append(f'<blockquote dir="auto">”{_e(a["text"])}”</blockquote>')
        when = sv_date(_session_day(help_rows[0][0]))
        body = (("<ul>" + "".join(items) + "</ul>") if items else "") + \
            ("<p class=\"words\">Med egna ord:</p>" + "".join(quotes) if quotes else "")
        if not body:
            body = '<p class="skipped">Barnet hoppade över frågan.</p>'
        out.append(f'<div class="box help"><h3>Barnets svar {_e(when)}</h3>{body}</div>')
    else:
        out.append('<p class="none">Barnet har inte svarat på det här under perioden.</p>')
    out.append("</section>")

    # 2. Safeguarding answers
    out.append('<section><h2>Viktiga svar</h2>')
    alerts = [al for al in data["alerts"] if al["level"] != "note"]
    if not alerts:
        out.append('<p class="none">Inga svar under perioden som larmade.</p>')
    notes = [al for al in data["alerts"] if al["level"] == "note" and al["text"]]
    if notes:
        out.append('<p>Barnet skrev efter sista frågan: ' + ", ".join(
            f'<q dir="auto">{_e(al["text"])}</q> ({_e(_local_time(app, al["created_at"]))})'
            for al in notes) + "</p>")
    for al in sorted(alerts, key=lambda x: (x["acked_at"] is not None,
                                                    x["level"] != "urgent", x["created_at"])):
        level = al["level"]
        state = (f'<span class="state">Hanterat {_e(_local_time(app, al["acked_at"]))}'
                 f'{" av " + _e(al["acked_by"]) if al["acked_by"] else ""}</span>'
                 if al["acked_at"] else
                 '<span class="state open">Inte markerat som hanterat</span>')
        answer = _alert_answer(data, al)
        outside = ("" if al.get("in_period", True)
                   else " · utanför perioden, visas tills det är hanterat")
        words = (f'<blockquote dir="auto">”{_e(al["text"])}”</blockquote>' if al["text"] else "")
        for question, text in followup_words(app, data, al):
            words += (f'<div class="then">{_e(question)}</div>'
                      f'<blockquote dir="auto">”{_e(text)}”</blockquote>')
        out.append(
            f'<div class="box alert {"urgent" if level == "urgent" else "concern"}">'
            f'<span class="badge">{_e(LEVEL_TITLES.get(level, level))}</span>'
            f'<span class="what">Barnet {_e(TOPIC_TITLES.get(al["topic"], al["topic"]))}</span>'
            f'<div>Fråga: {_e(_alert_question(app, data, al))}'
            f'{" – svar: <b>" + _e(answer) + "</b>" if answer else ""}</div>{words}'
            f'<div>{_e(_local_time(app, al["created_at"]))} · {state}'
            f"{outside}</div></div>")
    out.append("</section>")

    # 3. The areas: latest answers, the chart over time, earlier own words
    ot = data.get("over_time") or {}
    compare_ids = {p[k]["session_id"] for p in ot.get("pairs", []) for k in ("before", "after")}
    names = ("före", "efter") if ot.get("mode") == "compare" else ("förra", "senast")
    compare_names = {p[k]["session_id"]: name for p in ot.get("pairs", [])
                     for k, name in zip(("before", "after"), names, strict=True)}
    domains: dict[str, dict[str, Any]] = {}
    for s in latest_sessions:
        for a in s["answers"]:
            if a["domain"] != "help":
                domains.setdefault(a["domain"], {"latest": [], "trend": [], "earlier": []})
                domains[a["domain"]]["latest"].append((s, a))
    for q in ot.get("questions", []):
        domains.setdefault(q["domain"], {"latest": [], "trend": [], "earlier": []})
        domains[q["domain"]]["trend"].append(q)
    latest_ids = {s["id"] for s in latest_sessions}
    for s in reversed(data["sessions"]):
        if s["id"] in latest_ids:
            continue
        for a in s["answers"]:
            if (a["text"] or a.get("alert")) and a["domain"] != "help":
                domains.setdefault(a["domain"], {"latest": [], "trend": [], "earlier": []})
                domains[a["domain"]]["earlier"].append((s, a))
    panels = {p.domain: p for p in charts.panels(data)}
    for domain in sorted(domains, key=domain_order):
        d = domains[domain]
        out.append(f'<section class="area"><h2>{_e(DOMAIN_TITLES.get(domain, domain))}</h2>')
        if d["latest"]:
            by_session: dict[str, list[dict]] = {}
            for s, a in d["latest"]:
                by_session.setdefault(s["id"], []).append(a)
            for sid, answers in by_session.items():
                s = next(x for x in latest_sessions if x["id"] == sid)
                out.append(f"<h3>Senaste svaren, {_e(sv_date(_session_day(s)))}</h3>"
                           f'<div class="box">{"".join(_qa_html(a) for a in answers)}</div>')
        if d["trend"]:
            out.append("<h3>Över tid</h3>")
            panel = panels.get(domain)
            if panel is not None:
                title = f"{DOMAIN_TITLES.get(domain, domain)} över tid"
                svg = charts.panel_svg(panel, compare_ids, ot.get("mode", "latest"))
                out.append(f'<figure role="img" aria-label="{_e(title)}">{svg}</figure>')
            out.append(_trend_table(d["trend"], compare_names))
        if d["earlier"]:
            heading = ("Tidigare: viktiga svar och barnets egna ord"
                       if any(a.get("alert") for _, a in d["earlier"])
                       else "Barnets egna ord tidigare")
            out.append(f'<h3>{heading}</h3><div class="box earlier">')
            for s, a in d["earlier"]:
                out.append(f'<div class="{"flagline" if a.get("alert") else ""}">'
                           f'<span class="when">{_e(sv_date(_session_day(s)))} – '
                           f'{_e(a["question"] or a["question_id"])}</span>')
                if a.get("alert"):
                    cls = "concern" if a["alert"] == "concern" else ""
                    out.append(f' <span class="badge {cls}">Viktigt svar</span>'
                               f"<b>{_e(a['label'] or '')}</b>")
                if a["text"]:
                    out.append(f'<blockquote dir="auto">”{_e(a["text"])}”</blockquote>')
                out.append("</div>")
            out.append("</div>")
        out.append("</section>")
    if not data["sessions"]:
        out.append('<p class="none">Inga avslutade svar under perioden.</p>')

    # 4. About: how to read it, which sessions
    out.append('<section class="about"><h2>Om sammanfattningen</h2>')
    sentence = _compare_sentence(data)
    out.append(f"<p>{_e(sentence + ' ' if sentence else '')}{_e(threshold_rule_sv())} "
               "I tabellerna är tillfällena som jämförs grå.</p>")
    if data["sessions"]:
        rows = []
        for s in reversed(data["sessions"]):
            qn = app.questionnaires.get(s["questionnaire"])
            rows.append(f"<tr><td>{_e(sv_date(_session_day(s)))}</td>"
                        f"<td>{_e(qn.title if qn else s['questionnaire'])}</td>"
                        f"<td>{_e(STATUS_TITLES.get(s['status'], s['status']))}</td>"
                        f"<td>{_e(language_note(s['language'], s['translation']))}</td>"
                        f"<td>id {_e(s['id'][:8])}</td></tr>")
        out.append(f"<table>{''.join(rows)}</table>")
    for o in data["open_sessions"]:
        line = (f"Öppen inbjudan ({o['questionnaire']}): "
                f"{STATUS_TITLES.get(o['status'], o['status'])}, {o['answered']} svar hittills.")
        if o["waiting_because"] == "opted_out":
            line += " Barnet har svarat STOP: inga fler sms skickas förrän barnet skriver START."
        if o["delivery"] in ("undelivered", "failed"):
            line += " Sms:et kom inte fram."
        out.append(f'<p class="open">{_e(line)}</p>')
    out.append("<p>Frågorna visas på svenska; barnet kan ha svarat på ett annat språk. "
               "Barnets egna ord visas som barnet skrev dem.</p></section>")

    return ('<!DOCTYPE html>\n<html lang="sv"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Barnets svar – {_e(case)}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(out)}</body></html>\n")


# --------------------------------------------------------------------------- PNG


def render_png(app: App, data: dict, path: str | Path) -> Path:
    """A picture of the scale answers over time, one panel per life area, with a header naming
    the case and the latest session: about 1600 px wide at 150 dpi, to paste into a case file."""
    from admin_cli import charts

    return charts.summary_png(data, Path(path))
