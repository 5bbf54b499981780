"""Throughput and latency of whole SMS conversations through a real `tala serve`.

    python -m bench.pipeline [--children 200] [--seconds 30] [--py-spy]

1. A clean Redis db 13 and PostgreSQL `bench`; `tala db upgrade`; a local fake Twilio.
2. Invite enough children by SMS through the real service (`service.invite`, followup-12-18,
   age 14) and send the invitations to the fake Twilio, before the servers start.
3. `tala serve` (with its worker, as operators run it). C children (--children, default 200)
   talk at once: each texts "Hej" and then the whole followup-12-18 script of
   tests/test_sms.py, as signed POST /sms/twilio over real HTTP (one aiohttp client), waiting
   for each TwiML reply before its next answer, with no time to think: the server is
   saturated. A child that finishes is replaced by the next invited one.
4. In the same run, with the same client, concurrency and requests, the baseline: a minimal
   aiohttp app answering a fixed TwiML (bench/empty_server.py) that checks X-Twilio-Signature
   with twilio's RequestValidator as tala does. Other people's tests share this machine, so
   tala and the baseline are measured in alternating slices (E T E T E T E), and each side's
   slices are pooled: a change in the machine's load hits both alike. The headline ratio is
   tala / baseline. Then the empty app without the signature check, for information.
5. On the same `tala serve`, C children who each wait ~--think seconds before answering (a
   load below saturation), for the latency a child actually sees.

Figures: messages/s, latency p50/p95/p99 (ms, request sent to reply read, at the client),
CPU seconds per message of the server process (psutil, threads included), of the client and
of the Redis server, and the CPU the rest of the machine used meanwhile (other people).
Written to bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from sqlalchemy import text

from bench.common import (RESULTS, SMS_PATH, CpuMeter, Signer, Stack, code_version,
                          latency_ms, load, print_table, redis_pid, sms_params,
                          swedish_mobile, write_result)
from tests.test_sms import SCRIPT_12_18

SCRIPT = ["Hej", *SCRIPT_12_18]  # the first text starts the conversation
TARGET_RATIO = 0.40
TARGET_P99_MS = 50.0
SLICES = 3  # tala's measured time is cut in this many slices, the baseline's in one more


class Pool:
    """The children still to talk, as (number, next step). Invited numbers are finite; the
    baseline's are endless. A child stopped mid-conversation at the end of a slice is put
    back and goes on in the next slice."""

    def __init__(self, numbers: list[str] | None = None, block: int = 9):
        self.todo = deque((n, 0) for n in numbers) if numbers is not None else None
        self.block, self.n = block, 0

    def take(self) -> tuple[str, int] | None:
        if self.todo is None:
            self.n += 1
            return swedish_mobile(self.n, self.block), 0
        return self.todo.popleft() if self.todo else None

    def put_back(self, number: str, step: int) -> None:
        if self.todo is not None:
            self.todo.appendleft((number, step))


@dataclass
class Run:
    label: str
    window: float = 0.0
    messages: int = 0
    latencies: list[float] = field(default_factory=list)
    finishing: list[float] = field(default_factory=list)  # the last message's (SQL writes)
    cpu: dict = field(default_factory=dict)
    errors: Counter = field(default_factory=Counter)
    conversations_completed: int = 0
    ran_out: bool = False
    slices: list[float] = field(default_factory=list)  # messages/s of each slice

    @property
    def rate(self) -> float:
        return self.messages / self.window if self.window else 0.0

    def add(self, other: Run) -> Run:
        self.window += other.window
        self.messages += other.messages
        self.latencies += other.latencies
        self.finishing += other.finishing
        self.errors += other.errors
        self.conversations_completed += other.conversations_completed
        self.ran_out = self.ran_out or other.ran_out
        self.slices.append(round(other.rate, 1))
        for k, v in other.cpu.items():
            self.cpu[k] = round(self.cpu.get(k, 0) + v, 3)
        return self

    def figures(self) -> dict:
        per_msg = {f"{k}_cpu_ms_per_message": round(v / self.messages * 1000, 3)
                   for k, v in self.cpu.items()
                   if k in ("server", "client", "redis") and self.messages}
        busy = {f"{k}_cores_busy": round(self.cpu.get(k, 0) / self.window, 2)
                for k in ("server", "client", "redis", "others") if self.window}
        return {"messages_per_second": round(self.rate, 1), "messages": self.messages,
                "window_seconds": round(self.window, 2), "slices_messages_per_second":
                self.slices, "latency_ms": latency_ms(self.latencies),
                "latency_ms_finishing_message": latency_ms(self.finishing),
                "cpu_seconds": self.cpu, **per_msg, **busy,
                "server_cpu_seconds_per_message": round(self.cpu.get("server", 0) / self.messages,
                                                        6) if self.messages else None,
                "conversations_completed": self.conversations_completed,
                "ran_out_of_children": self.ran_out, "errors": dict(self.errors)}


async def drive(label: str, url: str, signer: Signer, pool: Pool, concurrency: int,
                seconds: float, warmup: float, meter: CpuMeter, check_text: bool,
                think: float = 0.0) -> Run:
    """`concurrency` children, each texting the script and waiting for every reply; with
    `think`, a child also waits 0.5-1.5 x `think` seconds before each next text (and they
    start spread over `think` seconds). Measured for `seconds` after `warmup`."""
    run = Run(label)
    done: list[tuple[float, float, bool]] = []  # (finished at, latency, last message?)
    rnd = random.Random(len(label))
    t0 = time.perf_counter()
    measure_from = t0 + warmup
    stop_at = [measure_from + seconds]
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def child(session: aiohttp.ClientSession) -> None:
        if think:
            await asyncio.sleep(rnd.uniform(0, think))
        while time.perf_counter() < stop_at[0]:
            taken = pool.take()
            if taken is None:
                if time.perf_counter() < stop_at[0]:
                    stop_at[0] = time.perf_counter()  # measured while all C were talking
                    run.ran_out = True
                return
            number, first = taken
            for i in range(first, len(SCRIPT)):
                if think and i:
                    await asyncio.sleep(rnd.uniform(0.5, 1.5) * think)
                if time.perf_counter() >= stop_at[0]:
                    pool.put_back(number, i)
                    return
                params = sms_params(number, SCRIPT[i], "SM" + uuid.uuid4().hex)
                headers = signer.headers(SMS_PATH, params)
                started = time.perf_counter()
                try:
                    async with session.post(url, data=params, headers=headers) as resp:
                        status, reply = resp.status, await resp.text()
                except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                    run.errors[type(e).__name__] += 1
                    break  # this child gives up; the next one starts
                finished = time.perf_counter()
                if status != 200 or "<Message>" not in reply:
                    run.errors[f"http {status}" if status != 200 else "no <Message>"] += 1
                    break
                if check_text and "förstod inte" in reply:
                    run.errors[f"not understood: {SCRIPT[i]!r}"] += 1
                last = i == len(SCRIPT) - 1
                done.append((finished, finished - started, last))
                if last and (not check_text or "116 111" in reply):
                    run.conversations_completed += 1

    async def clock() -> None:
        await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
        meter.start()
        while time.perf_counter() < stop_at[0]:
            await asyncio.sleep(0.02)
        run.cpu = meter.stop()

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(clock(), *(child(session) for _ in range(concurrency)))
    end = measure_from + run.cpu["wall"]
    window = [(f, lat, last) for f, lat, last in done if measure_from <= f <= end]
    run.window = end - measure_from
    run.messages = len(window)
    run.latencies = [lat for _, lat, _ in window]
    run.finishing = [lat for _, lat, last in window if last]
    return run


def invite(stack: Stack, count: int) -> tuple[list[str], float]:
    """Invite `count` children by SMS through the real service and send the invitations."""
    app = stack.app()
    numbers = [swedish_mobile(i) for i in range(count)]
    started = time.perf_counter()

    def one(i: int) -> None:
        app.service.invite(f"B-{i}", 14, channel="sms", contact=numbers[i], actor="bench",
                           questionnaire_id="followup-12-18", unit="Bench")

    with ThreadPoolExecutor(4) as ex:
        list(ex.map(one, range(count)))
    while app.service.send_queued("sms", block_ms=0):
        pass
    sent = sum(1 for m in stack.fake.messages if m["sid"])
    if sent != count:
        raise RuntimeError(f"{sent} of {count} invitations reached the fake Twilio")
    return numbers, time.perf_counter() - started


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen | None:
    exe = Path(sys.executable).with_name("py-spy")
    if not exe.exists():
        print("  (py-spy is not installed in this venv: pip install py-spy)")
        return None
    return subprocess.Popen([str(exe), "record", "--pid", str(pid), "--duration",
                             str(int(seconds)), "--rate", "100", "--format", "raw",
                             "--output", str(out), "--nonblocking", "--threads", "--gil"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def main_async(a: argparse.Namespace) -> tuple[dict, dict]:
    code = code_version()
    paced_children = a.children if a.think > 0 else 0
    invited = a.invite or paced_children + a.children + int(a.seconds * 30)
    load_before = load()
    print(f"load before: {load_before['uptime']}")
    with Stack(sms_rate=1000) as stack, ExitStack() as servers:
        numbers, took = invite(stack, invited)
        print(f"invited {invited} children by SMS in {took:.1f} s")
        paced_numbers, numbers = numbers[:paced_children], numbers[paced_children:]
        signer = Signer(stack.token)
        rpid = redis_pid(stack.redis)
        tala = servers.enter_context(stack.serve())
        empty = servers.enter_context(stack.empty_server(check_signature=True))

        def meter(server_pid: int) -> CpuMeter:
            return CpuMeter(server=server_pid, client=os.getpid(), redis=rpid)

        pool, empty_pool = Pool(numbers), Pool()
        tala_run, empty_run = Run("tala"), Run("empty (signature checked)")
        tala_slice, empty_slice = a.seconds / SLICES, a.empty_seconds / (SLICES + 1)
        print(f"{a.children} children at once, no time to think: tala {a.seconds:g} s and "
              f"the empty app {a.empty_seconds:g} s, in alternating slices...")
        spy = py_spy(tala.pid, a.seconds + a.empty_seconds + SLICES * a.warmup + SLICES + 3,
                     RESULTS / "pipeline-serve.py-spy.txt") if a.py_spy else None
        for k in range(SLICES + 1):
            empty_run.add(await drive("empty", empty.url + SMS_PATH, signer, empty_pool,
                                      a.children, empty_slice, 1.0, meter(empty.pid), False))
            if k == SLICES:
                break
            tala_run.add(await drive("tala", tala.url + SMS_PATH, signer, pool, a.children,
                                     tala_slice, a.warmup, meter(tala.pid), True))
            print(f"  slice {k + 1}: tala {tala_run.slices[-1]} msg/s, empty "
                  f"{empty_run.slices[-1]} msg/s")
            if tala_run.ran_out:
                print("  the invited children ran out: use --invite for more")
                break
        if spy is not None:
            spy.wait(timeout=120)

        paced = None
        if paced_children:
            print(f"tala, paced: {paced_children} children, each waiting {a.think:g} s "
                  f"(0.5-1.5x) before each answer, for {a.paced_seconds:g} s...")
            paced = await drive("tala, paced", tala.url + SMS_PATH, signer, Pool(paced_numbers),
                                paced_children, a.paced_seconds, a.think + 2, meter(tala.pid),
                                True, think=a.think)
        servers.close()
        with stack.empty_server(check_signature=False) as bare:
            print(f"empty app without the signature check, {a.empty_seconds / 2:g} s...")
            nosig = await drive("empty (no signature check)", bare.url + SMS_PATH, signer,
                                Pool(), a.children, a.empty_seconds / 2, 1.0, meter(bare.pid),
                                False)
        app = stack.app()
        with app.db.engine.connect() as conn:
            sql = {t: conn.execute(text(f"select count(*) from {t}")).scalar()
                   for t in ("sessions", "answers", "alerts")}
    load_after = load()

    ratio = tala_run.rate / empty_run.rate if empty_run.rate else None
    p99 = tala_run.figures()["latency_ms"]["p99"]
    p99_paced = paced.figures()["latency_ms"]["p99"] if paced else None
    return {
        "concurrency": a.children, "invited": invited, "seconds": a.seconds,
        "warmup_seconds_per_slice": a.warmup, "questionnaire": "followup-12-18",
        "messages_per_conversation": len(SCRIPT),
        "server": "tala serve (its worker on; 8 handler threads), PostgreSQL `bench`, "
                  "Redis db 13",
        "client": "one aiohttp client process; each child waits for its reply",
        "baseline": "bench/empty_server.py: aiohttp, form parsed, X-Twilio-Signature checked "
                    "with twilio's RequestValidator (as tala does), fixed TwiML; measured in "
                    "slices alternating with tala's",
        "tala": tala_run.figures(),
        "empty_signature_checked": empty_run.figures(),
        "ratio_tala_to_empty": round(ratio, 3) if ratio else None,
        "tala_paced": paced.figures() | {"think_seconds": a.think} if paced else None,
        "empty_no_signature_check": nosig.figures(),
        "ratio_tala_to_empty_no_signature": round(tala_run.rate / nosig.rate, 3)
        if nosig.rate else None,
        "sql_after": sql,
        "targets": {"ratio_min": TARGET_RATIO, "p99_ms_max": TARGET_P99_MS,
                    "ratio_met": bool(ratio and ratio >= TARGET_RATIO),
                    "p99_met": bool(p99 is not None and p99 < TARGET_P99_MS),
                    "p99_met_paced": bool(p99_paced is not None and p99_paced < TARGET_P99_MS)},
        "load_before": load_before, "load_after": load_after,
    }, code


def summary(f: dict) -> None:
    rows = []
    for key, label in (("tala", "tala serve"), ("empty_signature_checked", "empty, sig checked"),
                       ("tala_paced", "tala serve, paced"),
                       ("empty_no_signature_check", "empty, no sig check")):
        r = f.get(key)
        if not r:
            continue
        lat = r["latency_ms"]
        rows.append((label, f"{r['messages_per_second']:7.1f} msg/s  p50 {lat['p50']} ms  "
                            f"p95 {lat['p95']} ms  p99 {lat['p99']} ms  server CPU "
                            f"{r.get('server_cpu_ms_per_message')} ms/msg  others' load "
                            f"{r.get('others_cores_busy')} cores  errors {r['errors'] or 0}"))
    t, ta = f["targets"], f["tala"]
    rows.append(("slices", f"tala {ta['slices_messages_per_second']}, empty "
                           f"{f['empty_signature_checked']['slices_messages_per_second']} msg/s"))
    rows.append(("tala / empty", f"{f['ratio_tala_to_empty']:.0%} (target >= {t['ratio_min']:.0%}"
                                 f": {'met' if t['ratio_met'] else 'MISSED'}); against the "
                                 f"empty app without signature check "
                                 f"{f['ratio_tala_to_empty_no_signature']:.0%}"))
    rows.append(("tala p99", f"{ta['latency_ms']['p99']} ms with {f['concurrency']} children "
                             f"answering at once (target < {t['p99_ms_max']:.0f} ms: "
                             f"{'met' if t['p99_met'] else 'MISSED'})"))
    if f.get("tala_paced"):
        tp = f["tala_paced"]
        rows.append(("tala p99, paced", f"{tp['latency_ms']['p99']} ms with {f['concurrency']} "
                                        f"children waiting ~{tp['think_seconds']:g} s between "
                                        f"answers ({'met' if t['p99_met_paced'] else 'MISSED'})"))
    fin = ta["latency_ms_finishing_message"]
    rows.append(("last message", f"p50 {fin['p50']} ms, p99 {fin['p99']} ms (n={fin['n']}; "
                                 "it writes the session to SQL)"))
    rows.append(("tala, CPU", f"server {ta['server_cores_busy']} cores busy; client "
                              f"{ta.get('client_cpu_ms_per_message')} ms/msg, redis "
                              f"{ta.get('redis_cpu_ms_per_message')} ms/msg"))
    rows.append(("conversations", f"{ta['conversations_completed']} completed in the window; "
                                  f"in SQL afterwards: sessions {f['sql_after']['sessions']}, "
                                  f"answers {f['sql_after']['answers']}, alerts "
                                  f"{f['sql_after']['alerts']}"))
    rows.append(("load", f"before: {f['load_before']['uptime']}; after: "
                         f"{f['load_after']['loadavg']}"))
    print("\nbench.pipeline")
    print_table(rows)


def main() -> None:
    p = argparse.ArgumentParser(description="Whole SMS conversations through tala serve.")
    p.add_argument("--children", type=int, default=200, help="conversations at once")
    p.add_argument("--seconds", type=float, default=30, help="tala's measured time, in total")
    p.add_argument("--warmup", type=float, default=2, help="before each of tala's slices")
    p.add_argument("--empty-seconds", type=float, default=12,
                   help="the baseline's measured time, in total")
    p.add_argument("--think", type=float, default=1.0,
                   help="then, on the same server, children who wait this long (0.5-1.5x) "
                   "before each answer: latency below saturation (0: skip)")
    p.add_argument("--paced-seconds", type=float, default=15)
    p.add_argument("--invite", type=int, default=0,
                   help="children invited (default: 2 x children + 30 per second)")
    p.add_argument("--py-spy", action="store_true",
                   help="profile tala serve with py-spy (only the thread holding the GIL, i.e. "
                   "where its CPU goes): collapsed stacks in "
                   "bench/results/pipeline-serve.py-spy.txt (flamegraph.pl or speedscope)")
    a = p.parse_args()
    figures, code = asyncio.run(main_async(a))
    summary(figures)
    print(f"\nwritten: {write_result('pipeline', figures, code)}")


if __name__ == "__main__":
    main()
