"""The embedded Redis started again when it dies, with its data, and shared by every tala
process on the data directory rather than started twice on one append-only file."""

from __future__ import annotations

import os
import signal
import time

from storage.embedded import open_embedded


def _wait_dead(client, deadline_s: float = 30) -> None:
    deadline = time.monotonic() + deadline_s
    while client.server_alive():
        assert time.monotonic() < deadline, "the killed redis-server is still there"
        time.sleep(0.05)


def test_a_killed_embedded_redis_comes_back_once_for_every_process_with_its_data(tmp_path):
    serve = open_embedded(tmp_path / "data")  # the first starts the server...
    cli = open_embedded(tmp_path / "data")  # ...a second process on the same files joins it
    try:
        assert cli.pid == serve.pid
        serve.set("tala:test", "kept")
        killed = serve.pid
        os.kill(killed, signal.SIGKILL)
        _wait_dead(serve)
        assert serve.revive() is True  # started again, on the same files
        assert serve.pid and serve.pid != killed
        assert serve.get("tala:test") == b"kept"  # the append-only file had it
        assert cli.revive() is True and cli.pid == serve.pid  # joined, not a second server
        assert cli.get("tala:test") == b"kept"
        assert serve.revive() is False and cli.revive() is False  # nothing to do now
    finally:
        cli.connection_pool.disconnect()
        serve._cleanup()
    assert not serve.server_alive()
