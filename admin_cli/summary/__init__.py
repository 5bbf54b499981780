"""The caseworker's summary of one case: what the child said, by life area, what the child
wants help with, the important answers, and how the answers have moved over time.

Three layers, each in its own module:
- queries.build: the reads (SQL, Redis) and the one audit entry per read, as JSON-ready data
  (`--format json`); overtime: the series and the changes; rules: the threshold and the words;
- model.make: that data as plain data every renderer lays out alike;
- the renderers: text (Rich, for the terminal), html (a Jinja2 template, autoescaped), png
  (a page model drawn with matplotlib, for a case file), with charts shared by html and png.
"""

from __future__ import annotations

from pathlib import Path

from admin_cli.labels import DOMAIN_TITLES
from admin_cli.summary.model import followup_words
from admin_cli.summary.queries import build
from admin_cli.summary.rules import (CHANGE_THRESHOLD, CompareError, SummaryError, change_phrase,
                                     change_word, language_note, sv_date, threshold_rule_sv,
                                     threshold_steps)
from admin_cli.summary.text import MAX_POINTS_TEXT, render_text
from bot.app import App

__all__ = ["CHANGE_THRESHOLD", "DOMAIN_TITLES", "MAX_POINTS_TEXT", "CompareError",
           "SummaryError", "build", "change_phrase", "change_word", "followup_words",
           "language_note", "page", "render", "render_html", "render_png", "render_text",
           "sv_date", "threshold_rule_sv", "threshold_steps"]

render = render_text  # the name admin_cli.main and `tala demo` call


def render_html(app: App, data: dict) -> str:
    """One self-contained HTML page, to read on screen or print on A4."""
    from admin_cli.summary import html  # Jinja2 and matplotlib only when a page is asked for

    return html.render_html(app, data)


def page(app: App, data: dict) -> list:
    """The blocks the PNG is drawn from (admin_cli.summary.png.page), to read as text."""
    from admin_cli.safe import shown_all
    from admin_cli.summary import model, png

    return png.page(model.make(app, shown_all(data)))


def render_png(app: App, data: dict, path: str | Path) -> Path:
    """The whole summary as one picture for a case file, 1600 px wide at 150 dpi."""
    from admin_cli.safe import shown_all
    from admin_cli.summary import model, png

    return png.render(model.make(app, shown_all(data)), Path(path))
