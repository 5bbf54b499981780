"""Live conversation state in Redis.

Key layout: every key tala writes besides the send queue's (storage/queue.py). HASH is a keyed
hash of a number, chat or code, never the thing itself. One session's keys share the
`{session id}` hash tag, so they live in one Redis Cluster slot and one script can cover them:

    tala:{SID}:state              the session state (storage/statecodec.py), sealed with
                                  its data key (storage/crypto.py), with a TTL
    tala:{SID}:seen               hash of the messages already applied (8 bytes of the hash of
                                  CHANNEL:MSGID, the channel's own ids: `message_field`;
                                  field ">" names the newest)
    tala:{SID}:reply              the reply to the newest of them, Fernet-encrypted
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

`connect` takes the usual redis:// / rediss:// / unix:// URLs, and for more than one Redis:

    redis+sentinel://[:PASSWORD@]HOST:26379[,HOST:26379...]/SERVICE[/DB]   (Sentinel)
    redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]                   (Redis Cluster)

(`rediss+sentinel://`, `rediss+cluster://` for TLS.) Every command or script tala sends that
names more than one key names keys of one hash slot, so it runs on a Cluster as it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError

from flows.engine import State
from storage import statecodec
from storage.crypto import Crypto, subject_of

log = logging.getLogger("tala.redis")

# Compare-and-set of one session: KEYS[1] its state, KEYS[2] the hash of the message ids it
# has applied, KEYS[3] the reply to the newest; all carry the session's hash tag, so on a
# Redis Cluster they are in one slot. ARGV: the state as read, the new state, its TTL, and
# (optionally) the message id being applied with what to remember for it. Returns 1 when
# written, 0 when the state changed meanwhile (or the message was applied by someone else):
# the caller reads again and recomputes. A new state is never equal to another (Fernet's
# random IV), so finding our own new value means this very call was already applied (a retry
# after a lost reply): 1, and nothing is redone.
# The message ids get the state's TTL on every write (with or without an id), so a session
# remembers every message it applied for as long as it exists: a captured, validly signed
# webhook replayed at any time in the session's life is a duplicate, never an answer. Only the
# newest keeps its reply (a channel retries the message it just sent, not the one before), so
# the ids stay a small hash of short strings: a few dozen bytes a message.
# Why not WATCH/MULTI: redis-py's cluster pipeline, on a connection error after WATCH, goes
# on over a fresh connection that watches nothing, so a conflicting write would be lost in a
# failover; one script is atomic on its own, the same on one server and on a Cluster.
CONTACT_SEEN_TTL = 366 * 24 * 3600  # a number's ended sessions' message ids: a year

_CAS = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[2] then return 1 end
if current ~= ARGV[1] then return 0 end
if ARGV[4] and redis.call('HEXISTS', KEYS[2], ARGV[4]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
if ARGV[4] then
  redis.call('HSET', KEYS[2], ARGV[4], '1', '>', ARGV[4])
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[3])
end
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
"""


def message_field(channel: str, message_id: str) -> bytes:
    """How a message id is kept among those applied: 8 bytes of its hash, not the 38 of
    "sms:SM" and 32 hex digits (a conversation applies a few dozen; two ids of one session
    or number colliding in 64 bits is beyond any count of messages)."""
    return hashlib.blake2b(f"{channel}:{message_id}".encode(), digest_size=8).digest()


def legacy_field(channel: str, message_id: str) -> str:
    """The same as versions before kept it (read, so a retry across an upgrade is known)."""
    return f"{channel}:{message_id}"


@dataclass(frozen=True)
class Duplicate:
    """Returned by `transact` when this message id was already applied; `remembered` is what
    was stored with it the first time (the reply, so a retry can be answered alike)."""

    remembered: bytes | None = None


def connect(url: str | None, data_dir: Path) -> redis.Redis | RedisCluster:
    """The Redis at `url`, or with none an embedded server whose data stays in the data dir.

    The embedded server writes every change to an append-only file, so a killed process (or a
    killed server) comes back to the session where it was."""
    if url:
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("redis+cluster", "rediss+cluster"):
            return _cluster(url)
        if scheme in ("redis+sentinel", "rediss+sentinel"):
            return _sentinel(url)
        return redis.Redis.from_url(url)
    from storage.embedded import open_embedded  # only needed for the embedded default

    return open_embedded(data_dir)


class _ClusterPools:
    def __init__(self, client: RedisCluster):
        self._client = client

    def disconnect(self) -> None:
        self._client.disconnect_connection_pools()


class ClusterClient(RedisCluster):
    """redis-py's RedisCluster, with `connection_pool.disconnect()` like redis.Redis has (what
    the app calls on shutdown), so the rest of tala needs no cluster special case."""

    @property
    def connection_pool(self) -> _ClusterPools:
        return _ClusterPools(self)


def _hosts(url: str, default_port: int) -> tuple[str, list[tuple[str, int]], str, str, str]:
    """(scheme without +..., [(host, port)...], user info, path, query) of a multi-host URL."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for h in hosts.split(","):
        if h.strip():
            one = urlsplit("//" + h.strip())
            nodes.append((one.hostname, one.port or default_port))
    if not nodes:
        raise ValueError(f"{parts.scheme}:// needs at least one host:port")
    return parts.scheme.split("+")[0], nodes, userinfo, parts.path, parts.query


def _cluster(url: str) -> ClusterClient:
    """redis+cluster://[:PASSWORD@]HOST:PORT[,HOST:PORT...]: the hosts are where the client
    starts to discover the cluster (any one that answers is enough)."""
    scheme, nodes, userinfo, path, query = _hosts(url, 6379)
    if path.strip("/") not in ("", "0"):
        raise ValueError("A Redis Cluster has only database 0: drop the /N from REDIS_URL.")
    (host, port), rest = nodes[0], nodes[1:]
    netloc = (userinfo + "@" if userinfo else "") + f"{host}:{port}"
    if ":" in host:
        netloc = (userinfo + "@" if userinfo else "") + f"[{host}]:{port}"
    first = urlunsplit((scheme, netloc, "", query, ""))
    return ClusterClient.from_url(first, startup_nodes=[ClusterNode(h, p) for h, p in rest])


def _sentinel(url: str) -> redis.Redis:
    """redis+sentinel://[[USER]:PASSWORD@]HOST:26379[,HOST:26379...]/SERVICE[/DB]
    [?sentinel_password=...]: the master Sentinel names SERVICE; after a failover the client
    finds the new master by itself. The password is the master's."""
    from redis.sentinel import Sentinel

    scheme, nodes, userinfo, path, query = _hosts(url, 26379)
    names = [p for p in path.split("/") if p]
    if not names or len(names) > 2:
        raise ValueError("Write the Sentinel URL as redis+sentinel://HOST:26379/SERVICE[/DB], "
                         "e.g. redis+sentinel://10.0.0.5:26379,10.0.0.6:26379/tala/0")
    service, db = unquote(names[0]), int(names[1]) if len(names) == 2 else 0
    user, _, password = userinfo.partition(":")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    tls = {"ssl": True} if scheme == "rediss" else {}
    sentinel_kwargs = {"socket_timeout": 5, **tls}
    if options.get("sentinel_password"):
        sentinel_kwargs["password"] = options["sentinel_password"]
    sentinel = Sentinel(nodes, sentinel_kwargs=sentinel_kwargs, **tls)
    return sentinel.master_for(service, db=db, username=unquote(user) or None,
                               password=unquote(password) or None)


@dataclass
class Outcome:
    state: State
    result: Any


class StateStore:
    def __init__(self, client: redis.Redis, crypto: Crypto, prefix: str = "tala"):
        self.r = client
        self.crypto = crypto
        self.prefix = prefix
        self._cas = client.register_script(_CAS)

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

    def remember_for_contact(self, sid: str, channel: str, address_hash: str) -> None:
        """Keep the message ids an ended session applied under its number or chat."""
        fields = [f for f in self.r.hkeys(self.seen_key(sid)) if f != b">"]
        if fields:
            key = self.contact_seen_key(channel, address_hash)
            pipe = self.r.pipeline(transaction=False)
            pipe.hset(key, mapping={f: sid for f in fields})  # which session applied it
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
    def _encode(self, state: State) -> bytes:
        return self.crypto.seal(statecodec.encode(state), subject=subject_of(state))

    def _decode(self, raw: bytes, sid: str) -> State:
        return statecodec.decode(self.crypto.unseal(raw, sid), sid)

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
        return self._decode(raw, sid) if raw else None

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
        keys = [self.state_key(sid), self.seen_key(sid), self.reply_key(sid)]
        field = message_field(*seen) if seen else None
        while True:
            if field:
                pipe = self.r.pipeline(transaction=False)  # one slot: one round trip
                pipe.hmget(keys[1], field, ">", legacy_field(*seen))
                pipe.get(keys[2])
                pipe.get(keys[0])
                (before, newest, before_legacy), reply, raw = pipe.execute()
                if before is not None or before_legacy is not None:
                    fresh = newest in (field, legacy_field(*seen).encode()) and \
                        reply not in (None, b"-")
                    return Duplicate(reply if fresh else None)
            else:
                raw = self.r.get(keys[0])
            if raw is None:
                return None
            new_state, result = fn(self._decode(raw, sid))
            when = wake_at(new_state, result) if wake_at else None
            expiry = ttl(new_state) if callable(ttl) else ttl
            args = [raw, self._encode(new_state), int(expiry)]
            if field:
                args += [field, remember(result) if remember else b"-"]
            if self._write(sid, keys, args, when) == 1:
                return result
            # Someone else changed the session since we read it: again, from the fresh state.

    def _write(self, sid: str, keys: list[str], args: list, when: datetime | None) -> int:
        """The compare-and-set, and the worker's next look at the session, in one round trip.
        The due index is not in the script on purpose: it is global (another Cluster slot),
        and an early or extra wake-up is harmless (the worker looks and reschedules). On a
        Cluster, two calls: redis-py does not pipeline scripts there."""
        if isinstance(self.r, RedisCluster):
            if when is not None:
                self.r.zadd(self.due_key, {sid: when.timestamp()})
            return self._cas(keys=keys, args=args)
        pipe = self.r.pipeline(transaction=False)
        pipe.evalsha(self._cas.sha, len(keys), *keys, *args)
        if when is not None:
            pipe.zadd(self.due_key, {sid: when.timestamp()})
        written, *scheduled = pipe.execute(raise_on_error=False)
        for outcome in scheduled:
            if isinstance(outcome, Exception):
                raise outcome
        if isinstance(written, NoScriptError):
            # A Redis that restarted or failed over has no scripts loaded: load it and run it
            # (nothing ran: NOSCRIPT is answered before the script starts).
            return self._cas(keys=keys, args=args)
        if isinstance(written, Exception):
            raise written
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
        return {k.decode(): json.loads(v) for k, v in self.r.hgetall(self.units_key).items()}

    def ping(self) -> bool:
        return bool(self.r.ping())
