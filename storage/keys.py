"""Data keys, so that erasing a child shreds every copy of what they wrote.

Every session gets a key of its own: an invitation's is made when its data is first encrypted
(at the invitation); one pupil's answers to an anonymous survey use a key derived from the
store's root key and the session id (see ANONYMOUS below). Everything about the child that
is encrypted (the live state in Redis, the replies kept for retries, queued messages, the
contact, free text in SQL) is encrypted with that key, and the key itself is kept only wrapped
(encrypted) by the installation key, here, in a key store of its own. `tala erase` destroys
the child's keys first: from then on every copy of their data anywhere (Redis's append-only
file and snapshots, SQLite's log, PostgreSQL's dead rows, backups, replicas) is unreadable,
even with the installation key. The key store is what must not be kept for long in backups:
a backup of it from before an erasure would bring the erased child back.

Where the store is: `keys.db` (SQLite) in the data directory by default; with DATABASE_URL,
a `data_keys` table in that database unless TALA_KEYS_URL names one of its own (what makes
backups of the main database unreadable after an erasure too).

A process keeps the keys it has used in memory (up to an hour, the newest 20,000), so a message
costs no read of the store; only a session's first message in a process reads it (and the
first encryption of a session writes its key): `python -m bench.keys` times both."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (Column, DateTime, LargeBinary, MetaData, String, Table, delete, insert,
                        select)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from storage.crypto import ANONYMOUS  # a subject "a:<session id>"
from storage.engines import engine_for

metadata = MetaData()
data_keys = Table(
    "data_keys", metadata,
    Column("subject", String(64), primary_key=True),  # a session id
    Column("wrapped", LargeBinary, nullable=False),  # the key, encrypted by the installation's
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# An anonymous survey session's key is derived (HKDF) from one root key and its session id,
# not made and stored: 10,000 pupils may start in one minute, and a key-store write for each
# first message was most of its cost (bench/burst.py). Nobody can ask to erase one anonymous
# session; destroying the root (ANONYMOUS_ROOT) would shred them all at once.
ANONYMOUS_ROOT = "_anonymous"


def _derive(root: bytes, sid: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"tala anonymous session " + sid.encode()).derive(root)
    return base64.urlsafe_b64encode(raw)


class DataKey(Fernet):
    """A session's data key: Fernet for what goes to SQL and the queue, and AES-256-GCM (its
    own key, derived from the same secret) for the live state and replies in Redis, which are
    sealed and opened on every message: a quarter of Fernet's cost, and 28 bytes of overhead
    instead of 57."""

    def __init__(self, key: bytes):
        super().__init__(key)
        raw = base64.urlsafe_b64decode(key)
        self.aead = AESGCM(hmac.new(raw, b"tala live state aes-256-gcm", hashlib.sha256).digest())


CACHE_SIZE = 20_000  # keys a process keeps unwrapped (about 3 MB)
CACHE_SECONDS = 3600.0  # how long an erased child's key may stay in another process's memory


class KeyUnreadable(RuntimeError):
    """A data key that the installation key cannot unwrap (a different TALA_SECRET_KEY)."""


def keys_engine(url: str | None, data_dir: Path) -> Engine:
    """The key store's database: `url`, or keys.db in the data directory (owner-only, and
    secure_delete so a destroyed key is overwritten in the file, not just unlinked)."""
    return engine_for(url, data_dir, "keys.db", [
        "journal_mode=WAL", "synchronous=FULL",  # a key written is a key kept
        "secure_delete=ON", "busy_timeout=5000"])


class KeyStore:
    def __init__(self, engine: Engine, wrapping: Fernet | MultiFernet, *, clock=time.monotonic):
        self.engine = engine
        self._wrapping = wrapping
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Fernet, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._root: bytes | None = None
        metadata.create_all(engine, checkfirst=True)

    def get(self, subject: str, *, create: bool = False) -> Fernet | None:
        """The subject's key; made (and stored) first with `create`; None when there is none
        (never made, or destroyed by an erasure)."""
        now = self._clock()
        with self._lock:
            hit = self._cache.get(subject)
            if hit is not None and hit[1] > now:
                self._cache.move_to_end(subject)
                return hit[0]
        if subject.startswith(ANONYMOUS):
            key = DataKey(_derive(self._anonymous_root(), subject[len(ANONYMOUS):]))
        else:
            wrapped = self._read(subject)
            if wrapped is None and create:
                wrapped = self._make(subject)
            if wrapped is None:
                return None
            key = DataKey(self._unwrap(wrapped))
        with self._lock:
            self._cache[subject] = (key, now + CACHE_SECONDS)
            self._cache.move_to_end(subject)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return key

    def holds(self, subject: str, margin: float = 60.0) -> bool:
        """Whether `get(subject)` is answered from memory for at least `margin` seconds more
        (no read of the store: what the event loop may call)."""
        with self._lock:
            hit = self._cache.get(subject)
        return hit is not None and hit[1] > self._clock() + margin

    def _anonymous_root(self) -> bytes:
        """The key anonymous sessions' keys are derived from: made once, kept like a data
        key, and in memory for the process's life."""
        if self._root is None:
            root = self.secret(ANONYMOUS_ROOT)
            if root is None:
                self.keep_secret(ANONYMOUS_ROOT, os.urandom(32))
                root = self.secret(ANONYMOUS_ROOT)  # another process's, if it was first
            self._root = root
        return self._root

    def _unwrap(self, wrapped: bytes) -> bytes:
        try:
            return self._wrapping.decrypt(wrapped)
        except InvalidToken:
            raise KeyUnreadable("a data key cannot be unwrapped with this TALA_SECRET_KEY: was "
                                "the key changed (see tala keys rotate)?") from None

    def _read(self, subject: str) -> bytes | None:
        with self.engine.connect() as conn:
            return conn.scalar(select(data_keys.c.wrapped).where(data_keys.c.subject == subject))

    def _make(self, subject: str) -> bytes:
        wrapped = self._wrapping.encrypt(Fernet.generate_key())
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(data_keys).values(subject=subject, wrapped=wrapped,
                                                      created_at=datetime.now(timezone.utc)))
        except IntegrityError:  # another process made it first: theirs is the key
            wrapped = self._read(subject)
        return wrapped

    def secret(self, name: str) -> bytes | None:
        """A secret of the installation's kept here wrapped (the lookup-hash key once the
        installation key has been rotated), or None."""
        wrapped = self._read(name)
        return self._unwrap(wrapped) if wrapped is not None else None

    def keep_secret(self, name: str, value: bytes) -> None:
        """Keep `value` under `name` unless something is kept there already."""
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(data_keys).values(
                    subject=name, wrapped=self._wrapping.encrypt(value),
                    created_at=datetime.now(timezone.utc)))
        except IntegrityError:
            pass

    def rewrap(self, wrapping: MultiFernet) -> int:
        """Every key wrapped again with `wrapping`'s first key (each readable with any of its
        keys), in one transaction; then `wrapping` is this store's. How many."""
        with self.engine.begin() as conn:
            rows = conn.execute(select(data_keys.c.subject, data_keys.c.wrapped)).all()
            for subject, wrapped in rows:
                conn.execute(data_keys.update().where(data_keys.c.subject == subject)
                             .values(wrapped=wrapping.rotate(wrapped)))
        self._wrapping = wrapping
        if self.engine.dialect.name == "sqlite":  # the old wrappings out of the log
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(rows)

    def destroy(self, subjects: Iterable[str]) -> int:
        """Destroy these keys, here and in this process's memory; then squeeze them out of
        the store's own files (SQLite's log). How many there were."""
        subjects = list(subjects)
        with self._lock:
            for s in subjects:
                self._cache.pop(s, None)
        if not subjects:
            return 0
        with self.engine.begin() as conn:
            gone = conn.execute(delete(data_keys).where(data_keys.c.subject.in_(subjects)))
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        return gone.rowcount

    def count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(data_keys))
