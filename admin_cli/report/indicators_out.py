"""The indicators (admin_cli/report/indicators.py) as text, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from admin_cli.i18n import _
from admin_cli.labels import PHASE_TITLES
from admin_cli.report.indicators import PLACED, SHARE_PHASES
from admin_cli.report.texts import HIDDEN

CSV_COLUMNS = ("month", "phase", "invited", "heard", "share_percent")


def figure(f: dict[str, Any], min_group: int) -> str:
    """"12 av 20 (60 %)"; "– av 20" when the count is hidden; "färre än 5" for a group too
    small to show; "inga" when nobody was invited."""
    if f["invited"] is None:
        return _("färre än {n}").format(n=min_group)
    if f["invited"] == 0:
        return _("inga")
    heard = HIDDEN if f["heard"] is None else str(f["heard"])
    share = "" if f["share_percent"] is None else f" ({f['share_percent']} %)"
    return _("{heard} av {invited}").format(heard=heard, invited=f["invited"]) + share


def indicators_text(report: dict) -> Group:
    n = report["filters"]["min_group"]
    f = report["filters"]
    parts: list[Any] = [Text(report["title"], style="bold"),
                        Text(_("Enhet: {unit}  |  Period: {since} - {until}  |  Minsta grupp: "
                               "{n}").format(unit=f["unit"] or _("alla"),
                                             since=f["since"] or "-", until=f["until"] or "-",
                                             n=n))]
    if report["too_few"]:
        parts.append(Text(report["message"], style="yellow"))
        return Group(*parts)
    t = Table(title=_("Andel barn som har kommit till tals, per månad och fas"),
              title_justify="left", show_edge=False)
    t.add_column(_("Månad"))
    for p in SHARE_PHASES:
        t.add_column(_(PHASE_TITLES[p]).capitalize(), justify="right")
    for row in report["months"]:
        t.add_row(row["month"], *[figure(row["phases"][p], n) for p in SHARE_PHASES])
    parts.append(t)
    placed = report["placed"]
    parts.append(Text("\n" + _("Placerade barn som har kommit till tals minst fyra gånger "
                               "({since} - {until}): {figure}").format(
        since=placed["from"], until=placed["to"], figure=figure(placed, n)), style="bold"))
    parts.append(Text(""))
    parts += [Text(d) for d in report["definitions"]]
    parts += [Text(note, style="dim") for note in report["notes"]]
    return Group(*parts)


def indicators_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


def indicators_csv(report: dict) -> str:
    """One row per month and phase, and one for the placed children (month: the twelve
    months, as from/to); a hidden count is empty."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()

    def row(month: str, phase: str, f: dict[str, Any]) -> dict[str, Any]:
        return {"month": month, "phase": phase,
                **{k: "" if f[k] is None else f[k] for k in CSV_COLUMNS[2:]}}

    for m in report["months"]:
        for p in SHARE_PHASES:
            w.writerow(row(m["month"], p, m["phases"][p]))
    if report["placed"]:
        placed = report["placed"]
        w.writerow(row(f"{placed['from']}/{placed['to']}", f"{PLACED}_4", placed))
    return buf.getvalue()
