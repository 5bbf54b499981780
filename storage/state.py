"""Live conversation state in Redis.

Key layout: every key tala writes besides the send queue's (storage/queue.py). HASH is a keyed
hash of a number, chat or code, never the thing itself. One session's keys share the
`{session id}` hash tag, so they live in one Redis Cluster slot and one script can cover them:

    tala:{SID}:state              the session's live record, with a TTL: its state
                                  (storage/statecodec.py), the messages it applied (8 bytes
                                  of the hash of CHANNEL:MSGID, the channel's own ids:
                                  `message_field`) and the reply to the newest, sealed with
                                  its data key (storage/crypto.py): see `_pack`
    tala:{SID}:seen, :reply       the same ids and reply as versions before kept them (read
                                  and folded into the record at the session's next message)
    tala:bind:CHANNEL:HASH        which session a phone number, chat or invitation code opens
    tala:seenby:CHANNEL:HASH      hash: the message ids a number's or chat's ended sessions
                                  applied -> that session (a year): a captured message
                                  replayed into a later session of the number is no answer
    tala:optout:CHANNEL:HASH      a number or chat that said STOP (until it says START)
    tala:unknown:HASH             a number with nothing waiting was answered once today
    tala:codefail:CHANNEL:HASH    wrong invitation codes from one chat (an hour)
    tala:campaigns:keyword|code   hash: an open survey by its keyword or Telegram code (JSON)
    tala:due                      sorted set: session id -> when the worker should look at it
    tala:units                    hash: unit -> its office hours and whether it has an on-call
                                  number (JSON; no number), what the message path needs to
                                  tell a child honestly who hears of an urgent answer now

Every change to a session goes through `transact`: read, compute, then one compare-and-set
script writes the new state (and the message id) only if the state is still the one that was
read; on a conflicting write it starts again from the fresh state. Two messages for one
session at the same moment therefore both land, one after the other, on any number of
`tala serve` processes.

Every command or script tala sends that names more than one key names keys of one hash slot,
so it runs on a Redis Cluster as it is (storage/redis_client.py connects to one).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError

from flows.engine import State
from storage import redis_io, statecodec
from storage.crypto import Crypto, subject_of

log = logging.getLogger("tala.redis")

# A session's live record is one key: its state with the ids of the messages it applied and the
# reply to the newest of them, sealed together (`_pack`). One GET reads it, one SET writes it:
# an answer costs two round trips (the contact's lookup with the record's read, in one script
# on one server: `contact_steps`; then the compare-and-set with the next wake-up), and a live
# session one key of Redis memory beside its bindings.
#
# Compare-and-set of one session: KEYS[1] its record; KEYS[2], KEYS[3] the message ids and the
# reply as versions before kept them in keys of their own (deleted once folded in, ARGV[4]);
# all carry the session's hash tag, so on a Redis Cluster they are in one slot. ARGV: the
# record as read, the new record, its TTL. Returns 1 when written, 0 when the record changed
# meanwhile: the caller reads again and recomputes (and finds the message applied, if that is
# what changed). A new record is never equal to another (AES-GCM's random nonce), so finding
# our own new value means this very call was already applied (a retry after a lost reply): 1,
# and nothing is redone.
# The message ids live as long as the state, so a session remembers the messages it applied
# for as long as it exists (up to MAX_SEEN of them, 8 bytes each): a captured, validly signed
# webhook replayed in the session's life is a duplicate, never an answer. Only the newest keeps
# its reply (a channel retries the message it just sent, not the one before).
# Why not WATCH/MULTI: redis-py's cluster pipeline, on a connection error after WATCH, goes
# on over a fresh connection that watches nothing, so a conflicting write would be lost in a
# failover; one script is atomic on its own, the same on one server and on a Cluster.
CONTACT_SEEN_TTL = 366 * 24 * 3600  # a number's ended sessions' message ids: a year
# The most message ids a session keeps (the newest): the record's bound. A followup-12-18 by
# SMS is about 30 messages; a child who writes 1,000 keeps the newest 256 (2 KiB).
MAX_SEEN = 256
APPLIED_BY = 8  # characters of a session id that name it among a number's ended sessions

_CAS = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then return 1 end
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if ARGV[4] == '1' then redis.call('DEL', KEYS[2], KEYS[3]) end
return 1
"""
# A contact's lookup, and the record of the session it opens, in one call (not on a Cluster,
# where the session's key is in another slot: a pipeline there, and the record read after).
# KEYS: the binding, the opt-out, the ids its ended sessions applied, its window (the binding
# again when the channel has none). ARGV: the binding's new TTL; the message's id as kept and
# as versions before kept it ('': no id); the window's TTL ('0': none); the session's key
# before and after its id ('': not read). Returns {session id, opted out, the two ids' values,
# the record}.
_LOOKUP = """
local sid = redis.call('GET', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
local out = {sid, redis.call('EXISTS', KEYS[2]), false, false, false}
if ARGV[2] ~= '' then
  local seen = redis.call('HMGET', KEYS[3], ARGV[2], ARGV[3])
  out[3] = seen[1]
  out[4] = seen[2]
end
if ARGV[4] ~= '0' then redis.call('SET', KEYS[4], '1', 'EX', ARGV[4]) end
if sid and ARGV[5] ~= '' then out[5] = redis.call('GET', ARGV[5] .. sid .. ARGV[6]) end
return out
"""
_RECORD = b"R"  # a record's first byte (its state's own is statecodec's)
_HEAD = struct.Struct(">IH")  # the state's length, how many message ids
# The reply kept is JSON of what was said (bot/conversation.py: flows.engine.say_to_dict):
# deflated with its skeleton as the preset dictionary, a third smaller. Never change it
# (records are written with it).
_REPLY_DICT = (b'[{"text":"","prompt":null},{"text":"","prompt":{"question_id":"","text":"",'
               b'"choices":[],"hint":"","multi":true,"rtl":false,"scale_range":[0,10]}},'
               b'{"text":"","prompt":{"question_id":"","text":"","choices":[],"hint":"",'
               b'"multi":false,"rtl":false,"scale_range":null}}]')


def _zip_reply(said: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_REPLY_DICT)
    return packer.compress(said) + packer.flush()


def _unzip_reply(kept: bytes) -> bytes:
    unpacker = zlib.decompressobj(-15, zdict=_REPLY_DICT)
    return unpacker.decompress(kept) + unpacker.flush()


def _pack(state: bytes, seen: list[bytes], reply: bytes) -> bytes:
    """A live record's plain bytes: the state (storage/statecodec.py), the ids of the messages
    applied (8 bytes each, the newest last) and the reply to the newest (compressed; empty:
    none)."""
    seen = seen[-MAX_SEEN:]
    return b"".join([_RECORD, _HEAD.pack(len(state), len(seen)), state, *seen, reply])


def _unpack(plain: bytes) -> tuple[bytes, list[bytes], bytes] | None:
    """(state, message ids, reply) of a record; None for a state stored alone (before)."""
    if plain[:1] != _RECORD:
        return None
    size, n = _HEAD.unpack_from(plain, 1)
    at = 1 + _HEAD.size
    state, at = plain[at:at + size], at + size
    seen = [plain[i:i + 8] for i in range(at, at + 8 * n, 8)]
    return state, seen, plain[at + 8 * n:]


def message_field(channel: str, message_id: str) -> bytes:
    """How a message id is kept among those applied: 8 bytes of its hash, not the 38 of
    "sms:SM" and 32 hex digits (a conversation applies a few dozen; two ids of one session
    or number colliding in 64 bits is beyond any count of messages)."""
    return hashlib.blake2b(f"{channel}:{message_id}".encode(), digest_size=8).digest()


def legacy_field(channel: str, message_id: str) -> str:
    """The same as versions before kept it (read, so a retry across an upgrade is known)."""
    return f"{channel}:{message_id}"


def _as_field(legacy: bytes) -> bytes:
    """A message id as a version before kept it ("sms:SM...") as `message_field` keeps it."""
    channel, _, message_id = legacy.decode(errors="replace").partition(":")
    return message_field(channel, message_id)


@dataclass(frozen=True)
class Duplicate:
    """Returned by `transact` when this message id was already applied; `remembered` is what
    was stored with it the first time (the reply, so a retry can be answered alike)."""

    remembered: bytes | None = None


class StateStore:
    def __init__(self, client: redis.Redis, crypto: Crypto, prefix: str = "tala"):
        self.r = client
        self.crypto = crypto
        self.prefix = prefix
        self._cas = client.register_script(_CAS)
        self._lookup = client.register_script(_LOOKUP)
        self._cluster = isinstance(client, RedisCluster)
        self._state_key_parts = self.state_key("\0").split("\0")  # around a session's id

    # -- keys
    def state_key(self, sid: str) -> str:
        return f"{self.prefix}:{{{sid}}}:state"

    def seen_key(self, sid: str) -> str:
        return f"{self.prefix}:{{{sid}}}:seen"

    def reply_key(self, sid: str) -> str:
        return f"{self.prefix}:{{{sid}}}:reply"

    def bind_key(self, channel: str, address_hash: str) -> str:
        return f"{self.prefix}:bind:{channel}:{address_hash}"

    def contact_seen_key(self, channel: str, address_hash: str) -> str:
        return f"{self.prefix}:seenby:{channel}:{address_hash}"

    def contact_steps(self, channel: str, address_hash: str, ids: tuple[bytes, str] | None,
                      live_ttl: int, window_ttl: int = 0, read: bool = False
                      ) -> redis_io.Steps:
        """A message's contact in one round trip: (the session its binding opens, whether it
        opted out, which ended session of it applied one of `ids` (the message's id as kept
        and as kept before), the session's record if `read`, else None). In the same trip the
        binding's TTL is renewed, and with `window_ttl` the channel's window opened."""
        bind = self.bind_key(channel, address_hash)
        optout = self.optout_key(channel, address_hash)
        seenby = self.contact_seen_key(channel, address_hash)
        window = self.window_key(channel, address_hash) if window_ttl else bind
        record = None
        if self._cluster:
            ops = [("get", bind), ("exists", optout), ("expire", bind, live_ttl)]
            ops += [("hmget", seenby, list(ids))] if ids else []
            ops += [("set", window, b"1", window_ttl)] if window_ttl else []
            sid, opted_out, _, *seen = redis_io.raise_errors((yield ops))
            seen = seen[0] if ids else []
        else:
            before, after = self._state_key_parts
            keys = [bind, optout, seenby, window]
            args = [live_ttl, *(ids or ("", "")), window_ttl, before if read else "", after]
            got, = yield [("evalsha", self._lookup.sha, len(keys), *keys, *args)]
            if isinstance(got, NoScriptError):
                got, = yield [("eval", _LOOKUP, len(keys), *keys, *args)]
            sid, opted_out, *seen, record = redis_io.raise_errors([got])[0]
        applied = [v for v in seen if v]
        return (sid.decode() if sid else None, bool(opted_out),
                applied[0].decode() if applied else None, record)

    def remember_for_contact(self, sid: str, channel: str, address_hash: str) -> None:
        """Keep the message ids an ended session applied under its number or chat."""
        fields = self.applied(sid)
        if fields:
            key = self.contact_seen_key(channel, address_hash)
            pipe = self.r.pipeline(transaction=False)
            # Which session applied it: its id's first 8 characters, which tell it from any
            # other session of the number (a year of them keeps a few hundred bytes).
            pipe.hset(key, mapping={f: sid[:APPLIED_BY] for f in fields})
            pipe.expire(key, CONTACT_SEEN_TTL)
            pipe.execute()

    @property
    def due_key(self) -> str:
        return f"{self.prefix}:due"

    @staticmethod
    def sid_of(key: bytes | str) -> str:
        """The session id in one of a session's key names (`tala:{SID}:state`)."""
        name = key.decode() if isinstance(key, bytes) else key
        return name.split("{", 1)[1].split("}", 1)[0]

    def web_key(self, sid: str) -> str:
        """A web chat's link token, sealed: the session's own key, so erasing it takes it."""
        return f"{self.prefix}:{{{sid}}}:weblink"

    def session_pattern(self, sid: str) -> str:
        """Every key of one session (SCAN MATCH), for erasure."""
        return f"{self.prefix}:{{{sid}}}:*"

    def optout_key(self, channel: str, address_hash: str) -> str:
        return f"{self.prefix}:optout:{channel}:{address_hash}"

    def window_key(self, channel: str, address_hash: str) -> str:
        """Set while a channel lets tala write freely to a contact (WhatsApp's 24 hours)."""
        return f"{self.prefix}:window:{channel}:{address_hash}"

    def codefail_key(self, channel: str, address_hash: str) -> str:
        return f"{self.prefix}:codefail:{channel}:{address_hash}"

    def unknown_key(self, address_hash: str) -> str:
        return f"{self.prefix}:unknown:{address_hash}"

    def campaigns_key(self, by: str) -> str:
        """A hash of the campaigns by "keyword" or by "code"."""
        return f"{self.prefix}:campaigns:{by}"

    def staff_key(self, kind: str, who: str) -> str:
        """The staff API's counters (failed sign-ins per client address, requests per token)
        and the ID tokens already exchanged for a session (single use)."""
        return f"{self.prefix}:staff:{kind}:{who}"

    def count(self, key: str, window: int) -> int:
        """One more in a counter that starts over `window` seconds after its first count."""
        pipe = self.r.pipeline(transaction=False)
        pipe.set(key, 0, ex=window, nx=True)
        pipe.incr(key)
        return int(pipe.execute()[1])

    # -- (de)serialising
    def _encode(self, state: State, seen: list[bytes] = (), reply: bytes = b"") -> bytes:
        return self.crypto.seal(_pack(statecodec.encode(state), list(seen), reply),
                                subject=subject_of(state))

    def _open(self, raw: bytes, sid: str) -> tuple[State, list[bytes], bytes, bool]:
        """(state, message ids, compressed reply, whether its ids and reply are still in the
        keys of a version before) of a stored record."""
        plain = self.crypto.unseal(raw, sid)
        record = _unpack(plain)
        if record is None:
            return statecodec.decode(plain, sid), [], b"", True
        state, seen, reply = record
        return statecodec.decode(state, sid), seen, reply, False

    def _legacy(self, sid: str, fields: dict[bytes, bytes], reply: bytes | None
                ) -> tuple[list[bytes], bytes]:
        """The message ids (the newest last) and the compressed reply of a session written by
        a version before records, from what its keys of their own hold (`fields`, `reply`)."""
        newest = fields.pop(b">", None)
        seen = [_as_field(f) for f in fields if f != newest]
        if newest is not None:
            seen.append(_as_field(newest))
        if reply in (None, b"-"):
            return seen, b""
        return seen, _zip_reply(self.crypto.unseal(reply, sid))

    def _legacy_of(self, sid: str) -> tuple[list[bytes], bytes]:
        pipe = self.r.pipeline(transaction=False)
        pipe.hgetall(self.seen_key(sid))
        pipe.get(self.reply_key(sid))
        return self._legacy(sid, *pipe.execute())

    def compact(self) -> None:
        """After an erasure: Redis rewrites its append-only file (and its snapshot, where it
        keeps one) from what is left, so erased values leave its files and not only its
        memory. A Redis that refuses (a managed one may disable these commands) is logged."""
        try:
            if self.r.info("persistence").get("aof_enabled"):
                self.r.bgrewriteaof()
            if self.r.config_get("save").get("save"):
                self.r.bgsave(schedule=True)  # after the rewrite, if one is under way
        except redis.RedisError as e:
            log.warning("Redis did not rewrite its files after the erasure (%s); the erased "
                        "values (unreadable: their keys are destroyed) stay in them until it "
                        "does: redis-cli BGREWRITEAOF", type(e).__name__)

    # -- sessions
    def create(self, state: State, ttl: int) -> None:
        if not self.r.set(self.state_key(state.session_id), self._encode(state), ex=ttl, nx=True):
            raise ValueError(f"session {state.session_id} exists already")

    def get(self, sid: str) -> State | None:
        raw = self.r.get(self.state_key(sid))
        return self._open(raw, sid)[0] if raw else None

    def applied(self, sid: str) -> list[bytes]:
        """The ids (`message_field`) of the messages the session applied, the newest last."""
        raw = self.r.get(self.state_key(sid))
        if not raw:
            return []
        _, seen, _, legacy = self._open(raw, sid)
        return self._legacy_of(sid)[0] if legacy else seen

    def transact(self, sid: str, fn: Callable[[State], tuple[State, Any]],
                 ttl: int | Callable[[State], int],
                 seen: tuple[str, str] | None = None,
                 wake_at: Callable[[State, Any], datetime | None] | None = None,
                 remember: Callable[[Any], bytes] | None = None) -> Any:
        """Apply `fn` to the session's state atomically and return what it returned.

        `fn` must be pure: it runs again after a conflict. `seen` is (channel, message id):
        a message applied once is never applied again while the session exists (a Duplicate
        is returned instead, carrying what `remember(result)` gave the first time if it is
        the newest message, else None). `ttl` is seconds, or a function of the new state
        giving them. Returns None when the session does not exist."""
        return redis_io.drive(self.transact_steps(sid, fn, ttl, seen, wake_at, remember),
                              self.r, pipeline=not self._cluster)

    async def transact_async(self, client, sid: str, fn: Callable[[State], tuple[State, Any]],
                             ttl: int | Callable[[State], int],
                             seen: tuple[str, str] | None = None,
                             wake_at: Callable[[State, Any], datetime | None] | None = None,
                             remember: Callable[[Any], bytes] | None = None,
                             record: bytes | None = None) -> Any:
        """`transact` on the event loop, with `client` (redis.asyncio, not a Cluster's);
        `record`: the session's record as just read (`contact_steps`), not read again."""
        return await redis_io.drive_async(
            self.transact_steps(sid, fn, ttl, seen, wake_at, remember, record), client)

    def transact_steps(self, sid: str, fn: Callable[[State], tuple[State, Any]],
                       ttl: int | Callable[[State], int], seen: tuple[str, str] | None,
                       wake_at: Callable[[State, Any], datetime | None] | None,
                       remember: Callable[[Any], bytes] | None, record: bytes | None = None
                       ) -> redis_io.Steps:
        """`transact`'s Redis work, for either driver (storage/redis_io.py)."""
        keys = [self.state_key(sid), self.seen_key(sid), self.reply_key(sid)]
        field = message_field(*seen) if seen else None
        while True:
            raw, record = record, None
            if raw is None:
                raw, = redis_io.raise_errors((yield [("get", keys[0])]))
            if raw is None:
                return None
            state, applied, reply, legacy = self._open(raw, sid)
            if legacy:  # written by a version before: its ids and reply are folded in now
                applied, reply = self._legacy(sid, *redis_io.raise_errors((yield [
                    ("hgetall", keys[1]), ("get", keys[2])])))
            if field is not None and field in applied:
                fresh = applied[-1] == field and reply
                return Duplicate(_unzip_reply(reply) if fresh else None)
            new_state, result = fn(state)
            when = wake_at(new_state, result) if wake_at else None
            expiry = ttl(new_state) if callable(ttl) else ttl
            if field is not None:
                applied = [*applied, field]
                said = remember(result) if remember else b""
                reply = _zip_reply(said) if said else b""
            args = [raw, self._encode(new_state, applied, reply), int(expiry),
                    "1" if legacy else "0"]
            if (yield from self._write(sid, keys, args, when)) == 1:
                return result
            # Someone else changed the session since we read it: again, from the fresh state.

    def _write(self, sid: str, keys: list[str], args: list, when: datetime | None
               ) -> redis_io.Steps:
        """The compare-and-set, and the worker's next look at the session, in one round trip.
        The due index is not in the script on purpose: it is global (another Cluster slot),
        and an early or extra wake-up is harmless (the worker looks and reschedules). On a
        Cluster, one command a trip: redis-py does not pipeline scripts there."""
        cas: redis_io.Op = ("evalsha", self._cas.sha, len(keys), *keys, *args)
        ops = [cas] + ([("zadd", self.due_key, {sid: when.timestamp()})] if when else [])
        written, *scheduled = yield ops
        redis_io.raise_errors(scheduled)
        if isinstance(written, NoScriptError):
            # A Redis that restarted or failed over has no scripts loaded: EVAL loads and
            # runs it (nothing ran: NOSCRIPT is answered before the script starts).
            written, = yield [("eval", _CAS, len(keys), *keys, *args)]
        redis_io.raise_errors([written])
        return written

    def delete(self, sid: str) -> None:
        self.r.delete(self.state_key(sid), self.seen_key(sid), self.reply_key(sid))
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

    # -- what the message path needs to know of the units (SQL has the rest)
    @property
    def units_key(self) -> str:
        return f"{self.prefix}:units"

    def publish_units(self, units: dict[str, dict]) -> None:
        """Replace the units' published hours (all at once, so a removed one goes too)."""
        pipe = self.r.pipeline()
        pipe.delete(self.units_key)
        if units:
            pipe.hset(self.units_key, mapping={k: json.dumps(v) for k, v in units.items()})
        pipe.execute()

    def units(self) -> dict[str, dict]:
        return self.parse_units(self.r.hgetall(self.units_key))

    @staticmethod
    def parse_units(raw: dict[bytes, bytes]) -> dict[str, dict]:
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def ping(self) -> bool:
        return bool(self.r.ping())
