"""How fast are the managers' report and the caseworker's summary on a large PostgreSQL?

    python -m bench.reports [--answers 1000000] [--runs 5]

Makes (once) a data set in its own database `bench_reports` on the local PostgreSQL: made-up
children in six units, invited in the eight quarters of 2024-2025, with sessions and answers
made like admin_cli.seed makes them (its Builder and answer_path: valid answers, the branches a
real conversation takes, revised answers, encrypted free text), written in the order they would
have arrived (quarter by quarter, invitation by invitation) and sent with COPY, so a million
answers take well under a minute. A marker table (bench_meta) keeps the data for the next run,
which then only measures. VACUUM ANALYZE after loading stands in for autovacuum.

Then, several runs each (the median counts; warm cache; one warm-up run first):
- the group report, admin_cli.report.build_report: all units and quarters, and one unit and one
  quarter (target < 2 s each);
- a child's summary, admin_cli.summary.build, for the child with the most sessions (< 100 ms).

Each run records wall time, this process's CPU time and the CPU time of the PostgreSQL backends
serving it (from /proc: the server is local), so figures taken while others load the machine
can still be compared. Every SQL statement is caught with SQLAlchemy's before/after_cursor_execute
events; the heaviest are run again under EXPLAIN (ANALYZE, BUFFERS).

Phases, each against the same data:
- schema: exactly what the Alembic migrations make;
- index NAME: plus one candidate index (CANDIDATES), made with CREATE INDEX and dropped again
  after the phase (also after a crash, on the next run), so the database stays as the
  migrations make it; a candidate the migrations already make is measured in 'schema' only;
- (earlier versions also swapped admin_cli.report.queries' functions for reshaped copies at
  run time: how the answer query's estimates and the participation query's one pass were
  found; both are shipped now).

Results (figures, plans, machine, load) go to bench/results/reports.json.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import create_engine, event, text

import admin_cli.report as report_mod
from admin_cli import summary
from admin_cli.seed import CASEWORKERS, LANGUAGES, OUTCOMES, UNITS, Builder, _weighted, \
    answer_path
from bot.app import App, create_app
from bot.settings import Settings
from flows.model import pick_for_age

DB_NAME = "bench_reports"
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/12"  # the summary looks for live sessions; nothing written
RESULTS = Path(__file__).resolve().parent / "results" / "reports.json"
# Bump when the data set's shape changes: a marker with another version makes it again.
GENERATOR = 2
QUARTERS = [(2024, m) for m in (1, 4, 7, 10)] + [(2025, m) for m in (1, 4, 7, 10)]
TARGET_REPORT_MS = 2000.0
TARGET_SUMMARY_MS = 100.0
COPY_EVERY = 4000  # invitations built in memory before one COPY


@dataclass(frozen=True)
class Candidate:
    name: str
    table: str
    columns: str  # what goes between the parentheses of CREATE INDEX
    why: str
    include: str = ""
    where: str = ""

    @property
    def ddl(self) -> str:
        return (f"CREATE INDEX {self.name} ON {self.table} ({self.columns})"
                + (f" INCLUDE ({self.include})" if self.include else "")
                + (f" WHERE {self.where}" if self.where else ""))


# The indexes tried on top of the migrations' schema, each in a phase of its own.
CANDIDATES: list[Candidate] = [
    Candidate("ix_invitations_created_at", "invitations", "created_at",
              "build_report filters invitations by quarter (a created_at range) in all six of "
              "its queries and, with no --since/--until, first asks min/max(created_at): "
              "without an index each is a full scan of invitations."),
    Candidate("ix_answers_report", "answers", "session_id",
              "the report's answer query reads the current, not skipped answers of each "
              "child's latest session: with the values in the index it is an index-only scan "
              "instead of a heap lookup per answer.",
              include="question_id, value_num, value_option, value_options",
              where="current IS TRUE AND skipped IS FALSE"),
]


# --------------------------------------------------------------------------- set-up


def _secret_key() -> str:
    """A fixed Fernet key: the report's keyed rounding is the same on every run."""
    return base64.urlsafe_b64encode(hashlib.sha256(b"tala bench reports").digest()).decode()


def ensure_database(name: str) -> str:
    if name == "test":
        raise SystemExit("Never the database 'test': the tests drop its schema.")
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"),
                        {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return f"{SERVER}/{name}"


def make_app(url: str, data_dir: str) -> App:
    settings = Settings(TALA_DATA_DIR=data_dir, DATABASE_URL=url, REDIS_URL=REDIS_URL,
                        TALA_SECRET_KEY=_secret_key(), TALA_USER="bench")
    return create_app(settings, migrate=True)  # the schema exactly as the migrations make it


def _meta(app: App) -> dict[str, Any]:
    with app.db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_meta "
                          "(key varchar(64) PRIMARY KEY, value text NOT NULL)"))
        return {k: json.loads(v) for k, v in conn.execute(text("SELECT key, value FROM "
                                                               "bench_meta"))}


def _set_meta(app: App, key: str, value: Any) -> None:
    with app.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO bench_meta (key, value) VALUES (:k, :v) ON CONFLICT "
                          "(key) DO UPDATE SET value = excluded.value"),
                     {"k": key, "v": json.dumps(value)})


def _del_meta(app: App, key: str) -> None:
    with app.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM bench_meta WHERE key = :k"), {"k": key})


# --------------------------------------------------------------------------- the data set


class CopyBuilder(Builder):
    """admin_cli.seed.Builder whose rows go out with COPY (child ids given here) instead of one
    ORM transaction: the same rows, many times faster, in chunks of bounded memory."""

    def __init__(self, app: App, rng: random.Random):
        super().__init__(app, rng)
        self.ids: dict[str, int] = {}
        self.written = {"children": 0, "invitations": 0, "sessions": 0, "answers": 0}

    def commit(self) -> None:
        p = self._p
        for c in p.children:
            self.ids[c["case_ref"]] = len(self.ids) + 1
        if self.app.db.engine.dialect.name == "sqlite":
            self._insert_sqlite(p)
        else:
            self._copy(p)
        for k, rows in (("children", p.children), ("invitations", p.invitations),
                        ("sessions", p.sessions), ("answers", p.answers)):
            self.written[k] += len(rows)
        self._p = type(p)()

    def _insert_sqlite(self, p: Any) -> None:
        """The same rows with executemany (SQLite has no COPY), in one transaction."""
        ids = self.ids
        raw = self.app.db.engine.raw_connection()
        try:
            cur = raw.cursor()
            cur.executemany(
                "INSERT INTO children (id, case_ref, unit, caseworker, birth_year, "
                "preferred_lang, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(ids[c["case_ref"]], c["case_ref"], c["unit"], c["caseworker"],
                  c["birth_year"], c["preferred_lang"], _lite(c["created_at"]))
                 for c in p.children])
            cur.executemany(
                "INSERT INTO invitations (id, child_id, session_id, questionnaire_id, channel, "
                "lang, status, delivery_status, created_by, created_at, expires_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["id"], ids[r["case_ref"]], r["session_id"], r["questionnaire_id"],
                  r["channel"], r["lang"], r["status"], r["delivery_status"], r["created_by"],
                  _lite(r["created_at"]), _lite(r["expires_at"])) for r in p.invitations])
            cur.executemany(
                "INSERT INTO sessions (id, child_id, invitation_id, questionnaire_id, "
                "questionnaire_version, lang, channel, status, started_at, completed_at, "
                "written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["id"], ids[r["case_ref"]], r["invitation_id"], r["questionnaire_id"],
                  r["questionnaire_version"], r["lang"], r["channel"], r["status"],
                  _lite(r["started_at"]), _lite(r["completed_at"]), _lite(r["written_at"]))
                 for r in p.sessions])
            cur.executemany(
                "INSERT INTO answers (session_id, question_id, domain, seq, current, skipped, "
                "value_num, value_option, value_options, text_enc, lang, answered_at) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r["session_id"], r["question_id"], r["domain"], r["seq"], r["current"],
                  r["skipped"], r["value_num"], r["value_option"],
                  None if r["value_options"] is None else json.dumps(r["value_options"]),
                  r["text_enc"], r["lang"], _lite(r["answered_at"])) for r in p.answers])
            raw.commit()
        finally:
            raw.close()

    def _copy(self, p: Any) -> None:
        ids = self.ids
        raw = self.app.db.engine.raw_connection()
        try:
            cur = raw.cursor()
            with cur.copy("COPY children (id, case_ref, unit, caseworker, birth_year, "
                          "preferred_lang, created_at) FROM STDIN") as cp:
                for c in p.children:
                    cp.write_row((ids[c["case_ref"]], c["case_ref"], c["unit"], c["caseworker"],
                                  c["birth_year"], c["preferred_lang"], c["created_at"]))
            with cur.copy("COPY invitations (id, child_id, session_id, questionnaire_id, "
                          "channel, lang, status, delivery_status, created_by, created_at, "
                          "expires_at) FROM STDIN") as cp:
                for r in p.invitations:
                    cp.write_row((r["id"], ids[r["case_ref"]], r["session_id"],
                                  r["questionnaire_id"], r["channel"], r["lang"], r["status"],
                                  r["delivery_status"], r["created_by"], r["created_at"],
                                  r["expires_at"]))
            with cur.copy("COPY sessions (id, child_id, invitation_id, questionnaire_id, "
                          "questionnaire_version, lang, channel, status, started_at, "
                          "completed_at, written_at) FROM STDIN") as cp:
                for r in p.sessions:
                    cp.write_row((r["id"], ids[r["case_ref"]], r["invitation_id"],
                                  r["questionnaire_id"], r["questionnaire_version"], r["lang"],
                                  r["channel"], r["status"], r["started_at"],
                                  r["completed_at"], r["written_at"]))
            with cur.copy("COPY answers (session_id, question_id, domain, seq, current, "
                          "skipped, value_num, value_option, value_options, text_enc, lang, "
                          "answered_at) FROM STDIN") as cp:
                for r in p.answers:
                    opts = r["value_options"]
                    cp.write_row((r["session_id"], r["question_id"], r["domain"], r["seq"],
                                  r["current"], r["skipped"], r["value_num"], r["value_option"],
                                  None if opts is None else json.dumps(opts), r["text_enc"],
                                  r["lang"], r["answered_at"]))
            raw.commit()
        finally:
            raw.close()


def _lite(at: Any) -> Any:
    """A time as SQLAlchemy's DateTime writes it to SQLite (text, no zone: UTC)."""
    return at.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ") \
        if isinstance(at, datetime) else at


def generate(app: App, answers: int, seed: int) -> dict[str, Any]:
    """Children until their answers make `answers` rows. Each child is followed up quarter
    after quarter (most of them, from a first quarter in 2024-2025) with the questionnaire for
    their age, sometimes followed by the short feedback questionnaire; units, caseworkers,
    languages, outcomes and answers are drawn as admin_cli.seed draws them. Written in the
    order it would have happened: invitation by invitation, quarter after quarter."""
    began = time.perf_counter()
    lite = app.db.engine.dialect.name == "sqlite"
    with app.db.engine.begin() as conn:
        if lite:
            for t in ("answers", "sessions", "alerts", "invitations", "children", "audit_log"):
                conn.execute(text(f"DELETE FROM {t}"))
        else:
            conn.execute(text("TRUNCATE answers, sessions, alerts, invitations, children, "
                              "audit_log RESTART IDENTITY CASCADE"))
    rng = random.Random(seed)
    b = CopyBuilder(app, rng)
    staff: dict[str, list[str]] = {}
    names = iter(CASEWORKERS * 4)
    for unit, _ in UNITS:
        staff[unit] = [next(names) for _ in range(3 if unit != "Mottagning" else 2)]
    feedback = app.questionnaires["session-feedback"]
    events: list[list[tuple]] = [[] for _ in QUARTERS]
    planned, i = 0, 0

    def plan(k: int, *event: Any) -> None:
        nonlocal planned
        events[k].append(event)
        # Builder writes a revised answer twice: the earlier value (not current) and the last.
        planned += sum(2 if a.earlier is not None else 1 for a in event[5] or [])

    while planned < answers:
        i += 1
        unit = _weighted(rng, UNITS)
        age0 = rng.randint(6, 18)  # in 2024
        lang = _weighted(rng, LANGUAGES)
        ref = b.child(f"BENCH-{i:06d}", unit=unit, caseworker=rng.choice(staff[unit]),
                      birth_year=2024 - age0, lang=lang)
        wellbeing = rng.betavariate(4, 2)
        first = rng.randrange(len(QUARTERS))
        for k in range(first, len(QUARTERS)):
            if k > first and rng.random() < 0.2:
                break  # not followed up any more
            year, month = QUARTERS[k]
            qn = pick_for_age(app.questionnaires, min(18, age0 + year - 2024))
            at = datetime(year, month, 1, 7, tzinfo=timezone.utc) + \
                timedelta(days=rng.randint(0, 80), minutes=rng.randint(0, 600))
            w = min(1.0, max(0.0, wellbeing + rng.gauss(0, 0.1)))
            outcome = _weighted(rng, OUTCOMES)
            path = None
            if outcome in ("completed", "stopped", "expired"):
                path = answer_path(qn, rng, w, None if outcome == "completed"
                                   else rng.randint(1, 12))
            channel = rng.choice(["sms", "sms", "sms", "console"])
            plan(k, at, ref, qn.id, outcome, lang, path, channel)
            if outcome == "completed" and rng.random() < 0.15:
                plan(k, at + timedelta(days=3), ref, feedback.id, "completed", lang,
                     answer_path(feedback, rng, w), "sms")
    b.commit()  # the children
    n = 0
    for evs in events:
        evs.sort(key=lambda e: (e[0], e[1]))
        for at, ref, qid, outcome, lang, path, channel in evs:
            b.invitation(ref, qid, at, outcome, lang=lang, answers=path, channel=channel)
            n += 1
            if n % COPY_EVERY == 0:
                b.commit()
                print(f"  {b.written['answers']:>9,} answers ...", file=sys.stderr, flush=True)
    b.commit()
    with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if lite:
            conn.execute(text("ANALYZE"))
        else:
            conn.execute(text("SELECT setval('children_id_seq', (SELECT max(id) FROM "
                              "children))"))
            conn.execute(text("VACUUM (ANALYZE) children, invitations, sessions, answers"))
    return {**b.written, "seconds": round(time.perf_counter() - began, 1)}


# --------------------------------------------------------------------------- measuring


def _cpu_ms(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


class QueryLog:
    """Every statement the app sends, with its parameters and how long it took; and the
    PostgreSQL backends of the app's connections, to read their CPU time."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.on = False
        self.calls: list[dict[str, Any]] = []
        self.pids: set[int] = set()
        event.listen(engine, "connect", self._connect)
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)
        engine.dispose()  # every connection from now on is seen connecting

    def _connect(self, dbapi_conn: Any, record: Any) -> None:
        if self.engine.dialect.name != "postgresql":
            return  # SQLite runs in this process: its CPU is the Python CPU
        cur = dbapi_conn.cursor()
        cur.execute("SELECT pg_backend_pid()")
        self.pids.add(cur.fetchone()[0])
        cur.close()
        dbapi_conn.rollback()

    def server_cpu_ms(self) -> float:
        return sum(c for c in map(_cpu_ms, self.pids) if c is not None)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        conn.info.setdefault("bench_t0", []).append(time.perf_counter())

    def _after(self, conn, cursor, statement, parameters, context, executemany) -> None:
        t0 = conn.info["bench_t0"].pop()
        if self.on:
            self.calls.append({"statement": statement, "parameters": parameters,
                               "ms": (time.perf_counter() - t0) * 1000})


def _timed_runs(fn: Callable[[], Any], runs: int, log: QueryLog) -> dict[str, Any]:
    """Wall time of each run (median counts); CPU time (this process, and the PostgreSQL
    backends) as the mean over all runs, since /proc counts it in 10 ms ticks."""
    fn()  # warm-up
    wall = []
    s0, c0 = log.server_cpu_ms(), time.process_time()
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1000)
    client = (time.process_time() - c0) * 1000 / runs
    server = (log.server_cpu_ms() - s0) / runs
    return {"median_ms": round(statistics.median(wall), 1), "min_ms": round(min(wall), 1),
            "max_ms": round(max(wall), 1), "runs_ms": [round(t, 1) for t in wall],
            "client_cpu_mean_ms": round(client, 1), "server_cpu_mean_ms": round(server, 1)}


def _explain(app: App, call: dict[str, Any]) -> list[str]:
    with app.db.engine.connect() as conn:
        rows = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + call["statement"],
                                    call["parameters"])
        plan = [r[0] for r in rows]
        conn.rollback()
    return plan


def _short(statement: str) -> str:
    s = " ".join(statement.split())
    return s if len(s) <= 200 else s[:197] + "..."


def measure(app: App, log: QueryLog, scenarios: dict[str, tuple[Callable[[], Any], float]],
            runs: int, explain_top: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (fn, target) in scenarios.items():
        timing = _timed_runs(fn, runs, log)
        log.calls, log.on = [], True
        fn()
        log.on = False
        calls = log.calls
        heavy = sorted(range(len(calls)), key=lambda i: -calls[i]["ms"])[:explain_top]
        queries = [{"order": i, "ms": round(calls[i]["ms"], 1),
                    "statement": _short(calls[i]["statement"]),
                    "explain": _explain(app, calls[i]) if calls[i]["ms"] >= 5 and
                    app.db.engine.dialect.name == "postgresql" else None}
                   for i in heavy]
        met = timing["median_ms"] < target
        out[name] = {**timing, "target_ms": target, "met": met, "statements": len(calls),
                     "sql_ms_one_run": round(sum(c["ms"] for c in calls), 1),
                     "heaviest": queries}
        print(f"  {name:<28} median {timing['median_ms']:>7.1f} ms wall, "
              f"{timing['server_cpu_mean_ms']:>6.0f} ms PostgreSQL CPU, "
              f"{timing['client_cpu_mean_ms']:>6.0f} ms Python CPU  (runs "
              f"{', '.join(f'{t:.0f}' for t in timing['runs_ms'])}; target < {target:g} ms: "
              f"{'met' if met else 'MISSED'}; {len(calls)} statements)", flush=True)
        for q in queries[:2]:
            print(f"      {q['ms']:>7.1f} ms  #{q['order']} {q['statement'][:90]}", flush=True)
    return out


def _existing_indexes(app: App) -> set[str]:
    with app.db.engine.connect() as conn:
        return {r[0] for r in conn.execute(text(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'"))}


def _drop_ours(app: App, names: list[str]) -> None:
    with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for n in names:
            conn.execute(text(f"DROP INDEX IF EXISTS {n}"))
    _del_meta(app, "temp_indexes")


def _create(app: App, cands: list[Candidate]) -> dict[str, Any]:
    _set_meta(app, "temp_indexes", [c.name for c in cands])  # dropped again even after a crash
    made = {}
    with app.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for c in cands:
            t0 = time.perf_counter()
            conn.execute(text(c.ddl))
            size = conn.execute(text(f"SELECT pg_size_pretty(pg_relation_size('{c.name}'))"))
            made[c.name] = {"seconds": round(time.perf_counter() - t0, 2),
                            "size": size.scalar()}
        for table in sorted({c.table for c in cands}):
            conn.execute(text(f"ANALYZE {table}"))
    return made


def _compare(phases: dict[str, Any]) -> dict[str, Any]:
    """Each phase's medians beside the migrations' schema's: wall time and PostgreSQL CPU."""
    base = phases["schema"]["cases"]
    out: dict[str, Any] = {}
    for phase, ph in phases.items():
        out[phase] = {}
        for case_name, r in ph["cases"].items():
            b = base[case_name]
            out[phase][case_name] = {
                "median_ms": r["median_ms"], "met": r["met"],
                "wall_vs_schema_pct": round(100 * (r["median_ms"] / b["median_ms"] - 1))
                if b["median_ms"] else None,
                "server_cpu_ms": r["server_cpu_mean_ms"],
                "server_cpu_vs_schema_pct": round(
                    100 * (r["server_cpu_mean_ms"] / b["server_cpu_mean_ms"] - 1))
                if b["server_cpu_mean_ms"] else None}
    return out


# --------------------------------------------------------------------------- main


def _facts(app: App) -> dict[str, Any]:
    if app.db.engine.dialect.name == "sqlite":
        with app.db.engine.connect() as conn:
            counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                      for t in ("children", "invitations", "sessions", "answers")}
            version = conn.execute(text("SELECT sqlite_version()")).scalar()
        size = Path(app.db.engine.url.database).stat().st_size
        return {"postgresql": None, "sqlite": version, "settings": {}, "rows": counts,
                "table_sizes": {"answers": f"{size / 1e6:.0f} MB (the whole file)"},
                "indexes": []}
    with app.db.engine.connect() as conn:
        version = conn.execute(text("SHOW server_version")).scalar()
        settings = {k: conn.execute(text(f"SHOW {k}")).scalar()
                    for k in ("shared_buffers", "work_mem", "effective_cache_size",
                              "random_page_cost", "max_parallel_workers_per_gather", "jit")}
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                  for t in ("children", "invitations", "sessions", "answers")}
        sizes = {t: conn.execute(text(f"SELECT pg_size_pretty(pg_total_relation_size('{t}'))"))
                 .scalar() for t in ("children", "invitations", "sessions", "answers")}
        indexes = [r[0] for r in conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename IN "
            "('children', 'invitations', 'sessions', 'answers') ORDER BY tablename, indexname"))]
    return {"postgresql": version, "settings": settings, "rows": counts, "table_sizes": sizes,
            "indexes": indexes}


def _summary_child(app: App) -> tuple[str, int]:
    """The child with the most stored sessions (followed up quarter after quarter)."""
    with app.db.engine.connect() as conn:
        ref, n = conn.execute(text(
            "SELECT c.case_ref, count(*) AS n FROM sessions s JOIN children c ON "
            "c.id = s.child_id GROUP BY c.case_ref ORDER BY n DESC, c.case_ref LIMIT 1")).one()
    return ref, n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reports", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=1_000_000,
                        help="answer rows in the data set (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (median)")
    parser.add_argument("--explain", type=int, default=3,
                        help="heaviest statements per case to EXPLAIN (ANALYZE, BUFFERS)")
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--regenerate", action="store_true", help="make the data set again")
    parser.add_argument("--schema-only", action="store_true",
                        help="measure the migrations' schema only (no indexes, no reshaping)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--sqlite", type=Path, default=None, metavar="FILE",
                        help="SQLite instead (the embedded default), in FILE, kept for the next "
                        "run; the migrations' schema only (e.g. --sqlite /tmp/reports.db "
                        "--answers 100000)")
    args = parser.parse_args(argv)
    if args.sqlite:
        args.schema_only = True  # the candidates and reshapes are PostgreSQL's
        args.out = args.out or RESULTS.with_name("reports-sqlite.json")
        url = f"sqlite:///{args.sqlite.resolve()}"
    else:
        args.out = args.out or RESULTS
        url = ensure_database(args.database)
    with tempfile.TemporaryDirectory(prefix="tala-bench-") as data_dir:
        app = make_app(url, data_dir)
        try:
            return _run(app, args)
        finally:
            app.close()


def _run(app: App, args: argparse.Namespace) -> int:
    meta = _meta(app)
    if meta.get("temp_indexes"):  # left behind by a run that was cut off
        _drop_ours(app, meta["temp_indexes"])
    want = {"answers": args.answers, "seed": args.seed, "generator": GENERATOR}
    if meta.get("dataset", {}).get("params") == want and not args.regenerate:
        dataset = {**meta["dataset"], "reused": True}
        print(f"Data set made {dataset['made']} reused ({args.database}).", flush=True)
    else:
        print(f"Making the data set: {args.answers:,} answers in {args.database} ...",
              flush=True)
        _del_meta(app, "dataset")
        made = generate(app, args.answers, args.seed)
        dataset = {"params": want, "made": datetime.now(timezone.utc).isoformat(
            timespec="seconds"), "generated": made}
        _set_meta(app, "dataset", dataset)
        dataset = {**dataset, "reused": False}
        print(f"  made in {made['seconds']} s", flush=True)
    facts = _facts(app)
    rows = facts["rows"]
    print(f"  {rows['children']:,} children, {rows['invitations']:,} invitations, "
          f"{rows['sessions']:,} sessions, {rows['answers']:,} answers "
          f"({rows['answers'] / max(1, rows['sessions']):.1f} per session); answers table "
          f"{facts['table_sizes']['answers']}", flush=True)

    case_ref, n_sessions = _summary_child(app)
    unit, quarter = "Nord", (date(2025, 4, 1), date(2025, 6, 30))
    reports: dict[str, Callable[[], dict]] = {
        "report_all_units_quarters": lambda: report_mod.build_report(app, "bench"),
        "report_one_unit_one_quarter": lambda: report_mod.build_report(
            app, "bench", unit=unit, since=quarter[0], until=quarter[1]),
    }
    scenarios: dict[str, tuple[Callable[[], Any], float]] = {
        **{k: (fn, TARGET_REPORT_MS) for k, fn in reports.items()},
        "summary_one_child": (lambda: summary.build(app, case_ref, "bench"),
                              TARGET_SUMMARY_MS),
    }
    log = QueryLog(app.db.engine)
    load_before = os.getloadavg()
    print(f"Load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} on "
          f"{os.cpu_count()} CPUs; {args.runs} runs each, median.", flush=True)
    present = _existing_indexes(app) if not args.sqlite else set()
    by_name = {c.name: c for c in CANDIDATES if c.name not in present}
    # (phase, candidate indexes made for it)
    plan: list[tuple[str, list[str]]] = [("schema", [])]
    if not args.schema_only:
        plan += [(f"index {n}", [n]) for n in by_name]
    phases: dict[str, Any] = {}
    made: dict[str, Any] = {}
    for phase, indexes in plan:
        print(f"Phase '{phase}':", flush=True)
        try:
            if indexes:
                made.update(_create(app, [by_name[n] for n in indexes]))
            phases[phase] = {"indexes_added": indexes,
                             "cases": measure(app, log, scenarios, args.runs, args.explain)}
        finally:
            if indexes:
                _drop_ours(app, indexes)
    load_after = os.getloadavg()
    print("\nMedian wall time, ms (mean PostgreSQL CPU, ms):", flush=True)
    names = list(scenarios)
    print(f"  {'phase':<52}" + "".join(f"{n[:27]:>29}" for n in names))
    for phase, ph in phases.items():
        res = ph["cases"]
        print(f"  {phase:<52}" + "".join(
            f"{res[n]['median_ms']:>19.0f} ({res[n]['server_cpu_mean_ms']:>6.0f})"
            if n in res else f"{'-':>29}" for n in names))
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "nproc": os.cpu_count(),
                    "python": platform.python_version(), "postgresql": facts["postgresql"],
                    "sqlite": facts.get("sqlite"),
                    "load_average_before": [round(x, 2) for x in load_before],
                    "load_average_after": [round(x, 2) for x in load_after]},
        "postgresql_settings": facts["settings"],
        "database": str(args.sqlite) if args.sqlite else args.database,
        "dataset": {**dataset, "rows": rows, "table_sizes": facts["table_sizes"],
                    "indexes_from_migrations": facts["indexes"],
                    "quarters": [f"{y} kv{(m - 1) // 3 + 1}" for y, m in QUARTERS],
                    "units": [u for u, _ in UNITS]},
        "cases": {"report_one_unit_one_quarter": {"unit": unit, "since": str(quarter[0]),
                                                  "until": str(quarter[1])},
                  "summary_one_child": {"case_ref": case_ref, "sessions": n_sessions}},
        "runs": args.runs,
        "targets_ms": {"report": TARGET_REPORT_MS, "summary": TARGET_SUMMARY_MS},
        "comparison": _compare(phases),
        "phases": phases,
        "candidates": [{"name": c.name, "table": c.table, "columns": c.columns,
                        "include": c.include or None, "where": c.where or None,
                        "tried_because": c.why,
                        "ddl": c.ddl, "already_in_schema": c.name in present,
                        **({"made": made[c.name]} if c.name in made else {})}
                       for c in CANDIDATES],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str) + "\n")
    print(f"Written to {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
