"""The caseworker's summary over time, on real Redis and SQL: three follow-ups of one child, the
change words and their threshold, --since/--until, --compare, and the HTML, PNG and terminal
renderings."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from fractions import Fraction

import pytest
from PIL import Image
from rich.console import Console
from sqlalchemy import func, select

from admin_cli import summary
from storage.sql import Alert, AuditLog
from tests.conftest import T0

# Three follow-ups a quarter apart (T0 is 2 March 2026, 16.00 in Stockholm).
DAYS = (0, 91, 183)
DATES = ("2026-03-02", "2026-06-01", "2026-09-01")
SIDS = ("c0ffee01" + "0" * 24, "c0ffee02" + "0" * 24, "d00d0003" + "0" * 24)
SCALES = ("home_feel", "school_feel", "free_time", "body_feel", "mood_feel", "caseworker_talk")
# Every 1-5 scale goes down by 2 from the first to the second session; from the second to the
# third, half of them stay and half go up by 1 (the threshold on 1-5 is one step).
VALUES = (
    {"home_feel": 4, "school_feel": 5, "free_time": 5, "body_feel": 4, "mood_feel": 4,
     "caseworker_talk": 5},
    {"home_feel": 2, "school_feel": 3, "free_time": 3, "body_feel": 2, "mood_feel": 2,
     "caseworker_talk": 3},
    {"home_feel": 2, "school_feel": 4, "free_time": 3, "body_feel": 3, "mood_feel": 2,
     "caseworker_talk": 4},
)
HOME_WORDS = "Det är bråk <script>alert('x')</script> & skrik"
UNSAFE_WORDS = "Det är mycket skrik på kvällarna"


def replies_for(v: dict, unsafe: bool, n: int) -> list[str]:
    """A whole followup-6-11 conversation with these scale values."""
    out = [str(v["home_feel"])]
    if v["home_feel"] <= 2:
        out += ["1", HOME_WORDS if n == 1 else f"Bråk hemma ({n})"]
    out += ["ja", str(v["school_feel"])]
    if v["school_feel"] <= 2:
        out += ["1", "Svårt med matte"]
    out += ["ja", str(v["free_time"])]
    if v["free_time"] <= 2:
        out += ["Spela fotboll"]
    out += [str(v["body_feel"])]
    if v["body_feel"] <= 2:
        out += [f"Ont i magen ({n})"]
    out += [str(v["mood_feel"])]
    if v["mood_feel"] <= 2:
        out += [f"Jag saknar min syster ({n})"]
    out += ["nej", UNSAFE_WORDS] if unsafe else ["ja"]
    out += ["nej", "ja", "nej", str(v["caseworker_talk"])]
    if v["caseworker_talk"] <= 2:
        out += ["Mer tid"]
    out += ["1, 3", f"Prata med mamma om helgerna ({n})"]
    return out


def three_sessions(app, clock) -> list[str]:
    """Case K-30 (unit Nord), three completed followup-6-11 sessions; the second one tells
    that the child does not feel safe at home (an urgent alert)."""
    for n, (days, sid, values) in enumerate(zip(DAYS, SIDS, VALUES, strict=True)):
        clock.now = T0 + timedelta(days=days)
        app.service.invite("K-30", 9, unit="Nord", actor="anna", session_id=sid)
        app.service.open(sid)
        for reply in replies_for(values, unsafe=n == 1, n=n):
            clock.now += timedelta(minutes=1)
            app.service.handle(sid, reply)
        assert app.service.state(sid).status == "completed", sid
    return list(SIDS)


def _audits(app) -> int:
    with app.db.Session() as s:
        return s.scalar(select(func.count()).select_from(AuditLog)
                        .where(AuditLog.action == "summary")) or 0


def _by_qid(data: dict) -> dict[str, dict]:
    return {q["question_id"]: q for q in data["over_time"]["questions"]}


# --------------------------------------------------------------------------- the data


def test_three_sessions_give_a_series_per_scale_question_and_change_words(app, clock):
    three_sessions(app, clock)
    data = summary.build(app, "K-30", "anna")
    json.dumps(data)  # the --format json output

    # Today's fields are all still there.
    assert [s["id"] for s in data["sessions"]] == list(SIDS)
    assert [s["date"] for s in data["sessions"]] == list(DATES)
    first = data["sessions"][0]
    assert {"id", "questionnaire", "status", "language", "started_at", "completed_at",
            "answers"} <= set(first)
    home = next(a for a in first["answers"] if a["question_id"] == "home_feel")
    assert (home["domain"], home["value"], home["label"]) == ("home", 4, "4 av 5 (Ganska bra)")
    assert home["scale"] == {"min": 1, "max": 5}
    words = next(a for a in data["sessions"][1]["answers"] if a["question_id"] == "home_more")
    assert words["text"] == HOME_WORDS
    flagged = [a for s in data["sessions"] for a in s["answers"] if a["alert"]]
    assert [(a["question_id"], a["alert"]) for a in flagged] == [("safe_home", "urgent")]
    assert [a["topic"] for a in data["alerts"]] == ["unsafe_home"]

    ot = data["over_time"]
    assert ot["mode"] == "latest" and ot["threshold"]["steps_1_5"] == 1
    assert ot["pairs"] == [{"questionnaire": "followup-6-11",
                            "before": {"session_id": SIDS[1], "date": DATES[1]},
                            "after": {"session_id": SIDS[2], "date": DATES[2]}}]
    got = _by_qid(data)
    assert set(got) == set(SCALES)  # only scale questions; yes/no and choices are not charted
    for qid in SCALES:
        q = got[qid]
        assert [(p["date"], p["value"]) for p in q["series"]] == [
            (d, v[qid]) for d, v in zip(DATES, VALUES, strict=True)]
        assert q["scale"] == {"min": 1, "max": 5} and q["threshold"] == 1
    # Latest (1 Sept) against the previous (1 June): +1 is a change on 1-5, 0 is not.
    assert {qid: (got[qid]["change"]["difference"], got[qid]["change"]["word"])
            for qid in SCALES} == {
        "home_feel": (0, "unchanged"), "school_feel": (1, "better"),
        "free_time": (0, "unchanged"), "body_feel": (1, "better"),
        "mood_feel": (0, "unchanged"), "caseworker_talk": (1, "better")}
    # Areas in the caseworker's order.
    domains = [q["domain"] for q in ot["questions"]]
    assert domains == sorted(domains, key=list(summary.DOMAIN_TITLES).index)


def test_the_threshold_is_a_fifth_of_the_range_so_1_5_and_0_10_are_treated_alike():
    assert summary.threshold_steps(1, 5) == 1
    assert summary.threshold_steps(0, 10) == 2
    assert summary.threshold_steps(1, 10) == 2
    assert summary.change_word(3, 3, 1, 5) == "unchanged"
    assert summary.change_word(3, 2, 1, 5) == "worse"
    assert summary.change_word(2, 4, 1, 5) == "better"
    # One step on 0-10 is below the threshold: not called a change.
    assert summary.change_word(6, 7, 0, 10) == "unchanged"
    assert summary.change_word(6, 5, 0, 10) == "unchanged"
    assert summary.change_word(6, 8, 0, 10) == "better"
    assert summary.change_word(6, 4, 0, 10) == "worse"
    assert "20 %" in summary.threshold_rule_sv()
    assert summary.CHANGE_THRESHOLD == Fraction(1, 5)


def test_since_and_until_keep_the_sessions_in_the_period(app, clock):
    three_sessions(app, clock)
    later = summary.build(app, "K-30", "anna", since=date(2026, 5, 1))
    assert [s["date"] for s in later["sessions"]] == list(DATES[1:])
    assert all(len(q["series"]) == 2 for q in later["over_time"]["questions"])
    assert later["period"] == {"since": "2026-05-01", "until": None}

    middle = summary.build(app, "K-30", "anna", since=date(2026, 6, 1),
                           until=date(2026, 6, 1))  # both days included
    assert [s["date"] for s in middle["sessions"]] == [DATES[1]]
    assert middle["over_time"]["questions"] == []  # one session: nothing over time

    early = summary.build(app, "K-30", "anna", until=date(2026, 5, 31))
    assert [s["date"] for s in early["sessions"]] == [DATES[0]]
    # The alert from June is outside the period, but nobody has handled it: it is still shown.
    assert [(a["topic"], a["in_period"], a["question"]) for a in early["alerts"]] == [
        ("unsafe_home", False, "Känner du dig trygg där du bor?")]
    assert "utanför perioden" in summary.render_html(app, early)
    with app.db.Session.begin() as s:
        s.scalars(select(Alert)).one().acked_at = T0 + timedelta(days=92)
    assert summary.build(app, "K-30", "anna", until=date(2026, 5, 31))["alerts"] == []
    assert len(summary.build(app, "K-30", "anna")["alerts"]) == 1

    with pytest.raises(summary.SummaryError, match="--since 2026-07-01 är efter --until"):
        summary.build(app, "K-30", "anna", since=date(2026, 7, 1), until=date(2026, 6, 1))


def test_compare_by_date_and_by_session_id_prefix(app, clock):
    three_sessions(app, clock)
    # Dates: the latest session on or before each day (2 March and 1 June).
    data = summary.build(app, "K-30", "anna", compare=("2026-03-31", "2026-06-01"))
    ot = data["over_time"]
    assert ot["mode"] == "compare" and ot["compare"] == {"before": "2026-03-31",
                                                         "after": "2026-06-01"}
    assert [(p["before"]["session_id"], p["after"]["session_id"]) for p in ot["pairs"]] == [
        (SIDS[0], SIDS[1])]
    assert {q["question_id"]: (q["change"]["difference"], q["change"]["word"])
            for q in ot["questions"]} == {qid: (-2, "worse") for qid in SCALES}
    assert all(len(q["series"]) == 3 for q in ot["questions"])  # the whole series stays

    # Session ids: a unique prefix is enough (any case); first against last.
    data = summary.build(app, "K-30", "anna", compare=("C0FFEE01", "d00d"))
    got = _by_qid(data)
    assert (got["home_feel"]["change"]["difference"], got["home_feel"]["change"]["word"]) == (
        -2, "worse")
    assert (got["school_feel"]["change"]["difference"], got["school_feel"]["change"]["word"]) \
        == (-1, "worse")  # one step on 1-5 is at the threshold
    assert got["school_feel"]["change"]["before"] == {"session_id": SIDS[0], "date": DATES[0],
                                                      "value": 5}
    # A date and an id together.
    data = summary.build(app, "K-30", "anna", compare=(SIDS[1][:8], "2026-12-31"))
    assert [(p["before"]["date"], p["after"]["date"]) for p in data["over_time"]["pairs"]] == [
        (DATES[1], DATES[2])]


@pytest.mark.parametrize("compare, says", [
    (("2025-12-31", "2026-06-01"), r"FÖRE 2025-12-31: det finns inget tillfälle den dagen"),
    (("2026-02-30", "2026-06-01"), r"'2026-02-30' är inget riktigt datum"),
    (("c0ffee01", "beef"), r"EFTER 'beef' stämmer inte med något tillfälle"),
    (("c0ffee", "d00d"), r"'c0ffee' stämmer med 2 tillfällen: skriv mer av id:t"),
    (("d00d", "c0ffee01"), r"är senare än EFTER .*ge det tidigare först"),
    (("2026-06-01", "2026-06-30"), r"båda pekar på samma tillfälle"),
    (("20260301", "d00d"), r"stämmer inte med något tillfälle. Skriv ett datum som"),
])
def test_a_bad_compare_says_what_to_type(app, clock, compare, says):
    three_sessions(app, clock)
    with pytest.raises(summary.SummaryError, match=says) as err:
        summary.build(app, "K-30", "anna", compare=compare)
    assert isinstance(err.value, summary.CompareError)
    assert "2026-03-02 c0ffee01" in str(err.value) or "stämmer med 2" in str(err.value) \
        or "senare än" in str(err.value)  # the sessions there are, to pick from


def test_every_build_writes_exactly_one_audit_entry(app, clock):
    three_sessions(app, clock)
    assert _audits(app) == 0
    summary.build(app, "K-30", "anna")
    summary.build(app, "K-30", "anna", since=date(2026, 5, 1), until=date(2026, 12, 31))
    summary.build(app, "K-30", "anna", compare=("2026-03-02", "d00d"))
    with pytest.raises(summary.CompareError):
        summary.build(app, "K-30", "anna", compare=("nope", "d00d"))
    assert _audits(app) == 4
    with app.db.Session() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.action == "summary")
                         .order_by(AuditLog.id)).all()
    assert {(r.actor, r.case_ref) for r in rows} == {("anna", "K-30")}
    assert rows[1].detail == "since=2026-05-01 until=2026-12-31"
    with pytest.raises(summary.SummaryError, match="tala invite K-99"):
        summary.build(app, "K-99", "anna")
    assert _audits(app) == 4  # no case, nothing read


# --------------------------------------------------------------------------- the renderings


def test_the_html_is_one_self_contained_page_that_prints_on_a4(app, clock):
    three_sessions(app, clock)
    data = summary.build(app, "K-30", "anna")
    assert "contact" not in json.dumps(data)  # contact details are never part of a summary
    page = summary.render_html(app, data)
    assert page.startswith("<!DOCTYPE html>") and '<html lang="sv">' in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch, no address
    assert not re.search(r"<(script|link|img|iframe)\b", page, re.I)
    assert not re.search(r"url\((?!#)|@import|@font-face", page)  # url(#id) is in-page
    assert "<svg" in page and "@page" in page and "A4" in page
    # The child's own words, escaped: the <script> the child typed is text, not code.
    assert "Det är bråk &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; skrik" in page
    assert UNSAFE_WORDS in page
    # Wants-help first, then the safeguarding answers, then the areas.
    order = [page.index(h) for h in ("<h2>Vill ha hjälp med</h2>", "<h2>Viktiga svar</h2>",
                                     "<h2>Trygghet</h2>", "<h2>Hemma och viktiga vuxna</h2>",
                                     "<h2>Om sammanfattningen</h2>")]
    assert order == sorted(order)
    assert "Prata med mamma om helgerna (2)" in page and "Hur jag mår" in page
    assert "BRÅDSKANDE" in page and "känner sig inte trygg där hen bor" in page
    assert "1 september 2026" in page and "2 mars 2026" in page  # Swedish dates
    assert "bättre" in page and "ingen tydlig förändring" in page
    assert "K-30" in page


def test_the_png_is_a_picture_for_the_case_file(app, clock, tmp_path):
    three_sessions(app, clock)
    data = summary.build(app, "K-30", "anna", compare=("2026-03-02", "2026-06-01"))
    out = summary.render_png(app, data, tmp_path / "k30.png")
    raw = out.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(out) as img:
        img.verify()
    with Image.open(out) as img:
        width, height = img.size
    # Charts and the child's words, wishes and alerts: tall, but one picture for a case file.
    assert width == 1600 and 1500 <= height <= 9000
    assert 30_000 < len(raw) < 2_000_000


def test_the_png_of_a_first_session_still_shows_the_answers(app, clock, tmp_path):
    three_sessions(app, clock)
    data = summary.build(app, "K-30", "anna", until=date(2026, 3, 31))
    out = summary.render_png(app, data, tmp_path / "first.png")
    with Image.open(out) as img:
        assert img.size[0] == 1600


def test_the_terminal_shows_the_change_words_per_area(app, clock):
    three_sessions(app, clock)
    console = Console(record=True, width=120, color_system=None)
    console.print(summary.render_text(app, summary.build(app, "K-30", "anna")))
    text = console.export_text()
    assert "Sammanfattning: K-30" in text and "Över tid" in text
    assert "bättre (3 → 4)" in text and "ingen tydlig förändring (2 → 2)" in text
    assert "4 2 2" in text and "▆▃▃" in text  # home_feel over the three sessions
    assert "Hemma och viktiga vuxna" in text and "Viktiga svar" in text
    assert "id d00d0003" in text and "1 september 2026" in text
    console = Console(record=True, width=120, color_system=None)
    console.print(summary.render(app, summary.build(app, "K-30", "anna",
                                                    compare=("c0ffee01", "c0ffee02"))))
    assert "sämre (4 → 2)" in console.export_text()
