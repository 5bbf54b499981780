"""The report of an anonymous group survey (a campaign): participation per day or ISO week,
the answers to its fixed-answer questions once it has closed, and how many answers showed that
someone may need help. Counted in SQL; exact counts with small ones hidden, as in the case
report (admin_cli/report/protect.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import String, case, cast, func, literal, select

from admin_cli.i18n import _
from admin_cli.report.build import ReportError
from admin_cli.report.protect import hidden_cells, percent, table_lines
from admin_cli.report.queries import FIXED_TYPES
from admin_cli.report.questions import count_answers, question_entry
from admin_cli.report.texts import hidden_note, suppression_note
from bot.app import App
from flows.model import Questionnaire
from storage.sql import AnswerRow, SessionRow, as_utc

# A campaign open at most this many days is counted per day; a longer one per ISO week. A
# school survey that runs for a week or two is read day by day (which lessons, which days);
# a longer one per day would mostly be empty days merged with their neighbours.
DAILY_UP_TO = 14
ANSWER_STATUSES = ("completed", "stopped")
CAMPAIGN_LEVELS = ("not_completed", "completed")
TOTAL = "total"


def _campaign_periods(opens: date, end: date, daily: bool) -> list[tuple[date, date, str]]:
    """The days, or ISO weeks, from `opens` to `end`: (first day, last day, a name that stays
    the same as the campaign goes on: the day, or the Monday of the week)."""
    if daily:
        days = (date.fromordinal(o) for o in range(opens.toordinal(), end.toordinal() + 1))
        return [(d, d, d.isoformat()) for d in days]
    out = []
    monday = opens - timedelta(days=opens.weekday())
    while monday <= end:
        out.append((max(monday, opens), min(monday + timedelta(days=6), end),
                    monday.isoformat()))
        monday += timedelta(days=7)
    return out


def _period_label(first: date, last: date, daily: bool) -> str:
    if daily:
        return first.isoformat() if first == last else f"{first} - {last}"
    (y1, w1, _), (y2, w2, _) = first.isocalendar(), last.isocalendar()
    if (y1, w1) == (y2, w2):
        return f"{y1} v{w1}"
    return f"{y1} v{w1}-v{w2}" if y1 == y2 else f"{y1} v{w1} - {y2} v{w2}"


def merge_periods(sizes: list[int], min_group: int) -> list[tuple[int, int]]:
    """Consecutive periods put together (first and last index) so that each group has at
    least `min_group` sessions, or none. A period with 1 to min_group-1 sessions is joined
    with the periods after it until the group is big enough; a period with none stands alone
    when nothing waits to be joined; what is still too small at the end joins the group
    before it (back to the last group with sessions). Only when the whole campaign has fewer
    than `min_group` is a group left small (the report then shows nothing)."""
    groups: list[tuple[int, int]] = []
    start: int | None = None
    for i, n in enumerate(sizes):
        if start is None:
            if n == 0:
                groups.append((i, i))
                continue
            start = i
        if sum(sizes[start:i + 1]) >= min_group:
            groups.append((start, i))
            start = None
    if start is not None:
        j = len(groups)
        while j > 0 and sum(sizes[groups[j - 1][0]:groups[j - 1][1] + 1]) == 0:
            j -= 1
        if j > 0:
            start = groups[j - 1][0]
            del groups[j - 1:]
        groups.append((start, len(sizes) - 1))
    return groups


def build_campaign_report(app: App, actor: str, campaign: str, min_group: int = 5, *,
                          today: date | None = None) -> dict:
    """The results of an anonymous survey (a campaign): participation over time, the answers
    to its fixed-answer questions, and how many answers showed that someone may need help.

    The rules are those of the case report (module docstring), applied to sessions, since a
    campaign has no children to count:

    - Fixed blocks. Sessions are counted in the day (campaign open at most DAILY_UP_TO days) or
      ISO week it began, from `opens` to `closes` (or today, or the day it was closed early);
      a session begun outside is counted in the first or last period. A session is in SQL,
      and so counted, once it ended (completed, stopped or expired). Periods with 1 to
      min_group-1 sessions are merged with their neighbours (merge_periods), never shown
      on their own and never as "<5". Completed: the sessions of the period that completed.
    - Answers: the current, not skipped answers to the fixed-answer questions of completed and
      stopped sessions, the whole campaign as one block. Fewer than `min_group` such sessions
      (or sessions at all): the report is `too_few` and holds no number.
    - Exact counts, small ones hidden: each period's started (at least `min_group`) and
      completed, each question's answered and each answer's count are exact; a count of 1 to
      min_group-1 is hidden with the counts that would give it away (protect.hidden_cells:
      completed and not completed add up to a period's started, the periods to the total,
      the answers to those who answered). Shares come from the exact counts. The answers are
      those of sessions that ended before the close. The safeguarding count is shown as a
      range of min_group ("5-9"), or as "fewer than min_group".
    - While the campaign is open, only participation is shown: the answers and the
      safeguarding count (which goes up the moment an answer raises it) appear once the
      campaign has closed. Otherwise someone watching the report while the pupils answer one
      by one could tell what one pupil answered by the number that moved.
    - Never free text, a session id or anything else about one session. Every call is
      written to the audit log first ("campaign NAME").

    What is guaranteed: no count shown is 1 to min_group-1, and none hidden can be worked out
    from the sums in the same report; every period shown has at least `min_group` sessions;
    the answers come from at least `min_group` sessions and are published only once the
    campaign is closed; a report asked again over the same data is the very same. Not
    guaranteed: while the survey is open, the participation counts move by one as sessions
    end (that says when someone answered, never what); when sessions still running at the
    close are written later (up to TALA_EXPIRE_AFTER_HOURS after), a report before and one
    after such a session differ by that one session: take the report to publish after that.
    """
    app.db.audit(actor, "report", None, f"campaign {campaign}")
    if min_group < 2:
        raise ReportError(_("Minsta grupp måste vara 2 eller mer (5 om inget annat anges)."))
    c = app.db.campaign(campaign)
    if c is None:
        raise ReportError(_("Enkäten '{name}' finns inte. 'tala campaign list' visar vilka "
                            "som finns.").format(name=campaign))
    qn = app.questionnaires.get(c.questionnaire_id)
    if qn is None:
        raise ReportError(_("Enkäten '{name}' använder formuläret '{qn}', som inte är "
                            "installerat.").format(name=campaign, qn=c.questionnaire_id))
    zone = ZoneInfo(app.settings.timezone)
    today = today or datetime.now(zone).date()
    closed_at = as_utc(c.closed_at)
    end = min(c.closes, today, closed_at.astimezone(zone).date() if closed_at else c.closes)
    end = max(end, c.opens)
    is_open = closed_at is None and today <= c.closes
    daily = (c.closes - c.opens).days + 1 <= DAILY_UP_TO
    periods = _campaign_periods(c.opens, end, daily)
    report: dict[str, Any] = {
        "kind": "campaign",
        "title": _("Enkät {name}: sammanställning").format(name=c.name),
        "filters": {"campaign": c.name, "questionnaire": qn.id, "unit": c.unit,
                    "opens": c.opens.isoformat(), "closes": c.closes.isoformat(),
                    "until": end.isoformat(), "period": "day" if daily else "week",
                    "min_group": min_group},
        "open": is_open, "too_few": True,
        "message": _("För få svar för att visa något (färre än {n} har svarat).").format(
            n=min_group),
        "participation": None, "questions": [], "flagged": None, "notes": [],
    }

    # Sessions per period (the one it began in) and whether completed, counted in SQL.
    bounds = [datetime.combine(first, time(0), zone).astimezone(timezone.utc)
              for first, _, _ in periods[1:]]
    k = case(*[(SessionRow.started_at < b, i) for i, b in enumerate(bounds)],
             else_=len(periods) - 1) if bounds else literal(0)
    done = case((SessionRow.status == "completed", 1), else_=0)
    per = (select(k.label("k"), done.label("done"))
           .where(SessionRow.campaign_id == c.id, SessionRow.started_at.is_not(None))
           .subquery("per"))
    fixed = [q.id for q in qn.questions if q.type in FIXED_TYPES]
    # The answers are those of sessions that ended before the close: a session still running
    # then, written later, never changes them (the one late pupil's answers cannot be read
    # off the difference between a report before and one after).
    cutoff = closed_at or datetime.combine(c.closes + timedelta(days=1), time(0),
                                           zone).astimezone(timezone.utc)
    answer_where = (SessionRow.campaign_id == c.id, SessionRow.questionnaire_id == qn.id,
                    SessionRow.status.in_(ANSWER_STATUSES),
                    func.coalesce(SessionRow.completed_at, SessionRow.started_at) < cutoff,
                    AnswerRow.current.is_(True),
                    AnswerRow.skipped.is_(False), AnswerRow.question_id.in_(fixed))
    with app.db.Session() as db:
        sessions = list(db.execute(select(per.c.k, per.c.done, func.count().label("n"))
                                   .group_by(per.c.k, per.c.done)))
        respondents = db.scalar(select(func.count(func.distinct(AnswerRow.session_id)))
                                .select_from(AnswerRow)
                                .join(SessionRow, SessionRow.id == AnswerRow.session_id)
                                .where(*answer_where)) or 0
    sizes, completed = [0] * len(periods), [0] * len(periods)
    for r in sessions:
        sizes[r.k] += r.n
        completed[r.k] += r.n if r.done else 0
    if respondents < min_group or sum(sizes) < min_group:
        return report

    groups = merge_periods(sizes, min_group)
    exact = {a: (sum(sizes[a:b + 1]), sum(completed[a:b + 1])) for a, b in groups}
    cells = {(k, lv): n for a, (n, done) in exact.items()
             for k, lv, n in ((a, "not_completed", n - done), (a, "completed", done))}
    cells[(TOTAL, "not_completed")] = sum(n - d for n, d in exact.values())
    cells[(TOTAL, "completed")] = sum(d for _n, d in exact.values())
    hidden = hidden_cells(cells, table_lines(list(exact), CAMPAIGN_LEVELS, TOTAL), min_group)

    def measures(key: Any, started: int, done: int) -> dict[str, Any]:
        shown = None if (key, "completed") in hidden else done
        return {"started": started, "completed": shown,
                "share_percent": percent(shown, started, min_group)}

    rows = [{"group": _period_label(periods[a][0], periods[b][1], daily),
             "from": periods[a][0].isoformat(), "to": periods[b][1].isoformat(),
             **measures(a, *exact[a])} for a, b in groups]
    report["too_few"], report["message"] = False, None
    report["participation"] = {
        "period": "day" if daily else "week",
        "total": measures(TOTAL, sum(sizes), sum(completed)), "periods": rows}
    if not is_open:
        report["questions"] = _campaign_questions(app, qn, answer_where, min_group)
        report["flagged"] = flagged_range(c.flagged or 0, min_group)
    report["notes"] = _campaign_notes(report, min_group)
    return report


def flagged_range(flagged: int, min_group: int) -> dict[str, Any]:
    """The safeguarding count as a range of `min_group` ("5-9", count 5: its lower end), or
    "fewer than 5": a flag raised by a session that goes on after the close moves it only
    when it crosses into the next range, and the range never claims more than is true."""
    if flagged < min_group:
        return {"count": None, "text": _("färre än {n}").format(n=min_group)}
    low = flagged - flagged % min_group
    return {"count": low, "text": f"{low}-{low + min_group - 1}"}


def _campaign_questions(app: App, qn: Questionnaire, answer_where: tuple,
                        min_group: int) -> list[dict]:
    """Every fixed-answer question of the campaign's questionnaire, counted in SQL (grouped
    by answer value), the whole campaign as one block."""
    opts = cast(AnswerRow.value_options, String)
    with app.db.Session() as db:
        rows = list(db.execute(
            select(AnswerRow.question_id, AnswerRow.value_num, AnswerRow.value_option,
                   opts.label("opts"), func.count().label("n"))
            .select_from(AnswerRow).join(SessionRow, SessionRow.id == AnswerRow.session_id)
            .where(*answer_where)
            .group_by(AnswerRow.question_id, AnswerRow.value_num, AnswerRow.value_option,
                      opts)))
    answered: dict[str, int] = {}
    counts: dict[str, dict[Any, int]] = {}
    count_answers(qn, rows, answered, counts)
    return [question_entry(qn, q, answered.get(q.id, 0), counts.get(q.id, {}), min_group)
            for q in qn.questions if q.type in FIXED_TYPES]


def _campaign_notes(report: dict, min_group: int) -> list[str]:
    per = _("dag") if report["participation"]["period"] == "day" else _("vecka (ISO-vecka)")
    notes = [suppression_note(min_group), hidden_note(min_group),
             _("Deltagandet räknas per {per}, efter när svarandet påbörjades, och först när "
               "det är avslutat (klart, avbrutet eller utgånget). Dagar och veckor med färre "
               "än {n} svar visas tillsammans med dagarna eller veckorna intill.").format(
                 per=per, n=min_group),
             _("Svaren kommer från klara och avbrutna svar; ett ändrat svar räknas med det "
               "senaste. Fritext visas aldrig.")]
    if report["open"]:
        notes.append(_("Enkäten är öppen: svaren och antalet svar som visade att någon kan "
                       "behöva hjälp visas när den har stängt, så att ingen kan se vad en "
                       "enskild person svarade genom att jämföra före och efter."))
    else:
        notes.append(_("Antalet svar som visade att någon kan behöva hjälp räknar svar, inte "
                       "personer, och säger aldrig vilka."))
    return notes


