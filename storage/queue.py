"""Outgoing messages: a Redis-backed send queue with one shared rate limit.

    tala:{outq}          Redis stream of job ids, consumer group "senders"
    tala:{outq}:job:ID   hash: to/body (encrypted), status, sid, error, claimed_at, row, ...
    tala:rate:CHANNEL    the next moment a message may go out (all processes share it)

The stream and the jobs share the `{outq}` hash tag: on a Redis Cluster they are in one slot,
so the script that writes a job and its stream entry together, and the MULTI that puts a job
back in line, run there as they do on one server. (Queues written before the tag, `tala:outq`
and `tala:job:ID`, are moved over by the first process that starts; see `_move_untagged`.)

A job is sent at most once, also when a sender is killed half-way:
- enqueueing is idempotent (a job id is written once), so a bulk run can simply be run again;
- before calling the provider the job is *claimed* (status, time, owner) in one atomic step;
- a stream entry is acknowledged only once the job is sent or has failed for good, so a
  killed sender's entries stay pending and are taken over;
- a job found claimed by a sender that died is *reconciled* first: the provider is asked
  whether that message went out after the claim, and it is sent only if it did not.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

import redis

from storage.crypto import Crypto

GROUP = "senders"

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
return 1
"""

# Returns 'go' (claimed now), 'recover' (a dead sender's claim, taken over), 'busy' (someone
# is sending it right now) or 'done' (sent or failed for good).
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'failed' or not status then return 'done' end
local now = tonumber(ARGV[1])
if status == 'claimed' then
  local at = tonumber(redis.call('HGET', KEYS[1], 'claimed_ts') or '0')
  if now - at < tonumber(ARGV[3]) then return 'busy' end
  redis.call('HSET', KEYS[1], 'claimed_ts', ARGV[1], 'owner', ARGV[2])
  return 'recover'
end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'claimed_ts', ARGV[1], 'owner', ARGV[2])
return 'go'
"""

_RATE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt < now then nxt = now end
redis.call('SET', KEYS[1], tostring(nxt + interval), 'PX', 60000 + math.ceil(interval * 1000))
return tostring(nxt - now)
"""


class ReconcileError(RuntimeError):
    """The provider could not say whether a claimed message went out."""


@dataclass(frozen=True)
class SendResult:
    sid: str | None = None
    error_code: int | None = None
    error: str = ""
    permanent: bool = True  # False: worth trying again later (a 5xx, a timeout)
    opted_out: bool = False  # the recipient has said STOP: never send to them again

    @property
    def ok(self) -> bool:
        return self.sid is not None


class Sender(Protocol):
    channel: str

    def send(self, to: str, body: str) -> SendResult: ...

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        """The id of a message with this body sent to `to` after `since`, if the provider has
        one: how a claim left by a killed sender is reconciled."""


@dataclass
class Job:
    id: str
    to: str
    body: str
    fields: dict[str, str]
    entry: str = ""


class SendQueue:
    def __init__(self, client: redis.Redis, crypto: Crypto, prefix: str = "tala",
                 lease_seconds: float = 60.0, consumer: str | None = None):
        self.r = client
        self.crypto = crypto
        self.prefix = prefix
        self.stream = f"{prefix}:{{outq}}"
        self.lease = lease_seconds
        # One name per process; a dead process's entries are taken over by any other sender
        # once they have been idle for the lease.
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self._enqueue = self.r.register_script(_ENQUEUE)
        self._claim = self.r.register_script(_CLAIM)
        self._rate = self.r.register_script(_RATE)
        self._group_ready = False

    def job_key(self, job_id: str) -> str:
        return f"{self.stream}:job:{job_id}"

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.r.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._move_untagged()
        self._group_ready = True

    def _move_untagged(self) -> None:
        """Jobs queued before the keys had their hash tag (`tala:outq`, `tala:job:ID`) are
        moved to the tagged keys, so an upgrade loses no queued message. Safe when several
        processes do it at once: a job is written once, and a job in the stream twice is still
        sent once (the claim)."""
        old_stream = f"{self.prefix}:outq"
        if not self.r.exists(old_stream):
            return
        for _, fields in self.r.xrange(old_stream):
            job_id = fields.get(b"job", b"").decode()
            old_key = f"{self.prefix}:job:{job_id}"
            raw = self.r.hgetall(old_key) if job_id else None
            if not raw:
                continue
            job = {k.decode(): v.decode() for k, v in raw.items()}
            if job.get("status") in ("sent", "failed"):
                self.r.hset(self.job_key(job_id), mapping=job)  # kept for delivery reports
            else:
                # Queued, or claimed (then reconciled with the provider once the lease is
                # over, as for any sender that stopped half-way).
                flat = [x for kv in job.items() for x in kv]
                self._enqueue(keys=[self.job_key(job_id), self.stream], args=[job_id, *flat])
            self.r.delete(old_key)
        self.r.delete(old_stream)

    # ------------------------------------------------------------------ producing
    def enqueue(self, job_id: str, to: str, body: str, **meta: str) -> bool:
        """Queue a message once: False when this job id was queued before."""
        self._ensure_group()
        fields = {"status": "queued", "to": self.crypto.encrypt(to).decode(),
                  "body": self.crypto.encrypt(body).decode(), "attempts": "0",
                  "queued_at": str(time.time()), **{k: str(v) for k, v in meta.items()}}
        flat = [x for kv in fields.items() for x in kv]
        return bool(self._enqueue(keys=[self.job_key(job_id), self.stream],
                                  args=[job_id, *flat]))

    def job(self, job_id: str) -> dict[str, str]:
        self._ensure_group()  # an untagged queue is moved first
        raw = self.r.hgetall(self.job_key(job_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    # ------------------------------------------------------------------ consuming
    def wait_for_slot(self, channel: str, rate: float) -> None:
        """Block until one more message may go out on `channel` at `rate` per second, shared
        by every process that sends."""
        wait = float(self._rate(keys=[f"{self.prefix}:rate:{channel}"],
                                args=[repr(time.time()), repr(1.0 / rate)]))
        if wait > 0:
            time.sleep(wait)

    def _read(self, block_ms: int, count: int) -> list[tuple[str, str]]:
        self._ensure_group()
        out = []
        # Our own pending entries first (we were killed), then others' stale ones, then new.
        mine = self.r.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=count)
        for _, entries in mine or []:
            out += [(eid.decode(), f[b"job"].decode()) for eid, f in entries if f]
        if not out:
            claimed = self.r.xautoclaim(self.stream, GROUP, self.consumer,
                                        min_idle_time=int(self.lease * 1000), count=count)
            out += [(eid.decode(), f[b"job"].decode()) for eid, f in claimed[1] if f]
        if not out:
            new = self.r.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=count,
                                    block=block_ms or None)
            for _, entries in new or []:
                out += [(eid.decode(), f[b"job"].decode()) for eid, f in entries]
        return out

    def process(self, sender: Sender, rate: float,
                on_result: Callable[[Job, SendResult], None] | None = None,
                block_ms: int = 1000, max_jobs: int | None = None,
                stop: Callable[[], bool] = lambda: False) -> int:
        """Send queued jobs until the queue is empty (block_ms=0), `max_jobs` were tried, or
        `stop()` says so. Returns how many jobs were finished (sent or failed for good); one
        put back for a later try counts as tried, not finished."""
        done = tried = 0
        while not stop() and (max_jobs is None or tried < max_jobs):
            batch = self._read(block_ms, count=10)
            if not batch:
                if block_ms == 0:
                    return done
                continue
            progressed = False
            for entry, job_id in batch:
                if stop() or (max_jobs is not None and tried >= max_jobs):
                    break
                outcome = self._handle(entry, job_id, sender, rate, on_result)
                done += outcome == "finished"
                tried += outcome in ("finished", "retry")
                progressed = progressed or outcome == "finished"
            if not progressed:
                time.sleep(0.2)  # only jobs another sender is busy with: do not spin
        return done

    def _handle(self, entry: str, job_id: str, sender: Sender, rate: float,
                on_result: Callable[[Job, SendResult], None] | None) -> str:
        """'finished', 'retry' (put back for later), or 'skipped' (done already, or busy)."""
        key = self.job_key(job_id)
        verdict = self._claim(keys=[key], args=[repr(time.time()), self.consumer,
                                                 repr(self.lease)]).decode()
        if verdict == "done":
            self.r.xack(self.stream, GROUP, entry)
            return "skipped"
        if verdict == "busy":
            return "skipped"  # someone is sending it; it stays pending until they finish
        f = self.job(job_id)
        job = Job(job_id, self.crypto.decrypt(f["to"].encode()),
                  self.crypto.decrypt(f["body"].encode()), f, entry)
        if verdict == "recover":
            since = datetime.fromtimestamp(float(f.get("claimed_ts", "0")) - 5, timezone.utc)
            try:
                sid = sender.find_sent(job.to, job.body, since)
            except ReconcileError:
                return "skipped"  # unknown: stays pending, looked at again after the lease
            if sid:
                return self._finish(job, SendResult(sid=sid), on_result)
        self.wait_for_slot(sender.channel, rate)
        result = sender.send(job.to, job.body)
        if not result.ok and not result.permanent:
            attempts = int(f.get("attempts", "0")) + 1
            if attempts < 5:
                # Back in line: a fresh stream entry, this one acknowledged.
                pipe = self.r.pipeline(transaction=True)  # one slot: atomic on a Cluster too
                pipe.hset(key, mapping={"status": "queued", "attempts": str(attempts),
                                        "error": result.error})
                pipe.xadd(self.stream, {"job": job_id})
                pipe.xack(self.stream, GROUP, entry)
                pipe.execute()
                time.sleep(min(2 ** attempts * 0.1, 5))
                return "retry"
        return self._finish(job, result, on_result)

    def _finish(self, job: Job, result: SendResult,
                on_result: Callable[[Job, SendResult], None] | None) -> str:
        mapping = {"status": "sent", "sid": result.sid} if result.ok else {
            "status": "failed", "error": result.error, "error_code": str(result.error_code or ""),
            "opted_out": "1" if result.opted_out else ""}
        mapping["finished_at"] = str(time.time())
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(self.job_key(job.id), mapping=mapping)
        pipe.xack(self.stream, GROUP, job.entry)
        pipe.execute()
        if on_result:
            on_result(job, result)
        return "finished"

    def forget(self, matches: Callable[[str], bool]) -> int:
        """Delete every job whose id `matches`, with its stream entry (for erasure)."""
        self._ensure_group()
        gone = 0
        for entry, fields in self.r.xrange(self.stream):
            job_id = fields.get(b"job", b"").decode()
            if matches(job_id):
                self.r.xack(self.stream, GROUP, entry)
                self.r.xdel(self.stream, entry)
        for key in self.r.scan_iter(match=f"{self.stream}:job:*"):
            job_id = key.decode()[len(f"{self.stream}:job:"):]
            if matches(job_id):
                sid = self.r.hget(key, "sid")
                if sid:
                    self.r.delete(f"{self.prefix}:msg:{sid.decode()}")
                self.r.delete(key)
                gone += 1
        return gone
