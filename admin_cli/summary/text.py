"""The summary for the terminal (Rich), as wide as the terminal or `--width`: every line is
wrapped at a space, so no word, answer or number is ever cut or shortened with "…". No tables
and no panel titles (Rich shortens both when they do not fit); a heading is a line of text.

Every text in it is made terminal-safe first (admin_cli/safe.py): a child's words cannot act
on the caseworker's terminal.
"""

from __future__ import annotations

import re

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.padding import Padding
from rich.panel import Panel
from rich.text import Text

from admin_cli.i18n import _
from admin_cli.labels import DOMAIN_TITLES, title
from admin_cli.safe import shown_all
from admin_cli.summary import model as m
from admin_cli.summary.rules import sv_date
from bot.app import App

MAX_POINTS_TEXT = 8  # the terminal shows at most this many of the latest values per question
_SPARKS = "▁▂▃▄▅▆▇█"
_CHANGE_STYLE = {"better": "bold green", "worse": "bold red", "unchanged": "dim"}


def _spark(values: list[float], lo: int, hi: int) -> str:
    return "".join(_SPARKS[round((v - lo) / (hi - lo) * (len(_SPARKS) - 1))] for v in values)


_NBSP = "\u00a0"
# Values a line must never be broken inside: a date ("27 augusti 2025 kl. 16.00"), a score
# ("1 av 5"), a short parenthesis ("(Jättedåligt)", "(5 → 4)").
_VALUE = re.compile(r"\d{1,2} [^\W\d_]+\.? \d{4}(?: kl\. \d{1,2}\.\d{2})?|\d+ av \d+"
                    r"|\([^()]{1,30}\)")


class _Kept:
    """A line that wraps only at a space outside a value: Rich alone would break "(5 → 4)" or
    "27 augusti 2025" across two lines. A word wider than the whole line is still folded."""

    def __init__(self, text: Text) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = self.text.copy()
        glued = _VALUE.sub(lambda v: v.group().replace(" ", _NBSP), text.plain)
        width, start, breaks = options.max_width, 0, []
        for word in re.finditer(r"[^ ]+", glued):
            if word.start() > start and cell_len(glued[start:word.end()]) > width:
                breaks.append(word.start())
                start = word.start()
        for line in text.divide(breaks):
            line.rstrip()
            line.overflow = "fold"
            yield line


def _kept(line: object) -> object:
    return _Kept(line) if isinstance(line, Text) else line


def _box(*lines: Text, style: str = "none") -> Panel:
    return Panel(Group(*map(_kept, lines)), border_style=style, expand=True)


def _indented(text: Text, by: int = 2) -> Padding:
    return Padding(_kept(text), (0, 0, 0, by))


def _scale_bar(a: m.Answer) -> str:
    sc = a.scale
    if not sc or a.skipped or not isinstance(a.value, (int, float)):
        return ""
    filled = int(round(a.value - sc["min"] + 1))
    return "■" * filled + "□" * (sc["max"] - sc["min"] + 1 - filled) + " "


def _alerts(model: m.Summary) -> Panel | None:
    if not model.alerts:
        return None
    lines: list = [Text(_("Viktiga svar"), style="bold red")]
    for al in model.alerts:
        style = "red" if al.handled is None else "dim"
        lines.append(Text(f"{al.level_title}: {al.topic} ({al.when})", style="bold " + style))
        answer = " – " + _("svar: {answer}").format(answer=al.answer) if al.answer else ""
        lines.append(_indented(Text(_("Fråga: {question}").format(question=al.question)
                                    + answer, style=style)))
        if al.words:
            lines.append(_indented(Text(_("Barnets ord: ”{words}”").format(words=al.words),
                                        style=style)))
        for _question, text in al.followups:
            lines.append(_indented(Text(_("Barnets ord efteråt: ”{words}”").format(words=text),
                                        style=style)))
        state = al.handled or _("Inte markerat som hanterat")
        if not al.in_period:
            state += " · " + _("utanför perioden, visas tills det är hanterat")
        lines.append(_indented(Text(state, style="dim")))
    return _box(*lines, style="red")


def _wishes(model: m.Summary) -> Panel:
    lines: list = [Text(title(DOMAIN_TITLES, "help"), style="bold")]
    if not model.wishes:
        lines.append(Text(_("Barnet har inte svarat på det här under perioden."), style="dim"))
    for w in model.wishes:
        lines.append(Text(_("Barnets svar {when}").format(when=w.session.when) + ":",
                          style="underline"))
        lines += [_indented(Text(f"• {item}")) for item in w.items]
        lines += [_indented(Text(f"”{text}”", style="italic")) for _q, text in w.words]
        if w.skipped:
            lines.append(_indented(Text(_("Barnet hoppade över frågan."), style="dim")))
    return _box(*lines, style="blue")


def _over_time(model: m.Summary) -> Panel | None:
    rows = [(area, r) for area in model.areas for r in area.trend]
    if not rows:
        return None
    order = [s.id for s, _mark in model.columns]
    days = [s.day for s, _mark in model.columns if s.day]
    lines: list = [Text(_("Över tid: {first} – {last}").format(
        first=sv_date(min(days)), last=sv_date(max(days))), style="bold")]
    shown_area = None
    for area, r in rows:
        if area.domain != shown_area:
            shown_area = area.domain
            lines.append(Text(area.title, style="bold underline"))
        values = [r.values[sid] for sid in order if sid in r.values]
        pts = values[-MAX_POINTS_TEXT:]
        lo, hi = (int(x) for x in r.scale.split("–"))
        line = Text(f"{r.question}: ")
        line.append(("… " if len(values) > len(pts) else "") + " ".join(f"{v:g}" for v in pts))
        line.append(f"  {_spark(pts, lo, hi)} ({r.scale})  ")
        if r.change:
            line.append(r.change, style=_CHANGE_STYLE[r.change_word])
        else:
            line.append(_("inte besvarad båda gångerna"), style="dim")
        lines.append(_indented(line))
    lines.append(Text(f"{model.compare_sentence} {model.rule}".strip(), style="dim"))
    return _box(*lines, style="cyan")


def _session(s: m.Session, model: m.Summary) -> Panel:
    head = Text(f"{s.title} – {s.when} – {s.status} – {s.language} – id {s.short_id}",
                style="bold")
    lines: list = [head]
    for area in model.areas:
        for session, answers in area.sessions:
            if session.id != s.id:
                continue
            lines.append(Text(area.title, style="bold underline"))
            for a in answers:
                lines.append(_indented(Text(a.question)))
                if a.text:
                    cell = Text(f"”{a.text}”", style="italic")
                else:
                    cell = Text(_scale_bar(a) + a.label)
                if a.alert:
                    cell.append("  ⚠ " + _("viktigt svar"), style="bold red")
                    cell.stylize("bold red")
                lines.append(_indented(cell, 6))
    return _box(*lines)


def render_text(app: App, data: dict) -> Group:
    """The summary for the terminal: the important answers first, what the child wants help
    with (every session), the answers over time, then each session (newest first) by life
    area."""
    model = m.make(app, shown_all(data))
    parts: list = [Text(_("Sammanfattning: {case}").format(case=model.case), style="bold"),
                   Text(" · ".join(f"{h}: {v}" for h, v in model.facts), style="dim")]
    found = _alerts(model)
    if found is not None:
        parts.append(found)
    for text, when in model.notes:
        parts.append(Text(_("Barnet skrev efter sista frågan ({when}): ”{words}”").format(
            when=when, words=text)))
    if not model.sessions and not model.open_sessions:
        parts.append(Text(_("Inga svar än.")))
    if model.sessions:
        parts.append(_wishes(model))
    trend = _over_time(model)
    if trend is not None:
        parts.append(trend)
    parts += [_session(s, model) for s in reversed(model.sessions)]
    parts += [Text(line, style="yellow") for line in model.open_sessions]
    return Group(*map(_kept, parts))
