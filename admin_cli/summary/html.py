"""The summary as HTML: one self-contained page (inline CSS, charts as inline SVG, nothing
fetched from the network) that reads well on screen and prints on A4, and the same content for
a staff page under a strict Content-Security-Policy.

`render_html` lays out admin_cli/templates/summary.html, which inlines static/summary.css and
includes summary_body.html. A staff page renders summary_body.html itself with `context(...,
charts_as_images=True)`: every chart is then an <img> with a data: URL, since matplotlib's SVG
carries style attributes that such a page may not have inline. Autoescaping is on: a child's
words are data, and `<script>` typed by a child comes out as text.
"""

from __future__ import annotations

import base64
from typing import Any

from markupsafe import Markup

from admin_cli.i18n import _, staff_lang
from admin_cli.labels import DOMAIN_TITLES, title
from admin_cli.summary import charts
from admin_cli.summary import model as m
from admin_cli.templating import environment
from bot.app import App

# charts.panel_svg leaves the namespaces out (an HTML parser does not need them); an SVG shown
# as an image is read as XML and does.
_NAMESPACES = ('<svg xmlns="http://www.w3.org/2000/svg" '
               'xmlns:xlink="http://www.w3.org/1999/xlink" ')


def dots(a: m.Answer) -> str:
    sc = a.scale
    if not sc or a.skipped or not isinstance(a.value, (int, float)) \
            or isinstance(a.value, bool):
        return ""
    filled = int(round(a.value - sc["min"] + 1))
    return "●" * filled + "○" * (sc["max"] - sc["min"] + 1 - filled)


def image_src(svg: str) -> str:
    """An inline SVG from charts.panel_svg as a data: URL an <img> can show."""
    document = _NAMESPACES + svg.removeprefix("<svg ")
    return "data:image/svg+xml;base64," + base64.b64encode(document.encode("utf-8")).decode()


def _charts(model: m.Summary, data: dict, as_images: bool) -> dict[str, list[dict[str, Any]]]:
    """Each life area's charts: the SVG (or its data: URL) and what the chart shows."""
    compared = charts.compare_ids(data)
    out: dict[str, list[dict[str, Any]]] = {}
    for p in charts.panels(model):  # matplotlib's own SVG: the text in it is drawn as paths
        svg = charts.panel_svg(p, compared, model.mode)
        out.setdefault(p.domain, []).append({
            "alt": _("{area} över tid").format(area=p.title),
            "svg": None if as_images else Markup(svg),
            "src": image_src(svg) if as_images else None})
    return out


def context(app: App, data: dict, *, charts_as_images: bool = False) -> dict[str, Any]:
    """What summary.html and summary_body.html are rendered with, in the staff language."""
    model = m.make(app, data)
    return {"s": model, "charts": _charts(model, data, charts_as_images), "dots": dots,
            "lang": staff_lang(), "printed": m.printed_today(app),
            "help_title": title(DOMAIN_TITLES, "help")}


def render_html(app: App, data: dict) -> str:
    """The page, in the staff language, for the caseworker."""
    return environment().get_template("summary.html").render(**context(app, data))
