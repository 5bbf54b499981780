"""tala scaled out, as design.md says it runs: several stateless `tala serve` processes behind
a load balancer, one Redis (the machine's server, then a Redis Cluster of three masters that
the test starts itself), one PostgreSQL. The load balancer is the test: every child's texts
alternate between the servers, many children talk at once, a retried Twilio webhook reaches
both servers at the same moment, and two texts of one child arrive at both at once.

Needs `redis-server` and `redis-cli`, the machine's Redis on 127.0.0.1:6379 (database 10, which
the test empties) and PostgreSQL on 127.0.0.1:5432 (user postgres; the test makes and empties
the database `scale`); skipped when they are not there.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import requests
from cryptography.fernet import Fernet
from twilio.request_validator import RequestValidator

from tests.conftest import T0, Talk, wait_written
from tests.fakes.twilio_api import FakeTwilio
from tests.test_bulk import _env as _base_env
from tests.test_sms import SCRIPT_12_18

pytestmark = pytest.mark.slow  # whole processes started and stopped

PUBLIC = "https://tala.example.org"
REDIS_URL = "redis://127.0.0.1:6379/10"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_DB = "scale"
DATABASE_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
SCHOOL_MORE = SCRIPT_12_18.index("Det är svårt att orka")  # a free-text question...
# ...followed by school_attend, a choice: "nästan varje dag" is a right answer to both, so two
# of them sent at once must give the same answers in whichever order they land.
BOTH_AT_ONCE = "nästan varje dag"
RACING_SCRIPT = SCRIPT_12_18[:SCHOOL_MORE] + [BOTH_AT_ONCE, BOTH_AT_ONCE] + \
    SCRIPT_12_18[SCHOOL_MORE + 2:]


def _machine_redis() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except redis.RedisError:
        return False


def _postgres() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_ADMIN, connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001 - any reason it is not there: skip
        return False


needs_servers = pytest.mark.skipif(
    not (shutil.which("redis-server") and shutil.which("redis-cli") and _machine_redis()
         and _postgres()),
    reason="needs redis-server, redis-cli, Redis on 127.0.0.1:6379 and PostgreSQL on :5432")


# --------------------------------------------------------------------------- the servers

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fresh_postgres() -> None:
    """Our own database `scale`, made if missing, with an empty schema."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DB,)).fetchone():
            conn.execute(f"CREATE DATABASE {PG_DB}")
    with psycopg.connect(DATABASE_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")


@contextmanager
def redis_cluster(tmp: Path, masters: int = 3):
    """A Redis Cluster of `masters` masters on free ports, in `tmp`; stopped at the end."""
    ports = []
    while len(ports) < masters:  # the cluster bus listens on port + 10000: keep both free
        p = _free_port()
        if p + 10000 < 65536 and p not in ports:
            ports.append(p)
    procs = [subprocess.Popen(
        ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
         "--cluster-config-file", f"nodes-{p}.conf", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in ports]
    try:
        for p in ports:
            _wait(lambda p=p: redis.Redis(port=p, socket_connect_timeout=1).ping(), 20,
                  f"redis-server on {p}")
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{p}" for p in ports], "--cluster-replicas", "0",
                        "--cluster-yes"], check=True, capture_output=True, timeout=60)
        for p in ports:
            _wait(lambda p=p: redis.Redis(port=p).execute_command("CLUSTER INFO")
                  .get("cluster_state") == "ok", 30, "cluster_state:ok")
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait(probe, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if probe():
                return
        except (redis.RedisError, requests.RequestException, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _env(fake: FakeTwilio, data_dir: Path, redis_url: str, key: str) -> dict:
    return {**_base_env(fake, data_dir), "REDIS_URL": redis_url, "DATABASE_URL": DATABASE_URL,
            "TALA_SECRET_KEY": key, "TALA_PUBLIC_URL": PUBLIC, "TALA_SMS_RATE": "50"}


def _tala(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "admin_cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout


@contextmanager
def serving(envs: list[tuple[dict, list[str]]], logs: Path):
    """`tala serve` processes, each with its own data dir (nothing on disk is shared), on free
    ports; yields their URLs and process ids. Stopped with SIGTERM: each must exit cleanly,
    having logged no traceback."""
    procs, urls, outs = [], [], []
    logs.mkdir(parents=True, exist_ok=True)
    try:
        for i, (env, extra) in enumerate(envs):
            port = _free_port()
            outs.append(logs / f"serve-{i}.log")
            with open(outs[-1], "wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "admin_cli.main", "serve", "--port", str(port),
                     *extra], env=env, stdout=log, stderr=subprocess.STDOUT))
            urls.append(f"http://127.0.0.1:{port}")
        for url, proc, out in zip(urls, procs, outs, strict=True):
            _wait(lambda url=url, proc=proc: proc.poll() is not None or requests.get(
                url + "/healthz", timeout=2).status_code == 200, 60, url + "/healthz")
            assert proc.poll() is None, out.read_text()
            assert requests.get(url + "/healthz", timeout=5).json() == {"redis": "ok",
                                                                       "sql": "ok"}
        yield urls, [proc.pid for proc in procs]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, out in zip(procs, outs, strict=True):
            assert proc.wait(timeout=60) == 0, out.read_text()
            assert "Traceback" not in out.read_text(), out.read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class Phone:
    """A child's phone behind a load balancer that takes turns: text n goes to server n mod k.
    Every text is a webhook signed as Twilio signs it, for the one public URL."""

    def __init__(self, urls: list[str], token: str, number: str, first: int = 0):
        self.urls, self.number, self.n = urls, number, first
        self.validator = RequestValidator(token)
        self.texts = 0

    def post(self, url: str, body: str, sid: str) -> str:
        params = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": self.number,
                  "To": "+46700000000", "Body": body}
        sig = self.validator.compute_signature(PUBLIC + "/sms/twilio", params)
        resp = requests.post(url + "/sms/twilio", data=params, timeout=30,
                             headers={"X-Twilio-Signature": sig})
        assert resp.status_code == 200, resp.text
        self.texts += 1
        return resp.text

    def sid(self) -> str:
        self.n += 1
        return f"SM{self.number[1:]}{self.n:018d}"

    def text(self, body: str) -> str:
        url = self.urls[self.n % len(self.urls)]
        return self.post(url, body, self.sid())

    def at_once(self, bodies: list[str], same_sid: bool = False) -> list[str]:
        """One text per server at the same moment: different texts, or (same_sid) Twilio
        retrying one text while the first try is still being answered."""
        sids = [self.sid()] * len(bodies) if same_sid else [self.sid() for _ in bodies]
        barrier = threading.Barrier(len(bodies))
        out: list = [None] * len(bodies)

        def go(i: int) -> None:
            barrier.wait(timeout=10)
            out[i] = self.post(self.urls[i % len(self.urls)], bodies[i], sids[i])

        threads = [threading.Thread(target=go, args=(i,)) for i in range(len(bodies))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert None not in out
        return out


def converse(phone: Phone, script: list[str], *, race: bool) -> None:
    """A whole conversation. With `race`, the second answer is retried by Twilio on both
    servers at once, and the two BOTH_AT_ONCE texts reach both servers at once."""
    assert "Hur har du det" in phone.text("Hej")
    i = 0
    while i < len(script):
        if race and i == 1:
            first, again = phone.at_once([script[i]] * 2, same_sid=True)
            assert first == again, "a retried MessageSid was answered differently"
            i += 1
        elif race and i == SCHOOL_MORE:
            for twiml in phone.at_once([BOTH_AT_ONCE, BOTH_AT_ONCE]):
                assert "förstod inte" not in twiml
            i += 2
        else:
            twiml = phone.text(script[i])
            assert "förstod inte" not in twiml, (script[i], twiml)
            i += 1
    assert "116 111" in twiml  # the closing text


def _kept(answer: dict) -> dict:
    return {k: answer[k] for k in ("value", "text", "skipped", "seq", "domain", "lang")}


def _expected(runtime, questionnaires, script: list[str]) -> dict:
    """The answers the pure engine gives for this conversation, told one text at a time."""
    talk = Talk(runtime, questionnaires["followup-12-18"])
    for reply in script:
        talk.say(reply)
    assert talk.state.status == "completed"
    return {q: _kept(a) for q, a in talk.state.answers.items()}


def _metric(url: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    line_start = f"{name}{{{want}}} " if labels else f"{name} "
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    return 0.0


def _app(tmp: Path, redis_url: str, key: str):
    from bot.app import create_app
    from bot.settings import Settings

    return create_app(Settings(TALA_DATA_DIR=str(tmp), REDIS_URL=redis_url,
                               DATABASE_URL=DATABASE_URL, TALA_SECRET_KEY=key,
                               TALA_USER="anna"), migrate=False)


def _invite_all(env: dict, tmp: Path, children: dict[str, str]) -> None:
    csv = tmp / "children.csv"
    csv.write_text("case,age,to\n" + "".join(f"{c},14,{n}\n" for c, n in children.items()))
    _tala(env, "invite", "--from-csv", str(csv))


def _talk_and_check(urls, fake, children, app, env, runtime, questionnaires) -> None:
    """The first child talks alone, text by text across the servers; then all the others at
    once, racing. Every answer must be in Redis and, through `tala summary`, in SQL."""
    cases = list(children)
    phones = {c: Phone(urls, fake.auth_token, n, first=i) for i, (c, n) in
              enumerate(children.items())}
    converse(phones[cases[0]], SCRIPT_12_18, race=False)
    errors: list[BaseException] = []

    def child(case: str) -> None:
        try:
            converse(phones[case], RACING_SCRIPT, race=True)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=child, args=(c,)) for c in cases[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors

    expected = {cases[0]: _expected(runtime, questionnaires, SCRIPT_12_18)}
    racing = _expected(runtime, questionnaires, RACING_SCRIPT)
    assert racing["school_more"]["text"] == BOTH_AT_ONCE
    assert racing["school_attend"]["value"] == "almost_always"
    for case in cases[1:]:
        expected[case] = racing
    in_sql: dict[str, dict] = {}
    for case, number in children.items():
        sid = app.service.session_for_contact("sms", number)
        wait_written(app, sid)  # by the server's SQL threads, just after the last reply
        state = app.service.state(sid)
        assert state.status == "completed" and not state.outbox, case
        got = {q: _kept(a) for q, a in state.answers.items()}
        assert got == expected[case], case  # every answer kept, none applied twice
        summary = json.loads(_tala(env, "summary", case, "--format", "json"))
        [session] = summary["sessions"]
        assert session["id"] == sid and session["status"] == "completed"
        in_sql[case] = {a["question_id"]: a for a in session["answers"]}
        assert set(in_sql[case]) == set(state.answers)
        for q, a in state.answers.items():
            assert (in_sql[case][q]["value"], in_sql[case][q]["text"],
                    in_sql[case][q]["skipped"]) == (a["value"], a["text"], a["skipped"]), (
                case, q)
    first = in_sql[cases[0]]
    assert first["caseworker_talk"]["value"] == 8 and first["anything_else"]["text"] == \
        "Inget mer"

    # Both servers did real work, and between them saw every text once per delivery.
    texts = sum(p.texts for p in phones.values())
    per_server = [_metric(u, "tala_messages_total", channel="sms", direction="in")
                  for u in urls]
    assert all(n > 0 for n in per_server) and sum(per_server) == texts
    finished = sum(_metric(u, "tala_sessions_finished_total", status="completed")
                   for u in urls)
    assert finished == len(children)


# --------------------------------------------------------------------------- the tests

@needs_servers
def test_two_servers_share_one_redis_and_one_postgresql(tmp_path, runtime, questionnaires):
    redis.Redis.from_url(REDIS_URL).flushdb()
    _fresh_postgres()
    key = Fernet.generate_key().decode()
    children = {f"SC-{i}": f"+4670{3000000 + i}" for i in range(6)}
    with FakeTwilio() as fake:
        env = _env(fake, tmp_path / "cli", REDIS_URL, key)
        _tala(env, "db", "upgrade")
        _invite_all(env, tmp_path, children)
        assert len([m for m in fake.messages if m["sid"]]) == len(children)
        app = _app(tmp_path / "probe", REDIS_URL, key)
        try:
            servers = [(_env(fake, tmp_path / "a", REDIS_URL, key), []),
                       (_env(fake, tmp_path / "b", REDIS_URL, key), ["--no-worker"])]
            with serving(servers, tmp_path / "logs") as (urls, _):
                _talk_and_check(urls, fake, children, app, env, runtime, questionnaires)
        finally:
            app.close()
        # Nothing but the invitations went out by the API; every reply was TwiML.
        assert len(fake.messages) == len(children)


@needs_servers
def test_two_servers_on_a_redis_cluster_of_three_masters(tmp_path, runtime, questionnaires):
    _fresh_postgres()
    key = Fernet.generate_key().decode()
    children = {f"CL-{i}": f"+4670{4000000 + i}" for i in range(4)}
    first_case, first_number = next(iter(children.items()))
    with tempfile.TemporaryDirectory(prefix="tala-cluster-") as d, \
            redis_cluster(Path(d)) as ports, FakeTwilio() as fake:
        url = f"redis+cluster://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"
        env = _env(fake, tmp_path / "cli", url, key)
        _tala(env, "db", "upgrade")
        app = _app(tmp_path / "probe", url, key)
        try:
            both_work = [(_env(fake, tmp_path / "a", url, key), []),
                         (_env(fake, tmp_path / "b", url, key), [])]
            with serving(both_work, tmp_path / "logs") as (urls, pids):
                # One invitation through the queue: Twilio is away for `tala invite`'s own
                # try, so one of the two servers' senders (both read the queue) sends it.
                fake.fail_next(1, status=503)
                _tala(env, "invite", first_case, "--age", "14", "--channel", "sms",
                      "--to", first_number)
                fake.wait_for(1, timeout=30)
                sid = app.service.session_for_contact("sms", first_number)
                # Sent, told, and its stream entry gone: nothing is left that a second
                # sender could send again.
                _wait(lambda: app.queue.job(f"invite:{sid}:0").get("recorded") == "1"
                      and app.queue.in_line() == 0, 30, "the invitation sent")
                to_first = [m for m in fake.messages if m["to"] == first_number]
                assert [m["status_code"] for m in to_first] == [503, 201]
                assert "Socialtjänsten" in to_first[1]["body"]
                job = app.queue.job(f"invite:{sid}:0")
                assert job["status"] == "sent" and job["attempts"] == "1"
                assert int(job["owner"].rsplit(":", 1)[1]) in pids  # a server sent it
                rest = dict(list(children.items())[1:])
                _invite_all(env, tmp_path, rest)
                # Many more sessions (console, made in this process) to see them spread.
                for i in range(24):
                    app.service.invite(f"SPREAD-{i}", 10, actor="anna")
                _talk_and_check(urls, fake, children, app, env, runtime, questionnaires)
                sent = [m for m in fake.messages if m["sid"]]
                assert len(sent) == len(children)  # each invitation exactly once
                assert len({m["to"] for m in sent}) == len(children)

            # One session's keys are in one slot; sessions spread over all the masters.
            r = app.store.r
            keys = sorted(k.decode() for k in r.scan_iter(match=f"tala:{{{sid}}}:*"))
            assert app.store.state_key(sid) in keys
            assert len(app.store.applied(sid)) >= len(SCRIPT_12_18)
            slots = {r.cluster_keyslot(k) for k in keys}
            assert slots == {r.cluster_keyslot(sid)}
            masters = {}
            for k in r.scan_iter(match="tala:{*}:state"):
                node = r.get_node_from_key(k)
                masters.setdefault(node.name, 0)
                masters[node.name] += 1
            assert len(masters) == 3 and sum(masters.values()) == len(children) + 24, masters
            # The queue: its stream and its jobs in one slot.
            q = app.queue
            job_slots = {r.cluster_keyslot(k) for k in r.scan_iter(match="tala:{outq}:job:*")}
            assert job_slots == {r.cluster_keyslot(q.stream_key("sms"))}

            # Erasure finds a child's keys wherever the cluster keeps them.
            assert app.service.erase(first_case, "anna")
            assert not list(r.scan_iter(match=f"tala:{{{sid}}}:*"))
            assert app.queue.job(f"invite:{sid}:0") == {}
        finally:
            app.close()


@needs_servers
def test_a_queue_written_before_the_hash_tag_is_moved_and_sent_once(tmp_path):
    """An installation upgraded with invitations still queued under the old key names
    (`tala:outq`, `tala:job:ID`) loses none of them."""
    from storage.crypto import Crypto
    from storage.queue import SendQueue, SendResult

    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    crypto = Crypto(Fernet.generate_key())
    for job_id, status in (("invite:old:0", "queued"), ("invite:done:0", "sent")):
        r.hset(f"tala:job:{job_id}", mapping={
            "status": status, "to": crypto.encrypt("+46701110000").decode(),
            "body": crypto.encrypt("Hej").decode(), "attempts": "0", "channel": "sms"})
        r.xadd("tala:outq", {"job": job_id})
    r.xgroup_create("tala:outq", "senders", id="0")

    class Sender:
        channel = "sms"
        sent: list = []

        def send(self, to, body):
            self.sent.append((to, body))
            return SendResult(sid=f"SM{len(self.sent)}")

        def find_sent(self, to, body, since):
            return None

    sender = Sender()
    queues = [SendQueue(redis.Redis.from_url(REDIS_URL), crypto, consumer=f"c{i}")
              for i in range(2)]
    threads = [threading.Thread(target=q.process, args=(sender, 1000.0),
                                kwargs={"block_ms": 0}) for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sender.sent == [("+46701110000", "Hej")]
    assert not r.exists("tala:outq", "tala:job:invite:old:0", "tala:job:invite:done:0")
    assert queues[0].job("invite:old:0")["status"] == "sent"
    assert queues[0].job("invite:done:0")["status"] == "sent"
    r.flushdb()


@needs_servers
def test_a_sentinel_url_finds_the_master(tmp_path, questionnaires):
    """REDIS_URL=redis+sentinel://HOST:26379/SERVICE/DB: tala asks Sentinel for the master."""
    from flows import engine
    from storage.crypto import Crypto
    from storage.redis_client import connect
    from storage.state import StateStore

    master, sentinel = _free_port(), _free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor tala 127.0.0.1 "
                    f"{master} 1\n")
    procs = [subprocess.Popen(["redis-server", "--port", str(master), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen(["redis-server", str(conf), "--sentinel"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        _wait(lambda: redis.Redis(port=sentinel).sentinel_master("tala"), 20, "sentinel")
        client = connect(f"redis+sentinel://127.0.0.1:{sentinel}/tala/3", tmp_path)
        store = StateStore(client, Crypto(Fernet.generate_key()))
        st = engine.new_state("s1", questionnaires["followup-6-11"], "sv", T0)
        store.create(st, ttl=60)
        assert store.transact("s1", lambda s: (s, "ok"), ttl=60, seen=("sms", "SM1")) == "ok"
        assert redis.Redis(port=master, db=3).exists(store.state_key("s1"))
        client.connection_pool.disconnect()
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)

