"""The unit's monthly indicators per case phase (the Nacka action plan's): of the children
invited in a phase in a month, how many were heard (finished a questionnaire from such an
invitation), for the preliminary assessment, the investigation and the follow-up; and of the
placed children, how many were heard at least four times in the last twelve months.

Counted in SQL (GROUP BY month, phase and unit; per child first, so a child counts once);
Python adds up the few rows per month. The anonymity rules are the group report's
(admin_cli/report/__init__.py), applied to groups: whole months; per month and phase, a unit
with fewer than `min_group` such children is pooled with the other small units, or left out
when they are still too few together, so two reports differ by whole groups of at least
`min_group`; a figure is shown only for a group of at least `min_group` children, and then
whole (heard, of invited, and the share). Unlike an answer, being heard or not is not
something a child said: it measures the unit's work, which is what a unit reports monthly, so
a small "not heard" within a large enough group is shown rather than hiding the indicator.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, or_, select

from admin_cli.i18n import _
from admin_cli.labels import PHASE_TITLES
from admin_cli.report.build import ReportError, check_filters
from admin_cli.report.periods import Period, month_end, month_label, months
from admin_cli.report.protect import OTHER, percent, pool
from bot.app import App
from storage.sql import Child, Invitation, SessionRow, as_utc

SHARE_PHASES = ("forhandsbedomning", "utredning", "uppfoljning")
PLACED = "placering"
PLACED_TIMES = 4  # placed children are to be heard four times a year


def _month_of(dt: Any, tz: str) -> tuple[int, int]:
    local = as_utc(dt).astimezone(ZoneInfo(tz))
    return local.year, local.month


def build_indicators(app: App, actor: str, unit: str | None = None, since: date | None = None,
                     until: date | None = None, min_group: int = 5) -> dict:
    """The indicators for these filters (whole months from `since` to `until`, by default
    every month with a phase given). Written to the audit log first."""
    app.db.audit(actor, "report", None, json.dumps(
        {"indicators": True, "unit": unit, "since": since and since.isoformat(),
         "until": until and until.isoformat(), "min_group": min_group}))
    check_filters(app, None, since, until, min_group)
    tz = app.settings.timezone
    first = (since.year, since.month) if since else None
    last = (until.year, until.month) if until else None
    if first is None or last is None:
        with app.db.Session() as db:
            lo, hi = db.execute(select(func.min(Invitation.created_at),
                                       func.max(Invitation.created_at))
                                .where(Invitation.phase.is_not(None))).one()
        if lo is not None:
            first, last = first or _month_of(lo, tz), last or _month_of(hi, tz)
    report: dict[str, Any] = {
        "kind": "indicators", "title": _("Indikatorer: barn som har kommit till tals"),
        "filters": {"unit": unit, "since": None, "until": None, "min_group": min_group},
        "months": [], "placed": None, "too_few": True,
        "message": _("Inga inbjudningar med fas i perioden (tala invite ... --phase)."),
        "definitions": definitions(), "notes": []}
    if first is None or last is None or first > last:
        return report
    period = months(first, last, tz)
    report["filters"]["since"] = date(*period.parts[0], 1).isoformat()
    report["filters"]["until"] = month_end(*period.parts[-1]).isoformat()
    report.update(too_few=False, message=None,
                  months=_phase_shares(app, period, unit, min_group),
                  placed=_placed(app, period, unit, min_group, tz))
    report["notes"] = _notes(min_group)
    return report


def _shown(invited: int, heard: int, any_at_all: bool, min_group: int) -> dict[str, Any]:
    """One figure: heard of invited and the share, for a group of at least `min_group`;
    nothing but "too few" for a smaller one (invited None), 0 when nobody was invited."""
    if invited == 0:
        return {"invited": None if any_at_all else 0, "heard": None, "share_percent": None}
    if invited < min_group:  # cannot happen with pooled units, kept as the rule itself
        return {"invited": None, "heard": None, "share_percent": None}
    return {"invited": invited, "heard": heard,
            "share_percent": percent(heard, invited, min_group)}


def _blocks(rows: list[Any], key: Any, unit: str | None, min_group: int) -> dict:
    """Per group (`key` of a row), the rows' (invited, heard) summed over the units shown:
    units with fewer than min_group children pooled, or left out when too few together; and
    whether the group had any children at all (then a group with none shown says so)."""
    sizes: dict[Any, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        sizes[key(r)][r.unit or ""] += r.n
    out: dict[Any, list] = {}
    for group, units in sizes.items():
        where = pool(units, min_group, fill=False)
        mine = [r for r in rows if key(r) == group and (unit is None or r.unit == unit)]
        chosen = [r for r in mine if where[r.unit or ""] is not None
                  and (unit is None or where[r.unit or ""] != OTHER)]
        out[group] = [sum(r.n for r in chosen), sum(int(r.heard or 0) for r in chosen),
                      bool(mine)]
    return out


def _phase_shares(app: App, period: Period, unit: str | None, min_group: int) -> list[dict]:
    created = Invitation.created_at
    done = or_(SessionRow.status == "completed", Invitation.status == "completed")
    # The month is computed in a subquery and grouped by by name: PostgreSQL would not take
    # the same CASE with its own bound parameters in SELECT and GROUP BY as one expression.
    inv = (select(Child.unit.label("unit"), period.index(created).label("k"),
                  Invitation.phase.label("phase"), Invitation.child_id.label("child_id"),
                  case((done, 1), else_=0).label("done"))
           .join(Child, Child.id == Invitation.child_id)
           .outerjoin(SessionRow, SessionRow.id == Invitation.session_id)
           .where(*period.within(created), Invitation.phase.in_(SHARE_PHASES))
           .subquery("inv"))
    per_child = (select(inv.c.unit, inv.c.k, inv.c.phase, inv.c.child_id,
                        func.max(inv.c.done).label("heard"))
                 .group_by(inv.c.unit, inv.c.k, inv.c.phase, inv.c.child_id)
                 .subquery("per_child"))
    c = per_child.c
    with app.db.Session() as db:
        rows = list(db.execute(select(c.unit, c.k, c.phase, func.count().label("n"),
                                      func.sum(c.heard).label("heard"))
                               .group_by(c.unit, c.k, c.phase)))
    got = _blocks(rows, lambda r: (r.k, r.phase), unit, min_group)
    return [{"month": month_label(*ym),
             "phases": {p: _shown(*got.get((k, p), (0, 0, False)), min_group=min_group)
                        for p in SHARE_PHASES}}
            for k, ym in enumerate(period.parts)]


def _placed(app: App, period: Period, unit: str | None, min_group: int, tz: str) -> dict:
    """Placed children (a placement invitation in the twelve months up to the period's end)
    and how many of them finished at least four questionnaires in that phase in those
    months."""
    y, m = period.parts[-1]
    start_ym = (y - 1, m + 1) if m < 12 else (y, 1)
    window = months(start_ym, (y, m), tz)
    lo, hi = window.bounds[0], window.bounds[-1]
    heard = (select(SessionRow.child_id, func.count().label("times"))
             .where(SessionRow.phase == PLACED, SessionRow.status == "completed",
                    SessionRow.completed_at >= lo, SessionRow.completed_at < hi)
             .group_by(SessionRow.child_id).subquery("heard"))
    placed = (select(Invitation.child_id, Child.unit)
              .join(Child, Child.id == Invitation.child_id)
              .where(Invitation.phase == PLACED, Invitation.created_at >= lo,
                     Invitation.created_at < hi)
              .distinct().subquery("placed"))
    enough = case((func.coalesce(heard.c.times, 0) >= PLACED_TIMES, 1), else_=0)
    with app.db.Session() as db:
        rows = list(db.execute(
            select(placed.c.unit, func.count().label("n"), func.sum(enough).label("heard"))
            .select_from(placed).outerjoin(heard, heard.c.child_id == placed.c.child_id)
            .group_by(placed.c.unit)))
    got = _blocks(rows, lambda r: "all", unit, min_group).get("all", (0, 0, False))
    return {"from": date(*start_ym, 1).isoformat(), "to": month_end(y, m).isoformat(),
            **_shown(*got, min_group=min_group)}


def definitions() -> list[str]:
    phase = _("{phase}: av barnen som bjöds in under {phase_lower} en månad, andelen som kom "
              "till tals, det vill säga svarade klart på ett formulär från en sådan inbjudan.")
    out = [phase.format(phase=_(PHASE_TITLES[p]).capitalize(), phase_lower=_(PHASE_TITLES[p]))
           for p in SHARE_PHASES]
    out.append(_("Placerade barn: av barnen med en inbjudan under placering de senaste tolv "
                 "månaderna, hur många som svarade klart minst {times} gånger under "
                 "placering under de månaderna.").format(times=PLACED_TIMES))
    return out


def _notes(min_group: int) -> list[str]:
    return [_("Ett barn räknas en gång per månad och fas, i den månad inbjudan skickades. "
              "En enhet med färre än {n} sådana barn en månad räknas tillsammans med andra "
              "små enheter, eller inte alls om de är för få även tillsammans.").format(
                n=min_group),
            _("En siffra visas bara för en grupp med minst {n} barn; \"färre än {n}\" "
              "betyder att gruppen är för liten för att visa något, \"inga\" att ingen "
              "bjöds in.").format(n=min_group)]


__all__ = ["ReportError", "build_indicators", "definitions"]
