"""The group report's model: the numbers of admin_cli/report/queries.py put together into
what every renderer shows, with small groups pooled and small counts hidden (the rules are in
admin_cli/report/__init__.py)."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from sqlalchemy import func, select

from admin_cli.i18n import _, staff_lang
from admin_cli.report import queries
from admin_cli.report.periods import (Period, quarter_end, quarter_label, quarter_of,
                                      quarter_start, quarters)
from admin_cli.report.protect import OTHER, hidden_cells, percent, pool, table_lines
from admin_cli.report.questions import count_answers, question_entry
from admin_cli.report.texts import (AGE_BANDS, BREAKDOWNS, hidden_note, other_title,
                                    suppression_note)
from bot.app import App
from flows.model import Questionnaire
from storage.sql import Invitation, as_utc

LEVELS = queries.LEVELS
NO_VALUE = ""  # a unit or caseworker that is not recorded
TOTAL = ("total", "")
Block = tuple[int, str, str]  # (quarter index in the period, questionnaire, unit or OTHER)


class ReportError(ValueError):
    """A filter that cannot be used; the message says why."""


def blocks_of(sizes: dict[tuple[int, str], dict[str, int]],
              min_group: int) -> dict[tuple[int, str, str], Block | None]:
    """(k, questionnaire, unit) -> the block it is counted in, or None when left out: a unit
    with fewer than `min_group` children that quarter and questionnaire is pooled with the
    other small units, and left out when they are still too few together."""
    out: dict[tuple[int, str, str], Block | None] = {}
    for (k, qn), units in sizes.items():
        for unit, shown in pool(units, min_group, fill=False).items():
            out[(k, qn, unit)] = None if shown is None else (k, qn, shown)
    return out


def check_filters(app: App, questionnaire: str | None, since: date | None,
                  until: date | None, min_group: int) -> None:
    if min_group < 2:
        raise ReportError(_("Minsta grupp måste vara 2 eller mer (5 om inget annat anges)."))
    if questionnaire is not None and questionnaire not in app.questionnaires:
        raise ReportError(_("Formuläret '{name}' finns inte. Det finns: {known}.").format(
            name=questionnaire, known=", ".join(sorted(app.questionnaires))))
    if since and until and since > until:
        raise ReportError(_("--since är efter --until."))


def build_report(app: App, actor: str, unit: str | None = None, since: date | None = None,
                 until: date | None = None, questionnaire: str | None = None,
                 min_group: int = 5) -> dict:
    """The anonymised report for these filters. Writes the audit log first, whatever happens
    next."""
    filters = {"unit": unit, "since": since.isoformat() if since else None,
               "until": until.isoformat() if until else None,
               "questionnaire": questionnaire, "min_group": min_group}
    app.db.audit(actor, "report", None, json.dumps(filters, ensure_ascii=False))
    check_filters(app, questionnaire, since, until, min_group)
    qns = [app.questionnaires[questionnaire]] if questionnaire else \
        [app.questionnaires[k] for k in sorted(app.questionnaires)]
    tz = app.settings.timezone
    first = quarter_of(since) if since else None
    last = quarter_of(until) if until else None
    if first is None or last is None:
        with app.db.Session() as db:
            lo, hi = db.execute(select(func.min(Invitation.created_at),
                                       func.max(Invitation.created_at))).one()
        if lo is not None:
            first = first or quarter_of(as_utc(lo).astimezone(ZoneInfo(tz)).date())
            last = last or quarter_of(as_utc(hi).astimezone(ZoneInfo(tz)).date())
    report: dict[str, Any] = {
        "title": _("Barnens svar: sammanställning för enheter och perioder"),
        "filters": {"unit": unit, "questionnaire": questionnaire, "min_group": min_group,
                    "requested_since": filters["since"], "requested_until": filters["until"],
                    "since": None, "until": None},
        "quarters": [], "too_few": True,
        "message": _("För få barn för att visa något (färre än {n}).").format(n=min_group),
        "participation": None, "questions": [], "notes": [],
    }
    if first is None or last is None or first > last:
        return report
    period = quarters(first, last, tz)
    report["filters"]["since"] = quarter_start(*period.parts[0]).isoformat()
    report["filters"]["until"] = quarter_end(*period.parts[-1]).isoformat()
    report["quarters"] = [quarter_label(y, q) for y, q in period.parts]
    participation = _participation(app, period, qns, unit, min_group)
    if participation is None:
        return report
    report.update(too_few=False, message=None, participation=participation,
                  questions=_questions(app, period, qns, unit, min_group))
    report["notes"] = _notes(report, min_group)
    return report


def _add(into: dict[int, int], lv: dict[int, int]) -> None:
    for k in LEVELS:
        into[k] += lv.get(k, 0)


def _levels() -> defaultdict:
    return defaultdict(lambda: dict.fromkeys(LEVELS, 0))


def _participation(app: App, period: Period, qns: list[Questionnaire], unit: str | None,
                   min_group: int) -> dict | None:
    rows = queries.participation(app, period, [q.id for q in qns])
    sizes: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows["block"]:
        sizes[(r.k, r.qn)][r.unit or NO_VALUE] += r.n
    where = blocks_of(sizes, min_group)
    chosen = {b for b in where.values()
              if b is not None and (unit is None or b[2] == unit)}
    if not chosen:
        return None
    # Exact counts per level: the total, per unit, and per caseworker, age band and language,
    # over the chosen blocks only (what is left out of them is left out everywhere).
    groups: dict[str, dict[str, dict[int, int]]] = {d: _levels() for d in ("total", *BREAKDOWNS)}
    for r in rows["block"]:
        b = where[(r.k, r.qn, r.unit or NO_VALUE)]
        if b in chosen:
            groups["total"][""][r.lvl] += r.n
            groups["unit"][b[2]][r.lvl] += r.n
    for dim in BREAKDOWNS[1:]:
        exact = _levels()
        for r in rows[dim]:
            if where[(r.k, r.qn, r.unit or NO_VALUE)] in chosen:
                exact[getattr(r, dim) or NO_VALUE][r.lvl] += r.n
        # Per report, not per block: every group with enough children in the report has a row.
        shown = pool({c: sum(v.values()) for c, v in exact.items()}, min_group, fill=True)
        for c, v in exact.items():
            _add(groups[dim][shown[c] or OTHER], v)
    cells = {((d, g), lv): n for d, rows_ in groups.items() for g, lvs in rows_.items()
             for lv, n in lvs.items()}
    lines = [line for d in BREAKDOWNS
             for line in table_lines([(d, g) for g in groups[d]], LEVELS, TOTAL)]
    hidden = hidden_cells(cells, lines, min_group)

    def measures(key: tuple[str, str]) -> dict[str, Any]:
        lv = groups[key[0]][key[1]]
        invited = sum(lv.values())
        started = None if (key, 0) in hidden else invited - lv[0]
        done = None if (key, 2) in hidden else lv[2]
        return {"invited": invited, "started": started, "completed": done,
                "share_percent": percent(done, invited, min_group)}

    out: dict[str, Any] = {"total": measures(TOTAL)}
    for dim in BREAKDOWNS:
        order = sorted(groups[dim], key=lambda k, d=dim: _order_key(d, k, min_group))
        out[dim] = [{"group": _group_label(dim, k, min_group), "other": k == OTHER,
                     **measures((dim, k))} for k in order]
    return out


def _group_label(dim: str, key: str, min_group: int) -> str:
    if key == OTHER:
        return other_title(dim, min_group)
    if dim == "unit":
        return key or _("(ingen enhet)")
    if dim == "caseworker":
        return key or _("(ingen angiven)")
    if dim == "age_band":
        return _(AGE_BANDS[key]) if key in AGE_BANDS else key
    try:
        name = Locale.parse(staff_lang()).languages.get(key)
    except (ValueError, TypeError):
        name = None
    return f"{name} ({key})" if name else key


def _order_key(dim: str, key: str, min_group: int) -> tuple[bool, str]:
    if dim == "age_band":
        return key == OTHER, str(list(AGE_BANDS).index(key)) if key in AGE_BANDS else key
    return key == OTHER, _group_label(dim, key, min_group).casefold()


def _questions(app: App, period: Period, qns: list[Questionnaire], unit: str | None,
               min_group: int) -> list[dict]:
    respondents, rows = queries.answers(app, period, qns)
    sizes: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in respondents:
        sizes[(r.k, r.qn)][r.unit or NO_VALUE] += r.n
    where = blocks_of(sizes, min_group)
    chosen = {b for b in where.values() if b is not None and (unit is None or b[2] == unit)}
    out = []
    for qn in qns:
        if not any(b[1] == qn.id for b in chosen):
            continue
        mine = [r for r in rows if r.qn == qn.id
                and where.get((r.k, r.qn, r.unit or NO_VALUE)) in chosen]
        answered: dict[str, int] = {}
        counts: dict[str, dict[Any, int]] = {}
        count_answers(qn, mine, answered, counts)
        out += [question_entry(qn, q, answered.get(q.id, 0), counts.get(q.id, {}), min_group)
                for q in qn.questions if q.type in queries.FIXED_TYPES]
    return out


def _notes(report: dict, min_group: int) -> list[str]:
    f = report["filters"]
    notes = [suppression_note(min_group), hidden_note(min_group),
             _("En enhet med färre än {n} barn i ett kvartal och formulär räknas som Övriga "
               "enheter (eller inte alls, om de är för få även tillsammans). Handläggare, "
               "åldrar och språk med färre än {n} barn i rapporten visas tillsammans på en "
               "rad; är den raden för liten läggs nästa minsta grupp till.").format(
                 n=min_group),
             _("Rapporten räknar alltid hela kvartal och hela block (en enhet, ett kvartal, "
               "ett formulär, med minst {n} barn): två rapporter skiljer sig därför alltid åt "
               "med hela block på minst {n} barn, aldrig med ett enskilt barn.").format(
                 n=min_group),
             _("Ett barn räknas en gång per kvartal och formulär; svaren kommer från barnets "
               "senaste påbörjade svarstillfälle det kvartalet. Fritext visas aldrig.")]
    if (f["requested_since"] and f["requested_since"] != f["since"]) or \
            (f["requested_until"] and f["requested_until"] != f["until"]):
        notes.append(_("Perioden är utvidgad till hela kvartal: {since} - {until}.").format(
            since=f["since"], until=f["until"]))
    if not report["questions"]:
        notes.append(_("Inga svar visas: färre än {n} barn har svarat.").format(n=min_group))
    return notes
