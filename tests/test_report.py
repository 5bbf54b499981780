"""The managers' report: the right numbers, and no child singled out whatever the filters.

Runs on the real backends (the `app` fixture). The data comes from admin_cli/seed.py: a small
hand-made set whose counts are known (and 0 or at least 5, so nothing of it is hidden), and a
seeded municipality for the attacker's tests, which make every report the filters allow and
try to subtract their way to a small group.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from datetime import date, datetime, timezone
from html.parser import HTMLParser
from itertools import combinations
from zoneinfo import ZoneInfo

import pytest
from rich.console import Console
from sqlalchemy import select

from admin_cli import report as R
from admin_cli.report.periods import quarters
from admin_cli.seed import FREE_TEXTS, Answer, Builder, seed
from storage.sql import AuditLog, Child, Invitation

MIN = 5


def _at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 10, tzinfo=timezone.utc)


# --------------------------------------------------------------------------- a hand-made set


def _hand_made(app) -> None:
    """Nord, 2025 Q1, followup-6-11, 20 children aged 9:
      1-10 completed (1 also had an earlier invitation that quarter that never started;
            2 also stopped an earlier session that quarter, answering home_feel 1),
      11-12 stopped, 13-14 expired after starting (home_feel skipped), 15 paused (live),
      16-18 never started, 19 said STOP, 20 not answered yet.
    Caseworkers: Andersson has 1-5 and 11-15, Berg 6-10 and 16-20. Children 6-10 use Somali.
    Answers: 1-5 home_feel 2 with home_hard [arguing, lonely] and free text; 6-10 home_feel 5
    (child 6 first said 1, then changed it). Syd, 2025 Q2, followup-12-18: 5 children aged 14,
    all completed. Liten, 2025 Q1: 3 children, all completed: too few to show."""
    b = Builder(app)
    for i in range(1, 21):
        b.child(f"H-{i}", unit="Nord", caseworker="Andersson" if i <= 5 or 11 <= i <= 15
                else "Berg", birth_year=2016, lang="so" if 6 <= i <= 10 else "sv")
    q = "followup-6-11"
    b.invitation("H-1", q, _at(2025, 1, 10), "not_started")
    b.invitation("H-2", q, _at(2025, 1, 12), "stopped", answers=[Answer("home_feel", 1)])
    for i in range(1, 11):
        low = i <= 5
        answers = [Answer("home_feel", 2 if low else 5, earlier=1 if i == 6 else None)]
        if low:
            answers += [Answer("home_hard", ["arguing", "lonely"]),
                        Answer("home_more", None, "Pappa skriker när han är arg")]
        answers.append(Answer("home_adult", "yes"))
        b.invitation(f"H-{i}", q, _at(2025, 2, 1 + i), "completed",
                     lang="so" if i >= 6 else "sv", answers=answers)
    for i, outcome in [(11, "stopped"), (12, "stopped"), (13, "expired"), (14, "expired")]:
        b.invitation(f"H-{i}", q, _at(2025, 2, 15), outcome,
                     answers=[Answer("home_feel", skipped=True)])
    b.invitation("H-15", q, _at(2025, 2, 16), "paused")
    for i, outcome in [(16, "not_started"), (17, "not_started"), (18, "not_started"),
                       (19, "opted_out"), (20, "sent")]:
        b.invitation(f"H-{i}", q, _at(2025, 3, 1), outcome)
    for i in range(1, 6):
        b.child(f"S-{i}", unit="Syd", caseworker="Carlsson", birth_year=2011)
        b.invitation(f"S-{i}", "followup-12-18", _at(2025, 5, 5), "completed",
                     answers=[Answer("home_feel", 7)])
    for i in range(1, 4):
        b.child(f"L-{i}", unit="Liten", caseworker="Dahl", birth_year=2016)
        b.invitation(f"L-{i}", q, _at(2025, 2, 20), "completed",
                     answers=[Answer("home_feel", 1), Answer("hurt_by_adult", "yes")])
    b.commit()


def _row(rows: list[dict], group: str) -> tuple:
    r = next(r for r in rows if r["group"] == group)
    return r["invited"], r["started"], r["completed"], r["share_percent"]


def _question(report: dict, qn: str, qid: str) -> dict:
    return next(q for q in report["questions"]
                if q["questionnaire"] == qn and q["question_id"] == qid)


def test_participation_counts_are_right_on_a_hand_made_set(app):
    _hand_made(app)
    rep = R.build_report(app, "chef", since=date(2025, 1, 1), until=date(2025, 3, 31))
    p = rep["participation"]
    assert not rep["too_few"] and rep["quarters"] == ["2025 kv1"]
    # Nord: 20 invited; 15 began (10 completed, 2 stopped, 2 expired, 1 paused); Liten is too
    # small to show and left out.
    assert _row([{"group": "Totalt", **p["total"]}], "Totalt") == (20, 15, 10, 50)
    assert [r["group"] for r in p["unit"]] == ["Nord"]
    assert _row(p["caseworker"], "Andersson") == (10, 10, 5, 50)
    assert _row(p["caseworker"], "Berg") == (10, 5, 5, 50)
    assert _row(p["language"], "svenska (sv)") == (15, 10, 5, 33)
    assert _row(p["language"], "somaliska (so)") == (5, 5, 5, 100)
    assert _row(p["age_band"], "6-11 år") == (20, 15, 10, 50)

    # Answers: the latest session of each child that quarter, current answers only.
    feel = _question(rep, "followup-6-11", "home_feel")
    assert feel["answered"] == 10
    assert {v["value"]: v["count"] for v in feel["values"]} == {1: 0, 2: 5, 3: 0, 4: 0, 5: 5}
    assert feel["values"][1]["label"] == "2 av 5 (Ganska dåligt)"
    hard = _question(rep, "followup-6-11", "home_hard")
    assert hard["answered"] == 5
    assert {v["label"]: v["count"] for v in hard["values"]} == {
        "Vuxna bråkar eller är arga": 5, "Jag saknar någon": 0, "Jag känner mig ensam": 5,
        "Något annat": 0}
    assert {v["label"]: v["percent"] for v in _question(rep, "followup-6-11",
                                                        "home_adult")["values"]} == {
        "Ja": 100, "Nej": 0}
    assert not any(q["type"] == "free_text" for q in rep["questions"])

    whole = R.build_report(app, "chef")  # no filter: both quarters, both questionnaires
    assert _row([{"group": "Totalt", **whole["participation"]["total"]}], "Totalt") == \
        (25, 20, 15, 60)
    assert _row(whole["participation"]["unit"], "Syd") == (5, 5, 5, 100)
    assert _question(whole, "followup-12-18", "home_feel")["values"][7]["count"] == 5
    only_syd = R.build_report(app, "chef", unit="Syd", questionnaire="followup-12-18")
    assert _row([{"group": "Totalt", **only_syd["participation"]["total"]}], "Totalt") == \
        (5, 5, 5, 100)
    assert [q["questionnaire"] for q in only_syd["questions"]] == \
        ["followup-12-18"] * len(only_syd["questions"])


def test_small_groups_are_not_shown(app):
    _hand_made(app)
    b = Builder(app)
    # Two more caseworkers in Nord with 2 and 1 children: shown only together with others.
    for i, cw in [(1, "Ek"), (2, "Ek"), (3, "Falk")]:
        b.child(f"E-{i}", unit="Nord", caseworker=cw, birth_year=2016)
        b.invitation(f"E-{i}", "followup-6-11", _at(2025, 2, 25), "completed",
                     answers=[Answer("home_feel", 3)])
    b.commit()
    rep = R.build_report(app, "chef", unit="Nord")
    groups = [r["group"] for r in rep["participation"]["caseworker"]]
    assert "Ek" not in groups and "Falk" not in groups
    assert groups[-1] == "Handläggare med färre än 5 barn"  # Ek, Falk, and Andersson for 5+
    for dim in R.BREAKDOWNS:
        for r in rep["participation"][dim]:
            assert r["invited"] >= MIN

    small = R.build_report(app, "chef", unit="Liten")
    assert small["too_few"] and small["participation"] is None and small["questions"] == []
    assert R.numbers(small) == {}
    assert "För få barn" in R.to_html(small) and "too_few" in R.to_csv(small)
    assert R.build_report(app, "chef", unit="Finns inte")["too_few"]
    # A period with too few children, and a questionnaire nobody was invited to.
    assert R.build_report(app, "chef", since=date(2024, 1, 1), until=date(2024, 12, 31))[
        "too_few"]
    assert R.build_report(app, "chef", questionnaire="session-feedback")["too_few"]
    # Liten's three children (all said "yes" to being hurt) are nowhere.
    whole = R.build_report(app, "chef")
    assert _question(whole, "followup-6-11", "hurt_by_adult")["answered"] == 0


def test_one_child_more_changes_nothing(app):
    """The attacker's simplest try: one child is added to a unit in a quarter of its own. The
    report for the unit with and without that quarter must be the very same."""
    _hand_made(app)
    b = Builder(app)
    b.child("ONE", unit="Nord", caseworker="Andersson", birth_year=2016)
    b.invitation("ONE", "followup-6-11", _at(2025, 5, 2), "completed",
                 answers=[Answer("home_feel", 1), Answer("hurt_by_adult", "yes")])
    b.commit()
    q1 = R.build_report(app, "chef", unit="Nord", since=date(2025, 1, 1),
                        until=date(2025, 3, 31))
    q12 = R.build_report(app, "chef", unit="Nord", since=date(2025, 1, 1),
                         until=date(2025, 6, 30))
    assert R.numbers(q1) == R.numbers(q12)
    assert R.build_report(app, "chef", unit="Nord", since=date(2025, 4, 1),
                          until=date(2025, 6, 30))["too_few"]
    # Nor does all units, Q2 (Syd's five and the one child) tell anything about the child.
    q2 = R.build_report(app, "chef", since=date(2025, 4, 1), until=date(2025, 6, 30))
    assert _row(q2["participation"]["unit"], "Syd") == (5, 5, 5, 100)
    assert [r["group"] for r in q2["participation"]["unit"]] == ["Syd"]
    assert {q["questionnaire"] for q in q2["questions"]} == {"followup-12-18"}


def test_every_call_is_audited_with_its_filters(app):
    R.build_report(app, "chef-anna", unit="Nord", since=date(2025, 2, 3),
                   questionnaire="followup-6-11")
    with pytest.raises(R.ReportError):
        R.build_report(app, "chef-anna", questionnaire="finns-inte")
    with app.db.Session() as s:
        rows = s.scalars(select(AuditLog).where(AuditLog.action == "report")
                         .order_by(AuditLog.id)).all()
    assert [(r.actor, r.case_ref) for r in rows] == [("chef-anna", None)] * 2
    assert json.loads(rows[0].detail) == {"unit": "Nord", "since": "2025-02-03", "until": None,
                                          "questionnaire": "followup-6-11", "min_group": 5}


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
        for name in ("src", "href"):
            if a.get(name):
                self.links.append(a[name])

    def handle_data(self, data):
        if self._key is not None:
            self.found[self._key] = self.found.get(self._key, "") + data

    def handle_endtag(self, tag):
        self._key = None


def _walk(rep: dict) -> dict[str, object]:
    """Every number of a report, read straight from the dict build_report made."""
    out: dict[str, object] = {}
    p = rep["participation"]
    if p:
        for dim, rows in [("total", [{"group": "Totalt", **p["total"]}])] + \
                [(d, p[d]) for d in R.BREAKDOWNS]:
            for r in rows:
                for m in ("invited", "started", "completed", "share_percent"):
                    out[f"participation|{dim}|{r['group']}||||{m}"] = r[m]
    for q in rep["questions"]:
        head = f"answers|||{q['questionnaire']}|{q['question_id']}"
        out[f"{head}||answered"] = q["answered"]
        for v in q["values"]:
            out[f"{head}|{v['value']}|count"] = v["count"]
            out[f"{head}|{v['value']}|percent"] = v["percent"]
    return out


def _as_number(text: str) -> int | None:
    text = text.replace("%", "").strip()
    return None if text in ("", "–") else int(text)  # "–": hidden


def test_json_csv_and_html_show_the_same_numbers_as_the_report(app):
    seed(app, children=120, seed=3)
    for kwargs in ({}, {"unit": "Nord"}, {"questionnaire": "followup-12-18",
                                          "since": date(2025, 4, 1)}, {"unit": "Mottagning"}):
        rep = R.build_report(app, "chef", **kwargs)
        expected = _walk(rep)
        assert json.loads(R.to_json(rep)) == rep
        rows = list(csv.DictReader(io.StringIO(R.to_csv(rep))))
        from_csv = {R.cell_key(r): _as_number(r["count"]) for r in rows
                    if r["section"] != "too_few"}
        assert from_csv == expected
        page = _Cells()
        page.feed(R.to_html(rep))
        assert {k: _as_number(v) for k, v in page.found.items()} == expected
        assert page.links == []  # self-contained: nothing fetched from anywhere
        assert "@page { size: A4" in R.to_html(rep)
        console = Console(record=True, width=140)
        console.print(R.render_text(rep))
        text = console.export_text()
        if not rep["too_few"]:
            total = rep["participation"]["total"]
            assert f"{total['invited']}" in text
            share = total["share_percent"]
            assert (f"{share} %" if share is not None else "–") in text
        else:
            assert "För få barn" in text


def test_a_report_never_holds_free_text_or_case_references(app):
    _hand_made(app)
    seed(app, children=150, seed=4)
    with app.db.Session() as s:
        refs = list(s.scalars(select(Child.case_ref)))
        birth_years = {str(y) for y in s.scalars(select(Child.birth_year))}
    secrets = FREE_TEXTS + ["Pappa skriker när han är arg"]
    for kwargs in ({}, {"unit": "Nord"}, {"unit": "Syd", "questionnaire": "followup-6-11"}):
        rep = R.build_report(app, "chef", **kwargs)
        console = Console(record=True, width=200)
        console.print(R.render_text(rep))
        for out in (R.to_json(rep), R.to_csv(rep), R.to_html(rep), console.export_text()):
            for ref in refs:
                assert ref not in out
            for text in secrets:
                assert text not in out
        assert not birth_years & set(json.dumps(rep).replace('"', " ").split())


# --------------------------------------------------------------------------- the attacker


def _quarter(dt: datetime) -> tuple[int, int]:
    local = dt.replace(tzinfo=dt.tzinfo or timezone.utc).astimezone(ZoneInfo("Europe/Stockholm"))
    return local.year, (local.month - 1) // 3 + 1


def _truth(app) -> dict[tuple, set]:
    """The attacker knows who was invited where and when: (unit, quarter, questionnaire) ->
    the children invited. (The test may read rows; the report may not.)"""
    out: dict[tuple, set] = defaultdict(set)
    with app.db.Session() as s:
        for child_id, unit, created, qn in s.execute(
                select(Invitation.child_id, Child.unit, Invitation.created_at,
                       Invitation.questionnaire_id).join(Child)):
            out[(unit, _quarter(created), qn)].add(child_id)
    return out


def _every_filter(app, truth: dict[tuple, set]) -> list[tuple]:
    units = sorted({u for u, _, _ in truth})
    quarters = sorted({q for _, q, _ in truth})
    ranges: list[tuple] = [(None, None)]
    for i, j in combinations(range(len(quarters) + 1), 2):
        ranges.append((quarters[i], quarters[j - 1]))
    qns = sorted(app.questionnaires)
    return [(u, r, q) for u in [None, *units] for r in ranges for q in [None, *qns]]


def _dates(rng: tuple) -> tuple[date | None, date | None]:
    """Dates inside the first and last quarter: the report widens them to whole quarters."""
    if rng[0] is None:
        return None, None
    (y1, q1), (y2, q2) = rng
    return date(y1, 3 * q1 - 1, 10), date(y2, 3 * q2 - 1, 20)


def _population(truth: dict[tuple, set], f: tuple) -> set[tuple]:
    unit, rng, qn = f
    out = set()
    for (u, q, n), children in truth.items():
        if (unit is None or u == unit) and (qn is None or n == qn) and \
                (rng[0] is None or rng[0] <= q <= rng[1]):
            out |= {(c, q, n) for c in children}
    return out


def _within(a: tuple, b: tuple) -> bool:
    """Filter b selects a part of what filter a selects."""
    (ua, ra, qa), (ub, rb, qb) = a, b
    return (ua is None or ua == ub) and (qa is None or qa == qb) and \
        (ra[0] is None or (rb[0] is not None and ra[0] <= rb[0] and rb[1] <= ra[1]))


COUNTS = ("invited", "started", "completed", "answered", "count")


def test_no_filter_combination_singles_out_a_child(app):
    """Every report the filters allow (each unit or none x each quarter range or none x each
    questionnaire or none, min_group 5), compared the way an attacker would."""
    seed(app, children=200, seed=7)
    truth = _truth(app)
    filters = _every_filter(app, truth)
    reports = {}
    for f in filters:
        since, until = _dates(f[1])
        reports[f] = R.build_report(app, "attacker", unit=f[0], since=since, until=until,
                                    questionnaire=f[2], min_group=MIN)
    published = {f: R.numbers(r) for f, r in reports.items()}
    assert sum(not r["too_few"] for r in reports.values()) > len(filters) // 3
    assert any(r["too_few"] for r in reports.values())

    # 1. No published count is 1 to min_group-1, and none can be worked out from the others:
    #    a row's levels (never started = invited - started, started but not completed =
    #    started - completed) are 0 or at least min_group too, and no column of a breakdown
    #    hides exactly one row's number while the total shows it.
    hidden_somewhere = 0
    for f, nums in published.items():
        for key, v in nums.items():
            if key.rsplit("|", 1)[1] in COUNTS and v is not None:
                assert not 0 < v < MIN, (f, key, v)
            hidden_somewhere += v is None
        p = reports[f]["participation"]
        if not p:
            continue
        for dim in ("total", *R.BREAKDOWNS):
            rows = [p["total"]] if dim == "total" else p[dim]
            for r in rows:
                if r["started"] is not None:
                    assert not 0 < r["invited"] - r["started"] < MIN, (f, dim, r)
                    if r["completed"] is not None:
                        assert not 0 < r["started"] - r["completed"] < MIN, (f, dim, r)
            for m in ("started", "completed"):
                if dim != "total" and p["total"][m] is not None:
                    assert sum(r[m] is None for r in rows) != 1, (f, dim, m)
    assert hidden_somewhere  # the data has small counts to hide

    # 2. A report inside another differs from it by whole blocks of at least min_group
    #    children: their totals invited are the same or at least min_group apart.
    key = "participation|total|Totalt||||invited"
    for a in filters:
        for b in filters:
            if a != b and _within(a, b) and published[a] and published[b]:
                assert not 0 < published[a][key] - published[b][key] < MIN, (a, b)

    # 3. Differencing: when two reports' filters differ by fewer than min_group children (one
    #    filter inside the other), every number they both show is the same, and a number only
    #    one of them shows is 0. Otherwise subtracting one from the other tells about those
    #    few children.
    populations = {f: _population(truth, f) for f in filters}
    checked = 0
    for a in filters:
        for b in filters:
            if a == b or not _within(a, b):
                continue
            apart = {c for c, _, _ in populations[a] - populations[b]}
            if not 0 < len(apart) < MIN:
                continue
            checked += 1
            na, nb = published[a], published[b]
            for key in na.keys() | nb.keys():
                if key in na and key in nb:
                    assert na[key] == nb[key], (a, b, key, na[key], nb[key], len(apart))
                elif key.rsplit("|", 1)[1] in COUNTS:
                    assert (na.get(key) or nb.get(key) or 0) == 0, (a, b, key)
    assert checked > 20  # the data has small groups for the attacker to try

    # 4. Every report is a sum of the same fixed pieces: a range of quarters shows the sum of
    #    its single quarters, and "all questionnaires" the sum of each one's, wherever the
    #    whole and all its pieces show the number (the total and the units: the other
    #    breakdowns pool their small groups per report).
    def pieces(f: tuple) -> list[tuple]:
        unit, rng, qn = f
        if rng[0] is not None and rng[0] != rng[1]:
            return [(unit, (q, q), qn) for q in sorted({q for _, q, _ in truth})
                    if rng[0] <= q <= rng[1]]
        if qn is None:
            return [(unit, rng, q) for q in sorted(app.questionnaires)]
        return []

    for f, nums in published.items():
        parts = pieces(f)
        if not parts:
            continue
        summed: dict[str, int | None] = defaultdict(int)
        for p in parts:
            for key, v in published[p].items():
                if key.startswith(("participation|total|", "participation|unit|")) and \
                        key.endswith(("|invited", "|started", "|completed")):
                    before = summed[key]
                    summed[key] = None if before is None or v is None else before + v
        for key, v in nums.items():
            if key.startswith(("participation|total|", "participation|unit|")) and \
                    key.endswith(("|invited", "|started", "|completed")) and \
                    v is not None and summed.get(key, 0) is not None:
                assert summed.get(key, 0) == v, (f, key)

    # 5. A unit never has its own row, nor a report of its own, from fewer than min_group.
    for f, rep in reports.items():
        if not rep["too_few"]:
            assert len(populations[f]) >= MIN
            for row in rep["participation"]["unit"]:
                assert row["invited"] >= MIN


def test_odd_filters_are_refused_or_widened(app):
    _hand_made(app)
    with pytest.raises(R.ReportError):
        R.build_report(app, "chef", since=date(2025, 5, 1), until=date(2025, 2, 1))
    with pytest.raises(R.ReportError):
        R.build_report(app, "chef", min_group=1)
    rep = R.build_report(app, "chef", since=date(2025, 2, 14), until=date(2025, 2, 15))
    assert (rep["filters"]["since"], rep["filters"]["until"]) == ("2025-01-01", "2025-03-31")
    assert any("hela kvartal" in n for n in rep["notes"])
    assert R.numbers(rep) == R.numbers(R.build_report(app, "chef", since=date(2025, 1, 1),
                                                      until=date(2025, 3, 31)))
    # Quarters are local time: Q2 2025 starts at midnight in Stockholm (22:00 UTC).
    assert quarters((2025, 2), (2025, 2), "Europe/Stockholm").bounds == (
        datetime(2025, 3, 31, 22, tzinfo=timezone.utc),
        datetime(2025, 6, 30, 22, tzinfo=timezone.utc))


def test_seeding_500_children_is_fast_and_valid(app):
    import time

    began = time.perf_counter()
    seed(app, children=500, seed=1)
    assert time.perf_counter() - began < 30
    rep = R.build_report(app, "chef")
    assert rep["participation"]["total"]["invited"] > 500
    for q in rep["questions"]:
        counts = [v["count"] for v in q["values"]]
        if q["type"] != "multi_choice" and None not in counts:
            assert sum(counts) == q["answered"]
    # With 500 children the languages have rows of their own (per report, not per quarter).
    languages = {r["group"]: r["invited"] for r in rep["participation"]["language"]}
    assert {"svenska (sv)", "somaliska (so)", "ukrainska (uk)", "finska (fi)",
            "engelska (en)"} <= set(languages)
    assert sum(languages.values()) == rep["participation"]["total"]["invited"]
