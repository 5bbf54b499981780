"""Storage contract: the same tests on every backend (embedded Redis and a Redis server;
SQLite and PostgreSQL), chosen by TALA_TEST_REDIS_URL and TALA_TEST_DATABASE_URL."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import func, inspect, select, text

from flows import engine
from flows.engine import Inbound
from storage.crypto import Crypto, SecretKeyError
from storage.sql import (Alert, AnswerRow, AuditLog, Base, Child, Invitation, SessionRow,
                         head_revision, make_engine, upgrade)
from storage import statecodec
from storage.state import MAX_SEEN, Duplicate, message_field
from tests.conftest import DATABASE_URL, SQL_BACKENDS, T0, _reset_postgres


def _state(questionnaires, sid="s1"):
    return engine.new_state(sid, questionnaires["followup-6-11"], "sv", T0)


def test_state_round_trips_encrypted_with_a_ttl(store, questionnaires):
    st = _state(questionnaires)
    st.answers["x"] = {"text": "hemligt"}
    store.create(st, ttl=600)
    assert store.get("s1") == st
    raw = store.r.get(store.state_key("s1"))
    assert b"hemligt" not in raw  # encrypted at rest
    assert 0 < store.r.ttl(store.state_key("s1")) <= 600


def test_one_sessions_keys_share_a_hash_tag(store):
    assert store.state_key("abc").split("{")[1].split("}")[0] == "abc"
    assert store.seen_key("abc").split("{")[1].split("}")[0] == "abc"


def test_transact_applies_and_a_repeated_message_id_is_not_applied_twice(store, questionnaires):
    store.create(_state(questionnaires), ttl=600)

    def bump(s):
        s.seq += 1
        return s, s.seq

    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM1"),
                          remember=lambda seq: str(seq).encode()) == 1
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM1")) == Duplicate(b"1")
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM2")) == 2
    assert store.get("s1").seq == 2
    assert store.transact("missing", bump, ttl=600) is None


def test_transact_schedules_the_wake_up_and_survives_a_redis_without_its_script(store,
                                                                               questionnaires):
    """The write and the worker's next look go in one round trip; a Redis that restarted (or
    failed over) has no script loaded, and the write still lands, once."""
    store.create(_state(questionnaires), ttl=600)

    def bump(s):
        s.seq += 1
        return s, s.seq

    store.r.script_flush()
    wake = T0 + timedelta(hours=3)
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM1"),
                          wake_at=lambda s, result: wake) == 1
    assert store.get("s1").seq == 1
    assert store.r.zscore(store.due_key, "s1") == wake.timestamp()
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM1")) == Duplicate(None)
    assert store.transact("s1", bump, ttl=600, wake_at=lambda s, result: None) == 2
    assert store.r.zscore(store.due_key, "s1") == wake.timestamp()  # no wake-up: unchanged


def test_a_contacts_lookup_reads_its_session_and_both_drivers_agree(store, questionnaires):
    """The contact's lookup and the session's record in one script, also on a Redis that has
    lost its scripts; the same generators under the blocking driver and on an event loop
    (storage/redis_io.py) give the same answers and leave the same state."""
    from storage import redis_io

    store.create(_state(questionnaires), ttl=600)
    store.bind("sms", "h1", "s1", ttl=600)
    store.r.set(store.optout_key("sms", "h2"), b"1")
    store.r.hset(store.contact_seen_key("sms", "h1"), message_field("sms", "SMold"), "older1")
    ids = (message_field("sms", "SMold"), "sms:SMold")

    def bump(s):
        s.seq += 1
        return s, s.seq

    store.r.script_flush()
    sid, opted_out, by, record = redis_io.drive(
        store.contact_steps("sms", "h1", ids, 900, 0, read=True), store.r)
    assert (sid, opted_out, by) == ("s1", False, "older1")
    assert record == store.r.get(store.state_key("s1"))
    assert 600 < store.r.ttl(store.bind_key("sms", "h1")) <= 900  # renewed in the same call
    assert redis_io.drive(store.contact_steps("sms", "h2", None, 900, 60), store.r) == \
        (None, True, None, None)
    assert store.r.ttl(store.window_key("sms", "h2")) > 0
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM1")) == 1

    twin = redis_io.async_twin(store.r)
    if twin is None:
        pytest.skip("a Redis Cluster's or Sentinel's client: messages go to a thread there")

    async def on_the_loop():
        try:
            await twin.script_flush()
            got = await redis_io.drive_async(
                store.contact_steps("sms", "h1", ids, 900, 0, read=True), twin)
            first = await store.transact_async(twin, "s1", bump, ttl=600, seen=("sms", "SM2"),
                                               record=got[3])
            again = await store.transact_async(twin, "s1", bump, ttl=600, seen=("sms", "SM1"))
            return got[:3], first, again
        finally:
            await twin.aclose()

    found, first, again = asyncio.run(on_the_loop())
    assert found == ("s1", False, "older1")
    assert first == 2 and again == Duplicate(None)  # the blocking driver's message, seen
    assert store.get("s1").seq == 2 and store.applied("s1")[-1] == message_field("sms", "SM2")


def test_a_burst_on_the_loop_waits_its_turn_for_a_connection_then_is_refused(store,
                                                                            monkeypatch):
    """The loop's pool: a message waits while every connection is busy, goes on when one is
    free, and after POOL_WAIT gets redis.ConnectionError (answered 503), never a second
    connection over the bound; a connection that fails to connect gives its turn back."""
    from storage import redis_io

    twin = redis_io.async_twin(store.r, max_connections=1)
    if twin is None:
        pytest.skip("a Redis Cluster's or Sentinel's client: messages go to a thread there")
    monkeypatch.setattr(redis_io, "POOL_WAIT", 0.2)
    store.r.set("turn", "1")

    async def on_the_loop():
        pool = twin.connection_pool
        try:
            held = await pool.get_connection()
            waiting = asyncio.ensure_future(twin.get("turn"))
            for _ in range(20):  # the loop's turns, not time: it cannot get the connection
                await asyncio.sleep(0)
            assert not waiting.done()
            await pool.release(held)
            assert await asyncio.wait_for(waiting, 10) == b"1"
            held = await pool.get_connection()
            with pytest.raises(redis.ConnectionError):
                await twin.get("turn")
            assert len(pool._in_use_connections) == 1
            await pool.release(held)
            pool.ensure_connection = _refuse
            with pytest.raises(redis.ConnectionError):
                await twin.get("turn")
            del pool.ensure_connection
            assert await asyncio.wait_for(twin.get("turn"), 10) == b"1"  # its turn came back
        finally:
            await twin.aclose()

    asyncio.run(on_the_loop())


async def _refuse(connection):
    raise redis.ConnectionError("refused")


def test_the_message_ids_last_as_long_as_the_state_whatever_wrote_it_last(store,
                                                                          questionnaires):
    """Replay protection: the applied message ids expire with the session's state, not on a
    clock of their own. A write without a message id (a reminder, the worker) extends them too."""
    store.create(_state(questionnaires), ttl=600)

    def bump(s):
        s.seq += 1
        return s, s.seq

    store.transact("s1", bump, ttl=600, seen=("sms", "SM1"))
    assert 590 < store.r.ttl(store.state_key("s1")) <= 600
    store.transact("s1", bump, ttl=30 * 86400)  # no message id: the ids are kept as long
    assert store.r.ttl(store.state_key("s1")) > 29 * 86400
    assert store.applied("s1") == [message_field("sms", "SM1")]  # in the one record
    assert not store.r.exists(store.seen_key("s1"), store.reply_key("s1"))
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM1")) == Duplicate(None)
    assert store.get("s1").seq == 2


def test_only_the_newest_message_keeps_its_remembered_reply(store, questionnaires):
    """A whole session's ids are kept for its whole life, so they must be small: the reply is
    kept for the newest message only (a channel retries the message it just sent)."""
    store.create(_state(questionnaires), ttl=600)

    def bump(s):
        s.seq += 1
        return s, s.seq

    reply = b"x" * 500
    for i in range(1, 26):
        store.transact("s1", bump, ttl=600, seen=("sms", f"SM{i:032d}"), remember=lambda _: reply)
    assert store.transact("s1", bump, ttl=600, seen=("sms", f"SM{25:032d}")) == Duplicate(reply)
    assert store.transact("s1", bump, ttl=600, seen=("sms", f"SM{1:032d}")) == Duplicate(None)
    assert store.get("s1").seq == 25
    assert len(store.applied("s1")) == 25
    # One key: the state, 25 ids of 8 bytes and one reply (compressed).
    assert store.r.keys("tala:{s1}:*") == [store.state_key("s1").encode()]
    alone = len(store.crypto.seal(statecodec.encode(store.get("s1")), subject="s1"))
    kept = store.r.memory_usage(store.state_key("s1"), samples=0)
    assert kept < alone + 25 * 8 + 150, (kept, alone)


def test_the_ids_a_session_keeps_are_bounded(store, questionnaires):
    store.create(_state(questionnaires), ttl=600)

    def bump(s):
        s.seq += 1
        return s, s.seq

    for i in range(MAX_SEEN + 10):
        store.transact("s1", bump, ttl=600, seen=("sms", f"SM{i}"))
    kept = store.applied("s1")
    assert len(kept) == MAX_SEEN and kept[-1] == message_field("sms", f"SM{MAX_SEEN + 9}")
    assert store.transact("s1", bump, ttl=600, seen=("sms", f"SM{MAX_SEEN + 9}")) == \
        Duplicate(None)


def test_a_session_a_version_before_wrote_keeps_its_messages_and_reply(store, questionnaires):
    """Versions before kept the applied ids ("sms:SM...") and the reply in keys of their own:
    a retry across the upgrade is still a duplicate, and the next message folds them in."""
    st = _state(questionnaires)
    store.r.set(store.state_key("s1"), store.crypto.seal(statecodec.encode(st), subject="s1"),
                ex=600)
    store.r.hset(store.seen_key("s1"), mapping={"sms:SM6": "1", "sms:SM7": "1", ">": "sms:SM7"})
    store.r.set(store.reply_key("s1"), store.crypto.seal(b"then", compress=True, subject="s1"))

    def bump(s):
        s.seq += 1
        return s, s.seq

    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM7")) == Duplicate(b"then")
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM6")) == Duplicate(None)
    assert store.get("s1").seq == 0  # neither applied again
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM8")) == 1
    assert not store.r.exists(store.seen_key("s1"), store.reply_key("s1"))  # folded in
    assert store.applied("s1") == [message_field("sms", m) for m in ("SM6", "SM7", "SM8")]
    assert store.transact("s1", bump, ttl=600, seen=("sms", "SM6")) == Duplicate(None)


def test_two_messages_for_one_session_at_the_same_moment_both_land(store, questionnaires,
                                                                   runtime):
    """Two threads answer different questions of one session at once: WATCH/MULTI makes the
    slower one start again from the fresh state, so both answers are kept."""
    qn = questionnaires["followup-6-11"]
    st, _ = engine.start(runtime, qn, _state(questionnaires), T0)
    store.create(st, ttl=600)
    barrier = threading.Barrier(2)
    calls = {"n": 0}

    def answer(qid: str, value: int):
        first = [True]

        def fn(s):
            calls["n"] += 1
            s.current = qid
            new, _ = engine.step(runtime, qn, s, Inbound(str(value), T0))
            if first[0]:
                first[0] = False
                barrier.wait(timeout=10)  # both have read the same old state before writing
            return new, None
        return fn

    threads = [threading.Thread(target=store.transact, args=("s1", answer(q, v), 600))
               for q, v in (("home_feel", 4), ("school_feel", 5))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    final = store.get("s1")
    assert final.answers["home_feel"]["value"] == 4
    assert final.answers["school_feel"]["value"] == 5
    assert calls["n"] >= 3  # one of them was retried after the conflict


def test_bind_lookup_and_the_due_timetable(store):
    store.bind("code", "h1", "s1", ttl=60)
    assert store.lookup("code", "h1") == "s1" and store.lookup("code", "h2") is None
    store.schedule("s1", T0)
    store.schedule("s2", T0 + timedelta(hours=1))
    assert store.due(T0 + timedelta(minutes=1)) == ["s1"]
    store.unschedule("s1")
    assert store.due(T0 + timedelta(hours=2)) == ["s2"]


def _finished_state(runtime, questionnaires, sid="s1"):
    qn = questionnaires["followup-6-11"]
    st, _ = engine.start(runtime, qn, _state(questionnaires, sid), T0)
    st.case_ref = "K-1"
    for reply in ["4", "tillbaka", "2", "1", "Mycket bråk hemma"]:
        st, _ = engine.step(runtime, qn, st, Inbound(reply, T0 + timedelta(minutes=1)))
    st.status = "completed"
    st.finished_at = (T0 + timedelta(minutes=5)).isoformat()
    return st


def test_a_finished_session_is_written_once_with_every_answer(db, runtime, questionnaires):
    child = db.ensure_child("K-1", unit="Nord")
    st = _finished_state(runtime, questionnaires)
    assert db.write_session(st, child.id) is True
    assert db.write_session(st, child.id) is False  # idempotent: a retry changes nothing
    with db.Session() as s:
        rows = s.scalars(select(AnswerRow).order_by(AnswerRow.seq)).all()
        assert [(r.question_id, r.current) for r in rows] == [
            ("home_feel", False), ("home_feel", True), ("home_hard", True), ("home_more", True)]
        assert rows[1].value_num == 2 and rows[2].value_options == ["arguing"]
        assert rows[3].text_enc and "bråk".encode() not in rows[3].text_enc  # encrypted
        assert db.crypto.decrypt(rows[3].text_enc, rows[3].session_id) == "Mycket bråk hemma"
        session = s.get(SessionRow, "s1")
        assert session.questionnaire_version == 1 and session.status == "completed"


def test_an_alert_is_stored_once_and_encrypted(db, questionnaires):
    child = db.ensure_child("K-2")
    st = _state(questionnaires, "s2")
    alert = {"key": "q:harm", "question_id": "q", "level": "urgent", "topic": "harm",
             "text": "pappa slår mig", "at": T0.isoformat()}
    alert_id, unnotified = db.write_alert(st, child.id, alert)
    assert unnotified
    # Written again (a retry cut off before its notification was queued): the same alert,
    # still to be notified; once notified, a retry no longer asks for it.
    assert db.write_alert(st, child.id, alert) == (alert_id, True)
    db.mark_alert(alert_id, notified_at=T0)
    assert db.write_alert(st, child.id, alert) == (alert_id, False)
    with db.Session() as s:
        rows = s.scalars(select(Alert)).all()
        assert len(rows) == 1
        assert b"pappa" not in rows[0].text_enc
    assert db.alerts_for(child.id)[0].topic == "harm"


def test_audit_log_and_schema_are_real(db):
    db.ensure_child("K-3")
    db.audit("anna", "summary", "K-3")
    db.audit("anna", "summary", "K-4")  # no such case: kept only by its keyed hash
    with db.Session() as s:
        first, second = s.scalars(select(AuditLog).order_by(AuditLog.id)).all()
        assert (first.actor, first.action, first.case_ref) == ("anna", "summary", "K-3")
        assert second.case_ref is None
        assert second.detail == f"case #{db.crypto.lookup_hash('K-4')[:16]}"
        version = s.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == head_revision()  # the newest migration
    assert db.count(Child) == 1 and db.count(Invitation) == 0


def test_the_migrations_build_exactly_the_models_schema(db):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from storage.sql import Base

    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


# --------------------------------------------------------------------------- migration 0005

OLD_CODE = "QWERTY2345"


@pytest.fixture(params=SQL_BACKENDS)
def at_0004(request, tmp_path, monkeypatch):
    """A database as tala 0004 left it: an invitation whose code is in the clear, with a
    finished session and an answer hanging off it."""
    monkeypatch.delenv("TALA_SECRET_KEY", raising=False)
    monkeypatch.setenv("TALA_DATA_DIR", str(tmp_path / "data"))
    if request.param == "postgresql":
        _reset_postgres(DATABASE_URL)
        eng = make_engine(DATABASE_URL, tmp_path)
    else:
        eng = make_engine(None, tmp_path / "sql")
    upgrade(eng, revision="0004")
    with eng.begin() as conn:
        conn.execute(text("INSERT INTO children (id, case_ref, preferred_lang, created_at) "
                          "VALUES (1, 'K-OLD', 'sv', :t)"), {"t": T0})
        conn.execute(text(
            "INSERT INTO invitations (id, child_id, session_id, questionnaire_id, channel, lang,"
            " code, status, created_at, expires_at) VALUES ('inv1', 1, 'sess1', 'q', "
            "'telegram', 'sv', :code, 'completed', :t, :t)"), {"code": OLD_CODE, "t": T0})
        conn.execute(text(
            "INSERT INTO sessions (id, child_id, invitation_id, questionnaire_id, "
            "questionnaire_version, lang, channel, status, written_at) VALUES ('sess1', 1, "
            "'inv1', 'q', 1, 'sv', 'telegram', 'completed', :t)"), {"t": T0})
        conn.execute(text(
            "INSERT INTO answers (session_id, question_id, domain, seq, current, skipped, "
            "value_num, lang, answered_at) VALUES ('sess1', 'home_feel', 'home', 1, true, "
            "false, 7, 'sv', :t)"), {"t": T0})
    yield eng
    eng.dispose()


def _everything_in_sql(eng) -> str:
    with eng.connect() as conn:
        return "\n".join(repr(row) for table in Base.metadata.sorted_tables
                         for row in conn.execute(select(table)))


def _version(eng) -> str:
    with eng.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def test_migration_0005_keeps_only_the_keyed_hash_of_an_old_code(at_0004):
    crypto = Crypto(Fernet.generate_key())
    upgrade(at_0004, crypto)
    assert _version(at_0004) >= "0005"
    with at_0004.connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("invitations")}
        row = conn.execute(select(Invitation.code_hash, Invitation.session_id)).one()
        session = conn.execute(select(SessionRow.invitation_id)).scalar()
        answers = conn.execute(select(func.count()).select_from(AnswerRow)).scalar()
    assert "code" not in columns
    # The very hash the code's Redis binding has always had: an open invitation still opens.
    assert row == (crypto.lookup_hash(OLD_CODE), "sess1")
    assert (session, answers) == ("inv1", 1)  # nothing hanging off the invitation was lost
    assert OLD_CODE not in _everything_in_sql(at_0004)
    if at_0004.dialect.name == "sqlite":
        db_file = Path(at_0004.url.database)
        on_disk = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
        assert b"K-OLD" in on_disk and OLD_CODE.encode() not in on_disk


def test_migration_0005_without_the_key_changes_nothing_and_makes_no_key(at_0004, tmp_path):
    with pytest.raises(SecretKeyError, match="TALA_SECRET_KEY"):
        upgrade(at_0004)  # neither handed in, nor set, nor in the data dir
    assert _version(at_0004) == "0004"
    with at_0004.connect() as conn:
        assert conn.execute(text("SELECT code FROM invitations")).scalar() == OLD_CODE
    assert not (tmp_path / "data" / "secret.key").exists()


def test_migration_0005_with_no_codes_needs_no_key(at_0004, tmp_path):
    with at_0004.begin() as conn:
        conn.execute(text("UPDATE invitations SET code = NULL"))
    upgrade(at_0004)
    assert _version(at_0004) >= "0005"
    assert not (tmp_path / "data" / "secret.key").exists()


def test_sealed_values_are_compact_and_state_stored_before_still_reads(store, questionnaires):
    crypto = store.crypto
    reply = json.dumps([{"text": "Hej! Nu börjar vi. Hur har du det i skolan?"}] * 8).encode()
    plain, zipped = crypto.seal(reply), crypto.seal(reply, compress=True)
    assert crypto.unseal(plain) == reply and crypto.unseal(zipped) == reply
    token = crypto.encrypt(reply.decode())  # the Fernet token as it is written to SQL
    assert len(plain) <= len(token) * 3 / 4 + 1  # no base64
    assert len(zipped) < len(plain) / 2
    assert b"skolan" not in plain and b"skolan" not in zipped
    with pytest.raises(SecretKeyError):
        Crypto(Fernet.generate_key()).unseal(zipped)
    # A session written before the compact format (a base64 token) goes on after an upgrade.
    st = _state(questionnaires, "old")
    store.r.set(store.state_key("old"), crypto.encrypt(json.dumps(st.to_dict())), ex=600)
    assert store.get("old") == st

    def bump(s):
        s.seq += 1
        return s, s.seq

    assert store.transact("old", bump, ttl=600) == 1
    assert not store.r.get(store.state_key("old")).startswith(b"gAAAAA")  # compact from now
    assert store.get("old").seq == 1


def test_the_quick_schema_check_agrees_with_alembic(at_0004):
    """`schema_is_current` (what lets a short command skip Alembic) reads the head revision
    from the migration files by hand: it must be Alembic's own head, and a database one
    migration behind must not pass for current."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from storage.sql import MIGRATIONS, head_revision, schema_is_current

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(cfg).get_current_head()
    assert not schema_is_current(at_0004)
    upgrade(at_0004, Crypto(Fernet.generate_key()))
    assert schema_is_current(at_0004)


def test_a_shared_database_never_upgraded_gets_a_clear_word_not_a_missing_table(
        tmp_path, monkeypatch):
    """tala upgrades only its embedded SQLite by itself; a database named in DATABASE_URL is
    upgraded with `tala db upgrade`. Until then every command says so (exit 2) instead of
    failing on "no such table" deep in a query; after it, the same command works."""
    from typer.testing import CliRunner

    from admin_cli.main import app as cli

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    monkeypatch.setenv("TALA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    runner = CliRunner()
    before = runner.invoke(cli, ["invite", "U-1", "--age", "9"])
    assert before.exit_code == 2, before.output
    assert "har inga tabeller för tala än" in before.output and "tala db upgrade" in before.output
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    after = runner.invoke(cli, ["invite", "U-1", "--age", "9"])
    assert after.exit_code == 0 and "Barnet i ärende U-1 är inbjudet" in after.output, \
        after.output


def test_values_sealed_with_fernet_under_a_data_key_still_open(store):
    """Before AES-GCM, a session's values in Redis were raw Fernet tokens of its data key
    (heads s, t; an anonymous session's a, b): they open as they did."""
    import base64
    import zlib

    crypto = store.crypto
    for subject, head, zipped_head in (("s9", b"s", b"t"), ("a:s9", b"a", b"b")):
        key = crypto.keys.get(subject, create=True)
        plain = base64.urlsafe_b64decode(key.encrypt(b"hej"))
        zipped = base64.urlsafe_b64decode(key.encrypt(zlib.compress(b"hej")))
        assert crypto.unseal(head + plain, "s9") == b"hej"
        assert crypto.unseal(zipped_head + zipped, "s9") == b"hej"
