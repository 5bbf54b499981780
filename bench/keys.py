"""What per-session data keys cost: `python -m bench.keys [--n 2000]`.

A session's key is made once, when something of the session is first encrypted (at the
invitation; for a survey pupil, at their first message), and read from the key store when a
process first needs it; after that it is in the process's memory. Timed here, each as a
figure per operation over --n sessions, alternating two slices so the spread shows:
- make: a new key wrapped and written (SQLite keys.db with synchronous=FULL, and PostgreSQL
  `bench` when it answers at 127.0.0.1:5432);
- read: a key not in memory read and unwrapped (a process's first message of a session);
- hit: a key in memory (every later message);
- seal: a session's state (2 KiB) encrypted with its key, against the installation key.
Written to bench/results/keys.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from cryptography.fernet import Fernet

from bench.common import DATABASE_URL as PG
from bench.common import print_table, reset_database, write_result
from storage.crypto import Crypto
from storage.keys import KeyStore, keys_engine




def _per_op_ms(fn, n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - started) / n * 1000


def _store(url: str | None, data: Path) -> KeyStore | None:
    try:
        if url:
            reset_database()  # the `bench` database, made anew
        return KeyStore(keys_engine(url, data), Fernet(Fernet.generate_key()))
    except Exception as e:  # noqa: BLE001 - PostgreSQL away: that row is left out
        print(f"{url}: not measured ({type(e).__name__})")
        return None


def measure(store: KeyStore, n: int, tag: str) -> dict[str, float]:
    half = n // 2
    figures: dict[str, list[float]] = {"make": [], "read": [], "hit": []}
    for part in (0, 1):  # two slices each, alternating
        base = f"{tag}-{part}-"
        figures["make"].append(_per_op_ms(
            lambda i, b=base: store.get(b + str(i), create=True), half))
        store._cache.clear()
        figures["read"].append(_per_op_ms(lambda i, b=base: store.get(b + str(i)), half))
        figures["hit"].append(_per_op_ms(lambda i, b=base: store.get(b + str(i)), half))
    return {k: round(statistics.mean(v), 4) for k, v in figures.items()} | {
        f"{k}_spread": round(max(v) - min(v), 4) for k, v in figures.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="tala-bench-keys-"))
    results: dict[str, dict] = {}
    for name, url in (("sqlite keys.db", None), ("postgresql", PG)):
        store = _store(url, data)
        if store is not None:
            results[name] = measure(store, args.n, name.split()[0])
            store.engine.dispose()

    state = os.urandom(2048)
    kek = Crypto(Fernet.generate_key())
    store = KeyStore(keys_engine(None, data / "seal"), kek._fernet)
    kek._keys = store
    kek.seal(state, subject="s-1")  # the key made and in memory
    results["seal 2 KiB"] = {
        "installation key": round(_per_op_ms(lambda i: kek.seal(state), args.n), 4),
        "session key": round(_per_op_ms(lambda i: kek.seal(state, subject="s-1"), args.n), 4)}
    rows = []
    for name, f in results.items():
        rows.append((name, ", ".join(f"{k} {v} ms" for k, v in f.items())))
    print_table(rows)
    print(f"Written to {write_result('keys', results)}")


if __name__ == "__main__":
    main()
