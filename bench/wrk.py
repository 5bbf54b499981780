"""tala against the least a Twilio webhook can do, driven by wrk (a C load generator, not the
bottleneck), and the Redis memory a live session holds at its start, middle and end.

    python -m bench.wrk [--connections 50] [--slice-seconds 8] [--slices 3]   # ~3 min

Needs wrk (Debian's package `wrk`), the machine's Redis (db 13, emptied) and PostgreSQL
(database `bench`, dropped and made again), as the other benchmarks.

1. Memory: --memory-children children invited by SMS (followup-12-18) through the real
   service, their invitations sent; then each texts the whole script of tests/test_sms.py
   through a real `tala serve`, one message at a time. After the invitation, the first text,
   the middle one, the last but one and the last, the sum of MEMORY USAGE (SAMPLES 0) of every
   key in db 13, less what was there before anyone was invited, divided by the children: what
   a live session costs, its queue job, bindings, seen-sets and stream entries included.
2. Throughput: every request pre-signed (X-Twilio-Signature over the public URL and the form,
   as Twilio signs) and written to one file per wrk thread; wrk replays them with one
   connection per thread, so each child's texts go in order, each after the reply to the one
   before. The baseline is bench/empty_server.py (aiohttp, form parsed, signature checked,
   fixed TwiML) fed the same kind of requests. Slices alternate E T E T ... E; each tala
   slice's ratio is taken against the mean of the empty slices beside it, and the median and
   spread of those ratios are printed. Server CPU per message from psutil.
3. Latency: 200 children (--paced-children) each pausing 0.5-1.5 s before every text, on the
   same `tala serve`, for --paced-seconds: p50/p99 as wrk measured them.

Written to bench/results/wrk.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

import psutil
import requests

from bench.common import (SMS_PATH, CpuMeter, Signer, Stack, code_version, load, memory_of_db,
                          print_table, redis_pid, sms_params, swedish_mobile, write_result)
from tests.test_sms import SCRIPT_12_18

SCRIPT = ["Hej", *SCRIPT_12_18]
LUA = Path(__file__).resolve().parent / "wrk_replay.lua"
TARGET_RATIO = 0.40
TARGET_P99_MS = 50.0
TARGET_BYTES = 2048


def invite(stack: Stack, app, first: int, count: int) -> list[str]:
    """Invite `count` children by SMS (numbers from `first`) and send their invitations."""
    numbers = [swedish_mobile(first + i) for i in range(count)]

    def one(i: int) -> None:
        app.service.invite(f"W-{first + i}", 14, channel="sms", contact=numbers[i],
                           actor="bench", questionnaire_id="followup-12-18", unit="Bench")

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(count)))
    while app.service.send_queued("sms", block_ms=0):
        pass
    return numbers


def request_line(signer: Signer, number: str, body: str) -> str:
    params = sms_params(number, body, "SM" + uuid.uuid4().hex)
    return f"{signer.headers(SMS_PATH, params)['X-Twilio-Signature']}\t{urlencode(params)}\n"


def write_requests(folder: Path, signer: Signer, children: list[list[str]]) -> None:
    """One file per wrk thread: its children's whole scripts, one after the other."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for t, numbers in enumerate(children):
        with (folder / f"{t}.req").open("w") as f:
            for number in numbers:
                f.writelines(request_line(signer, number, text) for text in SCRIPT)


def wrk(url: str, folder: Path, threads: int, seconds: float, meter: CpuMeter,
        pause_ms: tuple[int, int] | None = None) -> dict:
    cmd = ["wrk", "-t", str(threads), "-c", str(threads), "-d", f"{seconds:g}s",
           "--timeout", "10s", "-s", str(LUA), url + SMS_PATH, "--", str(folder)]
    if pause_ms:
        cmd += [str(pause_ms[0]), str(pause_ms[1])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    meter.procs["client"] = psutil.Process(proc.pid)
    meter.start()
    out = proc.stdout.read()
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # ended, its CPU times still there
    cpu = meter.stop()
    proc.wait()
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed:\n{out}")
    r = json.loads(lines[-1][7:])
    n = r["requests"]
    return {"requests": n, "per_second": round(n / (r["duration_us"] / 1e6), 1),
            "bad_replies": r["bad_replies"], "ran_out": r["ran_out"], "errors": r["errors"],
            "latency_ms": {k: round(v / 1000, 2) for k, v in r["latency_us"].items()},
            "cpu_seconds": cpu,
            "server_cpu_ms_per_message": round(cpu.get("server", 0) / n * 1000, 3) if n else None,
            "client_cores_busy": round(cpu.get("client", 0) / cpu["wall"], 2),
            "others_cores_busy": round(cpu.get("others", 0) / cpu["wall"], 2)}


def memory(stack: Stack, app, server, signer: Signer, count: int) -> dict:
    r = stack.redis
    total = lambda: sum(v["bytes"] for v in memory_of_db(r).values())  # noqa: E731
    base = total()
    numbers = invite(stack, app, 9_000_000 - count, count)
    points = {"invited, nothing answered": total()}
    marks = {1: "start (first text)", len(SCRIPT) // 2: "middle",
             len(SCRIPT) - 1: "end (last but one)", len(SCRIPT): "end (finished)"}
    by_kind: dict[str, dict] = {}
    http = requests.Session()
    for step, text in enumerate(SCRIPT, start=1):
        for number in numbers:
            params = sms_params(number, text, "SM" + uuid.uuid4().hex)
            resp = http.post(server.url + SMS_PATH, data=params,
                             headers=signer.headers(SMS_PATH, params), timeout=30)
            if resp.status_code != 200 or "<Message>" not in resp.text:
                raise RuntimeError(f"step {step}: {resp.status_code} {resp.text[:200]}")
        if step in marks:
            points[marks[step]] = total()
            by_kind[marks[step]] = memory_of_db(r)
    per = {k: round((v - base) / count, 1) for k, v in points.items()}
    kinds = {point: {k: round(v["bytes"] / count, 1) for k, v in
                     sorted(found.items(), key=lambda kv: -kv[1]["bytes"])[:6]}
             for point, found in by_kind.items()}
    live = {k: v for k, v in per.items() if k != "end (finished)"}
    return {"children": count, "bytes_per_session": per, "largest_kinds": kinds,
            "max_bytes_per_live_session": max(live.values()), "target_bytes": TARGET_BYTES}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=50, help="wrk threads = connections")
    p.add_argument("--slice-seconds", type=float, default=8)
    p.add_argument("--slices", type=int, default=3, help="tala's; the baseline has one more")
    p.add_argument("--rate-guess", type=float, default=700,
                   help="tala's most messages/s, for how many children to invite per slice")
    p.add_argument("--paced-children", type=int, default=200)
    p.add_argument("--paced-seconds", type=float, default=20)
    p.add_argument("--memory-children", type=int, default=100)
    a = p.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench.wrk needs wrk: apt-get install wrk")
    code, load_before = code_version(), load()
    c, per_conv = a.connections, len(SCRIPT)
    per_thread = math.ceil(a.rate_guess * a.slice_seconds / c / per_conv) + 1
    paced_each = math.ceil(a.paced_seconds / 0.5 / per_conv) + 1
    folder = Path(tempfile.mkdtemp(prefix="tala-wrk-"))
    with Stack(sms_rate=1000) as stack:
        app, signer = stack.app(), Signer(stack.token)
        rpid = redis_pid(stack.redis)
        with stack.serve() as tala, stack.empty_server(check_signature=True) as empty:
            print(f"memory: {a.memory_children} children through the whole script...")
            mem = memory(stack, app, tala, signer, a.memory_children)
            wanted = a.slices * c * per_thread + a.paced_children * paced_each
            print(f"inviting {wanted} children...")
            numbers = iter(invite(stack, app, 0, wanted))
            tala_slices, empty_slices = [], []
            for k in range(a.slices + 1):
                write_requests(folder / "e", signer, [
                    [swedish_mobile(k * 100_000 + t * 1000 + j, 9) for j in range(per_thread)]
                    for t in range(c)])
                empty_slices.append(wrk(empty.url, folder / "e", c, a.slice_seconds,
                                        CpuMeter(server=empty.pid, redis=rpid)))
                if k == a.slices:
                    break
                write_requests(folder / "t", signer, [
                    [next(numbers) for _ in range(per_thread)] for _ in range(c)])
                tala_slices.append(wrk(tala.url, folder / "t", c, a.slice_seconds,
                                       CpuMeter(server=tala.pid, redis=rpid)))
                print(f"  slice {k + 1}: empty {empty_slices[-1]['per_second']} req/s, tala "
                      f"{tala_slices[-1]['per_second']} msg/s")
            print(f"paced: {a.paced_children} children pausing 0.5-1.5 s, "
                  f"{a.paced_seconds:g} s...")
            write_requests(folder / "p", signer, [
                [next(numbers) for _ in range(paced_each)] for _ in range(a.paced_children)])
            paced = wrk(tala.url, folder / "p", a.paced_children, a.paced_seconds,
                        CpuMeter(server=tala.pid, redis=rpid), pause_ms=(500, 1500))
    shutil.rmtree(folder, ignore_errors=True)
    ratios = [t["per_second"] / ((empty_slices[i]["per_second"] +
                                  empty_slices[i + 1]["per_second"]) / 2)
              for i, t in enumerate(tala_slices)]
    ratio = statistics.median(ratios)
    cpu = [t["server_cpu_ms_per_message"] for t in tala_slices]
    figures = {
        "connections": c, "slice_seconds": a.slice_seconds, "slices": a.slices,
        "client": "wrk (C), one connection per thread, pre-signed requests (bench/wrk_replay.lua)",
        "baseline": "bench/empty_server.py: aiohttp, form parsed, X-Twilio-Signature checked, "
                    "fixed TwiML",
        "server": "tala serve (its worker on), PostgreSQL `bench`, Redis db 13",
        "tala_slices": tala_slices, "empty_slices": empty_slices,
        "ratio_median": round(ratio, 3), "ratios": [round(x, 3) for x in ratios],
        "tala_server_cpu_ms_per_message": cpu,
        "empty_server_cpu_ms_per_message": [e["server_cpu_ms_per_message"]
                                            for e in empty_slices],
        "paced": paced | {"children": a.paced_children, "pause_seconds": [0.5, 1.5]},
        "memory": mem, "load_before": load_before, "load_after": load(),
        "targets": {"ratio_min": TARGET_RATIO, "p99_ms_max": TARGET_P99_MS,
                    "bytes_max": TARGET_BYTES,
                    "ratio_met": ratio >= TARGET_RATIO,
                    "p99_met": paced["latency_ms"]["p99"] < TARGET_P99_MS,
                    "bytes_met": mem["max_bytes_per_live_session"] <= TARGET_BYTES}}
    summary(figures)
    print(f"\nwritten: {write_result('wrk', figures, code)}")


def summary(f: dict) -> None:
    t = f["targets"]
    ok = lambda met: "met" if met else "MISSED"  # noqa: E731
    tala = [s["per_second"] for s in f["tala_slices"]]
    empty = [s["per_second"] for s in f["empty_slices"]]
    lat = f["paced"]["latency_ms"]
    mem = f["memory"]["bytes_per_session"]
    slices = f["tala_slices"] + f["empty_slices"]
    problems = {k: sum(s[k] if k != "errors" else sum(s[k].values()) for s in
                       f["tala_slices"] + [f["paced"]]) for k in ("bad_replies", "ran_out",
                                                                 "errors")}
    rows = [
        ("tala, saturated", f"{statistics.median(tala)} msg/s (slices {tala}); server CPU "
                            f"{f['tala_server_cpu_ms_per_message']} ms/msg"),
        ("empty, sig checked", f"{statistics.median(empty)} req/s (slices {empty}); server CPU "
                               f"{f['empty_server_cpu_ms_per_message']} ms/req"),
        ("tala / empty", f"{f['ratio_median']:.1%} median ({min(f['ratios']):.1%}-"
                         f"{max(f['ratios']):.1%}); target >= {t['ratio_min']:.0%}: "
                         f"{ok(t['ratio_met'])}"),
        ("wrk itself", f"{max(s['client_cores_busy'] for s in slices)} cores busy at most "
                       "(not the bottleneck while below 1)"),
        ("paced p50 / p99", f"{lat['p50']} / {lat['p99']} ms, {f['paced']['per_second']} msg/s "
                            f"from {f['paced']['children']} children; target p99 < "
                            f"{t['p99_ms_max']:.0f} ms: {ok(t['p99_met'])}"),
        ("Redis per session", "; ".join(f"{k} {v:.0f} B" for k, v in mem.items()) +
         f"; target <= {t['bytes_max']} B while live: {ok(t['bytes_met'])}"),
        *((f"  at {point}", ", ".join(f"{k} {v:.0f} B" for k, v in kinds.items()))
          for point, kinds in f["memory"]["largest_kinds"].items()),
        ("problems", f"bad replies {problems['bad_replies']}, requests left over "
                     f"{problems['ran_out']}, socket errors {problems['errors']}"),
        ("load", f"before {f['load_before']['uptime']}; after {f['load_after']['loadavg']}"),
    ]
    print("\nbench.wrk")
    print_table(rows)


if __name__ == "__main__":
    main()
