"""The summary as one picture for a case file (PNG, 1600 px wide at 150 dpi): the same content
as the HTML page, drawn from a page model.

`page(model)` lays the summary out as a list of blocks (a title, facts, headings, lines of
text, the child's words, alerts, charts); `page_text(blocks)` is that page as plain text, which
is what a test reads instead of running OCR over the picture; `render(model, path)` draws the
blocks top to bottom with matplotlib. Word shrinks the picture to a page (about 60 %), so the
letters are drawn large.

A child's words are drawn as plain text: never read as matplotlib's mathtext (a "$" is a
dollar sign), with control and bidi characters shown as visible escapes (admin_cli/safe.py).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from admin_cli.i18n import _
from admin_cli.labels import DOMAIN_TITLES, title
from admin_cli.summary import charts
from admin_cli.summary.model import Summary

PNG_WIDTH_PX, PNG_DPI = 1600, 150
WIDTH_IN = PNG_WIDTH_PX / PNG_DPI
MARGIN_IN = 0.5
RED = "#b00020"
# kind -> (font size in points, weight, style, colour, left indent in inches, space above)
STYLES = {
    "title": (22.0, "bold", "normal", charts.INK, 0.0, 0.0),
    "facts": (13.0, "normal", "normal", charts.MUTED, 0.0, 0.08),
    "secret": (11.0, "bold", "normal", charts.INK, 0.0, 0.08),
    "heading": (17.0, "bold", "normal", charts.INK, 0.0, 0.3),
    "subheading": (13.0, "bold", "normal", charts.MUTED, 0.0, 0.14),
    "text": (13.0, "normal", "normal", charts.INK, 0.0, 0.04),
    "item": (13.0, "normal", "normal", charts.INK, 0.25, 0.02),
    "quote": (13.0, "normal", "italic", "#0b4f8a", 0.35, 0.04),
    "alert": (13.5, "bold", "normal", RED, 0.0, 0.14),
    "small": (10.5, "normal", "normal", charts.MUTED, 0.0, 0.06),
}
LINE_SPACING = 1.3
CHART_FS = 12.0


@dataclass
class Block:
    kind: str
    text: str = ""
    panel: charts.Panel | None = None
    legend: list[str] = field(default_factory=list)


def page(model: Summary) -> list[Block]:
    """The whole summary as blocks, in the order they are drawn."""
    out = [Block("title", _("Barnets svar – ärende {case}").format(case=model.case)),
           Block("facts", " · ".join(f"{h}: {v}" for h, v in model.facts)),
           Block("secret", _("Sekretess – uppgifter om ett barn"))]
    out.append(Block("heading", title(DOMAIN_TITLES, "help")))
    if not model.wishes:
        out.append(Block("text", _("Barnet har inte svarat på det här under perioden.")))
    for w in model.wishes:
        out.append(Block("subheading", _("Barnets svar {when}").format(when=w.session.when)))
        out += [Block("item", f"• {item}") for item in w.items]
        out += [Block("quote", f"”{text}”") for _q, text in w.words]
        if w.skipped:
            out.append(Block("text", _("Barnet hoppade över frågan.")))
    out.append(Block("heading", _("Viktiga svar")))
    if not model.alerts:
        out.append(Block("text", _("Inga svar under perioden som larmade.")))
    for al in model.alerts:
        out.append(Block("alert", f"{al.level_title}: {al.topic}"))
        answer = " – " + _("svar: {answer}").format(answer=al.answer) if al.answer else ""
        out.append(Block("text", _("Fråga: {question}").format(question=al.question) + answer))
        if al.words:
            out.append(Block("quote", f"”{al.words}”"))
        for question, text in al.followups:
            out += [Block("small", question), Block("quote", f"”{text}”")]
        state = al.handled or _("Inte markerat som hanterat")
        outside = "" if al.in_period else " · " + _("utanför perioden, visas tills det är "
                                                     "hanterat")
        out.append(Block("small", f"{al.when} · {state}{outside}"))
    for text, when in model.notes:
        out.append(Block("text", _("Barnet skrev efter sista frågan ({when}):").format(
            when=when)))
        out.append(Block("quote", f"”{text}”"))
    words = [(area, s, a) for area in model.areas for s, answers in area.sessions
             for a in answers if a.text]
    out.append(Block("heading", _("Barnets egna ord")))
    if not words:
        out.append(Block("text", _("Barnet har inte skrivit något med egna ord under "
                                   "perioden.")))
    for area, s, a in words:
        out.append(Block("small", f"{area.title} · {s.when} – {a.question}"))
        out.append(Block("quote", f"”{a.text}”"))
    out.append(Block("heading", _("Över tid")))
    found = charts.panels(model) or charts.panels(model, single=True)
    if not found:
        out.append(Block("text", _("Inga svar på skalfrågor under perioden.")))
    for p in found:
        out.append(Block("chart", p.title, p, [
            charts.legend_label(ln, p.xs, 44, model.mode) for ln in p.lines]))
    out.append(Block("heading", _("Om sammanfattningen")))
    rule = f"{model.compare_sentence} {model.rule}".strip()
    if model.mode == "compare":
        rule = _("Grått fält: tillfällena som jämförs (före och efter).") + " " + rule
    out.append(Block("small", rule))
    out += [Block("small", f"{s.when} – {s.title} – {s.status} – {s.language} – id "
                           f"{s.short_id}") for s in reversed(model.sessions)]
    out += [Block("small", line) for line in model.open_sessions]
    return out


def page_text(blocks: list[Block]) -> str:
    """What the picture says, as text: every block's text, and for a chart its title, the
    labels under it and its legend."""
    lines = []
    for b in blocks:
        lines.append(b.text)
        if b.panel is not None:
            lines.append(" | ".join(b.panel.axis[sid].replace("\n", " ") for sid in b.panel.xs))
            lines += b.legend
    return "\n".join(lines)


def _wrap(b: Block) -> list[str]:
    fs, _w, _s, _c, indent, _a = STYLES[b.kind]
    # DejaVu Sans averages about 0.58 em a character: wrap a little inside the text width.
    chars = int((WIDTH_IN - 2 * MARGIN_IN - indent) / (fs * 0.6 / 72))
    out: list[str] = []
    for para in b.text.split("\n"):
        out += textwrap.wrap(para, chars, break_long_words=True, break_on_hyphens=False) or [""]
    return out


def _chart_height(b: Block, mode: str) -> tuple[float, float, float]:
    """(height of the whole block, of the plot, of the labels under it), in inches."""
    line = CHART_FS * LINE_SPACING / 72
    legend = sum(lab.count("\n") + 1 for lab in b.legend) * line + (len(b.legend) - 1) * 0.1
    plot = max(1.9, legend)
    ticks = charts.tick_lines(b.panel, mode) * line + 0.15
    return 0.2 + 0.35 + plot + ticks, plot, ticks


def render(model: Summary, path: Path, blocks: list[Block] | None = None) -> Path:
    """Draw the page (blocks, or page(model)) into a PNG at path."""
    blocks = page(model) if blocks is None else blocks
    compared = charts.compare_ids(model.data)
    heights = []
    for b in blocks:
        if b.kind == "chart":
            heights.append(_chart_height(b, model.mode)[0])
        else:
            fs, *_rest, above = STYLES[b.kind]
            heights.append(above + len(_wrap(b)) * fs * LINE_SPACING / 72)
    height = MARGIN_IN * 2 + sum(heights)

    def fy(inches_from_top: float) -> float:
        return 1 - inches_from_top / height

    with rc_context(charts.RC):
        fig = Figure(figsize=(WIDTH_IN, height), dpi=PNG_DPI, facecolor="white")
        FigureCanvasAgg(fig)
        top = MARGIN_IN
        for b, h in zip(blocks, heights, strict=True):
            if b.kind == "chart":
                _draw_chart(fig, b, top, fy, compared, model.mode)
            else:
                fs, weight, style, colour, indent, above = STYLES[b.kind]
                fig.text((MARGIN_IN + indent) / WIDTH_IN, fy(top + above), "\n".join(_wrap(b)),
                         fontsize=fs, fontweight=weight, fontstyle=style, color=colour,
                         va="top", linespacing=LINE_SPACING, parse_math=False)
            top += h
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=PNG_DPI, facecolor="white",
                    metadata={"Software": None})
    return path


def _draw_chart(fig: Figure, b: Block, top: float, fy, compared: set[str], mode: str) -> None:
    _total, plot, _ticks = _chart_height(b, mode)
    fig.text(MARGIN_IN / WIDTH_IN, fy(top + 0.2), b.text, fontsize=CHART_FS * 1.15,
             fontweight="bold", color=charts.INK, va="top", parse_math=False)
    plot_top = top + 0.2 + 0.35
    left = (MARGIN_IN + 0.9) / WIDTH_IN
    ax = fig.add_axes((left, fy(plot_top + plot), 0.42, plot / fig.get_figheight()))
    handles = charts.draw(ax, b.panel, compared, mode, CHART_FS, with_title=False)
    charts.plain(ax.legend(handles, b.legend, loc="upper left", bbox_to_anchor=(1.04, 1.0),
                           frameon=False, fontsize=CHART_FS, labelspacing=0.6, handlelength=3,
                           borderaxespad=0))
