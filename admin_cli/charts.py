"""Charts of a child's scale answers over time, made with matplotlib (the Agg canvas on a bare
Figure: no pyplot, no global backend, safe in a server).

`panels(data)` turns a summary (admin_cli.summary.build) into one panel per life area;
`panel_svg` draws one panel as an inline SVG for the HTML summary (text drawn as paths, so no
font and no network is needed to show it); `summary_png` draws every panel into one picture
for a case file.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

# Okabe-Ito: told apart with colour blindness; markers and dashes tell them apart in grey.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES = ("-", "--", "-.", ":", "-", "--", "-.")
INK, MUTED, GRID = "#1a1a1a", "#5b5b5b", "#dddddd"
_RC = {"svg.fonttype": "path", "svg.hashsalt": None, "font.family": "DejaVu Sans",
       "axes.edgecolor": MUTED, "xtick.color": INK, "ytick.color": INK}
PNG_WIDTH_PX, PNG_DPI = 1600, 150


@dataclass
class Line:
    question: str
    values: dict[str, float]  # session id -> value
    change: dict | None


@dataclass
class Panel:
    domain: str
    title: str
    lo: int
    hi: int
    xs: list[tuple[str, str]] = field(default_factory=list)  # (date, session id), oldest first
    lines: list[Line] = field(default_factory=list)


def panels(data: dict, single: bool = False) -> list[Panel]:
    """One panel per life area (and scale, if an area mixes 1-5 and 0-10) from the over-time
    questions; with single=True also scale questions answered only once (a first session)."""
    from admin_cli.labels import DOMAIN_TITLES, domain_order

    ot = data.get("over_time") or {}
    items: list[dict[str, Any]] = [dict(q) for q in ot.get("questions", [])]
    if single:
        seen = {(q["questionnaire"], q["question_id"]) for q in items}
        extra: dict[tuple[str, str], dict] = {}
        for s in data["sessions"]:
            for a in s["answers"]:
                key = (s["questionnaire"], a["question_id"])
                sc = a.get("scale")
                if key in seen or a["skipped"] or not sc or not isinstance(a["value"],
                                                                           (int, float)):
                    continue
                item = extra.setdefault(key, {
                    "questionnaire": s["questionnaire"], "question_id": a["question_id"],
                    "question": a["question"], "domain": a["domain"], "scale": sc,
                    "series": [], "change": None})
                item["series"].append({"session_id": s["id"], "date": s.get("date"),
                                       "value": a["value"]})
        items += sorted(extra.values(), key=lambda q: domain_order(q["domain"]))
    grouped: dict[tuple[str, int, int], Panel] = {}
    for q in items:
        sc = q["scale"]
        key = (q["domain"], sc["min"], sc["max"])
        panel = grouped.get(key)
        if panel is None:
            panel = grouped[key] = Panel(q["domain"], DOMAIN_TITLES.get(q["domain"], q["domain"]),
                                         sc["min"], sc["max"])
        panel.lines.append(Line(q["question"] or q["question_id"],
                                {p["session_id"]: p["value"] for p in q["series"]}, q["change"]))
        for p in q["series"]:
            if (p["date"] or "", p["session_id"]) not in panel.xs:
                panel.xs.append((p["date"] or "", p["session_id"]))
    out = sorted(grouped.values(), key=lambda p: (domain_order(p.domain), p.hi - p.lo))
    for p in out:
        p.xs.sort()
        if sum(1 for o in out if o.domain == p.domain) > 1:
            p.title += f" (skala {p.lo}–{p.hi})"
    return out


def _legend_label(line: Line, xs: list[tuple[str, str]], width: int, mode: str,
                  detail: bool = True) -> str:
    """The question, its answers in order, and the change with the two answers it compares
    (detail=False: the question only, when a table next to the chart gives the rest)."""
    from admin_cli.labels import CHANGE_WORDS

    if not detail:
        return textwrap.fill(line.question, width)
    values = [line.values[sid] for _, sid in xs if sid in line.values]
    shown = " → ".join(f"{v:g}" for v in values[-6:])
    if len(values) > 6:
        shown = "… → " + shown
    out = textwrap.fill(line.question, width) + f"\nSvar: {shown}"
    ch = line.change
    if ch:
        b, a = ch["before"]["value"], ch["after"]["value"]
        what = "Före → efter" if mode == "compare" else "Senast"
        out += f"\n{what}: {CHANGE_WORDS[ch['word']]} ({b:g} → {a:g})"
    return out


def _draw(ax: Axes, panel: Panel, compare_ids: set[str], mode: str, fs: float,
          title: bool = True) -> list[Line2D]:
    """One area on one Axes; fs is the base font size in points."""
    from admin_cli.summary import sv_date

    n = len(panel.xs)
    span = panel.hi - panel.lo
    m = len(panel.lines)
    handles = []
    for i, line in enumerate(panel.lines):
        xi = [k for k, (_, sid) in enumerate(panel.xs) if sid in line.values]
        # Lines with the same answers would hide each other: spread them a hair apart.
        off = (i - (m - 1) / 2) * 0.08 * span / 4 if m > 1 else 0.0
        yi = [line.values[panel.xs[k][1]] + off for k in xi]
        (h,) = ax.plot(xi, yi, color=COLOURS[i % len(COLOURS)], marker=MARKERS[i % len(MARKERS)],
                       linestyle=DASHES[i % len(DASHES)], linewidth=fs / 4, markersize=fs * 0.8,
                       markeredgecolor="white", markeredgewidth=0.8, clip_on=False, zorder=3)
        handles.append(h)
    every = max(1, math.ceil(n / 8))  # at most about 8 dates under a chart
    labels = []
    for k, (day, sid) in enumerate(panel.xs):
        lab = ""
        if k % every == 0 or k == n - 1 or sid in compare_ids:
            lab = "\n".join(sv_date(day, short=True).rsplit(" ", 1)) if day else "?"
        if mode == "compare" and sid in compare_ids:
            lab += "\n(före)" if _is_before(sid, panel, compare_ids) else "\n(efter)"
            ax.axvspan(k - 0.22, k + 0.22, color="#e8e8e8", zorder=0)
        labels.append(lab)
    ax.set_xticks(range(n), labels)
    ax.set_xlim(-0.5, n - 0.5) if n > 1 else ax.set_xlim(-1, 1)
    step = 1 if span <= 6 else 2
    ticks = list(range(panel.lo, panel.hi + 1, step))
    ax.set_yticks(ticks, [f"{t}" + (" bäst" if t == panel.hi else " sämst" if t == panel.lo
                                    else "") for t in ticks])
    ax.set_ylim(panel.lo - 0.06 * span - 0.2, panel.hi + 0.06 * span + 0.2)
    ax.grid(axis="y", color=GRID, linewidth=0.8, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="both", labelsize=fs, length=3)
    if title:
        ax.set_title(panel.title, loc="left", fontsize=fs * 1.2, fontweight="bold", color=INK,
                     pad=fs * 0.6)
    return handles


def _is_before(sid: str, panel: Panel, compare_ids: set[str]) -> bool:
    ids = [s for _, s in panel.xs if s in compare_ids]
    return len(ids) > 1 and sid == ids[0]


def _compare_ids(data: dict) -> set[str]:
    ot = data.get("over_time") or {}
    return {p[k]["session_id"] for p in ot.get("pairs", []) for k in ("before", "after")}


_STRIP = [
    (re.compile(r"<\?xml[^>]*\?>\s*"), ""),
    (re.compile(r"<!DOCTYPE[^>]*>\s*", re.S), ""),
    (re.compile(r"<metadata>.*?</metadata>\s*", re.S), ""),
    (re.compile(r'\s+xmlns(:\w+)?="[^"]*"'), ""),
]


def _inline_svg(svg: str) -> str:
    """matplotlib's SVG made fit to sit inside HTML: no XML prologue, no metadata and no
    namespace URLs (an HTML parser does not need them), so the page names no address at all."""
    for pattern, repl in _STRIP:
        svg = pattern.sub(repl, svg)
    return svg.strip()


def panel_svg(panel: Panel, compare_ids: set[str] | None = None, mode: str = "latest") -> str:
    """One area's chart as an inline <svg> for the HTML page: 7 inches wide (the A4 text
    width), the chart on the left and which line is which question on the right. The area's
    name is the page's heading and the values are in the table under it, so neither is drawn."""
    fs = 9.5
    # About 30 characters of 9.5 pt text fit right of the chart; wrapped, never cut.
    labels = [_legend_label(ln, panel.xs, 30, mode, detail=False) for ln in panel.lines]
    legend_h = (sum(lab.count("\n") + 1 for lab in labels) * 1.25
                + (len(labels) - 1) * 0.9) * fs / 72
    tick_h = (3 if mode == "compare" else 2) * fs * 1.25 / 72 + 0.15
    plot_h = max(1.45, legend_h)
    height = 0.15 + plot_h + tick_h + 0.05
    with rc_context(_RC):
        fig = Figure(figsize=(7.0, height))
        FigureCanvasAgg(fig)  # Agg, never a GUI backend; savefig(format="svg") draws the SVG
        ax = fig.add_axes((0.11, (tick_h + 0.05) / height, 0.45, plot_h / height))
        handles = _draw(ax, panel, compare_ids or set(), mode, fs, title=False)
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.05, 1.0),
                  frameon=False, fontsize=fs, labelspacing=0.9, handlelength=3,
                  borderaxespad=0)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _inline_svg(buf.getvalue())


def summary_png(data: dict, path: Path) -> Path:
    """Every area's chart in one PNG (1600 px wide at 150 dpi) with the case reference and the
    latest session's date on top; a picture a caseworker can paste into a case file. Word
    shrinks it to the page (about 60 %), so the letters are drawn large."""
    from admin_cli.summary import latest_session_date, sv_date, threshold_rule_sv

    found = panels(data)
    if not found:
        found = panels(data, single=True)
    compare_ids = _compare_ids(data)
    mode = (data.get("over_time") or {}).get("mode", "latest")
    fs = 13.0  # about 8 pt once pasted into a Word page
    line_in = fs * 1.25 / 72
    width = PNG_WIDTH_PX / PNG_DPI
    cols = 2 if len(found) > 1 else 1
    left_m, right_m, col_gap = 0.95 / width, 0.35 / width, 0.9 / width
    col_w = (1 - left_m - right_m - col_gap * (cols - 1)) / cols
    wrap = 38 if cols == 2 else 80
    rows = [found[i:i + cols] for i in range(0, len(found), cols)]
    labels = [[_legend_label(ln, p.xs, wrap, mode) for ln in p.lines] for p in found]
    title_h, plot_h, row_gap = 0.5, 2.2, 0.3
    tick_h = (3 if mode == "compare" else 2) * line_in + 0.2
    legend_hs = []
    for r in range(len(rows)):
        legend_hs.append(max(
            sum(lab.count("\n") + 1 for lab in labels[i]) * line_in
            + (len(labels[i]) - 1) * 0.7 * fs / 72
            for i in range(r * cols, r * cols + len(rows[r]))))
    head_h = 1.55 if data["alerts"] else 1.2
    foot_h = 1.0
    height = head_h + sum(title_h + plot_h + tick_h + lh + row_gap for lh in legend_hs) + foot_h
    if not found:
        height = head_h + 1.0 + foot_h

    def fy(inches_from_top: float) -> float:
        return 1 - inches_from_top / height

    with rc_context(_RC):
        fig = Figure(figsize=(width, height), dpi=PNG_DPI, facecolor="white")
        FigureCanvasAgg(fig)
        latest = latest_session_date(data)
        days = sorted({s.get("date") for s in data["sessions"] if s.get("date")})
        fig.text(left_m * 0.5, fy(0.3), f"Barnets svar över tid – ärende {data['case']}",
                 fontsize=fs * 1.7, fontweight="bold", color=INK, va="top")
        sub = [f"Senaste tillfälle: {sv_date(latest) if latest else 'inget än'}"]
        if days:
            sub.append(f"{len(days)} tillfällen sedan {sv_date(days[0])}" if len(days) > 1
                       else "1 tillfälle")
        if data.get("unit"):
            sub.append(f"Enhet: {data['unit']}")
        fig.text(left_m * 0.5, fy(0.78), " · ".join(sub), fontsize=fs * 1.05, color=MUTED,
                 va="top")
        if data["alerts"]:
            n = len(data["alerts"])
            open_n = sum(1 for a in data["alerts"] if not a["acked_at"])
            note = (f"Obs: {n} viktigt svar" if n == 1 else f"Obs: {n} viktiga svar") + \
                " under perioden" + (f", {open_n} inte hanterat" if open_n else "") + \
                " – läs hela sammanfattningen."
            fig.text(left_m * 0.5, fy(1.15), note, fontsize=fs * 1.05, color="#b00020",
                     fontweight="bold", va="top")
        top = head_h
        for r, row in enumerate(rows):
            for c, panel in enumerate(row):
                left = left_m + c * (col_w + col_gap)
                ax = fig.add_axes((left, fy(top + title_h + plot_h), col_w, plot_h / height))
                handles = _draw(ax, panel, compare_ids, mode, fs)
                ax.legend(handles, labels[r * cols + c], loc="upper left",
                          bbox_to_anchor=(-0.1, -tick_h / plot_h), frameon=False, fontsize=fs,
                          labelspacing=0.7, handlelength=3, borderaxespad=0)
            top += title_h + plot_h + tick_h + legend_hs[r] + row_gap
        if not found:
            fig.text(left_m * 0.5, fy(head_h + 0.3), "Inga svar på skalfrågor under perioden.",
                     fontsize=fs * 1.1, color=INK, va="top")
        foot = threshold_rule_sv()
        if mode == "compare":
            foot = "Grått fält: tillfällena som jämförs (före och efter). " + foot
        fig.text(left_m * 0.5, fy(height - foot_h + 0.15),
                 textwrap.fill(foot, 125) + "\nSekretess – uppgifter om ett barn.",
                 fontsize=fs * 0.8, color=MUTED, va="top", linespacing=1.4)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=PNG_DPI, facecolor="white",
                    metadata={"Software": None})
    return path
