"""Reports that never mislead: exact counts, small ones hidden with their complements, shares
only for groups of at least the minimum, a row per language with enough children; and the case
phase that the indicators count by (migration 0008, invite --phase, the session's copy)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from rich.console import Console
from sqlalchemy import inspect, text

from admin_cli import ops
from admin_cli import report as R
from admin_cli.report.protect import hidden_cells
from admin_cli.seed import Answer, Builder
from storage.sql import make_engine, upgrade

MIN = 5


def _at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 10, tzinfo=timezone.utc)


def _text(rep: dict, render=R.render_text) -> str:
    console = Console(record=True, width=160)
    console.print(render(rep))
    return console.export_text()


def test_seven_children_never_look_like_one_hundred_percent(app):
    """Nine invited, seven answered: four said 4 of 5 and three said 2. Rounded, this showed
    "5 (100 %)"; now every count under 5 is hidden with its complement, and no share is made
    from a hidden count."""
    b = Builder(app)
    for i in range(9):
        b.child(f"P-{i}", unit="Nord", caseworker="Ek", birth_year=2016)
        if i < 7:
            b.invitation(f"P-{i}", "followup-6-11", _at(2025, 2, 3), "completed",
                         answers=[Answer("home_feel", 4 if i < 4 else 2)])
        else:
            b.invitation(f"P-{i}", "followup-6-11", _at(2025, 2, 3), "not_started")
    b.commit()
    rep = R.build_report(app, "chef")
    total = rep["participation"]["total"]
    # 2 never started: that count is hidden, and so is the completed 7 that would give it away.
    assert total == {"invited": 9, "started": None, "completed": None, "share_percent": None}
    feel = next(q for q in rep["questions"] if q["question_id"] == "home_feel")
    assert feel["answered"] == 7
    by_value = {v["value"]: (v["count"], v["percent"]) for v in feel["values"]}
    assert by_value[4] == (None, None) and by_value[2] == (None, None)
    assert by_value[1] == (0, 0)
    as_json = json.loads(R.to_json(rep))
    assert all(v["percent"] in (None, 0) for q in as_json["questions"] for v in q["values"])
    shown = _text(rep)
    assert "100 %" not in shown and "–" in shown
    assert "Ett antal från 1 till 4 visas aldrig" in shown


def test_complementary_suppression_leaves_no_count_to_work_out():
    cells = {"a": 3, "b": 20, "c": 9}
    hidden = hidden_cells(cells, [(list(cells), None)], MIN)
    assert hidden == {"a", "c"}  # a is small; c, the next smallest, goes with it
    # Two small ones that hold fewer than 5 together: one more is hidden.
    cells = {"a": 1, "b": 2, "c": 8, "d": 30}
    assert hidden_cells(cells, [(list(cells), None)], MIN) == {"a", "b", "c"}
    # A sum that is not shown protects nothing: the small one alone is enough.
    assert hidden_cells({"x": 2, "y": 9, "t": 11}, [(["x", "y"], "t")], MIN) == {"x", "y"}


def test_every_language_with_enough_children_has_a_row(app):
    """Three quarters with 3 Somali-speaking children each: no block has 5, the report has 9,
    so Somali has its own row; Finnish (2) and English (3) share the row of the rule."""
    b = Builder(app)
    n = 0
    for month, langs in [(2, ["so"] * 3 + ["sv"] * 6 + ["fi"] * 2),
                         (5, ["so"] * 3 + ["sv"] * 6 + ["en"] * 3), (8, ["so"] * 3 + ["sv"] * 6)]:
        for lang in langs:
            n += 1
            b.child(f"L-{n}", unit="Nord", caseworker="Ek", birth_year=2015, lang=lang)
            b.invitation(f"L-{n}", "followup-6-11", _at(2025, month, 4), "completed", lang=lang,
                         answers=[Answer("home_feel", 5)])
    b.commit()
    rep = R.build_report(app, "chef")
    rows = {r["group"]: r["invited"] for r in rep["participation"]["language"]}
    assert rows == {"somaliska (so)": 9, "svenska (sv)": 18, "Språk med färre än 5 barn": 5}
    assert sum(rows.values()) == rep["participation"]["total"]["invited"] == 32


def test_migration_0008_adds_the_phase_to_what_is_stored(tmp_path):
    eng = make_engine(None, tmp_path)
    upgrade(eng, revision="0007")
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO children (id, case_ref, preferred_lang, created_at) "
                          "VALUES (1, 'K-1', 'sv', :t)"), {"t": _at(2025, 1, 1)})
        conn.execute(text(
            "INSERT INTO invitations (id, child_id, session_id, questionnaire_id, channel, lang,"
            " status, created_at, expires_at) VALUES ('i1', 1, 's1', 'q', 'sms', 'sv', 'sent',"
            " :t, :t)"), {"t": _at(2025, 1, 1)})
    upgrade(eng)
    with eng.connect() as conn:
        for table in ("invitations", "sessions"):
            assert "phase" in {c["name"] for c in inspect(conn).get_columns(table)}
        assert conn.execute(text("SELECT phase FROM invitations")).all() == [(None,)]
    eng.dispose()


def test_invite_phase_is_checked_kept_and_copied_to_the_session(app):
    with pytest.raises(ops.OpError) as wrong:
        ops.run(app, "anna", "invite", {"case": "K-1", "age": 9, "phase": "utrednig"})
    assert wrong.value.code == 2 and wrong.value.status == 400
    assert "Skriv en av: forhandsbedomning, utredning, uppfoljning, placering" in \
        wrong.value.message
    assert app.db.child("K-1") is None  # nothing was invited
    made = ops.run(app, "anna", "invite", {"case": "K-1", "age": 9, "phase": "utredning"})
    sid = made["invitation"]["session_id"]
    assert made["invitation"]["phase"] == "utredning"
    assert app.db.invitation(sid).phase == "utredning"
    state = app.store.get(sid)
    state.started_at = state.finished_at = "2026-03-02T15:00:00+00:00"
    state.status = "completed"
    assert app.db.write_session(state, app.db.child("K-1").id)
    with app.db.engine.connect() as conn:
        assert conn.execute(text("SELECT phase FROM sessions")).scalar() == "utredning"


def _indicator_data(app) -> None:
    """Nord, 2025. January: 6 children invited in the investigation, 5 heard; 3 in the
    follow-up (too few to show). February: 10 in the preliminary assessment, 5 heard. Placed:
    10 children, 5 of them heard 4 times in the year (one of the others 2 times)."""
    b = Builder(app)
    n = 0

    def one(phase: str, at: datetime, heard: bool) -> str:
        nonlocal n
        n += 1
        b.child(f"I-{n}", unit="Nord", caseworker="Ek", birth_year=2014)
        b.invitation(f"I-{n}", "followup-12-18", at, "completed" if heard else "not_started",
                     phase=phase, answers=[Answer("home_feel", 6)] if heard else None)
        return f"I-{n}"

    for i in range(6):
        one("utredning", _at(2025, 1, 10), i < 5)
    for _i in range(3):
        one("uppfoljning", _at(2025, 1, 12), True)
    for i in range(10):
        one("forhandsbedomning", _at(2025, 2, 10), i < 5)
    for i in range(10):
        ref = one("placering", _at(2025, 1, 20), True)
        for month in (3, 6, 9) if i < 5 else (3,) if i == 5 else ():
            b.invitation(ref, "followup-12-18", _at(2025, month, 20), "completed",
                         phase="placering", answers=[Answer("home_feel", 6)])
    b.commit()


def test_indicators_per_month_and_phase_on_a_hand_made_set(app):
    _indicator_data(app)
    rep = R.build_indicators(app, "chef", since=date(2025, 1, 1), until=date(2025, 12, 31))
    months = {m["month"]: m["phases"] for m in rep["months"]}
    assert len(months) == 12
    assert months["2025-01"]["utredning"] == {"invited": 6, "heard": 5, "share_percent": 83}
    assert months["2025-01"]["uppfoljning"]["invited"] is None  # 3 children: too few
    assert months["2025-02"]["forhandsbedomning"] == {"invited": 10, "heard": 5,
                                                      "share_percent": 50}
    assert months["2025-03"]["utredning"] == {"invited": 0, "heard": None,
                                              "share_percent": None}
    placed = rep["placed"]
    assert (placed["from"], placed["to"]) == ("2025-01-01", "2025-12-31")
    assert (placed["invited"], placed["heard"], placed["share_percent"]) == (10, 5, 50)
    shown = _text(rep, R.indicators_text)
    assert "5 av 10 (50 %)" in shown and "5 av 6 (83 %)" in shown and "färre än 5" in shown
    assert "Placerade barn: av barnen med en inbjudan under placering" in shown
    rows = R.indicators_csv(rep).splitlines()
    assert "2025-02,forhandsbedomning,10,5,50" in rows and "2025-01,uppfoljning,,," in rows
    # One unit: the same; another: nothing to show.
    assert R.build_indicators(app, "chef", unit="Nord", since=date(2025, 1, 1),
                              until=date(2025, 12, 31))["placed"]["heard"] == 5
    other = R.build_indicators(app, "chef", unit="Syd", since=date(2025, 1, 1),
                               until=date(2025, 12, 31))
    assert other["placed"]["invited"] == 0 and other["months"][1]["phases"][
        "forhandsbedomning"]["invited"] == 0  # nobody in Syd: none, not "fewer than 5"


def test_the_cli_checks_the_phase_and_prints_the_indicators(tmp_path):
    """`tala invite --phase` with a typo says what to type instead (exit 2); `tala report
    --indicators` prints every month's three shares and the placed-children figure."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TALA_DATA_DIR": str(tmp_path), "TALA_USER": "anna"}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)

    def tala(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "admin_cli.main", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    bad = tala("invite", "K-9", "--age", "9", "--phase", "placerad")
    assert bad.returncode == 2 and "Skriv en av: forhandsbedomning" in bad.stderr
    seeded = subprocess.run([sys.executable, "-m", "admin_cli.seed", "--children", "500"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert seeded.returncode == 0, seeded.stderr
    shown = tala("report", "--indicators")
    assert shown.returncode == 0, shown.stderr
    rows = [line for line in shown.stdout.splitlines() if line.lstrip().startswith("2025-")]
    assert len(rows) == 12
    for row in rows:
        assert row.count(" %)") == 3, row  # three shares, every month
    assert "Placerade barn som har kommit till tals minst fyra gånger" in shown.stdout
    as_csv = tala("report", "--indicators", "--format", "csv").stdout.splitlines()
    assert as_csv[0] == "month,phase,invited,heard,share_percent" and len(as_csv) == 38


def test_a_bulk_csv_may_give_each_row_its_phase(sms_app):
    from admin_cli import bulk

    raw = ("case,age,to,phase\nB-1,12,+46701110001,uppfoljning\nB-2,12,+46701110002,\n"
           "B-3,12,+46701110003,uppföljning\n").encode()
    began = bulk.start(sms_app, raw, "class.csv", "anna")
    assert began.invited == 2
    assert [line for line, _ in began.failures] == [4]  # the typo, said by its line
    assert "Skriv en av: forhandsbedomning, utredning" in began.failures[0][1]
    phases = {sms_app.db.case_ref_of(i.child_id): i.phase
              for c in ("B-1", "B-2") for i in sms_app.db.invitations(sms_app.db.child(c).id)}
    assert phases == {"B-1": "uppfoljning", "B-2": None}
    assert sms_app.db.child("B-3") is None


def test_reports_and_indicators_in_english(app, monkeypatch):
    _indicator_data(app)
    monkeypatch.setenv("TALA_LANG", "en")
    rep = R.build_report(app, "chef")
    shown = _text(rep)
    assert "Per language" in shown and "Share who answered" in shown
    assert "All numbers are exact. A number from 1 to 4 is never shown." in shown
    assert "Andel" not in shown and "Totalt" not in shown
    ind = _text(R.build_indicators(app, "chef", since=date(2025, 1, 1),
                                   until=date(2025, 12, 31)), R.indicators_text)
    assert "Preliminary assessment" in ind and "5 of 10 (50 %)" in ind
    assert "Placed children who have been heard at least four times" in ind
    with pytest.raises(ops.OpError, match="There is no phase 'x'. Type one of"):
        ops.run(app, "anna", "invite", {"case": "K-2", "age": 9, "phase": "x"})


def test_the_staff_api_serves_the_indicators_and_a_manager_sees_their_unit(app):
    """GET /api/v1/reports/indicators: a manager of Syd gets Syd's (none), and may not ask
    for Nord's; the admin gets Nord's; a caseworker may not; a wrong format is a 400."""
    from datetime import timedelta

    import requests

    from admin_cli.api import add_staff_api
    from bot.server import build_web_app
    from tests.fakes.server import RunningServer

    _indicator_data(app)
    for name, role, unit in [("admin", "admin", None), ("mia", "manager", "Syd"),
                             ("anna", "caseworker", "Nord")]:
        app.db.add_user(name, role, unit, None)
    app.db.add_user(app.settings.user, "admin", None, None)
    tokens = {n: app.db.add_token(n, "personal", timedelta(days=1)).token
              for n in ("admin", "mia", "anna")}
    web_app = build_web_app(app, worker=False)
    add_staff_api(web_app, app)
    with RunningServer(web_app) as server:
        def get(who: str, **params) -> requests.Response:
            return requests.get(server.url + "/api/v1/reports/indicators", timeout=30,
                                params={"since": "2025-01-01", "until": "2025-12-31",
                                        **params},
                                headers={"Authorization": f"Bearer {tokens[who]}"})

        admin = get("admin", unit="Nord")
        assert admin.status_code == 200 and admin.json()["placed"]["heard"] == 5
        mine = get("mia")
        assert mine.status_code == 200 and mine.json()["filters"]["unit"] == "Syd"
        assert mine.json()["placed"]["invited"] == 0
        assert get("mia", unit="Nord").status_code == 403
        assert get("anna").status_code == 403
        wrong = get("admin", format="html")
        assert wrong.status_code == 400 and "format" in wrong.text
        csv_text = get("admin", format="csv")
        assert csv_text.headers["Content-Type"].startswith("text/csv")
        assert "2025-02,forhandsbedomning,10,5,50" in csv_text.text
