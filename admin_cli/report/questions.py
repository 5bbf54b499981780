"""The answers part of a report (the case report's and a survey's alike): how many children
answered each fixed-answer question and how many gave each answer, exact, with small counts
hidden (admin_cli/report/protect.py) and shares from the exact counts."""

from __future__ import annotations

import json
from typing import Any

from admin_cli.labels import answer_label
from admin_cli.report.protect import hidden_cells, percent
from flows.model import Questionnaire


def value_of(q: Any, row: Any) -> list[Any]:
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


def possible(q: Any) -> list[Any]:
    if q.type == "yes_no":
        return ["yes", "no"]
    if q.type == "scale":
        return list(range(q.scale.min, q.scale.max + 1))
    return [o.id for o in q.options]


def count_answers(qn: Questionnaire, rows: list[Any], answered: dict[str, int],
                  counts: dict[str, dict[Any, int]]) -> None:
    """Add grouped answer rows (question_id, value_num, value_option, opts, n) of one
    questionnaire into `answered` (question -> children) and `counts` (question -> value ->
    children)."""
    for r in rows:
        if not qn.has(r.question_id):
            continue
        values = value_of(qn.question(r.question_id), r)
        if values:
            answered[r.question_id] = answered.get(r.question_id, 0) + r.n
            per = counts.setdefault(r.question_id, {})
            for v in values:
                per[v] = per.get(v, 0) + r.n


def question_entry(qn: Questionnaire, q: Any, answered: int, seen: dict[Any, int],
                   min_group: int) -> dict:
    """One question's answers. Fewer than `min_group` answered: no number at all but that
    (hidden). Otherwise every answer's exact count, hidden where protect says (for multiple
    choice, each option's chosen / not chosen adds up to those who answered)."""
    values = {v: seen.get(v, 0) for v in possible(q)}
    if 0 < answered < min_group:
        hidden = set(values)
        shown_answered: int | None = None
    else:
        shown_answered = answered
        if q.type == "multi_choice":
            cells = {**{(v, "yes"): n for v, n in values.items()},
                     **{(v, "no"): answered - n for v, n in values.items()}}
            lines = [([(v, "yes"), (v, "no")], None) for v in values]
            hidden = {v for v, _ in hidden_cells(cells, lines, min_group)}
        else:
            hidden = hidden_cells(values, [(list(values), None)], min_group)
    return {
        "questionnaire": qn.id, "questionnaire_title": qn.title,
        "question_id": q.id, "question": q.text, "type": q.type, "domain": q.domain,
        "answered": shown_answered,
        "values": [{"value": v, "label": answer_label(qn, q.id, [v] if q.type == "multi_choice"
                                                else v, False) or str(v),
                    "count": None if v in hidden else c,
                    "percent": None if v in hidden else percent(c, shown_answered, min_group)}
                   for v, c in values.items()]}
