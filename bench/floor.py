"""Where a message's CPU goes, part by part, beside what 40 % of the empty handler allows:

    python -m bench.floor [--children 40] [--rounds 5]     # about a minute

Issue 20 asks tala to answer at least 40 % as many webhooks a second as bench/empty_server.py
(aiohttp, the form parsed, the signature checked, fixed TwiML). On one core that is a budget
of CPU per message: 1 / (0.4 x the empty handler's requests a second). This script times, in
this one process on the machine's Redis (db 13) and PostgreSQL (`bench`) as bench/wrk.py
does, what tala does for a message besides what the empty handler does:

- whole: `service.receive` for every text of --children whole followup-12-18 conversations
  (tests/test_sms.py's script), each child's texts in turn: the contact lookup, the record
  opened, the engine's step, the record sealed and compared-and-set, the reply; the last text
  of each conversation also writes it to SQL. CPU time of the process (its threads too) per
  message, for the texts in the middle and for the one that ends a conversation apart.
- record: a middle-of-the-conversation record opened and sealed again (AES-GCM, deflate with
  its dictionary, JSON: storage/statecodec.py), which every message does once.
- engine: the engine's step for that message alone (flows/engine.py), state copy included.
- redis: two round trips of redis-py with the record (a GET and a SET of it, under a key of
  the bench's own): the client's side of the two a message takes, Redis's own CPU not counted.

Each figure is the median of --rounds rounds, with the spread. The empty handler's rate is
read from bench/results/wrk.json (run `python -m bench.wrk` first on the same machine); the
result goes to bench/results/floor.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from bench.common import Stack, code_version, load, print_table, write_result
from bench.wrk import SCRIPT, TARGET_RATIO, invite
from flows import engine

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(seconds: float, n: int) -> float:
    return round(seconds / n * 1000, 3)


def whole(app, numbers: list[str]) -> tuple[float, float]:
    """CPU ms per message through service.receive: (the texts before the last, the last)."""
    middle = end = 0.0
    for step, text in enumerate(SCRIPT, start=1):
        for number in numbers:
            t0 = time.process_time()
            app.service.receive("sms", number, text, "SM" + uuid.uuid4().hex)
            spent = time.process_time() - t0
            if step == len(SCRIPT):
                end += spent
            else:
                middle += spent
    app.service.run_due()  # whatever waited is written (and so counted) now
    return _ms(middle, len(numbers) * (len(SCRIPT) - 1)), _ms(end, len(numbers))


def parts(app, number: str, repeat: int = 2000) -> tuple[float, float, float]:
    """CPU ms of (opening and sealing the record, the engine's step, two Redis round trips)
    in the middle of a conversation."""
    for text in SCRIPT[: len(SCRIPT) // 2]:
        app.service.receive("sms", number, text, "SM" + uuid.uuid4().hex)
    store = app.store
    sid = app.service.lookup_contact("sms", number, None)[0]
    raw = store.r.get(store.state_key(sid))
    t0 = time.process_time()
    for _ in range(repeat):
        state, seen, reply, _ = store._open(raw, sid)
        store._encode(state, seen, reply)
    record = _ms(time.process_time() - t0, repeat)
    qn = app.service.questionnaires[state.questionnaire_id]
    inbound = engine.Inbound(SCRIPT[len(SCRIPT) // 2], datetime.now(timezone.utc))
    t0 = time.process_time()
    for _ in range(repeat):
        engine.step(app.runtime, qn, state, inbound)
    step = _ms(time.process_time() - t0, repeat)
    t0 = time.process_time()
    for _ in range(repeat):
        store.r.get(store.state_key(sid))
        store.r.set("bench:floor", raw)
    store.r.delete("bench:floor")
    return record, step, _ms(time.process_time() - t0, repeat)


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 3), "min": min(values),
            "max": max(values), "rounds": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--children", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    wrk = json.loads((RESULTS / "wrk.json").read_text())
    empty = [e["per_second"] for e in wrk["figures"]["empty_slices"]]
    rounds: dict[str, list[float]] = {"middle": [], "end": [], "record": [], "engine": [],
                                      "redis": []}
    with Stack() as stack:
        app = stack.app()
        whole(app, invite(stack, app, 6_999_000, 3))  # warm: lexicon, catalogs, connections
        for r in range(args.rounds):
            numbers = invite(stack, app, 7_000_000 + r * 1000, args.children + 1)
            middle, end = whole(app, numbers[:-1])
            for name, value in zip(rounds, (middle, end, *parts(app, numbers[-1])), strict=True):
                rounds[name].append(value)
    per = {name: spread(values) for name, values in rounds.items()}
    n = len(SCRIPT)
    mean = round(((n - 1) * per["middle"]["median"] + per["end"]["median"]) / n, 3)
    budget = round(1000 / (TARGET_RATIO * statistics.median(empty)), 3)
    empty_ms = round(statistics.median(wrk["figures"]["empty_server_cpu_ms_per_message"]), 3)
    figures = {"children": args.children, "rounds": args.rounds, "texts_per_conversation": n,
               "ms_per_message": per, "whole_mean_ms": mean,
               "empty_per_second_median": statistics.median(empty),
               "empty_cpu_ms_per_request": empty_ms, "budget_ms_at_40_percent": budget,
               "left_for_tala_ms": round(budget - empty_ms, 3),
               "wrk_date": wrk["date"], "load": load()}
    path = write_result("floor", figures, code_version())
    print_table([
        ("a text in the middle (service.receive)", f"{per['middle']['median']} ms "
         f"({per['middle']['min']}-{per['middle']['max']})"),
        ("the text that ends it (SQL written)", f"{per['end']['median']} ms "
         f"({per['end']['min']}-{per['end']['max']})"),
        (f"mean over a conversation of {n} texts", f"{mean} ms"),
        ("  of which: the record opened and sealed", f"{per['record']['median']} ms "
         f"({per['record']['min']}-{per['record']['max']})"),
        ("  of which: the engine's step", f"{per['engine']['median']} ms "
         f"({per['engine']['min']}-{per['engine']['max']})"),
        ("  of which: two Redis round trips (client side)", f"{per['redis']['median']} ms "
         f"({per['redis']['min']}-{per['redis']['max']})"),
        ("  of which: writing the ended one to SQL, a text's share",
         f"{round((per['end']['median'] - per['middle']['median']) / n, 3)} ms"),
        ("the empty handler (bench.wrk, its CPU a request)", f"{empty_ms} ms"),
        ("CPU a message at 40 % of the empty handler", f"{budget} ms"),
        ("  less the empty handler's own: left for tala", f"{round(budget - empty_ms, 3)} ms"),
    ])
    print(f"written to {path}")


if __name__ == "__main__":
    main()
