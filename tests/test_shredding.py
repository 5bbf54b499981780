"""Erasing a child shreds every copy: after a whole SMS conversation and `tala erase` (run as
its own process, beside the server), nothing under the data directory or in the Redis
server's files holds the child's number, case reference, session id or words, neither raw
nor decrypted with the installation key and every data key that is left; the same on the
embedded Redis and SQLite, and on a Redis server with its append-only file and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from bot.app import create_app
from bot.server import build_web_app
from tests.conftest import DATABASE_URL, _reset_postgres, _settings, wait_written
from tests.fakes.server import RunningServer
from tests.shredding import every_key, files_under, opened_in
from tests.test_faults import OwnRedis, _sms_env
from tests.test_sms import SCRIPT_12_18, Phone
from tests.test_staff import _everything

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("gc_outside_reports")]

CHILD, OTHER = "+46701112233", "+46709998877"
WORDS = ["Det är svårt att orka", "Pappa slår mig när han är full"]
SCRIPT = [WORDS[0] if a == "Det är svårt att orka" else a for a in SCRIPT_12_18]


def _traces(case: str, sid: str, number: str, *, every_form: bool = True) -> list[str]:
    """What would name the child or tell what they wrote; with `every_form`, the number
    also as a Swede would write it (tala stores it in one form, +46...)."""
    forms = ["0" + number[3:], number[3:]] if every_form else []
    return [case, sid, number, *forms, *WORDS]


def _wait_rewritten(r, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        info = r.info("persistence")
        if not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                or info.get("rdb_bgsave_in_progress")):
            return
        assert time.monotonic() < deadline, "Redis did not finish rewriting its files"
        time.sleep(0.05)


BACKENDS = ["embedded"] + (["server-redis+postgresql"] if DATABASE_URL else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_erase_leaves_nothing_readable_in_any_file(backend, tmp_path, fake, monkeypatch):
    _sms_env(monkeypatch, fake)
    data = tmp_path / "data"
    redis_dir = tmp_path / "redis"
    own = None
    if backend == "embedded":
        settings = _settings(tmp_path, None, None)
    else:
        own = OwnRedis(redis_dir).start()
        _reset_postgres(DATABASE_URL)
        settings = _settings(tmp_path, own.url, DATABASE_URL)
    app = create_app(settings, migrate=True)
    try:
        with RunningServer(build_web_app(app, worker=False)) as server:
            sid = app.service.invite("K-SHRED", 14, channel="sms", contact=CHILD,
                                     actor="anna").session_id
            keep = app.service.invite("K-KEEP", 12, channel="sms", contact=OTHER,
                                      actor="anna").session_id
            app.service.send_queued("sms", block_ms=0)
            child, other = Phone(server, fake.auth_token, CHILD), Phone(server, fake.auth_token,
                                                                        OTHER)
            child.text("Hej")
            for answer in SCRIPT[:9]:
                child.text(answer)
            assert "116 111" in child.text(WORDS[1])  # a disclosure: an alert with her words
            for answer in SCRIPT[9:]:
                child.text(answer)
            assert app.service.state(sid).status == "completed"
            wait_written(app, sid)
            other.text("Hej")
            other.text("3")
            app.service.send_queued("sms", block_ms=0)

            roots = [data] + ([redis_dir] if own else [])
            keys = every_key(app)
            backup = files_under(*roots)  # what a backup taken now would hold
            before = "\n".join(_everything(app).splitlines() + [
                t for blob in backup.values() for t in opened_in(blob, keys, 0)])
            for trace in _traces("K-SHRED", sid, CHILD, every_form=False):
                assert trace in before, trace  # the search finds what is there
            # ... in Redis's own files too: her live state (AES-GCM) opens from them.
            assert f'"o":"{CHILD}"' in "\n".join(
                t for blob in backup.values() for t in opened_in(blob, keys, 0))

            env = {k: v for k, v in os.environ.items()
                   if k not in ("REDIS_URL", "DATABASE_URL")}
            env.update(TALA_DATA_DIR=str(data), TALA_USER="anna")
            if own:
                env.update(REDIS_URL=own.url, DATABASE_URL=DATABASE_URL)
            done = subprocess.run([sys.executable, "-m", "admin_cli.main", "erase", "K-SHRED",
                                   "--yes"], env=env, capture_output=True, text=True,
                                  timeout=120)
            assert done.returncode == 0, done.stderr
            _wait_rewritten(app.store.r)

            keys = every_key(app)
            files = files_under(*roots)
            assert any(p.name == "appendonly.aof" or "appendonlydir" in str(p) for p in files)
            for path, blob in files.items():
                opened = "\n".join(opened_in(blob, keys, 0))
                for trace in _traces("K-SHRED", sid, CHILD):
                    assert trace.encode() not in blob, (path, trace)
                    assert trace not in opened, (path, trace)
            # The backup from before still holds her data, but her keys are gone: nothing in
            # it opens with the installation key or any key that is left.
            for path, blob in backup.items():
                opened = "\n".join(opened_in(blob, keys, 0))
                for trace in [CHILD, *WORDS]:
                    assert trace not in opened, (path, trace)
            after = _everything(app)
            for trace in _traces("K-SHRED", sid, CHILD):
                assert trace not in after, trace
            # Nobody else's data went with it, and the other child goes on.
            assert keep in after and "K-KEEP" in after and OTHER in after
            assert "<Message>" in other.text("4")
    finally:
        app.close()
        if own:
            own.stop()


def test_a_session_written_before_data_keys_is_still_read(app):
    """Sessions stored before sessions had keys of their own (encrypted with the installation
    key) are read as they were: an upgrade loses no conversation."""
    import json

    from flows.engine import State

    sid = app.service.invite("K-OLD", 9, actor="anna").session_id
    legacy = State.from_dict({**app.service.state(sid).to_dict(), "session_id": "legacy-1"})
    raw = app.crypto.seal(json.dumps(legacy.to_dict()).encode())  # no subject: the old way
    app.store.r.set(app.store.state_key("legacy-1"), raw)
    assert app.service.state("legacy-1") == legacy
    old_token = app.crypto.encrypt("+46700000001")  # an invitation's number, the old way
    assert app.crypto.keys.get(sid) is not None  # ...for a session that has a key now
    assert app.crypto.decrypt(old_token, sid) == "+46700000001"
    assert app.crypto.decrypt(old_token, "legacy-1") == "+46700000001"
    assert app.crypto.keys.get("legacy-1") is None  # reading made no key
