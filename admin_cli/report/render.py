"""The report as data and as text: every number as one flat row (CSV, and the HTML's data-key
cells), JSON, CSV and a Rich renderable for the terminal. One set of renderers for both kinds
of report: the case report and a survey's (`"kind": "campaign"`); they differ only in the
participation part and the safeguarding count."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from admin_cli.i18n import _
from admin_cli.labels import DOMAIN_TITLES, title
from admin_cli.report.texts import (BREAKDOWN_TITLES, BREAKDOWNS, CAMPAIGN_TITLES,
                                    FLAGGED_TITLE, HIDDEN, MEASURE_TITLES)

MEASURES = ("invited", "started", "completed")
CAMPAIGN_MEASURES = ("started", "completed")
CSV_COLUMNS = ("section", "breakdown", "group", "questionnaire", "question_id", "question",
               "value", "label", "measure", "count")


def is_campaign(report: dict) -> bool:
    return report.get("kind") == "campaign"


def participation_groups(report: dict) -> list[tuple[str, list[dict]]]:
    """(breakdown, rows) of the participation part, the total first."""
    p = report.get("participation")
    if not p:
        return []
    total = [("total", [{"group": _("Totalt"), **p["total"]}])]
    if is_campaign(report):
        return total + [("period", p["periods"])]
    return total + [(dim, p[dim]) for dim in BREAKDOWNS]


def measures(report: dict) -> tuple[tuple[str, ...], dict[str, str]]:
    """The participation columns, and their titles in the staff language."""
    if is_campaign(report):
        return (*CAMPAIGN_MEASURES, "share_percent"), {k: _(v) for k, v in
                                                        CAMPAIGN_TITLES.items()}
    return (*MEASURES, "share_percent"), {k: _(v) for k, v in MEASURE_TITLES.items()}


def breakdown_title(report: dict, dim: str) -> str:
    if dim == "period":
        return _("Per dag") if report["participation"]["period"] == "day" else _("Per vecka")
    return _(BREAKDOWN_TITLES[dim])


def group_column(dim: str) -> str:
    return _("Period") if dim == "period" else _("Grupp")


def cells(report: dict) -> list[dict[str, Any]]:
    """Every number of a report as one flat row (the CSV rows, and the HTML data-key cells);
    a hidden number has count None."""
    out: list[dict[str, Any]] = []
    ms, titles = measures(report)
    for dim, rows in participation_groups(report):
        for row in rows:
            for m in ms:
                out.append({"section": "participation", "breakdown": dim,
                            "group": row["group"], "questionnaire": "", "question_id": "",
                            "question": "", "value": "", "label": titles[m],
                            "measure": m, "count": row[m]})
    flagged = report.get("flagged")
    if flagged:
        out.append({"section": "safeguarding", "breakdown": "", "group": "",
                    "questionnaire": "", "question_id": "", "question": _(FLAGGED_TITLE),
                    "value": "", "label": flagged["text"], "measure": "flagged",
                    "count": flagged["count"]})
    for q in report.get("questions") or []:
        base = {"section": "answers", "breakdown": "", "group": "",
                "questionnaire": q["questionnaire"], "question_id": q["question_id"],
                "question": q["question"]}
        out.append({**base, "value": "", "label": _("Svarade"), "measure": "answered",
                    "count": q["answered"]})
        for v in q["values"]:
            for m in ("count", "percent"):
                out.append({**base, "value": v["value"], "label": v["label"], "measure": m,
                            "count": v[m]})
    return out


def cell_key(row: dict[str, Any]) -> str:
    return "|".join(str(row[c]) for c in ("section", "breakdown", "group", "questionnaire",
                                          "question_id", "value", "measure"))


def numbers(report: dict) -> dict[str, Any]:
    """Every number of a report by its cell key: what the renderers must all agree on."""
    return {cell_key(r): r["count"] for r in cells(report)}


def to_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


def to_csv(report: dict) -> str:
    """One row per number; a hidden number has an empty count."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    if report["too_few"]:
        w.writerow({"section": "too_few", "label": report["message"]})
    for row in cells(report):
        w.writerow({**row, "count": "" if row["count"] is None else row["count"]})
    return buf.getvalue()


def filters_line(report: dict) -> str:
    f = report["filters"]
    if is_campaign(report):
        state = _("öppen") if report["open"] else _("stängd")
        per = _("dag") if f["period"] == "day" else _("vecka")
        return _("Formulär: {qn}  |  Enhet: {unit}  |  Öppen: {opens} - {closes} ({state}, "
                 "räknat till och med {until})  |  Per {per}  |  Minsta grupp: {n}").format(
            qn=f["questionnaire"], unit=f["unit"] or "-", opens=f["opens"],
            closes=f["closes"], state=state, until=f["until"], per=per, n=f["min_group"])
    period = (f"{report['quarters'][0]} - {report['quarters'][-1]} ({f['since']} - "
              f"{f['until']})" if report["quarters"] else _("ingen data"))
    return _("Enhet: {unit}  |  Period: {period}  |  Formulär: {qn}  |  Minsta grupp: "
             "{n}").format(unit=f["unit"] or _("alla"), period=period,
                           qn=f["questionnaire"] or _("alla"), n=f["min_group"])


def fmt(v: Any, percent: bool = False) -> str:
    if v is None:
        return HIDDEN
    return f"{v} %" if percent else str(v)


def render_text(report: dict) -> Group:
    parts: list[Any] = [Text(report["title"], style="bold"), Text(filters_line(report))]
    if report["too_few"]:
        parts.append(Text(report["message"], style="yellow"))
        return Group(*parts)
    ms, titles = measures(report)
    for dim, rows in participation_groups(report):
        t = Table(title=breakdown_title(report, dim), title_justify="left", show_edge=False)
        t.add_column(group_column(dim))
        for m in ms:
            t.add_column(titles[m], justify="right")
        for r in rows:
            t.add_row(r["group"], *[fmt(r[m], m == "share_percent") for m in ms])
        parts.append(t)
    if report.get("flagged"):
        parts.append(Text(f"\n{_(FLAGGED_TITLE)}: {report['flagged']['text']}", style="bold"))
    current = None
    for q in report["questions"]:
        if q["questionnaire"] != current:
            current = q["questionnaire"]
            parts.append(Text(f"\n{q['questionnaire_title']} ({current})", style="bold"))
        t = Table(title=_("{area}: {question} (svarade: {n})").format(
            area=title(DOMAIN_TITLES, q["domain"]), question=q["question"],
            n=fmt(q["answered"])), title_justify="left", show_edge=False)
        t.add_column(_("Svar"))
        t.add_column(_("Antal"), justify="right")
        t.add_column(_("Andel"), justify="right")
        for v in q["values"]:
            t.add_row(v["label"], fmt(v["count"]), fmt(v["percent"], True))
        parts.append(t)
    parts += [Text(n, style="dim") for n in report["notes"]]
    return Group(*parts)
