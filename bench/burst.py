"""A school-wide survey: 10,000 pupils text the keyword within one minute.

    python -m bench.burst [--children 10000] [--seconds 60]

1. A clean Redis db 13 and PostgreSQL `bench`; `tala db upgrade`; a local fake Twilio.
2. An anonymous campaign made with `service.create_campaign` (questionnaire "school-survey",
   or "followup-12-18" where there is none), open today, and a real `tala serve`.
3. The keyword from N distinct numbers, spread evenly over --seconds, each a signed
   POST /sms/twilio over real HTTP (aiohttp; at most --max-in-flight at once, each given up
   after 15 s as Twilio does). If the server cannot keep up, requests start late: the spread
   actually achieved is reported.
4. Checks: every number got exactly one reply (one TwiML <Message>); one session each
   (`SCAN MATCH tala:{*}:state` = N); every number bound to its own session. Redis memory per
   live session: (INFO used_memory after - before) / N, which is for the whole Redis server
   (other people's tests use other databases of it at the same time), and, as a figure of
   db 13 alone, the sum of MEMORY USAGE over all its keys / N, with MEMORY USAGE of a few
   state and binding keys.

Written to bench/results/burst.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import text

from bench.common import (SMS_PATH, CpuMeter, Signer, Stack, code_version, latency_ms, load,
                          memory_of_db, percentile, print_table, redis_pid, sms_params,
                          swedish_mobile, write_result)
from storage.crypto import Crypto

KEYWORD = "SKOLA9B"
TARGET_BYTES_PER_SESSION = 2048
TWILIO_TIMEOUT = 15.0  # seconds Twilio waits for a webhook's answer


def used_memory(r) -> int:
    return int(r.info("memory")["used_memory"])


def keyspace(r) -> dict:
    """Keys per database of the whole Redis server: shows other people's work beside ours."""
    return {db: v["keys"] for db, v in r.info("keyspace").items()}


async def burst(url: str, signer: Signer, numbers: list[str], seconds: float,
                max_in_flight: int) -> dict:
    n = len(numbers)
    results: list[tuple[float, float, float, int, int, str]] = [None] * n  # type: ignore
    in_flight = asyncio.Semaphore(max_in_flight)
    connector = aiohttp.TCPConnector(limit=max_in_flight, limit_per_host=max_in_flight)
    timeout = aiohttp.ClientTimeout(total=TWILIO_TIMEOUT)
    t0 = time.perf_counter() + 0.5

    async def pupil(session: aiohttp.ClientSession, i: int) -> None:
        due = t0 + i * seconds / n
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        body = KEYWORD if i % 3 else KEYWORD.lower()  # typed either way
        params = sms_params(numbers[i], body, "SM" + uuid.uuid4().hex)
        headers = signer.headers(SMS_PATH, params)
        async with in_flight:
            started = time.perf_counter()
            try:
                async with session.post(url, data=params, headers=headers) as resp:
                    status, reply = resp.status, await resp.text()
                error = ""
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                status, reply, error = 0, "", type(e).__name__
            finished = time.perf_counter()
        results[i] = (due, started, finished, status, reply.count("<Message>"), error)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(pupil(session, i) for i in range(n)))

    starts = [r[1] for r in results]
    ends = [r[2] for r in results]
    late = [r[1] - r[0] for r in results]
    first = min(starts)
    return {
        "planned_spread_seconds": seconds,
        "achieved_send_spread_seconds": round(max(starts) - first, 2),
        "last_reply_after_seconds": round(max(ends) - first, 2),
        "offered_per_second": round(n / seconds, 1),
        "achieved_per_second": round(n / (max(ends) - first), 1),
        "started_late_ms": {"p50": round(percentile(late, 50) * 1000, 1),
                            "p99": round(percentile(late, 99) * 1000, 1),
                            "max": round(max(late) * 1000, 1)},
        "latency_ms": latency_ms([r[2] - r[1] for r in results if r[3] == 200]),
        "http_status": dict(Counter(r[3] for r in results)),
        "errors": dict(Counter(r[5] for r in results if r[5])),
        "messages_per_reply": dict(Counter(r[4] for r in results)),
        "exactly_one_message": sum(1 for r in results if r[3] == 200 and r[4] == 1),
        "first_send_wall": first,
    }


async def main_async(a: argparse.Namespace) -> tuple[dict, dict]:
    code = code_version()
    load_before = load()
    print(f"load before: {load_before['uptime']}")
    with Stack(sms_rate=1000) as stack:
        app = stack.app()
        qid = "school-survey" if "school-survey" in app.questionnaires else "followup-12-18"
        today = datetime.now(ZoneInfo(app.runtime.policy.timezone)).date()
        campaign = app.service.create_campaign(
            "bench-burst", qid, KEYWORD, today - timedelta(days=1), today + timedelta(days=14),
            unit="Bench", langs=["sv"], actor="bench")
        print(f"campaign {campaign.name}: keyword {KEYWORD}, questionnaire {qid}")
        r = stack.redis
        numbers = [swedish_mobile(i, block=3) for i in range(a.children)]
        with stack.serve() as server:
            time.sleep(1.0)  # the worker's first round done
            keys_before = r.dbsize()
            space_before = keyspace(r)
            mem_before = used_memory(r)
            meter = CpuMeter(server=server.pid, client=os.getpid(), redis=redis_pid(r)).start()
            print(f"{a.children} pupils text {KEYWORD} over {a.seconds:g} s...")
            sent = await burst(server.url + SMS_PATH, Signer(stack.token), numbers, a.seconds,
                               a.max_in_flight)
            cpu = meter.stop()
            mem_after = used_memory(r)
            space_after = keyspace(r)
            keys_after = r.dbsize()

            # One session each, nothing dropped, nothing duplicated.
            states = sum(1 for _ in r.scan_iter(match="tala:{*}:state", count=1000))
            crypto = Crypto(stack.secret_key)
            bound: list[str | None] = []
            for i in range(0, len(numbers), 1000):
                keys = [app.store.bind_key("sms", crypto.lookup_hash(x))
                        for x in numbers[i:i + 1000]]
                bound += [v.decode() if v else None for v in r.mget(keys)]
            sids = [s for s in bound if s]
            pipe = r.pipeline(transaction=False)
            for sid in sids:
                pipe.exists(app.store.state_key(sid))
            with_state = sum(pipe.execute())
            due = r.zcard(app.store.due_key)

            # Memory, three ways.
            by_kind = memory_of_db(r)
            sample = sids[:: max(1, len(sids) // 5)][:5]
            state_usage = [r.memory_usage(app.store.state_key(s), samples=0) for s in sample]
            state_bytes = [r.strlen(app.store.state_key(s)) for s in sample]
            bind_usage = [r.memory_usage(app.store.bind_key("sms", crypto.lookup_hash(x)),
                                         samples=0) for x in numbers[:5]]
            due_usage = r.memory_usage(app.store.due_key, samples=0) or 0
        with app.db.engine.connect() as conn:
            sql_sessions = conn.execute(text("select count(*) from sessions")).scalar()
    load_after = load()

    n = a.children
    db_bytes = sum(v["bytes"] for v in by_kind.values())
    per_session_info = (mem_after - mem_before) / n
    others_changed = {db: (space_before.get(db), space_after.get(db))
                      for db in set(space_before) | set(space_after)
                      if db != "db13" and space_before.get(db) != space_after.get(db)}
    sent.pop("first_send_wall")
    figures = {
        "children": n, "seconds": a.seconds, "max_in_flight": a.max_in_flight,
        "questionnaire": qid, "keyword": KEYWORD,
        "server": "tala serve (its worker on; 8 handler threads), PostgreSQL `bench`, "
                  "Redis db 13",
        "send": sent,
        "checks": {
            "replied_200": sent["http_status"].get(200, 0),
            "exactly_one_message": sent["exactly_one_message"],
            "state_keys": states,
            "numbers_bound": len(sids),
            "distinct_sessions_bound": len(set(sids)),
            "bound_sessions_with_state": with_state,
            "due_entries": due,
            "sql_sessions": sql_sessions,
            "all_ok": (sent["exactly_one_message"] == n and states == n and len(sids) == n
                       and len(set(sids)) == n and with_state == n),
        },
        "redis_memory": {
            "used_memory_before": mem_before, "used_memory_after": mem_after,
            "bytes_per_session_info_used_memory": round(per_session_info, 1),
            "db13_keys_before": keys_before, "db13_keys_after": keys_after,
            "db13_memory_usage_sum_bytes": db_bytes,
            "bytes_per_session_memory_usage_sum": round(db_bytes / n, 1),
            "by_kind_of_key": by_kind,
            "state_key_memory_usage_sample": state_usage,
            "state_value_bytes_sample": state_bytes,
            "bind_key_memory_usage_sample": bind_usage,
            "due_zset_bytes_per_session": round(due_usage / max(due, 1), 1),
            "other_databases_changed_meanwhile": others_changed,
            "target_bytes_per_session": TARGET_BYTES_PER_SESSION,
            "target_met_info": per_session_info <= TARGET_BYTES_PER_SESSION,
            "target_met_memory_usage_sum": db_bytes / n <= TARGET_BYTES_PER_SESSION,
        },
        "cpu_seconds": cpu,
        "server_cpu_ms_per_message": round(cpu["server"] / n * 1000, 3),
        "redis_cpu_ms_per_message": round(cpu.get("redis", 0) / n * 1000, 3),
        "others_cores_busy": round(cpu["others"] / cpu["wall"], 2),
        "load_before": load_before, "load_after": load_after,
    }
    return figures, code


def summary(f: dict) -> None:
    s, c, m = f["send"], f["checks"], f["redis_memory"]
    lat = s["latency_ms"]
    n = f["children"]
    rows = [
        ("sent", f"{n} keywords over {s['achieved_send_spread_seconds']} s (planned "
                 f"{s['planned_spread_seconds']:g} s, {s['offered_per_second']}/s); last reply "
                 f"after {s['last_reply_after_seconds']} s; started late p99 "
                 f"{s['started_late_ms']['p99']} ms"),
        ("latency", f"p50 {lat['p50']} ms  p95 {lat['p95']} ms  p99 {lat['p99']} ms  max "
                    f"{lat['max']} ms"),
        ("replies", f"HTTP {s['http_status']}, <Message> per reply {s['messages_per_reply']}, "
                    f"errors {s['errors'] or 0}"),
        ("exactly one reply", f"{c['exactly_one_message']} of {n}"),
        ("sessions", f"{c['state_keys']} state keys; {c['numbers_bound']} numbers bound to "
                     f"{c['distinct_sessions_bound']} distinct sessions "
                     f"({c['bound_sessions_with_state']} with state); due {c['due_entries']}"),
        ("checks", "all OK" if c["all_ok"] else "FAILED (see above)"),
        ("memory (INFO)", f"{m['bytes_per_session_info_used_memory']:.0f} B per session "
                          f"(used_memory {m['used_memory_before']} -> {m['used_memory_after']}; "
                          f"target <= {m['target_bytes_per_session']} B: "
                          f"{'met' if m['target_met_info'] else 'MISSED'})"),
        ("memory (db 13)", f"{m['bytes_per_session_memory_usage_sum']:.0f} B per session (sum of "
                           f"MEMORY USAGE over db 13's keys: "
                           f"{'met' if m['target_met_memory_usage_sum'] else 'MISSED'})"),
        ("  state key", f"MEMORY USAGE {m['state_key_memory_usage_sample']} B, value "
                        f"{m['state_value_bytes_sample']} B"),
        ("  bind key", f"MEMORY USAGE {m['bind_key_memory_usage_sample']} B"),
        ("  due entry", f"{m['due_zset_bytes_per_session']} B"),
        ("CPU", f"server {f['server_cpu_ms_per_message']} ms per keyword, redis "
                f"{f['redis_cpu_ms_per_message']} ms; others' load {f['others_cores_busy']} "
                "cores"),
        ("load", f"before: {f['load_before']['uptime']}; after: {f['load_after']['loadavg']}"),
    ]
    if m["other_databases_changed_meanwhile"]:
        rows.append(("note", f"other Redis databases changed meanwhile "
                             f"{m['other_databases_changed_meanwhile']}: INFO is approximate"))
    print("\nbench.burst")
    print_table(rows)
    print("  keys in db 13 by kind:")
    for shape, v in m["by_kind_of_key"].items():
        print(f"    {shape:<40} {v['keys']:>7} keys {v['bytes']:>10} B "
              f"({v['bytes'] / n:.0f} B per session)")


def main() -> None:
    p = argparse.ArgumentParser(description="10,000 pupils text a survey keyword in a minute.")
    p.add_argument("--children", type=int, default=10000)
    p.add_argument("--seconds", type=float, default=60, help="the spread of the first texts")
    p.add_argument("--max-in-flight", type=int, default=1000,
                   help="requests open at once at most (file descriptors)")
    a = p.parse_args()
    figures, code = asyncio.run(main_async(a))
    summary(figures)
    print(f"\nwritten: {write_result('burst', figures, code)}")


if __name__ == "__main__":
    main()
