"""The managers' report: anonymised, aggregated participation and answers per unit and period.

Who took part, overall and per unit, caseworker, age band and language; and for every
question with fixed answers (yes/no, scale, choice, multiple choice) how many children gave
each answer. Never free text, never a case.

- Invited: children with an invitation in the period. A child counts once per unit, quarter
  and questionnaire (invited twice in a quarter: once, by the furthest they got).
- Started: the child began: a session is stored for the invitation (completed, stopped, or
  expired part-way), or the invitation's status says so (active, paused, completed, stopped).
- Completed: the session (or the invitation) is completed. Share who answered: completed /
  invited.
- Unit and caseworker are the child's as recorded now; the age band (6-11, 12-18) is the
  invitation's year minus the birth year; the language is the invitation's.
- Answers: the current, not skipped answers of each child's latest started session in the
  quarter (stopped and expired sessions count with what the child did answer).

How no child can be singled out
-------------------------------
`min_group` (5 unless the installation sets another) is the smallest group of children that
any number may describe. Four rules, in plain words:

1. Whole quarters. `since` and `until` are widened to whole calendar quarters (local time), and
   an invitation counts in the quarter it was sent. Two periods therefore differ by whole
   quarters, never by a day with one child in it.
2. Fixed building blocks of at least `min_group` children. Children are counted in blocks:
   one unit, one quarter, one questionnaire. A unit with fewer than `min_group` children
   invited in that quarter and questionnaire is not shown under its own name: it is counted
   with the other small units as "Övriga enheter", and if they are still too few together,
   they are left out of that quarter. (For the answers, the same rule counts the children who
   answered.) Inside a block, caseworkers, age bands and languages with fewer than `min_group`
   children are shown together as "Övriga ..."; if that group is still too small, the next
   smallest is added to it. A report only ever adds up whole blocks, the same blocks whatever
   the filters: a unit filter shows the blocks that carry the unit's name, and a report with
   no block in it shows nothing but "too few".
3. Rounded once, at random, to multiples of `min_group`. Every number of every block (and of
   every row inside a block) is rounded down or up to a multiple of `min_group`. Which way is
   decided by a keyed hash of the block and the number (the installation's secret key), so it
   is the same every time, cannot be recomputed by a reader, and is right on average. Per unit
   everything adds up to the total; in the other breakdowns the rows' invited add up to the
   total, their started and completed may differ from it a little. Every count in a report is
   0, 5, 10, ... and no count and no difference between two counts is ever 1 to 4.
4. Every report is written to the audit log, with its filters.

What this guarantees. With any filters and any number of reports, every number is a sum of
the rounded numbers of the same fixed blocks of at least `min_group` children. Subtracting
reports from each other (a year minus three quarters, all units minus the named ones, a
questionnaire minus another) can at most give back the rounded numbers of whole blocks: never
a group smaller than `min_group`, never an exact count, never one child's answer. Reports hold
no free text, no case reference, no birth year and no date finer than a quarter.

What it does not guarantee. A number above zero says that at least one child of a block of
`min_group` or more gave that answer, and if all children of a block answered alike, the
report may show it (that is about the group, not one child). A report made before and one made
after the data changed (a late answer, an erased case) can differ by one child: rounding hides
most such changes, not all, so publish reports for quarters that are closed. Reports made with
different `min_group` must not both be released (two roundings of the same numbers narrow them
down): `min_group` is a setting of the installation, not a choice per report. Numbers are
rounded, so percentages are approximate.

All counting is done by the database (GROUP BY / COUNT); Python only adds up the few hundred
block totals. A multiple-choice answer is a JSON list, which SQLite and PostgreSQL cannot
unnest in the same SQL, so those answers are grouped by their JSON text in SQL and the few
distinct combinations are split into options in Python.

Campaigns (anonymous group surveys) have a report of their own, build_campaign_report: the
same rounding, merging of small groups, answer counting and renderers, with sessions (there
are no children) counted per day or ISO week; its docstring says what it guarantees.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Hashable, TypeVar
from zoneinfo import ZoneInfo

from babel import Locale
from rich.console import Group
from rich.table import Table
from rich.text import Text
from sqlalchemy import String, case, cast, func, literal, or_, select

from admin_cli.labels import DOMAIN_TITLES, answer_label
from bot.app import App
from flows.model import Questionnaire
from storage.sql import AnswerRow, Child, Invitation, SessionRow, as_utc

FIXED_TYPES = ("yes_no", "scale", "choice", "multi_choice")
# An invitation whose status says the child began, though no session is stored yet (a live
# session is in Redis until it ends; nothing writes these today, but if it does they count).
STARTED_STATUSES = ("active", "paused", "completed", "stopped")
LEVELS = (0, 1, 2)  # invited only, started (not completed), completed
OTHER = "\x00other"  # the pooled group of a breakdown: never a real name
NO_VALUE = ""  # a unit or caseworker that is not recorded
BREAKDOWNS = ("unit", "caseworker", "age_band", "language")
BREAKDOWN_TITLES = {"total": "Totalt", "unit": "Per enhet", "caseworker": "Per handläggare",
                    "age_band": "Per åldersgrupp", "language": "Per språk"}
OTHER_TITLES = {"unit": "Övriga enheter", "caseworker": "Övriga handläggare",
                "age_band": "Övriga åldrar", "language": "Övriga språk"}
MEASURES = ("invited", "started", "completed")
MEASURE_TITLES = {"invited": "Inbjudna", "started": "Påbörjade", "completed": "Klara",
                  "share_percent": "Andel som svarade"}
CSV_COLUMNS = ("section", "breakdown", "group", "questionnaire", "question_id", "question",
               "value", "label", "measure", "count")

K = TypeVar("K", bound=Hashable)


class ReportError(ValueError):
    """A filter that cannot be used; the message says why."""


# --------------------------------------------------------------------------- quarters


def _quarter(d: date) -> tuple[int, int]:
    return d.year, (d.month - 1) // 3 + 1


def _quarter_start(y: int, q: int) -> date:
    return date(y, 3 * (q - 1) + 1, 1)


def _next(y: int, q: int) -> tuple[int, int]:
    return (y, q + 1) if q < 4 else (y + 1, 1)


def _quarter_end(y: int, q: int) -> date:
    ny, nq = _next(y, q)
    return date.fromordinal(_quarter_start(ny, nq).toordinal() - 1)


@dataclass(frozen=True)
class _Period:
    quarters: tuple[tuple[int, int], ...]  # (year, quarter), in order
    bounds: tuple[datetime, ...]  # UTC start of each quarter, and the end of the last

    @property
    def labels(self) -> list[str]:
        return [f"{y} kv{q}" for y, q in self.quarters]


def _period(first: tuple[int, int], last: tuple[int, int], tz: str) -> _Period:
    quarters = [first]
    while quarters[-1] < last:
        quarters.append(_next(*quarters[-1]))
    zone = ZoneInfo(tz)
    edges = [*quarters, _next(*quarters[-1])]
    bounds = tuple(datetime.combine(_quarter_start(y, q), time(0), zone).astimezone(timezone.utc)
                   for y, q in edges)
    return _Period(tuple(quarters), bounds)


# --------------------------------------------------------------------------- protection


class _Rounder:
    """Unbiased random rounding to multiples of `base`, decided once per number by a keyed hash
    of where the number sits (so a report asked again, or sliced otherwise, gets the very same
    rounded pieces, and nobody without the secret key can tell which way a number went)."""

    def __init__(self, app: App, base: int):
        self.crypto = app.crypto
        self.base = base

    def u(self, cell: str) -> float:
        return int(self.crypto.lookup_hash(f"tala report rounding|{cell}")[:13], 16) / 16 ** 13

    def one(self, n: int, cell: str) -> int:
        whole, rest = divmod(n, self.base)
        return (whole + (1 if self.u(cell) * self.base < rest else 0)) * self.base

    def parts(self, parts: dict[K, int], total: int, cell: str) -> dict[K, int]:
        """Round the parts of a total (already rounded with `one`) so they add up to it: each
        part goes down or up, and the ones that go up are drawn with weights of what they
        lack (Efraimidis-Spirakis), keyed like `one`."""
        b = self.base
        out = {k: (n // b) * b for k, n in parts.items()}
        ups = (total - sum(out.values())) // b
        rest = {k: n % b for k, n in parts.items() if n % b}
        if not 0 <= ups <= len(rest):
            raise AssertionError("rounded total does not fit its parts")  # cannot happen
        order = sorted(rest, key=lambda k: (-(self.u(f"{cell}|{k}") ** (b / rest[k])), str(k)))
        for k in order[:ups]:
            out[k] += b
        return out


def _pool(sizes: dict[str, int], min_group: int, *, fill: bool) -> dict[str, str | None]:
    """Where each group is shown: under its own name, or OTHER when it has fewer than
    `min_group` children. When OTHER would hold 1 to min_group-1 children, `fill` adds the
    next smallest named group to it until it is big enough; without `fill`, OTHER is dropped
    (None: left out)."""
    named = {k for k, n in sizes.items() if n >= min_group}
    while True:
        pooled = sum(n for k, n in sizes.items() if k not in named)
        if pooled == 0 or pooled >= min_group:
            return {k: (k if k in named else OTHER) for k in sizes}
        if not fill or not named:
            return {k: (k if k in named else None) for k in sizes}
        named.remove(min(named, key=lambda k: (sizes[k], k)))


# --------------------------------------------------------------------------- SQL


def _quarter_case(col: Any, period: _Period, values: list[Any]) -> Any:
    return case(*[(col < period.bounds[i + 1], values[i]) for i in range(len(values))])


def _in_period(col: Any, period: _Period) -> list[Any]:
    return [col >= period.bounds[0], col < period.bounds[-1]]


def _participation(app: App, period: _Period, qn_ids: list[str]) -> dict[str, list[Any]]:
    """Children counted once per unit, quarter and questionnaire (a child invited twice in a
    quarter counts once, by the furthest they got), grouped per block and level, and per
    block, level and caseworker, age band or language."""
    created = Invitation.created_at
    n = len(period.quarters)
    completed = or_(SessionRow.status == "completed", Invitation.status == "completed")
    started = or_(SessionRow.id.is_not(None), Invitation.status.in_(STARTED_STATUSES))
    inv = (select(Invitation.child_id.label("child_id"), Child.unit.label("unit"),
                  Child.caseworker.label("caseworker"), Child.birth_year.label("birth_year"),
                  _quarter_case(created, period, list(range(n))).label("k"),
                  _quarter_case(created, period, [y for y, _ in period.quarters]).label("yr"),
                  Invitation.questionnaire_id.label("qn"), Invitation.lang.label("lang"),
                  case((completed, 2), (started, 1), else_=0).label("level"))
           .join(Child, Child.id == Invitation.child_id)
           .outerjoin(SessionRow, SessionRow.id == Invitation.session_id)
           .where(*_in_period(created, period), Invitation.questionnaire_id.in_(qn_ids))
           .subquery("inv"))
    age = inv.c.yr - inv.c.birth_year
    band = case((inv.c.birth_year.is_(None), "unknown"), (age.between(6, 11), "6-11"),
                (age.between(12, 18), "12-18"), else_="other")
    child = (select(inv.c.child_id, inv.c.unit, inv.c.caseworker, band.label("age_band"),
                    inv.c.k, inv.c.qn, func.max(inv.c.level).label("lvl"),
                    func.max(inv.c.lang).label("language"))
             .group_by(inv.c.child_id, inv.c.unit, inv.c.caseworker, inv.c.birth_year,
                       inv.c.yr, inv.c.k, inv.c.qn)
             .subquery("per_child"))
    out: dict[str, list[Any]] = {}
    with app.db.Session() as db:
        for dim in ("block", "caseworker", "age_band", "language"):
            cols = [child.c.unit, child.c.k, child.c.qn, child.c.lvl]
            if dim != "block":
                cols.append(child.c[dim])
            out[dim] = list(db.execute(select(*cols, func.count().label("n")).group_by(*cols)))
    return out


def _answers(app: App, period: _Period, qns: list[Questionnaire]) -> tuple[list, list]:
    """Per unit, quarter and questionnaire: how many children answered (their latest session
    in that quarter counts), and how many gave each current, not skipped, fixed answer."""
    created = Invitation.created_at
    s0 = (select(SessionRow.id.label("sid"), Invitation.child_id.label("child_id"),
                 Child.unit.label("unit"),
                 _quarter_case(created, period, list(range(len(period.quarters)))).label("k"),
                 Invitation.questionnaire_id.label("qn"), SessionRow.started_at)
          .join(Invitation, Invitation.session_id == SessionRow.id)
          .join(Child, Child.id == Invitation.child_id)
          .where(*_in_period(created, period), SessionRow.started_at.is_not(None),
                 Invitation.questionnaire_id.in_([q.id for q in qns]))
          .subquery("s0"))
    rn = func.row_number().over(partition_by=(s0.c.child_id, s0.c.k, s0.c.qn),
                                order_by=(s0.c.started_at.desc(), s0.c.sid.desc()))
    s1 = select(s0.c.sid, s0.c.unit, s0.c.k, s0.c.qn, rn.label("rn")).subquery("s1")
    # "rn <= 1", not "rn = 1": PostgreSQL estimates "= 1" on row_number() at 0.5% of the rows,
    # then picks a nested loop and a sort that spills to disk (bench/reports.py: 2.97 s ->
    # 1.42 s on a million answers). Same rows either way.
    latest = (select(s1.c.sid, s1.c.unit, s1.c.k, s1.c.qn).where(s1.c.rn <= 1)
              .subquery("latest"))
    block = [latest.c.unit, latest.c.k, latest.c.qn]
    opts = cast(AnswerRow.value_options, String)
    # One IN list instead of an OR per questionnaire (also misjudged by the planner); answers
    # to another questionnaire's question are dropped later by _build_questions.
    fixed = sorted({q.id for qn in qns for q in qn.questions if q.type in FIXED_TYPES})
    answers = (select(*block, AnswerRow.question_id, AnswerRow.value_num,
                      AnswerRow.value_option, opts.label("opts"), func.count().label("n"))
               .select_from(AnswerRow).join(latest, latest.c.sid == AnswerRow.session_id)
               .where(AnswerRow.current.is_(True), AnswerRow.skipped.is_(False),
                      AnswerRow.question_id.in_(fixed))
               .group_by(*block, AnswerRow.question_id, AnswerRow.value_num,
                         AnswerRow.value_option, opts))
    with app.db.Session() as db:
        respondents = list(db.execute(select(*block, func.count().label("n"))
                                      .group_by(*block)))
        rows = list(db.execute(answers))
    return respondents, rows


# --------------------------------------------------------------------------- blocks


Block = tuple[int, str, str]  # (quarter index in the period, questionnaire, unit or OTHER)


def _blocks_of(sizes: dict[tuple[int, str], dict[str, int]],
               min_group: int) -> dict[tuple[int, str, str], Block | None]:
    """(k, questionnaire, unit) -> the block it is counted in, or None when left out."""
    out: dict[tuple[int, str, str], Block | None] = {}
    for (k, qn), units in sizes.items():
        for unit, shown in _pool(units, min_group, fill=False).items():
            out[(k, qn, unit)] = None if shown is None else (k, qn, shown)
    return out


def _cell(period: _Period, block: Block, *rest: Any) -> str:
    y, q = period.quarters[block[0]]
    return "|".join([f"{y}q{q}", block[1], block[2], *map(str, rest)])


def _value_of(q: Any, row: Any) -> list[Any]:
    """The answer value(s) of a grouped answer row, only those the question knows."""
    if q.type == "multi_choice":
        try:
            ids = json.loads(row.opts) if row.opts else None
        except ValueError:
            return []
        return [i for i in ids if q.option(i)] if isinstance(ids, list) else []
    if q.type == "scale":
        v = row.value_num
        ok = v is not None and float(v).is_integer() and q.scale.min <= v <= q.scale.max
        return [int(v)] if ok else []
    if q.type == "yes_no":
        return [row.value_option] if row.value_option in ("yes", "no") else []
    return [row.value_option] if q.option(row.value_option or "") else []


def _possible(q: Any) -> list[Any]:
    if q.type == "yes_no":
        return ["yes", "no"]
    if q.type == "scale":
        return list(range(q.scale.min, q.scale.max + 1))
    return [o.id for o in q.options]


def _distribution(rounder: _Rounder, q: Any, answered: int, seen: dict[Any, int],
                  cell: Any) -> tuple[int, dict[Any, int]]:
    """One block's answers to one question, rounded: how many answered (rounded once), and
    how many gave each answer (rounded to add up to it; for multiple choice, each option's
    chosen / not chosen adds up to it). `cell(*rest)` names where a number sits."""
    n = rounder.one(answered, cell(q.id, "answered"))
    if q.type == "multi_choice":
        return n, {v: rounder.parts({"yes": seen.get(v, 0), "no": answered - seen.get(v, 0)},
                                    n, cell(q.id, v))["yes"] for v in _possible(q)}
    return n, rounder.parts({v: seen.get(v, 0) for v in _possible(q)}, n,
                            cell(q.id, "values"))


def _question_entry(qn: Questionnaire, q: Any, answered: int, values: dict[Any, int]) -> dict:
    return {
        "questionnaire": qn.id, "questionnaire_title": qn.title,
        "question_id": q.id, "question": q.text, "type": q.type, "domain": q.domain,
        "answered": answered,
        "values": [{"value": v, "label": answer_label(qn, q.id, [v] if q.type == "multi_choice"
                                                else v, False) or str(v),
                    "count": c, "percent": round(100 * c / answered) if answered else None}
                   for v, c in values.items()]}


# --------------------------------------------------------------------------- the report


def build_report(app: App, actor: str, unit: str | None = None, since: date | None = None,
                 until: date | None = None, questionnaire: str | None = None,
                 min_group: int = 5) -> dict:
    """The anonymised report for these filters (see the module docstring for the rules).
    Writes the audit log first, whatever happens next."""
    filters = {"unit": unit, "since": since.isoformat() if since else None,
               "until": until.isoformat() if until else None,
               "questionnaire": questionnaire, "min_group": min_group}
    app.db.audit(actor, "report", None, json.dumps(filters, ensure_ascii=False))
    if min_group < 2:
        raise ReportError("min_group must be 2 or more (5 is the default).")
    if questionnaire is not None and questionnaire not in app.questionnaires:
        raise ReportError(f"No questionnaire '{questionnaire}'. There are: "
                          f"{', '.join(sorted(app.questionnaires))}.")
    if since and until and since > until:
        raise ReportError("--since is after --until.")
    qns = [app.questionnaires[questionnaire]] if questionnaire else \
        [app.questionnaires[k] for k in sorted(app.questionnaires)]
    tz = app.settings.timezone
    first = _quarter(since) if since else None
    last = _quarter(until) if until else None
    if first is None or last is None:
        with app.db.Session() as db:
            lo, hi = db.execute(select(func.min(Invitation.created_at),
                                       func.max(Invitation.created_at))).one()
        if lo is not None:
            first = first or _quarter(as_utc(lo).astimezone(ZoneInfo(tz)).date())
            last = last or _quarter(as_utc(hi).astimezone(ZoneInfo(tz)).date())
    report: dict[str, Any] = {
        "title": "Barnens svar: sammanställning för enheter och perioder",
        "filters": {"unit": unit, "questionnaire": questionnaire, "min_group": min_group,
                    "requested_since": filters["since"], "requested_until": filters["until"],
                    "since": None, "until": None},
        "quarters": [], "too_few": True,
        "message": f"För få barn för att visa något (färre än {min_group}).",
        "participation": None, "questions": [], "notes": [],
    }
    if first is None or last is None or first > last:
        return report
    period = _period(first, last, tz)
    report["filters"]["since"] = _quarter_start(*period.quarters[0]).isoformat()
    report["filters"]["until"] = _quarter_end(*period.quarters[-1]).isoformat()
    report["quarters"] = period.labels
    rounder = _Rounder(app, min_group)

    participation = _build_participation(app, period, qns, unit, min_group, rounder)
    if participation is None:
        return report
    report["too_few"] = False
    report["message"] = None
    report["participation"] = participation
    report["questions"] = _build_questions(app, period, qns, unit, min_group, rounder)
    report["notes"] = _notes(report, min_group)
    return report


def _build_participation(app: App, period: _Period, qns: list[Questionnaire],
                         unit: str | None, min_group: int, rounder: _Rounder) -> dict | None:
    rows = _participation(app, period, [q.id for q in qns])
    sizes: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows["block"]:
        sizes[(r.k, r.qn)][r.unit or NO_VALUE] += r.n
    where = _blocks_of(sizes, min_group)
    true: dict[Block, dict[int, int]] = defaultdict(lambda: dict.fromkeys(LEVELS, 0))
    for r in rows["block"]:
        b = where[(r.k, r.qn, r.unit or NO_VALUE)]
        if b is not None:
            true[b][r.lvl] += r.n
    chosen = [b for b in true if unit is None or b[2] == unit]
    if not chosen:
        return None
    # Each block: the number invited, rounded; then its levels, rounded to add up to it.
    levels: dict[Block, dict[int, int]] = {}
    for b, cells in true.items():
        total = rounder.one(sum(cells.values()), _cell(period, b, "invited"))
        levels[b] = rounder.parts(cells, total, _cell(period, b, "levels"))

    def measures(lv: dict[int, int]) -> dict[str, Any]:
        invited = sum(lv.values())
        done = lv[2]
        return {"invited": invited, "started": lv[1] + lv[2], "completed": done,
                "share_percent": round(100 * done / invited) if invited else None}

    def add(into: dict[int, int], lv: dict[int, int]) -> None:
        for k in LEVELS:
            into[k] += lv[k]

    total: dict[int, int] = dict.fromkeys(LEVELS, 0)
    per_unit: dict[str, dict[int, int]] = defaultdict(lambda: dict.fromkeys(LEVELS, 0))
    for b in chosen:
        add(total, levels[b])
        add(per_unit[b[2]], levels[b])
    out: dict[str, Any] = {"total": measures(total),
                           "unit": _rows("unit", per_unit, measures)}
    for dim, title in (("caseworker", "caseworker"), ("age_band", "age_band"),
                       ("language", "language")):
        cats: dict[Block, dict[str, dict[int, int]]] = defaultdict(
            lambda: defaultdict(lambda: dict.fromkeys(LEVELS, 0)))
        for r in rows[dim]:
            b = where[(r.k, r.qn, r.unit or NO_VALUE)]
            if b is not None:
                cats[b][getattr(r, dim) or NO_VALUE][r.lvl] += r.n
        summed: dict[str, dict[int, int]] = defaultdict(lambda: dict.fromkeys(LEVELS, 0))
        for b in chosen:
            inside = cats[b]
            shown = _pool({c: sum(v.values()) for c, v in inside.items()}, min_group, fill=True)
            merged: dict[str, dict[int, int]] = defaultdict(lambda: dict.fromkeys(LEVELS, 0))
            for c, v in inside.items():
                add(merged[shown[c]], v)
            # The rows' invited add up to the block's; each row's levels add up to its invited.
            invited = rounder.parts({c: sum(v.values()) for c, v in merged.items()},
                                    sum(levels[b].values()), _cell(period, b, dim, "invited"))
            for c, v in merged.items():
                add(summed[c], rounder.parts(v, invited[c], _cell(period, b, dim, c, "levels")))
        out[title] = _rows(dim, summed, measures)
    return out


def _group_label(dim: str, key: str) -> str:
    if key == OTHER:
        return OTHER_TITLES[dim]
    if dim == "unit":
        return key or "(ingen enhet)"
    if dim == "caseworker":
        return key or "(ingen angiven)"
    if dim == "age_band":
        return {"6-11": "6-11 år", "12-18": "12-18 år", "other": "annan ålder",
                "unknown": "okänd ålder"}.get(key, key)
    try:
        name = Locale.parse("sv").languages.get(key)
    except (ValueError, TypeError):
        name = None
    return f"{name} ({key})" if name else key


_BAND_ORDER = {"6-11": "0", "12-18": "1", "other": "2", "unknown": "3"}


def _rows(dim: str, groups: dict[str, dict[int, int]], measures: Any) -> list[dict]:
    def order_key(k: str) -> tuple[bool, str]:
        if dim == "age_band":
            return k == OTHER, _BAND_ORDER.get(k, k)
        return k == OTHER, _group_label(dim, k).casefold()

    order = sorted(groups, key=order_key)
    return [{"group": _group_label(dim, k), "other": k == OTHER, **measures(groups[k])}
            for k in order]


def _build_questions(app: App, period: _Period, qns: list[Questionnaire], unit: str | None,
                     min_group: int, rounder: _Rounder) -> list[dict]:
    respondents, rows = _answers(app, period, qns)
    sizes: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in respondents:
        sizes[(r.k, r.qn)][r.unit or NO_VALUE] += r.n
    where = _blocks_of(sizes, min_group)
    by_id = {q.id: q for q in qns}
    # block -> question -> value -> children; and block -> question -> children who answered
    counts: dict[Block, dict[str, dict[Any, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int)))
    answered: dict[Block, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        b = where.get((r.k, r.qn, r.unit or NO_VALUE))
        qn = by_id[r.qn]
        if b is None or not qn.has(r.question_id):
            continue
        q = qn.question(r.question_id)
        values = _value_of(q, r)
        if not values:
            continue
        answered[b][q.id] += r.n
        for v in values:
            counts[b][q.id][v] += r.n
    chosen = [b for b in set(where.values()) if b is not None and (unit is None or b[2] == unit)]
    out = []
    for qn in qns:
        mine = [b for b in chosen if b[1] == qn.id]
        if not mine:
            continue
        for q in qn.questions:
            if q.type not in FIXED_TYPES:
                continue
            n_sum = 0
            v_sum: dict[Any, int] = dict.fromkeys(_possible(q), 0)
            for b in mine:
                n, split = _distribution(rounder, q, answered[b][q.id], counts[b][q.id],
                                         lambda *rest, b=b: _cell(period, b, *rest))
                n_sum += n
                for v in v_sum:
                    v_sum[v] += split[v]
            out.append(_question_entry(qn, q, n_sum, v_sum))
    return out


def _notes(report: dict, min_group: int) -> list[str]:
    f = report["filters"]
    notes = [f"Alla antal är avrundade till jämna {min_group}-tal, så att inget barn kan pekas "
             "ut; summor och procent är därför ungefärliga.",
             f"Enheter, handläggare, åldrar och språk med färre än {min_group} barn i ett "
             "kvartal visas som Övriga (eller inte alls, om de är för få även tillsammans).",
             "Ett barn räknas en gång per kvartal och formulär; svaren kommer från barnets "
             "senaste påbörjade svarstillfälle det kvartalet. Fritext visas aldrig."]
    if (f["requested_since"] and f["requested_since"] != f["since"]) or \
            (f["requested_until"] and f["requested_until"] != f["until"]):
        notes.append(f"Perioden är utvidgad till hela kvartal: {f['since']} - {f['until']}.")
    if not report["questions"]:
        notes.append(f"Inga svar visas: färre än {min_group} barn har svarat.")
    return notes


# --------------------------------------------------------------------------- campaigns

# A campaign open at most this many days is counted per day; a longer one per ISO week. A
# school survey that runs for a week or two is read day by day (which lessons, which days);
# a longer one per day would mostly be empty days merged with their neighbours.
DAILY_UP_TO = 14
ANSWER_STATUSES = ("completed", "stopped")
CAMPAIGN_MEASURES = ("started", "completed")
CAMPAIGN_TITLES = {"started": "Påbörjade", "completed": "Klara", "share_percent": "Andel klara"}
FLAGGED_TITLE = "Antal svar som visade att någon kan behöva hjälp"


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


def _merge_periods(sizes: list[int], min_group: int) -> list[tuple[int, int]]:
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
      min_group-1 sessions are merged with their neighbours (_merge_periods), never shown
      on their own and never as "<5". Completed: the sessions of the period that completed.
    - Answers: the current, not skipped answers to the fixed-answer questions of completed and
      stopped sessions, the whole campaign as one block. Fewer than `min_group` such sessions
      (or sessions at all): the report is `too_few` and holds no number.
    - Rounded once: each period's started (and its completed, rounded to add up to it), each
      question's answered and each answer's count, and the safeguarding count are rounded to
      multiples of `min_group` by the installation-keyed rounding of the case report. The
      totals are sums of the rounded periods. Every count is 0, 5, 10, ...
    - While the campaign is open, only participation is shown: the answers and the
      safeguarding count (which goes up the moment an answer raises it) appear once the
      campaign has closed. Otherwise someone watching the report while the pupils answer one
      by one could tell what one pupil answered by the number that moved.
    - Never free text, a session id or anything else about one session. Every call is
      written to the audit log first ("campaign NAME").

    What is guaranteed: every published count is a multiple of `min_group`, so no count and
    no difference between two counts, in one report or between reports, is 1 to min_group-1;
    every period shown has at least `min_group` sessions; the answers come from at least
    `min_group` sessions and are published only once the campaign is closed; a report asked
    again over the same data is the very same. Not guaranteed: when sessions still running at
    the close are written later (they end or expire up to TALA_EXPIRE_AFTER_HOURS after), a
    report before and one after such a session may differ by that one session (a count steps
    by min_group or not at all); take the report to publish after that.
    """
    app.db.audit(actor, "report", None, f"campaign {campaign}")
    if min_group < 2:
        raise ReportError("min_group must be 2 or more (5 is the default).")
    c = app.db.campaign(campaign)
    if c is None:
        raise ReportError(f"There is no campaign '{campaign}'. 'tala campaign list' shows "
                          "them.")
    qn = app.questionnaires.get(c.questionnaire_id)
    if qn is None:
        raise ReportError(f"The campaign '{campaign}' uses the questionnaire "
                          f"'{c.questionnaire_id}', which is not installed.")
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
        "title": f"Enkät {c.name}: sammanställning",
        "filters": {"campaign": c.name, "questionnaire": qn.id, "unit": c.unit,
                    "opens": c.opens.isoformat(), "closes": c.closes.isoformat(),
                    "until": end.isoformat(), "period": "day" if daily else "week",
                    "min_group": min_group},
        "open": is_open, "too_few": True,
        "message": f"För få svar för att visa något (färre än {min_group} har svarat).",
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
    answer_where = (SessionRow.campaign_id == c.id, SessionRow.questionnaire_id == qn.id,
                    SessionRow.status.in_(ANSWER_STATUSES), AnswerRow.current.is_(True),
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

    rounder = _Rounder(app, min_group)

    def cell(*rest: Any) -> str:
        return "|".join(["campaign", str(c.id), c.name, *map(str, rest)])

    rows = []
    for a, b in _merge_periods(sizes, min_group):
        n, n_done = sum(sizes[a:b + 1]), sum(completed[a:b + 1])
        where = (periods[a][2], periods[b][2])  # the same block keeps its rounding
        started = rounder.one(n, cell("started", *where))
        levels = rounder.parts({"not_completed": n - n_done, "completed": n_done}, started,
                               cell("levels", *where))
        rows.append({"group": _period_label(periods[a][0], periods[b][1], daily),
                     "from": periods[a][0].isoformat(), "to": periods[b][1].isoformat(),
                     **_campaign_measures(started, levels["completed"])})
    report["too_few"], report["message"] = False, None
    report["participation"] = {
        "period": "day" if daily else "week",
        "total": _campaign_measures(sum(r["started"] for r in rows),
                                    sum(r["completed"] for r in rows)),
        "periods": rows}
    if not is_open:
        report["questions"] = _campaign_questions(app, qn, answer_where, rounder, cell)
        flagged = rounder.one(c.flagged or 0, cell("flagged"))
        report["flagged"] = {"count": flagged or None,
                             "text": f"ca {flagged}" if flagged else f"färre än {min_group}"}
    report["notes"] = _campaign_notes(report, min_group)
    return report


def _campaign_measures(started: int, completed: int) -> dict[str, Any]:
    return {"started": started, "completed": completed,
            "share_percent": round(100 * completed / started) if started else None}


def _campaign_questions(app: App, qn: Questionnaire, answer_where: tuple, rounder: _Rounder,
                        cell: Any) -> list[dict]:
    """Every fixed-answer question of the campaign's questionnaire, counted in SQL (grouped
    by answer value), rounded like one block of the case report."""
    opts = cast(AnswerRow.value_options, String)
    with app.db.Session() as db:
        rows = list(db.execute(
            select(AnswerRow.question_id, AnswerRow.value_num, AnswerRow.value_option,
                   opts.label("opts"), func.count().label("n"))
            .select_from(AnswerRow).join(SessionRow, SessionRow.id == AnswerRow.session_id)
            .where(*answer_where)
            .group_by(AnswerRow.question_id, AnswerRow.value_num, AnswerRow.value_option,
                      opts)))
    answered: dict[str, int] = defaultdict(int)
    counts: dict[str, dict[Any, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        if not qn.has(r.question_id):
            continue
        values = _value_of(qn.question(r.question_id), r)
        if values:
            answered[r.question_id] += r.n
            for v in values:
                counts[r.question_id][v] += r.n
    out = []
    for q in qn.questions:
        if q.type in FIXED_TYPES:
            n, split = _distribution(rounder, q, answered[q.id], counts[q.id],
                                     lambda *rest: cell("answers", *rest))
            out.append(_question_entry(qn, q, n, split))
    return out


def _campaign_notes(report: dict, min_group: int) -> list[str]:
    unit = "dag" if report["participation"]["period"] == "day" else "vecka (ISO-vecka)"
    notes = [f"Alla antal är avrundade till jämna {min_group}-tal, så att ingen som svarat kan "
             "pekas ut; summor och procent är därför ungefärliga.",
             f"Deltagandet räknas per {unit}, efter när svarandet påbörjades, och först när "
             "det är avslutat (klart, avbrutet eller utgånget). Dagar och veckor med färre än "
             f"{min_group} svar visas tillsammans med dagarna eller veckorna intill.",
             "Svaren kommer från klara och avbrutna svar; ett ändrat svar räknas med det "
             "senaste. Fritext visas aldrig."]
    if report["open"]:
        notes.append("Enkäten är öppen: svaren och antalet svar som visade att någon kan "
                     "behöva hjälp visas när den har stängt, så att ingen kan se vad en enskild "
                     "person svarade genom att jämföra före och efter.")
    else:
        notes.append("Antalet svar som visade att någon kan behöva hjälp räknar svar, inte "
                     "personer, och säger aldrig vilka.")
    return notes


# --------------------------------------------------------------------------- output
#
# One set of renderers for both kinds of report: the case report (build_report) and a
# campaign's (build_campaign_report, `"kind": "campaign"`). They differ only in the
# participation part and the safeguarding count; the answers are shown alike.


def _is_campaign(report: dict) -> bool:
    return report.get("kind") == "campaign"


def _participation_groups(report: dict) -> list[tuple[str, list[dict]]]:
    """(breakdown, rows) of the participation part, the total first."""
    p = report.get("participation")
    if not p:
        return []
    total = [("total", [{"group": "Totalt", **p["total"]}])]
    if _is_campaign(report):
        return total + [("period", p["periods"])]
    return total + [(dim, p[dim]) for dim in BREAKDOWNS]


def _measures(report: dict) -> tuple[tuple[str, ...], dict[str, str]]:
    if _is_campaign(report):
        return (*CAMPAIGN_MEASURES, "share_percent"), CAMPAIGN_TITLES
    return (*MEASURES, "share_percent"), MEASURE_TITLES


def _breakdown_title(report: dict, dim: str) -> str:
    if dim == "period":
        return "Per dag" if report["participation"]["period"] == "day" else "Per vecka"
    return BREAKDOWN_TITLES[dim]


def cells(report: dict) -> list[dict[str, Any]]:
    """Every number of a report as one flat row (the CSV rows, and the HTML data-key cells)."""
    out: list[dict[str, Any]] = []
    measures, titles = _measures(report)
    for dim, rows in _participation_groups(report):
        for row in rows:
            for m in measures:
                out.append({"section": "participation", "breakdown": dim,
                            "group": row["group"], "questionnaire": "", "question_id": "",
                            "question": "", "value": "", "label": titles[m],
                            "measure": m, "count": row[m]})
    flagged = report.get("flagged")
    if flagged:
        # The count when it is 5 or more; "färre än 5" (no count) otherwise.
        out.append({"section": "safeguarding", "breakdown": "", "group": "",
                    "questionnaire": "", "question_id": "", "question": FLAGGED_TITLE,
                    "value": "", "label": flagged["text"], "measure": "flagged",
                    "count": flagged["count"]})
    for q in report.get("questions") or []:
        base = {"section": "answers", "breakdown": "", "group": "",
                "questionnaire": q["questionnaire"], "question_id": q["question_id"],
                "question": q["question"]}
        out.append({**base, "value": "", "label": "Svarade", "measure": "answered",
                    "count": q["answered"]})
        for v in q["values"]:
            for m in ("count", "percent"):
                out.append({**base, "value": v["value"], "label": v["label"], "measure": m,
                            "count": v[m]})
    return out


def cell_key(row: dict[str, Any]) -> str:
    return "|".join(str(row[c]) for c in ("section", "breakdown", "group", "questionnaire",
                                          "question_id", "value", "measure"))


def to_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


def to_csv(report: dict) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    if report["too_few"]:
        w.writerow({"section": "too_few", "label": report["message"]})
    for row in cells(report):
        w.writerow({**row, "count": "" if row["count"] is None else row["count"]})
    return buf.getvalue()


def _filters_line(report: dict) -> str:
    f = report["filters"]
    if _is_campaign(report):
        state = "öppen" if report["open"] else "stängd"
        per = "dag" if f["period"] == "day" else "vecka"
        return (f"Formulär: {f['questionnaire']}  |  Enhet: {f['unit'] or '-'}  |  "
                f"Öppen: {f['opens']} - {f['closes']} ({state}, räknat till och med "
                f"{f['until']})  |  Per {per}  |  Minsta grupp: {f['min_group']}")
    period = (f"{report['quarters'][0]} - {report['quarters'][-1]} ({f['since']} - {f['until']})"
              if report["quarters"] else "ingen data")
    return (f"Enhet: {f['unit'] or 'alla'}  |  Period: {period}  |  "
            f"Formulär: {f['questionnaire'] or 'alla'}  |  Minsta grupp: {f['min_group']}")


def _fmt(v: Any, percent: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v} %" if percent else str(v)


def render_text(report: dict) -> Group:
    parts: list[Any] = [Text(report["title"], style="bold"), Text(_filters_line(report))]
    if report["too_few"]:
        parts.append(Text(report["message"], style="yellow"))
        return Group(*parts)
    measures, titles = _measures(report)
    for dim, rows in _participation_groups(report):
        t = Table(title=_breakdown_title(report, dim), title_justify="left", show_edge=False)
        t.add_column("Period" if dim == "period" else "Grupp")
        for m in measures:
            t.add_column(titles[m], justify="right")
        for r in rows:
            t.add_row(r["group"], *[_fmt(r[m], m == "share_percent") for m in measures])
        parts.append(t)
    if report.get("flagged"):
        parts.append(Text(f"\n{FLAGGED_TITLE}: {report['flagged']['text']}", style="bold"))
    current = None
    for q in report["questions"]:
        if q["questionnaire"] != current:
            current = q["questionnaire"]
            parts.append(Text(f"\n{q['questionnaire_title']} ({current})", style="bold"))
        t = Table(title=f"{DOMAIN_TITLES.get(q['domain'], q['domain'])}: {q['question']} "
                        f"(svarade: {q['answered']})", title_justify="left", show_edge=False)
        t.add_column("Svar")
        t.add_column("Antal", justify="right")
        t.add_column("Andel", justify="right")
        for v in q["values"]:
            t.add_row(v["label"], _fmt(v["count"]), _fmt(v["percent"], True))
        parts.append(t)
    parts += [Text(n, style="dim") for n in report["notes"]]
    return Group(*parts)


_CSS = """
@page { size: A4; margin: 14mm; }
body { font-family: "Segoe UI", Arial, sans-serif; font-size: 10pt; color: #111; margin: 0; }
h1 { font-size: 15pt; margin: 0 0 4pt; } h2 { font-size: 12pt; margin: 12pt 0 4pt; }
h3 { font-size: 10pt; margin: 8pt 0 2pt; }
p.filters { margin: 0 0 8pt; color: #333; }
table { border-collapse: collapse; width: 100%; margin-bottom: 6pt; page-break-inside: avoid; }
th, td { border-bottom: 0.5pt solid #bbb; padding: 2pt 5pt; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.bar { width: 30%; } td.bar span { display: block; height: 7pt; background: #4a7ab8;
  -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.question { page-break-inside: avoid; }
.notes { color: #444; font-size: 8.5pt; margin-top: 10pt; }
.too-few { font-size: 12pt; padding: 8pt; border: 1pt solid #c90; }
"""


def _num(row: dict[str, Any], percent: bool = False, text: str | None = None) -> str:
    shown = text if text is not None else _fmt(row["count"], percent)
    return (f'<td class="n" data-key="{html.escape(cell_key(row))}">'
            f'{html.escape(shown)}</td>')


def to_html(report: dict) -> str:
    """One self-contained page (no scripts, fonts or images from the network) for A4 paper."""
    e = html.escape
    out = ['<!DOCTYPE html><html lang="sv"><head><meta charset="utf-8">',
           f"<title>{e(report['title'])}</title><style>{_CSS}</style></head><body>",
           f"<h1>{e(report['title'])}</h1>", f'<p class="filters">{e(_filters_line(report))}</p>']
    if report["too_few"]:
        out.append(f'<p class="too-few">{e(report["message"])}</p></body></html>')
        return "".join(out)
    rows = cells(report)
    measures, titles = _measures(report)
    part = [r for r in rows if r["section"] == "participation"]
    out.append("<h2>Deltagande</h2>")
    for dim, _ in _participation_groups(report):
        mine = [r for r in part if r["breakdown"] == dim]
        out.append(f"<h3>{e(_breakdown_title(report, dim))}</h3><table><tr><th>"
                   f"{'Period' if dim == 'period' else 'Grupp'}</th>" +
                   "".join(f'<th class="n">{e(titles[m])}</th>' for m in measures) + "</tr>")
        for group in dict.fromkeys(r["group"] for r in mine):
            cols = {r["measure"]: r for r in mine if r["group"] == group}
            out.append(f"<tr><td>{e(group)}</td>" + "".join(
                _num(cols[m], m == "share_percent") for m in measures) + "</tr>")
        out.append("</table>")
    for r in rows:
        if r["section"] == "safeguarding":
            out.append(f'<table><tr><td>{e(r["question"])}</td>{_num(r, text=r["label"])}'
                       "</tr></table>")
    current = None
    answers = [r for r in rows if r["section"] == "answers"]
    for q in report["questions"]:
        if q["questionnaire"] != current:
            current = q["questionnaire"]
            out.append(f"<h2>Svar: {e(q['questionnaire_title'])} ({e(current)})</h2>")
        mine = [r for r in answers if r["questionnaire"] == current
                and r["question_id"] == q["question_id"]]
        head = next(r for r in mine if r["measure"] == "answered")
        out.append(f'<div class="question"><h3>{e(q["question"])}</h3><table><tr>'
                   f'<th>Svar</th><th class="n">Antal</th><th class="n">Andel</th>'
                   f'<th></th></tr><tr><td>Svarade</td>{_num(head)}<td></td><td></td></tr>')
        for v in q["values"]:
            count = next(r for r in mine if r["measure"] == "count" and r["value"] == v["value"])
            pct = next(r for r in mine if r["measure"] == "percent" and r["value"] == v["value"])
            width = v["percent"] or 0
            out.append(f"<tr><td>{e(v['label'])}</td>{_num(count)}{_num(pct, True)}"
                       f'<td class="bar"><span style="width:{width}%"></span></td></tr>')
        out.append("</table></div>")
    out.append('<div class="notes">' + "".join(f"<p>{e(n)}</p>" for n in report["notes"]) +
               "</div></body></html>")
    return "".join(out)


def numbers(report: dict) -> dict[str, Any]:
    """Every number of a report by its cell key: what the renderers must all agree on."""
    return {cell_key(r): r["count"] for r in cells(report)}
