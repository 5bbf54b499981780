"""What the benchmarks share: a clean Redis database and PostgreSQL database, a local fake
Twilio, a real `tala serve` process (or any other server command) on a free port, signed
webhook requests, percentiles, CPU accounting and the JSON results.

Everything talks to 127.0.0.1 only. Redis database 13 is emptied and the PostgreSQL database
`bench` is dropped and created again at the start of every run (never `test`)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType

import psutil
import redis
import requests
from cryptography.fernet import Fernet
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
sys.path.insert(0, str(ROOT))  # tests.fakes.twilio_api, bot, ... when run from elsewhere

from tests.fakes.twilio_api import FakeTwilio  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/13"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "bench"
DATABASE_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
PUBLIC_URL = "https://tala.bench.invalid"  # what the fake "Twilio" signs; never reached
SMS_PATH = "/sms/twilio"
TWILIO_NUMBER = "+46700000000"


# ------------------------------------------------------------------------------ machine
def nproc() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "nproc": nproc(), "cpu": cpu,
            "memory_gib": round(psutil.virtual_memory().total / 2 ** 30, 1),
            "python": platform.python_version(), "implementation": platform.python_implementation()}


def load() -> dict:
    """The machine's load now (other people's test runs included), as `uptime` shows it."""
    one, five, fifteen = os.getloadavg()
    return {"loadavg": [round(one, 2), round(five, 2), round(fifteen, 2)],
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


# ------------------------------------------------------------------------------ figures
def percentile(values: list[float], p: float) -> float | None:
    """The p-th percentile (0-100), nearest-rank: a value that was actually measured."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_ms(seconds: list[float]) -> dict:
    ms = [s * 1000 for s in seconds]
    return {f"p{p}": _r(percentile(ms, p)) for p in (50, 95, 99)} | {
        "max": _r(max(ms) if ms else None), "mean": _r(sum(ms) / len(ms) if ms else None),
        "n": len(ms)}


def _r(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


def code_version() -> dict:
    """Which tala was measured: the commit, and the uncommitted changes on top of it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    diff = git("diff", "HEAD")
    return {"commit": git("rev-parse", "--short", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--porcelain").splitlines()
                         if not line[3:].startswith("bench/")],
            "diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None}


def write_result(name: str, figures: dict, code: dict | None = None) -> Path:
    """bench/results/NAME.json. `code` is `code_version()` taken when the server started (the
    work tree may change while a benchmark runs)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {"name": name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "machine": machine(), "code": code or code_version(), "figures": figures}
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


class CpuMeter:
    """CPU seconds (user + system, threads and children included) of a set of processes
    between `start()` and `stop()`."""

    def __init__(self, **pids: int | None):
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items() if pid}
        self.before: dict[str, float] = {}
        self.wall = 0.0

    @staticmethod
    def _cpu(p: psutil.Process) -> float:
        t = p.cpu_times()
        return t.user + t.system

    @staticmethod
    def _sys(p: psutil.Process) -> float:
        return p.cpu_times().system

    @staticmethod
    def _busy() -> float:
        """CPU seconds the whole machine spent busy (every process, other people's too)."""
        t = psutil.cpu_times()
        return sum(getattr(t, f) for f in ("user", "nice", "system", "irq", "softirq", "steal")
                   if hasattr(t, f))

    def start(self) -> CpuMeter:
        self.before = {n: self._cpu(p) for n, p in self.procs.items()}
        self.before["machine"] = self._busy()
        self.before_sys = {n: self._sys(p) for n, p in self.procs.items()}
        self.wall = time.perf_counter()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds per process (and of that, NAME_system in the kernel), `machine` (all
        busy CPU), `others` (the machine less the processes measured: other people's work)
        and `wall`."""
        wall = time.perf_counter() - self.wall
        used = {n: round(self._cpu(p) - self.before[n], 3) for n, p in self.procs.items()}
        kernel = {f"{n}_system": round(self._sys(p) - self.before_sys[n], 3)
                  for n, p in self.procs.items()}
        machine = self._busy() - self.before["machine"]
        return used | kernel | {"machine": round(machine, 3),
                                "others": round(max(0.0, machine - sum(used.values())), 3),
                                "wall": round(wall, 3)}


def redis_pid(r: redis.Redis) -> int | None:
    """The local Redis server's pid, to count its CPU too (None if it is not ours to see)."""
    try:
        pid = int(r.info("server")["process_id"])
        psutil.Process(pid).cpu_times()
        return pid
    except (redis.RedisError, psutil.Error, KeyError, ValueError):
        return None


# ------------------------------------------------------------------------------ Redis memory
def key_shape(key: bytes) -> str:
    """A key with its session id, hash or message id replaced: what kind of key it is."""
    k = key.decode(errors="replace")
    k = re.sub(r"\{[0-9a-f]{32}\}", "{SID}", k)
    k = re.sub(r"[0-9a-f]{32,}", "HASH", k)
    return re.sub(r"SM\w+", "MSGID", k)


def memory_of_db(r) -> dict:
    """MEMORY USAGE (exact: SAMPLES 0) of every key in this database, by kind of key."""
    sizes: Counter = Counter()
    counts: Counter = Counter()
    batch: list[bytes] = []

    def flush() -> None:
        pipe = r.pipeline(transaction=False)
        for k in batch:
            pipe.memory_usage(k, samples=0)
        for k, size in zip(batch, pipe.execute(), strict=True):
            shape = key_shape(k)
            sizes[shape] += size or 0
            counts[shape] += 1
        batch.clear()

    for key in r.scan_iter(count=1000):
        batch.append(key)
        if len(batch) >= 1000:
            flush()
    if batch:
        flush()
    return {shape: {"keys": counts[shape], "bytes": sizes[shape]} for shape in sorted(sizes)}


# ------------------------------------------------------------------------------ signing
class Signer:
    """Signs a webhook the way Twilio does: HMAC-SHA1 over TALA_PUBLIC_URL + path + the sorted
    form fields, base64, in X-Twilio-Signature."""

    def __init__(self, token: str, public_url: str = PUBLIC_URL):
        self.validator = RequestValidator(token)
        self.public_url = public_url.rstrip("/")

    def headers(self, path: str, params: dict[str, str]) -> dict[str, str]:
        return {"X-Twilio-Signature":
                self.validator.compute_signature(self.public_url + path, params)}


def sms_params(number: str, body: str, message_sid: str) -> dict[str, str]:
    """The form Twilio posts for an inbound SMS (the fields tala reads, and a few more)."""
    return {"ToCountry": "SE", "SmsMessageSid": message_sid, "NumMedia": "0",
            "MessageSid": message_sid, "AccountSid": "AC" + "0" * 32, "From": number,
            "To": TWILIO_NUMBER, "Body": body, "NumSegments": "1", "ApiVersion": "2010-04-01"}


def swedish_mobile(i: int, block: int = 2) -> str:
    """A distinct valid Swedish mobile number for each i below 10 million (+46 70x xxx xx xx)."""
    return f"+467{block}{i:07d}"


# ------------------------------------------------------------------------------ stores
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_redis() -> redis.Redis:
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    return r


def reset_database() -> None:
    """Drop and create the `bench` database (ours only; `test` is never touched)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {PG_DB}")


def tala(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run a `tala` command (as `python -m admin_cli.main`) with `env`, from the project root."""
    done = subprocess.run([sys.executable, "-m", "admin_cli.main", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"tala {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


@dataclass
class Stack:
    """A clean Redis db 13 and PostgreSQL `bench` (schema upgraded with `tala db upgrade`), a
    fake Twilio, and the environment a `tala` process needs to use them.

        with Stack(sms_rate=1000) as stack:
            app = stack.app()                      # tala in this process (invites, checks)
            with stack.serve() as server: ...      # a real `tala serve` process
    """

    sms_rate: float = 1000.0
    env: dict = field(default_factory=dict)
    secret_key: str = ""
    fake: FakeTwilio | None = None
    redis: redis.Redis | None = None
    _tmp: tempfile.TemporaryDirectory | None = None
    _apps: list = field(default_factory=list)

    def __enter__(self) -> Stack:
        self._tmp = tempfile.TemporaryDirectory(prefix="tala-bench-")
        self.fake = FakeTwilio().start()
        self.redis = reset_redis()
        reset_database()
        self.secret_key = Fernet.generate_key().decode()
        keep_out = ("REDIS_URL", "DATABASE_URL", "TWILIO_EDGE", "TWILIO_REGION", "HTTP_PROXY",
                    "HTTPS_PROXY", "http_proxy", "https_proxy", "TELEGRAM_BOT_TOKEN",
                    "TELEGRAM_BOT_USERNAME")
        self.env = {k: v for k, v in os.environ.items() if k not in keep_out}
        self.env.update({
            "TALA_DATA_DIR": str(Path(self._tmp.name) / "data"),
            "TALA_SECRET_KEY": self.secret_key,
            "REDIS_URL": REDIS_URL, "DATABASE_URL": DATABASE_URL,
            "TALA_PUBLIC_URL": PUBLIC_URL,
            "TWILIO_ACCOUNT_SID": self.fake.account_sid,
            "TWILIO_AUTH_TOKEN": self.fake.auth_token,
            "TWILIO_FROM_NUMBER": TWILIO_NUMBER,
            "TWILIO_API_BASE_URL": self.fake.base_url,
            "TALA_SMS_RATE": str(self.sms_rate), "TALA_USER": "bench",
            "NO_PROXY": "127.0.0.1,localhost", "PYTHONUNBUFFERED": "1"})
        tala(self.env, "db", "upgrade")
        return self

    @property
    def token(self) -> str:
        return self.fake.auth_token

    @property
    def log_dir(self) -> Path:
        return Path(self._tmp.name)

    def app(self):
        """tala itself in this process, on the same Redis, SQL, key and fake Twilio."""
        from bot.app import create_app
        from bot.settings import Settings

        names = ("TALA_DATA_DIR", "TALA_SECRET_KEY", "REDIS_URL", "DATABASE_URL",
                 "TALA_PUBLIC_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN",
                 "TWILIO_FROM_NUMBER", "TWILIO_API_BASE_URL", "TALA_SMS_RATE", "TALA_USER")
        settings = Settings(_env_file=None, **{n: self.env[n] for n in names})
        app = create_app(settings, migrate=False)
        self._apps.append(app)
        return app

    def serve(self, *extra: str) -> Server:
        """A real `tala serve` (with its worker, as an operator runs it) on a free port."""
        port = free_port()
        return Server([sys.executable, "-m", "admin_cli.main", "serve", "--port", str(port),
                       *extra], port, self.env, self.log_dir / f"serve-{port}.log")

    def empty_server(self, check_signature: bool) -> Server:
        """The minimal aiohttp app (bench/empty_server.py) answering a fixed TwiML."""
        port = free_port()
        args = [sys.executable, "-m", "bench.empty_server", "--port", str(port),
                "--token", self.token, "--public-url", PUBLIC_URL]
        if not check_signature:
            args.append("--no-signature")
        return Server(args, port, self.env, self.log_dir / f"empty-{port}.log")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for app in self._apps:
            app.close()
        if self.fake is not None:
            self.fake.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


class Server:
    """A server subprocess on 127.0.0.1:`port`, ready once GET /healthz answers 200; stopped
    with SIGTERM (then SIGKILL if it will not go). Its output goes to `log`."""

    def __init__(self, cmd: list[str], port: int, env: dict, log: Path):
        self.cmd, self.port, self.env, self.log = cmd, port, env, log
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def __enter__(self) -> Server:
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{' '.join(self.cmd)} exited:\n{self.output()}")
            try:
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"{' '.join(self.cmd)} did not answer /healthz:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._out.close()


def print_table(rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
