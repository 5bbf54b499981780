"""The group report's SQL: every count is made by the database (GROUP BY / COUNT), per
block (unit, quarter, questionnaire) and level; Python only adds up the few thousand rows
that come back. A multiple-choice answer is a JSON list, which SQLite and PostgreSQL cannot unnest
in the same SQL, so those answers are grouped by their JSON text and the few distinct
combinations are split into options by the model (admin_cli/report/questions.py)."""

from __future__ import annotations

from collections import defaultdict, namedtuple
from typing import Any

from sqlalchemy import String, case, cast, func, or_, select

from admin_cli.report.periods import Period
from bot.app import App
from flows.model import Questionnaire
from storage.sql import AnswerRow, Child, Invitation, SessionRow

FIXED_TYPES = ("yes_no", "scale", "choice", "multi_choice")
# An invitation whose status says the child began, though no session is stored yet (a live
# session is in Redis until it ends; nothing writes these today, but if it does they count).
STARTED_STATUSES = ("active", "paused", "completed", "stopped")
LEVELS = (0, 1, 2)  # invited only, started (not completed), completed


def participation(app: App, period: Period, qn_ids: list[str]) -> dict[str, list[Any]]:
    """Children counted once per unit, quarter and questionnaire (a child invited twice in a
    quarter counts once, by the furthest they got), grouped per block and level, and per
    block, level and caseworker, age band or language."""
    created = Invitation.created_at
    completed = or_(SessionRow.status == "completed", Invitation.status == "completed")
    started = or_(SessionRow.id.is_not(None), Invitation.status.in_(STARTED_STATUSES))
    inv = (select(Invitation.child_id.label("child_id"), Child.unit.label("unit"),
                  Child.caseworker.label("caseworker"), Child.birth_year.label("birth_year"),
                  period.index(created).label("k"),
                  period.year(created).label("yr"),
                  Invitation.questionnaire_id.label("qn"), Invitation.lang.label("lang"),
                  case((completed, 2), (started, 1), else_=0).label("level"))
           .join(Child, Child.id == Invitation.child_id)
           .outerjoin(SessionRow, SessionRow.id == Invitation.session_id)
           .where(*period.within(created), Invitation.questionnaire_id.in_(qn_ids))
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
    # One query grouped by all of them, not one per dimension (each computing the per-child
    # subquery again): Python adds the few thousand rows up into the four groupings (SQLite has
    # no GROUPING SETS). bench/reports.py: 1.8 s -> 1.2 s on a million answers.
    dims = ("caseworker", "age_band", "language")
    cols = [child.c.unit, child.c.k, child.c.qn, child.c.lvl, *[child.c[d] for d in dims]]
    with app.db.Session() as db:
        rows = list(db.execute(select(*cols, func.count().label("n")).group_by(*cols)))
    out: dict[str, list[Any]] = {}
    for dim in ("block", *dims):
        extra = () if dim == "block" else (dim,)
        sums: dict[tuple, int] = defaultdict(int)
        for r in rows:
            sums[(r.unit, r.k, r.qn, r.lvl, *[getattr(r, d) for d in extra])] += r.n
        shape = _ROWS[dim]
        out[dim] = [shape(*key, total) for key, total in sums.items()]
    return out


_ROWS = {dim: namedtuple(f"Participation_{dim}", ("unit", "k", "qn", "lvl",
                                                  *(() if dim == "block" else (dim,)), "n"))
         for dim in ("block", "caseworker", "age_band", "language")}


def answers(app: App, period: Period, qns: list[Questionnaire]) -> tuple[list, list]:
    """Per unit, quarter and questionnaire: how many children answered (their latest session
    in that quarter counts), and how many gave each current, not skipped, fixed answer."""
    created = Invitation.created_at
    s0 = (select(SessionRow.id.label("sid"), Invitation.child_id.label("child_id"),
                 Child.unit.label("unit"),
                 period.index(created).label("k"),
                 Invitation.questionnaire_id.label("qn"), SessionRow.started_at)
          .join(Invitation, Invitation.session_id == SessionRow.id)
          .join(Child, Child.id == Invitation.child_id)
          .where(*period.within(created), SessionRow.started_at.is_not(None),
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
    # to another questionnaire's question are dropped later by the model.
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

