"""What the safeguarding check costs per message: `python -m bench.safety`.

Every text a child writes goes through flows.safeguarding.SafetyLexicon.scan, so its time is
added to every message. Measured over a realistic mix: the answers children mostly send (a
number, "ja", "nej", "vet inte", a short sentence) and, one in four, a free-text sentence of
tests/safety_corpus/ (harm and harmless, every language, the evasions included). Two figures:
warm (the per-word cache filled, as in a running server) and cold (the cache emptied before
each message: every word looked up, typo search included). The lexicon is compiled once, at
load, and that is timed too. Prints mean, p50, p99 and max per message, in milliseconds, and
writes bench/results/safety.json. The budget is 0.1 ms per message (issue 15).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flows.model import safe_load  # noqa: E402
from flows.safeguarding import CORPUS_DIR, SafetyLexicon  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "safety.json"
BUDGET_MS = 0.1
EVERYDAY = ["4", "3", "5", "1", "ja", "nej", "Ja", "vet inte", "bra", "okej", "hoppa över",
            "tillbaka", "det är bra i skolan", "jag har många kompisar", "Jag tycker om att "
            "spela fotboll med mina kompisar efter skolan och på helgerna", "inte så bra",
            "mamma och jag bakade kakor igår", "yes", "no", "I don't know", "kyllä", "haa",
            "так", "نعم", "بله", "እወ", "😀", "min lärare är snäll men matten är svår"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


def corpus_texts() -> list[str]:
    out = []
    for name in ("dev.yaml", "heldout.yaml"):
        for cases in safe_load((CORPUS_DIR / name).read_text(encoding="utf-8")).values():
            out += [", ".join(str(x) for x in item[:-1]) for item in cases.get("harm") or []]
            out += [str(t) for t in cases.get("harmless") or []]
    return out


def mix(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    free = corpus_texts()
    return [rng.choice(free) if rng.random() < 0.25 else rng.choice(EVERYDAY) for _ in range(n)]


def measure(lex: SafetyLexicon, texts: list[str], cold: bool) -> dict:
    times = []
    gc.disable()
    try:
        for text in texts:
            if cold:
                lex._cache.clear()
            t0 = time.perf_counter_ns()
            lex.scan(text)
            times.append((time.perf_counter_ns() - t0) / 1e6)
    finally:
        gc.enable()
    return {"mean": round(sum(times) / len(times), 4), "p50": round(percentile(times, 50), 4),
            "p99": round(percentile(times, 99), 4), "max": round(max(times), 4),
            "n": len(times)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    lex = SafetyLexicon.load()
    load_ms = (time.perf_counter() - t0) * 1000
    texts = mix(args.messages, args.seed)
    measure(lex, texts[:2000], cold=False)  # warm up
    warm = measure(lex, texts, cold=False)
    cold = measure(lex, texts, cold=True)
    print(f"safeguarding check, {len(lex.phrases)} phrases, loaded and compiled in "
          f"{load_ms:.0f} ms; {args.messages} messages (1 in 4 free text from the corpus)")
    print(f"{'':<6}{'mean':>9}{'p50':>9}{'p99':>9}{'max':>9}   ms per message")
    for name, f in (("warm", warm), ("cold", cold)):
        print(f"{name:<6}{f['mean']:>9.4f}{f['p50']:>9.4f}{f['p99']:>9.4f}{f['max']:>9.4f}")
    ok = warm["mean"] < BUDGET_MS and warm["p99"] < BUDGET_MS
    print(f"budget {BUDGET_MS} ms per message (warm mean and p99): {'met' if ok else 'MISSED'}")
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"platform": platform.platform(), "nproc": os.cpu_count(),
                          "python": platform.python_version(),
                          "load_average": [round(x, 2) for x in os.getloadavg()]},
              "phrases": len(lex.phrases), "load_ms": round(load_ms, 1),
              "messages": args.messages, "seed": args.seed, "budget_ms": BUDGET_MS,
              "warm_ms": warm, "cold_ms": cold, "budget_met": ok}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(f"Written to {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
