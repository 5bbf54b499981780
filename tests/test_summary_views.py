"""What a caseworker reads in every rendering of a summary is complete and whole: two sessions
on the same day told apart, earlier wishes and words kept, the PNG's text (read from the page
model it is drawn from), the terminal text at 60 and 120 columns, alert topics and levels in
Swedish, English headings for English staff."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from PIL import Image
from rich.console import Console

from admin_cli import summary
from admin_cli.i18n import reload
from admin_cli.labels import LEVEL_TITLES, TOPIC_TITLES
from admin_cli.ops import OpError
from admin_cli.ops.cases import summary as summary_op
from admin_cli.summary import model, png
from tests.conftest import T0, staff_cli
from tests.test_summary import VALUES, replies_for

SIDS = ("aaaa0001" + "0" * 24, "bbbb0002" + "0" * 24)
GRANDMA = "Jag vill bo hos mormor"
LATER_WISH = "Mer tid med min lillebror"
SCRIPT = "<script>alert('x')</script>"


def two_sessions_one_day(app, clock) -> None:
    """Case K-40: two followup-6-11 sessions on 2 March 2026, at 16.00 and 18.30 local time.
    The first one's wish in the child's words is GRANDMA; the second tells that the child does
    not feel safe at home (an urgent alert), its words hold a <script>, and it wishes
    LATER_WISH."""
    for n, (hours, sid, values) in enumerate(zip((0, 2.5), SIDS, VALUES, strict=False)):
        clock.now = T0 + timedelta(hours=hours)
        app.service.invite("K-40", 9, unit="Nord", actor="anna", session_id=sid)
        app.service.open(sid)
        replies = replies_for(values, unsafe=n == 1, n=n)
        replies[-1] = GRANDMA if n == 0 else LATER_WISH
        for reply in replies:
            clock.now += timedelta(minutes=1)
            app.service.handle(sid, reply)
        assert app.service.state(sid).status == "completed", sid


def _free_texts(data: dict) -> list[str]:
    return [a["text"] for s in data["sessions"] for a in s["answers"] if a["text"]]


def _labels(data: dict) -> list[str]:
    return [a["label"] for s in data["sessions"] for a in s["answers"] if a["label"]]


def test_the_png_page_has_the_childs_words_the_wishes_of_every_session_and_right_counts(
        app, clock, tmp_path):
    two_sessions_one_day(app, clock)
    data = summary.build(app, "K-40", "anna")
    blocks = summary.page(app, data)
    text = png.page_text(blocks)
    # The header counts sessions, not days: two on the same day are two.
    assert "Tillfällen: 2 tillfällen (2 mars 2026)" in text
    assert "1 tillfälle" not in text
    # Both sessions' wishes, each under its own time, and every word the child wrote.
    assert GRANDMA in text and LATER_WISH in text
    assert "Barnets svar 2 mars 2026 kl. 16.00" in text
    assert "Barnets svar 2 mars 2026 kl. 18.30" in text
    for words in _free_texts(data):
        assert f"”{words}”" in text, words
    # The alert, in Swedish, with the question and what the child answered.
    assert f"{LEVEL_TITLES['urgent']}: Barnet {TOPIC_TITLES['unsafe_home']}" in text
    assert "unsafe_home" not in text and "urgent" not in text
    # The two sessions of the day are told apart under every chart.
    charts = [b for b in blocks if b.kind == "chart"]
    assert charts, "scale answers over two sessions make charts"
    for b in charts:
        shown = [b.panel.axis[sid] for sid in b.panel.xs]
        assert len(shown) == 2 and len(set(shown)) == 2, shown
        assert "kl. 16.00" in shown[0] and "kl. 18.30" in shown[1]
    # And the picture drawn from these blocks is a real PNG of a sensible size.
    out = summary.render_png(app, data, tmp_path / "k40.png")
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        assert img.size[0] == 1600 and 1500 <= img.size[1] <= 9000


def test_two_sessions_at_the_same_minute_are_numbered_on_the_axis(app, clock):
    two_sessions_one_day(app, clock)
    data = summary.build(app, "K-40", "anna")
    for s in data["sessions"]:
        s["started_at"] = data["sessions"][0]["started_at"]
    sessions = model.make(app, data).sessions
    assert [s.axis.rsplit(" ", 1)[-1] for s in sessions] == ["(1)", "(2)"]
    assert len({s.when for s in sessions}) == 2


def test_the_html_keeps_earlier_wishes_and_says_which_session_they_came_from(app, clock):
    two_sessions_one_day(app, clock)
    page = summary.render_html(app, summary.build(app, "K-40", "anna"))
    help_part = page[page.index("<h2>Vill ha hjälp med</h2>"):page.index("<h2>Viktiga svar</h2>")]
    assert GRANDMA in help_part and LATER_WISH in help_part
    assert help_part.index(LATER_WISH) < help_part.index(GRANDMA)  # newest first
    assert "Barnets svar 2 mars 2026 kl. 16.00" in help_part
    assert "Barnets svar 2 mars 2026 kl. 18.30" in help_part
    # Every session's answers are there, each under its own date and time.
    assert "Senaste svaren, 2 mars 2026 kl. 18.30" in page
    assert "Tidigare svar, 2 mars 2026 kl. 16.00" in page
    assert "<b>Tillfällen:</b> 2 tillfällen (2 mars 2026)" in page
    # A child's <script> is text in the page, never code.
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page
    # Topics and levels in Swedish.
    assert TOPIC_TITLES["unsafe_home"] in page and ">BRÅDSKANDE<" in page
    assert "unsafe_home" not in page


@pytest.mark.parametrize("width", [60, 120])
def test_the_text_wraps_at_the_width_and_never_cuts_a_word_or_a_value(app, clock, width):
    two_sessions_one_day(app, clock)
    data = summary.build(app, "K-40", "anna")
    doc = summary_op(app, "anna", "K-40", format="text", width=width, wrap=False)
    text = doc.content.decode("utf-8")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in text
    words = {w.strip(",.:") for w in re.findall(r"\S+", text.replace("│", " ")
                                                .replace("”", " "))}
    for phrase in _labels(data) + _free_texts(data):
        for word in phrase.split():
            assert word.strip(",.:") in words, (word, phrase)
    assert GRANDMA.split()[-1] in words and "18.30" in text
    assert f"{LEVEL_TITLES['urgent']}: Barnet" in text and "unsafe_home" not in text
    # A value is never broken over two lines: an answer, a date, a change "(4 → 2)".
    flat = [" ".join(line.replace("│", " ").split()) for line in lines]
    scores = [label for label in _labels(data) if re.match(r"\d+ av \d+", label)]
    assert scores
    for label in scores:
        assert any(label in line for line in flat), label
    joined = " ".join(flat)
    for value in (r"\d{1,2} mars 2026", r"\(\d+ → \d+\)"):
        whole = re.findall(value, "\n".join(flat))
        assert whole and len(whole) == len(re.findall(value, joined)), value


def test_tala_summary_takes_a_width_and_refuses_a_silly_one(app, clock, monkeypatch):
    two_sessions_one_day(app, clock)
    result = staff_cli(app, monkeypatch, "anna", "summary", "K-40", "--width", "64")
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 64
    assert "Sammanfattning: K-40" in result.output
    for width in (0, 5, 10**9):
        with pytest.raises(OpError, match="width ska vara ett tal från 30 till 1000"):
            summary_op(app, "anna", "K-40", format="text", width=width)


def test_english_staff_read_english_headings(app, clock, monkeypatch, tmp_path):
    two_sessions_one_day(app, clock)
    data = summary.build(app, "K-40", "anna")
    monkeypatch.setenv("TALA_LANG", "en")
    reload()
    try:
        console = Console(record=True, width=100, color_system=None)
        console.print(summary.render_text(app, data))
        text = console.export_text()
        page = summary.render_html(app, data)
        blocks = png.page_text(summary.page(app, data))
    finally:
        monkeypatch.setenv("TALA_LANG", "sv")
        reload()
    assert "Summary: K-40" in text and "Important answers" in text
    assert "Wants help with" in text and "Over time" in text
    assert "2 sessions (2 March 2026)" in text
    assert "<h2>Important answers</h2>" in page and "<h2>About this summary</h2>" in page
    assert '<html lang="en">' in page
    assert "The child's own words" in blocks and "Sammanfattning" not in text
    assert "URGENT" in text and "does not feel safe where they live" in text
    assert GRANDMA in text  # the child's words are never translated


def test_a_childs_dollar_signs_and_control_characters_are_drawn_as_they_are(app, clock,
                                                                          tmp_path):
    two_sessions_one_day(app, clock)
    data = summary.build(app, "K-40", "anna")
    words = "Jag har $\\frac{$ kvar\x1b[2J"
    answer = next(a for s in data["sessions"] for a in s["answers"] if a["text"])
    answer["text"] = words
    text = png.page_text(summary.page(app, data))
    assert "”Jag har $\\frac{$ kvar\\x1b[2J”" in text
    # Read as mathtext, "$\frac{$" would stop the drawing; as plain text it is just drawn.
    out = summary.render_png(app, data, tmp_path / "dollars.png")
    with Image.open(out) as img:
        img.verify()
