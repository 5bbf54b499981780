"""How fast do short `tala` commands start? `python -m bench.cli_start [--runs 15]`.

Issue 12 ("Fast commands"): `tala --help` may take at most 3 times and `tala summary CASE` at
most 6 times the wall time of `python -c "import typer, rich"` (the cost of starting Python
with the CLI's own framework, which no tala command can avoid).

Prepares a data dir in a temporary directory (TALA_DATA_DIR, the embedded SQLite and Redis
defaults, REDIS_URL and DATABASE_URL left out) with one case, DEMO-1, whose one session is
finished: `tala demo` with a whole followup-6-11 conversation piped in (as tests/test_cli.py
plays it), checked with `tala summary DEMO-1 --format json` (one completed session, nothing
open). Then times, as separate processes of this same interpreter, one warm-up run each and
`--runs` counted runs each of

- baseline: python -c "import typer, rich"
- help:     tala --help
- summary:  tala summary DEMO-1
- floor:    python -c "import typer, rich" plus the libraries `tala summary` cannot do without
            (Typer's option parsing, pydantic-settings for the settings, the SQLAlchemy ORM
            with its SQLite dialect, cryptography's Fernet), and none of tala's own code: what
            no change to tala can go under while it reads SQL through SQLAlchemy

in alternating slices (one run of each per round, the order turned by one every round), so a
machine that speeds up or slows down during the run moves all three alike. All three run from
compiled bytecode, as an installed tala (and any Python) does: the .pyc files go to a cache in
the temporary directory (PYTHONPYCACHEPREFIX; PYTHONDONTWRITEBYTECODE is dropped), written by
the preparation and the warm-up runs, so the work tree gets no __pycache__ folders. With
--as-environment the environment's own bytecode settings are kept instead. Prints min, median
and max wall time (and CPU time: user + system of the process and of what it waited for) of
each, then the ratios of the medians with the targets, MET or MISSED.

Writes bench/results/cli_start.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import ROOT, load, print_table, write_result
from tests.test_cli import FULL_6_11

CASE = "DEMO-1"
TARGETS = {"help": 3.0, "summary": 6.0}  # at most this many times the baseline's median
FLOOR = ("import typer, rich, typer._adapters, pydantic_settings, sqlalchemy.orm, "
         "sqlalchemy.dialects.sqlite, cryptography.fernet")
# A whole followup-6-11 conversation that ends the session (the CLI test's).
CONVERSATION = FULL_6_11


def tala_command() -> list[str]:
    """The `tala` console script beside this interpreter (what an operator types), or the
    module when it is not installed there."""
    script = Path(sys.executable).parent / "tala"
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "admin_cli.main"]


def environment(tmp: Path, bytecode_cache: bool) -> dict[str, str]:
    keep_out = ("REDIS_URL", "DATABASE_URL", "TALA_SECRET_KEY", "TWILIO_ACCOUNT_SID",
                "TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_USERNAME")
    env = {k: v for k, v in os.environ.items() if k not in keep_out}
    env.update({"TALA_DATA_DIR": str(tmp / "data"), "TALA_USER": "bench"})
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def prepare(tala: list[str], env: dict[str, str], cwd: Path) -> dict:
    """DEMO-1 with one finished session; what `tala summary --format json` says of it."""
    demo = subprocess.run([*tala, "demo"], input=CONVERSATION, capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)
    if demo.returncode != 0:
        raise RuntimeError(f"tala demo failed:\n{demo.stdout}\n{demo.stderr}")
    shown = subprocess.run([*tala, "summary", CASE, "--format", "json"], capture_output=True,
                           text=True, env=env, cwd=cwd, timeout=300)
    if shown.returncode != 0:
        raise RuntimeError(f"tala summary failed:\n{shown.stdout}\n{shown.stderr}")
    data = json.loads(shown.stdout)
    statuses = [s["status"] for s in data["sessions"]]
    if statuses != ["completed"] or data["open_sessions"]:
        raise RuntimeError(f"{CASE} should have one completed session and nothing open; it has "
                           f"{statuses} and {len(data['open_sessions'])} open")
    return {"sessions": statuses, "open_sessions": len(data["open_sessions"])}


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run; the CPU of the children it waited for too."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd=cwd,
                          timeout=300)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}:\n"
                           f"{done.stdout.decode(errors='replace')}\n"
                           f"{done.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def spread(values: list[float]) -> dict:
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4),
            "max": round(max(values), 4), "n": len(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="counted runs of each command "
                        "(default 15)")
    parser.add_argument("--as-environment", action="store_true",
                        help="keep the environment's bytecode settings (PYTHONDONTWRITEBYTECODE, "
                        "PYTHONPYCACHEPREFIX) instead of a bytecode cache of its own")
    parser.add_argument("--no-write", action="store_true",
                        help="do not write bench/results/cli_start.json")
    args = parser.parse_args(argv)

    tala = tala_command()
    commands = {
        "baseline": [sys.executable, "-c", "import typer, rich"],
        "help": [*tala, "--help"],
        "summary": [*tala, "summary", CASE],
        "floor": [sys.executable, "-c", FLOOR],
    }
    shown = {"baseline": 'python -c "import typer, rich"', "help": "tala --help",
             "summary": f"tala summary {CASE}",
             "floor": "python -c (the libraries summary needs)"}
    tmp = Path(tempfile.mkdtemp(prefix="tala-bench-cli-"))
    try:
        env = environment(tmp, bytecode_cache=not args.as_environment)
        # Not the project root: a .env there (read by Settings) must not change what is timed.
        cwd = tmp
        print(f"Preparing {CASE} in {env['TALA_DATA_DIR']} ...", flush=True)
        case = prepare(tala, env, cwd)
        print(f"  {CASE}: sessions {case['sessions']}, {case['open_sessions']} open", flush=True)
        start_load = load()
        for cmd in commands.values():  # warm-up: the file cache, .pyc files
            run_once(cmd, env, cwd)
        wall: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        names = list(commands)
        print(f"Timing {args.runs} runs of each, in alternating slices ...", flush=True)
        for i in range(args.runs):
            turn = i % len(names)
            for name in names[turn:] + names[:turn]:
                w, c = run_once(commands[name], env, cwd)
                wall[name].append(w)
                cpu[name].append(c)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    bytecode = ("environment's own: PYTHONDONTWRITEBYTECODE="
                f"{os.environ.get('PYTHONDONTWRITEBYTECODE', '')!r}" if args.as_environment
                else "a cache of its own (PYTHONPYCACHEPREFIX)")
    figures: dict = {"commands": shown, "runs": args.runs, "bytecode": bytecode,
                     "python": sys.executable, "load_before": start_load,
                     "load_after": load(), "wall_s": {k: spread(v) for k, v in wall.items()},
                     "cpu_s": {k: spread(v) for k, v in cpu.items()}, "ratios": {}}
    print(f"\n  bytecode: {bytecode}; load {start_load['loadavg']} before, "
          f"{figures['load_after']['loadavg']} after")
    rows = []
    for name in names:
        w, c = figures["wall_s"][name], figures["cpu_s"][name]
        rows.append((shown[name], f"wall min {w['min']:.3f}  median {w['median']:.3f}  max "
                     f"{w['max']:.3f} s   cpu median {c['median']:.3f} s"))
    print_table(rows)
    print()
    base = figures["wall_s"]["baseline"]["median"]
    rows = []
    all_met = True
    for name, target in [*TARGETS.items(), ("floor", None)]:
        ratio = figures["wall_s"][name]["median"] / base
        met = target is None or ratio <= target
        all_met &= met
        # The same ratio round by round: a drifting machine moves both runs of a round alike.
        paired = statistics.median(w / b for w, b in zip(wall[name], wall["baseline"], strict=True))
        figures["ratios"][name] = {"median_over_median": round(ratio, 2),
                                   "median_of_pairs": round(paired, 2), "target": target,
                                   "met": met}
        verdict = ("no target: the least any summary command can take" if target is None
                   else f"target <= {target:g}x: {'MET' if met else 'MISSED'}")
        rows.append((f"{shown[name]} / baseline",
                     f"{ratio:.2f}x (round by round {paired:.2f}x), {verdict}"))
    print_table(rows)
    if not args.no_write:
        path = write_result("cli_start", figures)
        print(f"\nWrote {path.relative_to(ROOT)}")
    return 0 if all_met else 1


if __name__ == "__main__":
    sys.exit(main())
