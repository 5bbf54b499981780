"""The summary and the report as parts of a staff page under a strict Content-Security-Policy
(`default-src 'none'; style-src 'self'; img-src 'self' data:`): their body templates hold no
<style> element and no style attribute, a summary's charts come as data: images with a text
alternative, and the standalone pages still carry their whole stylesheet inline."""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import pytest

from admin_cli import report as R
from admin_cli import summary
from admin_cli.ops import OpError
from admin_cli.ops.cases import summary_data
from admin_cli.ops.records import report_data
from admin_cli.report import html as report_html
from admin_cli.summary import charts
from admin_cli.summary import html as summary_html
from admin_cli.summary import model
from admin_cli.templating import STATIC, environment
from tests.test_packaging import ROOT, _config
from tests.test_report import _Cells, _hand_made
from tests.test_summary import three_sessions

DATA_SVG = "data:image/svg+xml;base64,"
SVG_NS = "{http://www.w3.org/2000/svg}"


class _Tags(HTMLParser):
    """Every start tag with its attributes, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def _tags(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser.tags


def _body(name: str, context: dict) -> str:
    return environment().get_template(name).render(**context)


def _strict_csp_safe(page: str) -> None:
    assert "<style" not in page.lower()
    assert " style=" not in page.lower()
    assert all("style" not in attrs for _tag, attrs in _tags(page))


def test_the_summary_body_shows_under_a_strict_csp_with_its_charts_as_images(app, clock):
    three_sessions(app, clock)
    data = summary_data(app, "anna", "K-30")
    body = _body("summary_body.html", summary_html.context(app, data, charts_as_images=True))
    _strict_csp_safe(body)
    assert "<svg" not in body  # matplotlib's SVG, with its style attributes, is not inline
    assert "<!DOCTYPE" not in body and "<body" not in body  # a part of a page, not a page
    # The content is all there: headings, the alert, the child's words escaped.
    assert "<h2>Vill ha hjälp med</h2>" in body and "<h2>Trygghet</h2>" in body
    assert "BRÅDSKANDE" in body
    assert "Det är bråk &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; skrik" in body
    assert "<script" not in body
    # One image per chart, each a whole SVG document a browser shows, each with a text.
    images = [attrs for tag, attrs in _tags(body) if tag == "img"]
    expected = charts.panels(model.make(app, data))
    assert images and len(images) == len(expected)
    for attrs, panel in zip(images, expected, strict=True):
        assert attrs["alt"] and panel.title in attrs["alt"]
        src = attrs["src"] or ""
        assert src.startswith(DATA_SVG)
        try:
            svg = base64.b64decode(src[len(DATA_SVG):], validate=True)
        except binascii.Error:
            pytest.fail("the chart's data: URL is not base64")
        root = ET.fromstring(svg)  # well-formed XML: every prefix it uses is declared
        assert root.tag == SVG_NS + "svg"
        assert root.find(f".//{SVG_NS}path") is not None  # something is drawn


def test_the_standalone_summary_keeps_its_stylesheet_and_inline_charts(app, clock):
    three_sessions(app, clock)
    data = summary.build(app, "K-30", "anna")
    page = summary.render_html(app, data)
    css = (STATIC / "summary.css").read_text(encoding="utf-8").strip()
    assert css and "@page" in css
    assert f"{css}\n</style>" in page and "max-width: 185mm" in page  # + the paper
    assert "<svg" in page and DATA_SVG not in page
    assert page.count("<figure") == len(charts.panels(model.make(app, data)))
    # The body is the same template the staff pages embed.
    inline = _body("summary_body.html", summary_html.context(app, data))
    assert "<h2>Om sammanfattningen</h2>" in inline and "<svg" in inline


def test_the_report_body_shows_under_a_strict_csp_with_bars_drawn_by_attributes(app):
    _hand_made(app)
    rep = report_data(app, "chef", unit="Nord")
    assert not rep["too_few"]
    body = _body("report_body.html", report_html.context(rep))
    _strict_csp_safe(body)
    # Every number sits in the same data-key cell as in the standalone page.
    from_body, from_page = _Cells(), _Cells()
    from_body.feed(body)
    from_page.feed(R.to_html(rep))
    assert from_body.found and from_body.found == from_page.found
    # One bar per answer value, as wide as its share.
    widths = [float(attrs["width"] or "nan") for tag, attrs in _tags(body) if tag == "rect"]
    shares = [float(v["percent"] or 0) for q in rep["questions"] for v in q["values"]]
    assert widths and widths == shares
    assert any(0 < w < 100 for w in widths)
    bars = [attrs for tag, attrs in _tags(body) if tag == "svg"]
    assert len(bars) == len(widths)
    assert all(a["class"] == "bar" and a["viewbox"] == "0 0 100 1" for a in bars)


def test_the_standalone_report_keeps_its_stylesheet(app):
    _hand_made(app)
    page = R.to_html(R.build_report(app, "chef", unit="Nord"))
    css = (STATIC / "report.css").read_text(encoding="utf-8").strip()
    assert "svg.bar" in css and f"{css}\n</style>" in page and "body {" in page
    assert page.startswith("<!DOCTYPE html>") and " style=" not in page


def test_the_data_functions_refuse_as_the_ops_do(app, clock):
    with pytest.raises(OpError) as missing:
        summary_data(app, "anna", "K-NONE")
    assert missing.value.status == 404
    with pytest.raises(OpError) as alone:
        report_data(app, "chef", unit="Nord", campaign="vår-2026")
    assert "--campaign" in alone.value.message


def test_the_stylesheets_are_packaged():
    patterns = _config()["package-data"]["admin_cli"]
    files = [p for p in Path(STATIC).iterdir() if p.is_file()]
    assert {p.name for p in files} >= {"summary.css", "report.css"}
    for p in files:
        rel = p.relative_to(ROOT / "admin_cli").as_posix()
        assert any(fnmatch(rel, pattern) for pattern in patterns), rel
