"""The report as HTML: one self-contained page for A4 paper (no scripts, fonts or images from
the network) and the same content for a staff page under a strict Content-Security-Policy.

`to_html` lays out admin_cli/templates/report.html, which inlines static/report.css and
includes report_body.html; a staff page renders report_body.html with `context(report)`.
Autoescaped. Every number sits in a cell whose data-key is its cell key, so a test can read
them back."""

from __future__ import annotations

from typing import Any

from admin_cli.i18n import _, staff_lang
from admin_cli.report.render import (breakdown_title, cell_key, cells, filters_line, fmt,
                                     group_column, measures, participation_groups)
from admin_cli.templating import environment


def _cell(row: dict[str, Any], percent: bool = False) -> dict[str, str]:
    return {"key": cell_key(row), "text": fmt(row["count"], percent)}


def context(report: dict) -> dict[str, Any]:
    """What report.html and report_body.html are rendered with, in the staff language."""
    rows = cells(report)
    ms, titles = measures(report)
    part = [r for r in rows if r["section"] == "participation"]
    participation = []
    for dim, _rows in participation_groups(report):
        mine = [r for r in part if r["breakdown"] == dim]
        shown = []
        for group in dict.fromkeys(r["group"] for r in mine):
            by = {r["measure"]: r for r in mine if r["group"] == group}
            shown.append({"group": group,
                          "cells": [_cell(by[m], m == "share_percent") for m in ms]})
        participation.append({"title": breakdown_title(report, dim),
                              "column": group_column(dim), "rows": shown})
    flagged = next(({"question": r["question"], "key": cell_key(r), "text": r["label"]}
                    for r in rows if r["section"] == "safeguarding"), None)
    answers = [r for r in rows if r["section"] == "answers"]
    questions, current = [], None
    for q in report["questions"]:
        mine = [r for r in answers if r["questionnaire"] == q["questionnaire"]
                and r["question_id"] == q["question_id"]]

        def find(measure: str, value: Any = "", mine: list = mine) -> dict:
            return next(r for r in mine if r["measure"] == measure and r["value"] == value)

        questions.append({
            **q, "first": q["questionnaire"] != current,
            "answered": _cell(find("answered")),
            "values": [{"label": v["label"], "count": _cell(find("count", v["value"])),
                        "percent": _cell(find("percent", v["value"]), True),
                        "width": v["percent"] or 0} for v in q["values"]]})
        current = q["questionnaire"]
    texts = {"participation": _("Deltagande"), "answers": _("Svar"), "answer": _("Svar"),
             "count": _("Antal"), "share": _("Andel"), "answered": _("Svarade")}
    return {"report": report, "lang": staff_lang(), "filters": filters_line(report),
            "t": texts, "measures": [{"title": titles[m]} for m in ms],
            "participation": participation, "flagged": flagged, "questions": questions}


def to_html(report: dict) -> str:
    """The standalone page."""
    return environment().get_template("report.html").render(**context(report))
