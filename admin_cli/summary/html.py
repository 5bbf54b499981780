"""The summary as one self-contained HTML page (inline CSS, charts as inline SVG, nothing
fetched from the network) that reads well on screen and prints on A4.

Laid out by the Jinja2 template admin_cli/templates/summary.html with autoescaping on: a
child's words are data, and `<script>` typed by a child comes out as text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from admin_cli.i18n import _, ngettext, staff_lang
from admin_cli.labels import DOMAIN_TITLES, title
from admin_cli.summary import charts
from admin_cli.summary import model as m
from bot.app import App

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(_=_, ngettext=ngettext)
    return env


def dots(a: m.Answer) -> str:
    sc = a.scale
    if not sc or a.skipped or not isinstance(a.value, (int, float)) \
            or isinstance(a.value, bool):
        return ""
    filled = int(round(a.value - sc["min"] + 1))
    return "●" * filled + "○" * (sc["max"] - sc["min"] + 1 - filled)


def render_html(app: App, data: dict) -> str:
    """The page, in the staff language, for the caseworker."""
    model = m.make(app, data)
    compared = charts.compare_ids(data)
    svgs: dict[str, list[Markup]] = {}
    for p in charts.panels(model):  # matplotlib's own SVG: the text in it is drawn as paths
        svgs.setdefault(p.domain, []).append(Markup(charts.panel_svg(p, compared, model.mode)))
    return environment().get_template("summary.html").render(
        s=model, svgs=svgs, dots=dots, lang=staff_lang(), printed=m.printed_today(app),
        help_title=title(DOMAIN_TITLES, "help"))
