"""Charts of a child's scale answers over time, made with matplotlib (the Agg canvas on a bare
Figure: no pyplot, no global backend, safe in a server).

`panels(model)` gives one panel per life area from a summary model; `draw` puts one panel on
an Axes (the PNG page uses it); `panel_svg` draws one panel as an inline SVG for the HTML
summary (text drawn as paths, so no font and no network is needed to show it).
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from admin_cli.i18n import _
from admin_cli.labels import CHANGE_WORDS, DOMAIN_TITLES, domain_order, title

if TYPE_CHECKING:
    from admin_cli.summary.model import Summary

# Okabe-Ito: told apart with colour blindness; markers and dashes tell them apart in grey.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
DASHES = ("-", "--", "-.", ":", "-", "--", "-.")
INK, MUTED, GRID = "#1a1a1a", "#5b5b5b", "#dddddd"
RC = {"svg.fonttype": "path", "svg.hashsalt": None, "font.family": "DejaVu Sans",
      "axes.edgecolor": MUTED, "xtick.color": INK, "ytick.color": INK}


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
    xs: list[str] = field(default_factory=list)        # session ids, oldest first
    axis: dict[str, str] = field(default_factory=dict)  # session id -> label under the chart
    lines: list[Line] = field(default_factory=list)


def _single_items(data: dict, seen: set[tuple[str, str]]) -> list[dict[str, Any]]:
    """Scale questions answered only once (a first session), as over-time items."""
    extra: dict[tuple[str, str], dict] = {}
    for s in data["sessions"]:
        for a in s["answers"]:
            key = (s["questionnaire"], a["question_id"])
            sc = a.get("scale")
            if key in seen or a["skipped"] or not sc or not isinstance(a["value"], (int, float)):
                continue
            item = extra.setdefault(key, {
                "questionnaire": s["questionnaire"], "question_id": a["question_id"],
                "question": a["question"], "domain": a["domain"], "scale": sc,
                "series": [], "change": None})
            item["series"].append({"session_id": s["id"], "date": s.get("date"),
                                   "value": a["value"]})
    return sorted(extra.values(), key=lambda q: domain_order(q["domain"]))


def panels(model: Summary, single: bool = False) -> list[Panel]:
    """One panel per life area (and scale, if an area mixes 1-5 and 0-10) from the over-time
    questions; with single=True also scale questions answered only once (a first session)."""
    data = model.data
    order = {s.id: s.number for s in model.sessions}
    axis = {s.id: s.axis for s in model.sessions}
    items: list[dict[str, Any]] = [dict(q) for q in (data.get("over_time") or {})
                                   .get("questions", [])]
    if single:
        items += _single_items(data, {(q["questionnaire"], q["question_id"]) for q in items})
    grouped: dict[tuple[str, int, int], Panel] = {}
    for q in items:
        sc = q["scale"]
        key = (q["domain"], sc["min"], sc["max"])
        panel = grouped.get(key)
        if panel is None:
            panel = grouped[key] = Panel(q["domain"], title(DOMAIN_TITLES, q["domain"]),
                                         sc["min"], sc["max"])
        panel.lines.append(Line(q["question"] or q["question_id"],
                                {p["session_id"]: p["value"] for p in q["series"]}, q["change"]))
        for p in q["series"]:
            if p["session_id"] not in panel.xs:
                panel.xs.append(p["session_id"])
                panel.axis[p["session_id"]] = axis.get(p["session_id"], p["date"] or "?")
    out = sorted(grouped.values(), key=lambda p: (domain_order(p.domain), p.hi - p.lo))
    for p in out:
        p.xs.sort(key=lambda sid: order.get(sid, 0))
        if sum(1 for o in out if o.domain == p.domain) > 1:
            p.title += " " + _("(skala {lo}–{hi})").format(lo=p.lo, hi=p.hi)
    return out


def legend_label(line: Line, xs: list[str], width: int, mode: str, detail: bool = True) -> str:
    """The question, its answers in order, and the change with the two answers it compares
    (detail=False: the question only, when a table next to the chart gives the rest)."""
    if not detail:
        return textwrap.fill(line.question, width)
    values = [line.values[sid] for sid in xs if sid in line.values]
    shown = " → ".join(f"{v:g}" for v in values[-6:])
    if len(values) > 6:
        shown = "… → " + shown
    out = textwrap.fill(line.question, width) + "\n" + _("Svar: {values}").format(values=shown)
    ch = line.change
    if ch:
        b, a = ch["before"]["value"], ch["after"]["value"]
        what = _("Före → efter") if mode == "compare" else _("Senast")
        out += f"\n{what}: {title(CHANGE_WORDS, ch['word'])} ({b:g} → {a:g})"
    return out


def _is_before(sid: str, panel: Panel, compare_ids: set[str]) -> bool:
    ids = [s for s in panel.xs if s in compare_ids]
    return len(ids) > 1 and sid == ids[0]


def compare_ids(data: dict) -> set[str]:
    ot = data.get("over_time") or {}
    return {p[k]["session_id"] for p in ot.get("pairs", []) for k in ("before", "after")}


def draw(ax: Axes, panel: Panel, compared: set[str], mode: str, fs: float,
         with_title: bool = True) -> list[Line2D]:
    """One area on one Axes; fs is the base font size in points."""
    n = len(panel.xs)
    span = panel.hi - panel.lo
    m = len(panel.lines)
    handles = []
    for i, line in enumerate(panel.lines):
        xi = [k for k, sid in enumerate(panel.xs) if sid in line.values]
        # Lines with the same answers would hide each other: spread them a hair apart.
        off = (i - (m - 1) / 2) * 0.08 * span / 4 if m > 1 else 0.0
        yi = [line.values[panel.xs[k]] + off for k in xi]
        (h,) = ax.plot(xi, yi, color=COLOURS[i % len(COLOURS)], marker=MARKERS[i % len(MARKERS)],
                       linestyle=DASHES[i % len(DASHES)], linewidth=fs / 4, markersize=fs * 0.8,
                       markeredgecolor="white", markeredgewidth=0.8, clip_on=False, zorder=3)
        handles.append(h)
    every = max(1, math.ceil(n / 8))  # at most about 8 dates under a chart
    labels = []
    for k, sid in enumerate(panel.xs):
        lab = ""
        if k % every == 0 or k == n - 1 or sid in compared:
            lab = panel.axis.get(sid, "?")
        if mode == "compare" and sid in compared:
            lab += "\n" + (_("(före)") if _is_before(sid, panel, compared) else _("(efter)"))
            ax.axvspan(k - 0.22, k + 0.22, color="#e8e8e8", zorder=0)
        labels.append(lab)
    ax.set_xticks(range(n), labels)
    ax.set_xlim(-0.5, n - 0.5) if n > 1 else ax.set_xlim(-1, 1)
    step = 1 if span <= 6 else 2
    ticks = list(range(panel.lo, panel.hi + 1, step))
    best, worst = _("bäst"), _("sämst")
    ax.set_yticks(ticks, [f"{t}" + (f" {best}" if t == panel.hi else f" {worst}"
                                    if t == panel.lo else "") for t in ticks])
    ax.set_ylim(panel.lo - 0.06 * span - 0.2, panel.hi + 0.06 * span + 0.2)
    ax.grid(axis="y", color=GRID, linewidth=0.8, zorder=0)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="both", labelsize=fs, length=3)
    if with_title:
        ax.set_title(panel.title, loc="left", fontsize=fs * 1.2, fontweight="bold", color=INK,
                     pad=fs * 0.6)
    return handles


def plain(legend) -> None:
    """A legend's labels as plain text: a "$" in a question is a dollar sign, not mathtext."""
    for t in legend.get_texts():
        t.set_parse_math(False)


def tick_lines(panel: Panel, mode: str) -> int:
    """How many lines of text the labels under a chart take."""
    most = max((panel.axis.get(sid, "").count("\n") + 1 for sid in panel.xs), default=1)
    return most + (1 if mode == "compare" else 0)


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


def panel_svg(panel: Panel, compared: set[str] | None = None, mode: str = "latest") -> str:
    """One area's chart as an inline <svg> for the HTML page: 7 inches wide (the A4 text
    width), the chart on the left and which line is which question on the right. The area's
    name is the page's heading and the values are in the table under it, so neither is drawn."""
    fs = 9.5
    # About 30 characters of 9.5 pt text fit right of the chart; wrapped, never cut.
    labels = [legend_label(ln, panel.xs, 30, mode, detail=False) for ln in panel.lines]
    legend_h = (sum(lab.count("\n") + 1 for lab in labels) * 1.25
                + (len(labels) - 1) * 0.9) * fs / 72
    tick_h = tick_lines(panel, mode) * fs * 1.25 / 72 + 0.15
    plot_h = max(1.45, legend_h)
    height = 0.15 + plot_h + tick_h + 0.05
    with rc_context(RC):
        fig = Figure(figsize=(7.0, height))
        FigureCanvasAgg(fig)  # Agg, never a GUI backend; savefig(format="svg") draws the SVG
        ax = fig.add_axes((0.11, (tick_h + 0.05) / height, 0.45, plot_h / height))
        handles = draw(ax, panel, compared or set(), mode, fs, with_title=False)
        plain(ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.05, 1.0),
                        frameon=False, fontsize=fs, labelspacing=0.9, handlelength=3,
                        borderaxespad=0))
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return _inline_svg(buf.getvalue())
