"""The embedded Redis started again when it dies, with its data, and shared by every tala
process on the data directory rather than started twice on one append-only file."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import redis

from storage.embedded import open_embedded
from storage.redis_io import async_twin


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


def test_the_event_loops_client_follows_the_embedded_redis_to_its_new_socket(tmp_path):
    """`tala serve` answers SMS on its event loop with a redis.asyncio client of its own
    (storage/redis_io.py): when the embedded Redis is started again on a new socket, that
    client goes there too, and no message fails for good."""
    serve = open_embedded(tmp_path / "data")
    twin = async_twin(serve)
    loop = asyncio.new_event_loop()
    try:
        serve.set("tala:test", "kept")
        assert loop.run_until_complete(twin.get("tala:test")) == b"kept"
        old = serve.connection_pool.connection_kwargs["path"]
        os.kill(serve.pid, signal.SIGKILL)
        _wait_dead(serve)
        assert serve.revive() is True
        assert serve.connection_pool.connection_kwargs["path"] != old
        deadline = time.monotonic() + 30
        while True:  # the first try may meet the dead socket; the client connects anew
            try:
                assert loop.run_until_complete(twin.get("tala:test")) == b"kept"
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "the event loop's client never reconnected"
    finally:
        loop.run_until_complete(twin.aclose())
        loop.close()
        serve._cleanup()
