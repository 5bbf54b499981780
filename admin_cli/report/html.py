"""The report as one self-contained HTML page for A4 paper (no scripts, fonts or images from
the network), from the autoescaping Jinja2 template admin_cli/templates/report.html. Every
number sits in a cell whose data-key is its cell key, so a test can read them back."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from admin_cli.i18n import _, staff_lang
from admin_cli.report.render import (breakdown_title, cell_key, cells, filters_line, fmt,
                                     group_column, measures, participation_groups)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=PackageLoader("admin_cli", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True))


def _cell(row: dict[str, Any], percent: bool = False) -> dict[str, str]:
    return {"key": cell_key(row), "text": fmt(row["count"], percent)}


def to_html(report: dict) -> str:
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
    return _env().get_template("report.html").render(
        report=report, lang=staff_lang(), filters=filters_line(report), t=texts,
        measures=[{"title": titles[m]} for m in ms], participation=participation,
        flagged=flagged, questions=questions)
