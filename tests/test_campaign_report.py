"""A campaign's results: participation over time, answers and the safeguarding count, with the
case report's rules (fixed periods, small groups merged, exact counts with small ones hidden).

Campaigns, sessions and answers are written straight to SQL (no conversation replayed), with
answers a real conversation could give (admin_cli/seed.py's `Answer` and `answer_path`). The
hand-made sets have counts that are 0 or at least 5, so nothing is hidden and the test can say
what the numbers must be.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
import uuid

from datetime import date, datetime, timedelta, timezone
from html.parser import HTMLParser
from itertools import pairwise

import pytest
from rich.console import Console
from sqlalchemy import insert, select

from admin_cli import report as R
from admin_cli.report.campaign import merge_periods
from admin_cli.report.queries import FIXED_TYPES
from admin_cli.report.texts import FLAGGED_TITLE
from admin_cli.seed import Answer, answer_path
from storage.sql import AnswerRow, AuditLog, Campaign, SessionRow

MIN = 5
QN = "followup-12-18"
SECRET_TEXT = "Pappa slår mig när han druckit, ring mig på 070-123 45 67"
PHONE = re.compile(r"(?:\+46|\b0)7\d[\s-]?\d{3}[\s-]?\d{2}[\s-]?\d{2}\b")


def _at(d: date, hour: int = 9) -> datetime:
    """A time on that day (UTC; 09:00 UTC is 10:00 or 11:00 in Stockholm: the same day)."""
    return datetime(d.year, d.month, d.day, hour, tzinfo=timezone.utc)


def _campaign(app, name: str, opens: date, closes: date, *, questionnaire: str = QN,
              flagged: int = 0, closed_at: datetime | None = None) -> Campaign:
    return app.db.add_campaign(Campaign(
        name=name, questionnaire_id=questionnaire, keyword=name.lower()[:32],
        code=uuid.uuid4().hex[:12], unit="Skolan", opens=opens, closes=closes, langs=["sv"],
        created_by="test", flagged=flagged, closed_at=closed_at))


class Survey:
    """Anonymous sessions of one campaign, written in one transaction by `commit()`."""

    def __init__(self, app, campaign: Campaign):
        self.app, self.campaign = app, campaign
        self.qn = app.questionnaires[campaign.questionnaire_id]
        self.sessions: list[dict] = []
        self.answers: list[dict] = []

    def session(self, at: datetime, status: str = "completed",
                answers: list[Answer] | tuple = ()) -> str:
        sid = uuid.uuid4().hex
        rows = [(Answer(a.question_id, a.earlier), False) for a in answers
                if a.earlier is not None] + [(a, True) for a in answers]
        now = at
        for seq, (a, current) in enumerate(rows, start=1):
            now += timedelta(seconds=40)
            v = a.value
            self.answers.append({
                "session_id": sid, "question_id": a.question_id,
                "domain": self.qn.question(a.question_id).domain, "seq": seq,
                "current": current, "skipped": a.skipped,
                "value_num": float(v) if isinstance(v, int) and not isinstance(v, bool) else None,
                "value_option": v if isinstance(v, str) else None,
                "value_options": v if isinstance(v, list) else None,
                "text_enc": self.app.crypto.encrypt(a.text) if a.text else None,
                "lang": "sv", "answered_at": now})
        ended = now + (timedelta(days=14) if status == "expired" else timedelta(minutes=1))
        self.sessions.append({
            "id": sid, "child_id": None, "campaign_id": self.campaign.id,
            "invitation_id": None, "questionnaire_id": self.qn.id,
            "questionnaire_version": self.qn.version, "lang": "sv", "channel": "sms",
            "status": status, "started_at": at, "completed_at": ended, "written_at": ended})
        return sid

    def commit(self) -> None:
        with self.app.db.Session.begin() as db:
            if self.sessions:
                db.execute(insert(SessionRow), self.sessions)
            if self.answers:
                db.execute(insert(AnswerRow), self.answers)
        self.sessions, self.answers = [], []


# --------------------------------------------------------------------------- a hand-made set

OPENS, CLOSES = date(2026, 3, 2), date(2026, 3, 13)  # Monday to Friday the week after
AFTER = date(2026, 4, 1)


def _good(earlier: int | None = None) -> list[Answer]:
    return [Answer("home_feel", 8, earlier=earlier), Answer("trusted_adult", "yes"),
            Answer("safe_home", "yes")]


def _low(i: int) -> list[Answer]:
    out = [Answer("home_feel", 2),
           Answer("home_hard", ["arguing", "lonely"] if i < 10 else ["other"])]
    if i < 5:
        out.append(Answer("home_more", None, SECRET_TEXT))
    out += [Answer("trusted_adult", "yes" if i < 10 else "no"),
            Answer("safe_home", "no" if i >= 15 else "yes")]
    return out


def _school(app, name: str = "ak8-var") -> tuple[Campaign, list[str]]:
    """60 sessions over 12 days (so counted per day), all numbers multiples of 5:
      Mar 2: 15 completed + 5 stopped; Mar 3: 10 completed + 5 expired; Mar 5, 9: 10
      completed each; Mar 12: 5 completed.
    Completed: 30 "good" (home_feel 8, 5 of them first said 0; trusted adult yes; safe home
    yes) and 20 "low" (home_feel 2; home_hard arguing+lonely for 10, other for 10; 5 wrote
    free text with a phone number; trusted adult yes 10 / no 10; safe home no for 5).
    Stopped: home_feel 5, trusted_adult skipped. Expired: home_feel 0, trusted_adult no
    (expired sessions' answers do not count). 5 answers raised a safeguarding rule."""
    c = _campaign(app, name, OPENS, CLOSES, flagged=5)
    s = Survey(app, c)
    kinds = [("good", i) for i in range(30)] + [("low", i) for i in range(20)]
    days = [date(2026, 3, 2)] * 15 + [date(2026, 3, 3)] * 10 + [date(2026, 3, 5)] * 10 + \
        [date(2026, 3, 9)] * 10 + [date(2026, 3, 12)] * 5
    ids = []
    for (kind, i), day in zip(kinds, days, strict=True):
        answers = _good(earlier=0 if i < 5 else None) if kind == "good" else _low(i)
        ids.append(s.session(_at(day, 8 + i % 8), "completed", answers))
    for _ in range(5):
        ids.append(s.session(_at(date(2026, 3, 2), 10), "stopped",
                             [Answer("home_feel", 5), Answer("trusted_adult", skipped=True)]))
        ids.append(s.session(_at(date(2026, 3, 3), 10), "expired",
                             [Answer("home_feel", 0), Answer("trusted_adult", "no")]))
    s.commit()
    return c, ids


def _question(rep: dict, qid: str) -> dict:
    return next(q for q in rep["questions"] if q["question_id"] == qid)


def _values(rep: dict, qid: str) -> dict:
    return {v["value"]: v["count"] for v in _question(rep, qid)["values"]}


def test_sixty_sessions_give_participation_per_day_and_distributions(app):
    _school(app)
    rep = R.build_campaign_report(app, "rektor", "ak8-var", today=AFTER)
    assert rep["kind"] == "campaign" and not rep["too_few"] and not rep["open"]
    p = rep["participation"]
    assert p["period"] == "day" and rep["filters"]["until"] == "2026-03-13"
    assert p["total"] == {"started": 60, "completed": 50, "share_percent": 83}
    by_day = {r["group"]: (r["started"], r["completed"]) for r in p["periods"]}
    assert by_day == {"2026-03-02": (20, 15), "2026-03-03": (15, 10), "2026-03-04": (0, 0),
                      "2026-03-05": (10, 10), "2026-03-06": (0, 0), "2026-03-07": (0, 0),
                      "2026-03-08": (0, 0), "2026-03-09": (10, 10), "2026-03-10": (0, 0),
                      "2026-03-11": (0, 0), "2026-03-12": (5, 5), "2026-03-13": (0, 0)}
    # The total is the sum of the periods (not rounded on its own).
    assert sum(r["started"] for r in p["periods"]) == p["total"]["started"]
    assert sum(r["completed"] for r in p["periods"]) == p["total"]["completed"]

    # Answers: completed and stopped sessions, current answers, not skipped; not expired.
    assert _question(rep, "home_feel")["answered"] == 55
    assert _values(rep, "home_feel") == {0: 0, 1: 0, 2: 20, 3: 0, 4: 0, 5: 5, 6: 0, 7: 0,
                                         8: 30, 9: 0, 10: 0}
    assert _question(rep, "home_hard")["answered"] == 20
    assert {k: v for k, v in _values(rep, "home_hard").items() if v} == {
        "arguing": 10, "lonely": 10, "other": 10}
    assert _values(rep, "trusted_adult") == {"yes": 40, "no": 10}
    assert {v["label"]: v["percent"] for v in _question(rep, "trusted_adult")["values"]} == {
        "Ja": 80, "Nej": 20}
    assert _values(rep, "safe_home") == {"yes": 45, "no": 5}
    fixed = [q.id for q in app.questionnaires[QN].questions if q.type in FIXED_TYPES]
    assert [q["question_id"] for q in rep["questions"]] == fixed  # never free text
    assert _question(rep, "self_harm")["answered"] == 0
    assert _question(rep, "self_harm")["values"][0]["percent"] is None
    assert rep["flagged"] == {"count": 5, "text": "5-9"}

    # No count is 1 to 4; a distribution adds up to its question's answered.
    for key, v in R.numbers(rep).items():
        if key.rsplit("|", 1)[1] != "share_percent" and not key.endswith("|percent"):
            assert v is None or not 0 < v < MIN, (key, v)
    for q in rep["questions"]:
        if q["type"] != "multi_choice":
            assert sum(v["count"] for v in q["values"]) == q["answered"]


def test_a_long_campaign_is_counted_per_iso_week(app):
    c = _campaign(app, "hela-varen", date(2026, 3, 4), date(2026, 4, 30))  # a Wednesday
    s = Survey(app, c)
    for day, n in [(date(2026, 3, 4), 10), (date(2026, 3, 8), 5),  # week 10 (Wed-Sun)
                   (date(2026, 3, 9), 5),  # week 11
                   (date(2026, 3, 24), 2), (date(2026, 4, 1), 3),  # weeks 13, 14: too few
                   (date(2026, 4, 30), 5)]:  # week 18
        for _ in range(n):
            s.session(_at(day), "completed", [Answer("home_feel", 6)])
    s.commit()
    rep = R.build_campaign_report(app, "rektor", "hela-varen", today=date(2026, 6, 1))
    p = rep["participation"]
    assert p["period"] == "week" and "Per vecka" in R.to_html(rep)
    assert [(r["group"], r["from"], r["to"], r["started"]) for r in p["periods"]] == [
        ("2026 v10", "2026-03-04", "2026-03-08", 15), ("2026 v11", "2026-03-09",
                                                       "2026-03-15", 5),
        ("2026 v12", "2026-03-16", "2026-03-22", 0),
        ("2026 v13-v14", "2026-03-23", "2026-04-05", 5),  # 2 + 3 merged
        ("2026 v15", "2026-04-06", "2026-04-12", 0), ("2026 v16", "2026-04-13",
                                                      "2026-04-19", 0),
        ("2026 v17", "2026-04-20", "2026-04-26", 0),
        ("2026 v18", "2026-04-27", "2026-04-30", 5)]
    # While it is open, the last period ends today.
    mid = R.build_campaign_report(app, "rektor", "hela-varen", today=date(2026, 3, 10))
    assert mid["filters"]["until"] == "2026-03-10" and mid["open"]
    assert mid["participation"]["periods"][-1]["group"] == "2026 v11"


def test_merging_small_periods_never_shows_a_group_of_one_to_four():
    assert merge_periods([7, 2, 0, 3, 0, 6, 1], MIN) == [(0, 0), (1, 3), (4, 4), (5, 6)]
    # What is left small at the end goes back over empty periods to the last with sessions.
    assert merge_periods([5, 0, 0, 4], MIN) == [(0, 3)]
    assert merge_periods([0, 0, 5, 0], MIN) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert merge_periods([1, 1, 1, 1], MIN) == [(0, 3)]  # too few in all: report too_few
    rng = random.Random(11)
    for _ in range(2000):
        sizes = [rng.choice([0, 0, 0, 1, 2, 3, 4, 5, 8]) for _ in range(rng.randint(1, 20))]
        groups = merge_periods(sizes, MIN)
        assert [i for a, b in groups for i in range(a, b + 1)] == list(range(len(sizes)))
        if sum(sizes) >= MIN:
            for a, b in groups:
                assert sum(sizes[a:b + 1]) == 0 or sum(sizes[a:b + 1]) >= MIN, (sizes, groups)


def test_small_days_are_merged_in_the_report_and_the_sum_still_holds(app):
    c = _campaign(app, "smadagar", date(2026, 3, 2), date(2026, 3, 8))
    s = Survey(app, c)
    truth = [7, 2, 0, 3, 0, 6, 1]
    for i, n in enumerate(truth):
        for _ in range(n):
            s.session(_at(date(2026, 3, 2) + timedelta(days=i)), "completed",
                      [Answer("trusted_adult", "yes")])
    s.commit()
    rep = R.build_campaign_report(app, "rektor", "smadagar", today=AFTER)
    rows = rep["participation"]["periods"]
    assert [r["group"] for r in rows] == ["2026-03-02", "2026-03-03 - 2026-03-05",
                                          "2026-03-06", "2026-03-07 - 2026-03-08"]
    for r in rows:
        first, last = date.fromisoformat(r["from"]), date.fromisoformat(r["to"])
        n = sum(truth[(first - date(2026, 3, 2)).days:(last - date(2026, 3, 2)).days + 1])
        assert n == 0 or n >= MIN
        assert r["started"] == n  # exact
    assert rep["participation"]["total"]["started"] == sum(r["started"] for r in rows)


# --------------------------------------------------------------------------- suppression


def _digits_that_are_not_dates(text: str) -> set[str]:
    text = text.split("<body>", 1)[-1]  # the page's head: charset utf-8, the A4 style
    text = re.sub(r"<[^>]*>", " ", text)  # tags: <h1>
    return set(re.findall(r"\d+", re.sub(r"\d{4}-\d{2}-\d{2}", "", text)))


def _outputs(rep: dict) -> list[str]:
    console = Console(record=True, width=200)
    console.print(R.render_text(rep))
    return [R.to_json(rep), R.to_csv(rep), R.to_html(rep), console.export_text()]


def test_a_campaign_with_four_answers_shows_nothing(app):
    c = _campaign(app, "liten", OPENS, CLOSES, questionnaire="session-feedback", flagged=3)
    s = Survey(app, c)
    for _ in range(4):
        s.session(_at(OPENS), "completed", [Answer("right_topics", 1),
                                            Answer("recommend_friend", 2)])
    for _ in range(6):  # started and expired without an answer: they are not answers
        s.session(_at(OPENS), "expired")
    s.commit()
    rep = R.build_campaign_report(app, "rektor", "liten", today=AFTER)
    assert rep["too_few"] and rep["message"].startswith("För få svar")
    assert rep["participation"] is None and rep["questions"] == [] and rep["flagged"] is None
    assert R.numbers(rep) == {}
    for out in _outputs(rep):
        assert "För få svar" in out
        # Nothing but dates and the smallest group size (5): not the 4, 6, 10 or 3.
        assert _digits_that_are_not_dates(out) <= {"5"}, out
    assert "too_few" in R.to_csv(rep)
    # A fifth answer shows it all.
    s.session(_at(OPENS), "stopped", [Answer("right_topics", 3)])
    s.commit()
    assert not R.build_campaign_report(app, "rektor", "liten", today=AFTER)["too_few"]


def test_the_safeguarding_count_is_only_ever_shown_as_a_range_of_five(app):
    c, _ = _school(app)
    seen: dict[int, dict] = {}
    for flagged in range(0, 23):
        with app.db.Session.begin() as db:
            db.get(Campaign, c.id).flagged = flagged
        rep = R.build_campaign_report(app, "rektor", c.name, today=AFTER)
        f = rep["flagged"]
        seen[flagged] = f
        if f["count"] is None:
            assert f["text"] == "färre än 5" and flagged < MIN
        else:
            # The range it is in, which is true: 12 is "10-14", never "ca 15".
            assert f["count"] <= flagged <= f["count"] + MIN - 1
            assert f["text"] == f"{f['count']}-{f['count'] + MIN - 1}"
        for out in _outputs(rep):
            assert f["text"] in out
    assert seen[0]["text"] == "färre än 5"  # none is not shown as 0 either
    # A range of five: one more flag moves it only when it crosses into the next.
    counts = [seen[n]["count"] or 0 for n in range(23)]
    assert counts == sorted(counts)
    assert all(b - a in (0, MIN) for a, b in pairwise(counts))


def test_no_free_text_session_id_phone_or_code_in_any_output(app):
    c, ids = _school(app)
    with app.db.Session() as db:
        assert db.scalar(select(AnswerRow.text_enc).where(AnswerRow.text_enc.is_not(None)))
    rep = R.build_campaign_report(app, "rektor", c.name, today=AFTER)
    for out in _outputs(rep):
        assert SECRET_TEXT not in out and "druckit" not in out
        assert not PHONE.search(out) and "+46" not in out
        for sid in ids:
            assert sid not in out
        assert c.code not in out
    assert "home_more" not in json.dumps(rep)


# --------------------------------------------------------------------------- renderers


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: dict[str, str] = {}
        self._key: str | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._key = a.get("data-key")
        self.links += [a[n] for n in ("src", "href") if a.get(n)]

    def handle_data(self, data):
        if self._key is not None:
            self.found[self._key] = self.found.get(self._key, "") + data

    def handle_endtag(self, tag):
        self._key = None


def _as_number(text: str) -> int | None:
    text = text.replace("%", "").replace("ca ", "").strip()
    text = re.sub(r"^(\d+)-\d+$", r"\1", text)  # a range "5-9": its lower end
    return None if text in ("", "–", "färre än 5") else int(text)


def _walk(rep: dict) -> dict[str, object]:
    """Every number of a campaign report, read straight from the dict."""
    out: dict[str, object] = {}
    p = rep["participation"]
    for dim, rows in [("total", [{"group": "Totalt", **p["total"]}]), ("period", p["periods"])]:
        for r in rows:
            for m in ("started", "completed", "share_percent"):
                out[f"participation|{dim}|{r['group']}||||{m}"] = r[m]
    if rep["flagged"]:
        out["safeguarding||||||flagged"] = rep["flagged"]["count"]
    for q in rep["questions"]:
        head = f"answers|||{q['questionnaire']}|{q['question_id']}"
        out[f"{head}||answered"] = q["answered"]
        for v in q["values"]:
            out[f"{head}|{v['value']}|count"] = v["count"]
            out[f"{head}|{v['value']}|percent"] = v["percent"]
    return out


@pytest.mark.parametrize("flagged", [3, 12])
def test_json_csv_html_and_text_show_the_same_numbers(app, flagged):
    c, _ = _school(app)
    with app.db.Session.begin() as db:
        db.get(Campaign, c.id).flagged = flagged
    for today in (AFTER, date(2026, 3, 9)):  # closed, and still open
        rep = R.build_campaign_report(app, "rektor", c.name, today=today)
        expected = _walk(rep)
        assert R.numbers(rep) == expected
        assert json.loads(R.to_json(rep)) == rep
        rows = list(csv.DictReader(io.StringIO(R.to_csv(rep))))
        assert {R.cell_key(r): _as_number(r["count"]) for r in rows} == expected
        page = _Cells()
        page.feed(R.to_html(rep))
        assert {k: _as_number(v) for k, v in page.found.items()} == expected
        assert page.links == [] and "@page { size: A4" in R.to_html(rep)
        console = Console(record=True, width=160)
        console.print(R.render_text(rep))
        text = console.export_text()
        total = rep["participation"]["total"]
        assert f"{total['started']}" in text
        share = total["share_percent"]
        assert (f"{share} %" if share is not None else "–") in text
        if rep["flagged"]:
            assert f"{FLAGGED_TITLE}: {rep['flagged']['text']}" in text
            flagged_row = next(r for r in rows if r["section"] == "safeguarding")
            assert flagged_row["label"] == rep["flagged"]["text"]


# --------------------------------------------------------------------------- open campaigns


def test_while_open_only_participation_is_shown(app):
    """The safeguarding count goes up the moment an answer raises it, and one more answer
    moves a distribution by one: shown live, someone watching pupils answer one by one could
    tell what one of them said. So until it closes, only participation (which says that
    someone answered, never what)."""
    c, _ = _school(app)
    before = R.build_campaign_report(app, "rektor", c.name, today=date(2026, 3, 12))
    assert before["open"] and not before["too_few"]
    assert before["questions"] == [] and before["flagged"] is None
    assert any("visas när den har stängt" in n for n in before["notes"])
    # One more pupil answers, and the answer raises an alert.
    s = Survey(app, c)
    s.session(_at(date(2026, 3, 12), 12), "completed", [Answer("safe_home", "no")])
    s.commit()
    app.db.flag_campaign(c.id)
    after = R.build_campaign_report(app, "rektor", c.name, today=date(2026, 3, 12))
    assert not any(k.startswith(("answers|", "safeguarding|")) for k in R.numbers(after))
    assert after["participation"]["total"]["started"] == \
        before["participation"]["total"]["started"] + 1
    # Closed early (tala campaign close): results at once, counted to the day it closed.
    app.db.close_campaign(c.name, datetime(2026, 3, 12, 15, tzinfo=timezone.utc))
    closed = R.build_campaign_report(app, "rektor", c.name, today=date(2026, 3, 12))
    assert not closed["open"] and closed["questions"] and closed["flagged"]
    assert closed["filters"]["until"] == "2026-03-12"


# --------------------------------------------------------------------------- the attacker


def test_a_session_written_after_the_close_never_moves_the_answers(app):
    """The attacker takes the report, waits for one more session to be written (a pupil who
    was still answering at the close and finishes after it), and takes it again, over and
    over. The answers count only sessions that ended before the close, so they never move:
    the late pupil's answers cannot be read off the difference. The safeguarding count is a
    range of five, so it moves in steps of five or not at all. What does move is
    participation, by one session each time: that says someone answered, never what. Every
    report on its own shows no count of 1 to 4."""
    c = _campaign(app, "attack", OPENS, CLOSES, flagged=0)
    qn = app.questionnaires[QN]
    rng = random.Random(5)
    s = Survey(app, c)
    for _ in range(23):
        s.session(_at(OPENS + timedelta(days=rng.randint(0, 11))), "completed",
                  answer_path(qn, rng, rng.betavariate(4, 2)))
    s.commit()
    # 23:59 in Stockholm on the last day: each of these ends after midnight, after the close.
    late = datetime(2026, 3, 13, 22, 59, tzinfo=timezone.utc)
    published: list[dict[str, object]] = []
    for step in range(25):
        rep = R.build_campaign_report(app, "attacker", "attack", today=AFTER)
        nums = R.numbers(rep)
        assert nums == R.numbers(R.build_campaign_report(app, "attacker", "attack",
                                                         today=AFTER))  # asked again: same
        for key, v in nums.items():
            if key.endswith(("|started", "|completed", "|answered", "|count")):
                assert v is None or not 0 < v < MIN, (step, key, v)
        for row in rep["participation"]["periods"]:
            assert row["started"] == 0 or row["started"] >= MIN
        published.append(nums)
        status = rng.choice(["completed", "completed", "stopped", "expired"])
        s.session(late, status, answer_path(qn, rng, rng.random(), stop_after=None if status ==
                                            "completed" else 3))
        s.commit()
        if rng.random() < 0.3:
            app.db.flag_campaign(c.id)
    for a, b in pairwise(published):
        answers_a = {k: v for k, v in a.items() if k.startswith("answers|")}
        assert answers_a and answers_a == {k: v for k, v in b.items()
                                           if k.startswith("answers|")}
        moved = (b.get("safeguarding||||||flagged") or 0) - (a.get(
            "safeguarding||||||flagged") or 0)
        assert moved in (0, MIN)
        total = "participation|total|Totalt||||started"
        assert b[total] == a[total] + 1


def test_every_call_is_audited_and_an_unknown_campaign_is_refused(app):
    _school(app)
    R.build_campaign_report(app, "rektor-eva", "ak8-var", today=AFTER)
    with pytest.raises(R.ReportError, match="Enkäten 'finns-inte' finns inte"):
        R.build_campaign_report(app, "rektor-eva", "finns-inte")
    with pytest.raises(R.ReportError):
        R.build_campaign_report(app, "rektor-eva", "ak8-var", min_group=1)
    with app.db.Session() as db:
        rows = db.scalars(select(AuditLog).where(AuditLog.action == "report")
                          .order_by(AuditLog.id)).all()
    assert [(r.actor, r.case_ref, r.detail) for r in rows] == [
        ("rektor-eva", None, "campaign ak8-var"), ("rektor-eva", None, "campaign finns-inte"),
        ("rektor-eva", None, "campaign ak8-var")]
    # Without `today`, today is today (this campaign closed long ago).
    assert not R.build_campaign_report(app, "rektor-eva", "ak8-var")["open"]


def test_sessions_of_cases_and_other_campaigns_are_not_counted(app):
    c, _ = _school(app)
    other = _campaign(app, "annan", OPENS, CLOSES)
    s = Survey(app, other)
    for _ in range(10):
        s.session(_at(OPENS), "completed", [Answer("home_feel", 0)])
    s.commit()
    rep = R.build_campaign_report(app, "rektor", c.name, today=AFTER)
    assert rep["participation"]["total"]["started"] == 60
    assert _values(rep, "home_feel")[0] == 0
    assert _values(R.build_campaign_report(app, "rektor", "annan", today=AFTER),
                   "home_feel")[0] == 10
