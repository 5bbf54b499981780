"""Outgoing messages: a Redis-backed send queue with one shared rate limit.

    tala:{outq}          Redis stream of job ids ready to go, consumer group "senders"
    tala:{outq}:later    sorted set of job ids put off for a later try, scored by not-before
    tala:{outq}:job:ID   hash: to/body (encrypted), status, sid, error, claimed_at, row, ...
    tala:rate:CHANNEL    the next moment a message may go out (all processes share it)

The stream, the sorted set and the jobs share the `{outq}` hash tag: on a Redis Cluster they
are in one slot, so the scripts that write a job with its stream entry, or move due jobs from
the sorted set into the stream, and the MULTI that puts a job off, run there as they do on one
server. (Queues written before the tag, `tala:outq` and `tala:job:ID`, are moved over by the
first process that starts; see `_move_untagged`.)

A job is sent at most once, also when a sender is killed half-way or the provider's answer
never comes:
- enqueueing is idempotent (a job id is written once), so a bulk run can simply be run again;
- before calling the provider the job is *claimed* (status, time, owner) in one atomic step;
- a stream entry is acknowledged (and deleted) only once the job is sent, has failed for good,
  or is put off, so a killed sender's entries stay pending and are taken over;
- a job whose last try may have reached the provider is *reconciled* before anything else: the
  provider is asked whether that message went out after that try's claim, and it is sent only
  if it did not. That is so for a claim left by a sender that died (after the lease), and for
  a try the sender reports as maybe sent (`SendResult.maybe_sent`: the request was written
  but the answer never came). A provider that cannot say (`ReconcileError`) is asked again
  later; the message is never sent blindly.

A try that failed for now (a 5xx, a 429, no connection) is not retried in the sending thread:
the job is put off (status `retry`, or `unsure` when it may have gone out) into the sorted set,
with exponential backoff capped at `retry_cap`, and moved back into the stream when it is due.
So a long outage holds up nothing else. Only once `retry_seconds` have passed since its first
failed try does a job fail for good. Jobs sent or failed for good keep their hash for
`keep_seconds` (delivery reports, `tala reply`'s status, a bulk run run again), then expire.

The rest of tala hears of a job's outcome (`on_result`: the invitation's delivery status in
SQL, an opt-out) before its stream entry is let go, and the job hash says whether it has
(`recorded`): a sender killed in between leaves the entry pending, and whoever takes it over
tells the rest again instead of sending; a result SQL cannot take now is told again later,
through the sorted set. So an invitation never stays "queued" once its text went out.

Statuses: queued -> claimed -> sent | failed, or claimed -> retry | unsure -> claimed -> ...
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

import redis

from storage.crypto import Crypto

log = logging.getLogger("tala.queue")

GROUP = "senders"
# A job sent or failed for good is kept this long: Twilio's delivery reports come within hours
# (`tala:msg:SID`, which leads a report to its job, lasts a week), and an invitation queued
# again by a bulk run run again must find its job (the invitation is open 14 days by default).
KEEP_SECONDS = 30 * 86400

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
return 1
"""

# Returns 'go' (claimed now), 'recover' (claimed now, but an earlier try may have gone out:
# a dead sender's claim, or a try whose answer never came), 'busy' (someone is sending it right
# now) or 'done' (sent or failed for good). On 'recover', `unsure_ts` is the claim time from
# which the provider is asked: kept if set already (the earliest unknown try), else the claim
# being taken over.
_CLAIM = """
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'sent' or status == 'failed' then
  if redis.call('HGET', KEYS[1], 'recorded') == '0' then return 'record' end
  return 'done'
end
if not status then return 'done' end
local now = tonumber(ARGV[1])
if status == 'claimed' or status == 'unsure' then
  local at = redis.call('HGET', KEYS[1], 'claimed_ts') or '0'
  if status == 'claimed' and now - tonumber(at) < tonumber(ARGV[3]) then return 'busy' end
  local unsure = redis.call('HGET', KEYS[1], 'unsure_ts')
  if not unsure or unsure == '' then unsure = at end
  redis.call('HSET', KEYS[1], 'status', 'claimed', 'claimed_ts', ARGV[1], 'owner', ARGV[2],
             'unsure_ts', unsure)
  return 'recover'
end
redis.call('HSET', KEYS[1], 'status', 'claimed', 'claimed_ts', ARGV[1], 'owner', ARGV[2])
return 'go'
"""

# Moves the jobs put off until now or earlier back into the stream (at most ARGV[2] of them);
# returns the not-before time of the next job still waiting, or nil.
_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('XADD', KEYS[2], '*', 'job', id)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then return nxt[2] end
return false
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
    # The request may have reached the provider (it timed out waiting for the answer, or the
    # connection dropped after it was written): the provider is asked (`find_sent`) before
    # the message is sent again. False means it certainly did not go out.
    maybe_sent: bool = False
    retry_after: float = 0.0  # the provider's wish: no next try (or question) before this

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
                 lease_seconds: float = 60.0, consumer: str | None = None,
                 retry_seconds: float = 24 * 3600, keep_seconds: float = KEEP_SECONDS,
                 now: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.r = client
        # The queue's clock: claims, backoff, the retry budget and the shared rate all read
        # `now()` and wait with `sleep()`, so a test moves time instead of waiting for it.
        # (Taking over a dead sender's stream entries goes by Redis's own idle time.)
        self.now = now
        self.sleep = sleep
        self.crypto = crypto
        self.prefix = prefix
        self.stream = f"{prefix}:{{outq}}"
        self.later = f"{self.stream}:later"
        self.lease = lease_seconds
        # A job that keeps failing for now is tried again for this long after its first
        # failed try, then fails for good.
        self.retry_seconds = retry_seconds
        self.retry_base = 0.2  # the first try again after this; each next one after twice as long
        self.retry_cap = 300.0  # ... but never more than this apart
        # process(block_ms=0) waits for jobs put off until at most this far ahead; later ones
        # are left to the worker.
        self.wait_seconds = 15.0
        self.record_again = 30.0  # a result the rest of tala could not take (SQL away): again
        self.keep = int(keep_seconds)
        # One name per process; a dead process's entries are taken over by any other sender
        # once they have been idle for the lease.
        self.consumer = consumer or f"{socket.gethostname()}:{os.getpid()}"
        self._enqueue = self.r.register_script(_ENQUEUE)
        self._claim = self.r.register_script(_CLAIM)
        self._rate = self.r.register_script(_RATE)
        self._due = self.r.register_script(_DUE)
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
                self.r.expire(self.job_key(job_id), self.keep)
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
                  "queued_at": str(self.now()), **{k: str(v) for k, v in meta.items()}}
        flat = [x for kv in fields.items() for x in kv]
        return bool(self._enqueue(keys=[self.job_key(job_id), self.stream],
                                  args=[job_id, *flat]))

    def job(self, job_id: str) -> dict[str, str]:
        self._ensure_group()  # an untagged queue is moved first
        raw = self.r.hgetall(self.job_key(job_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def left_to_worker(self, job: dict[str, str]) -> bool:
        """Whether a job (as `job()` gives it) is put off for a later try further ahead than
        process(block_ms=0) waits: a running worker (tala serve, tala worker) sends it."""
        return (job.get("status") in ("retry", "unsure")
                and float(job.get("not_before") or 0) > self.now() + self.wait_seconds)

    # ------------------------------------------------------------------ consuming
    def wait_for_slot(self, channel: str, rate: float) -> None:
        """Block until one more message may go out on `channel` at `rate` per second, shared
        by every process that sends."""
        wait = float(self._rate(keys=[f"{self.prefix}:rate:{channel}"],
                                args=[repr(self.now()), repr(1.0 / rate)]))
        if wait > 0:
            self.sleep(wait)

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

    def _promote(self) -> float | None:
        """Move the jobs that are due again into the stream; returns how many seconds until
        the next put-off job is due, or None when none waits."""
        now = self.now()
        nxt = self._due(keys=[self.later, self.stream], args=[repr(now), 100])
        return None if nxt is None else float(nxt) - now

    def process(self, sender: Sender, rate: float,
                on_result: Callable[[Job, SendResult], None] | None = None,
                block_ms: int = 1000, max_jobs: int | None = None,
                stop: Callable[[], bool] = lambda: False) -> int:
        """Send queued jobs until `max_jobs` were tried, `stop()` says so, or (block_ms=0) the
        queue is empty but for jobs put off until more than `wait_seconds` ahead, which are
        left to the worker. Returns how many jobs were finished (sent or failed for good); one
        put off for a later try counts as tried, not finished."""
        done = tried = 0
        while not stop() and (max_jobs is None or tried < max_jobs):
            due_in = self._promote()
            wait_ms = block_ms
            if block_ms and due_in is not None:  # wake up for it, not a whole block later
                wait_ms = max(1, min(block_ms, math.ceil(due_in * 1000)))
            batch = self._read(wait_ms, count=10)
            if not batch:
                if block_ms == 0:
                    if due_in is None or due_in > self.wait_seconds:
                        return done
                    # Only jobs put off for a moment: wait here for them (the caller asked for
                    # an empty queue), a little at a time so that stop() is heard.
                    self.sleep(min(max(due_in, 0.01), 0.5))
                continue
            progressed = False
            for entry, job_id in batch:
                if stop() or (max_jobs is not None and tried >= max_jobs):
                    break
                outcome = self._handle(entry, job_id, sender, rate, on_result)
                done += outcome == "finished"
                tried += outcome in ("finished", "retry")
                progressed = progressed or outcome != "skipped"
            if not progressed:
                self.sleep(0.2)  # only jobs another sender is busy with: do not spin
        return done

    def _handle(self, entry: str, job_id: str, sender: Sender, rate: float,
                on_result: Callable[[Job, SendResult], None] | None) -> str:
        """'finished', 'retry' (put off for later), or 'skipped' (done already, or busy)."""
        key = self.job_key(job_id)
        verdict = self._claim(keys=[key], args=[repr(self.now()), self.consumer,
                                                 repr(self.lease)]).decode()
        if verdict == "done":
            pipe = self.r.pipeline(transaction=True)
            pipe.xack(self.stream, GROUP, entry)
            pipe.xdel(self.stream, entry)
            pipe.execute()
            return "skipped"
        if verdict == "busy":
            return "skipped"  # someone is sending it; it stays pending until they finish
        f = self.job(job_id)
        job = Job(job_id, self.crypto.decrypt(f["to"].encode()),
                  self.crypto.decrypt(f["body"].encode()), f, entry)
        if verdict == "record":
            # Sent (or failed) by a sender that stopped before telling the rest of tala.
            return self._finish(job, SendResult(sid=f["sid"]) if f["status"] == "sent" else
                                SendResult(error=f.get("error", ""),
                                           error_code=int(f["error_code"])
                                           if f.get("error_code") else None,
                                           opted_out=f.get("opted_out") == "1"), on_result)
        if verdict == "recover":
            since = datetime.fromtimestamp(float(f.get("unsure_ts") or "0") - 5, timezone.utc)
            try:
                sid = sender.find_sent(job.to, job.body, since)
            except ReconcileError:
                # Unknown: asked again later, never sent blindly. (What it says is not kept:
                # it can quote the request's URL, which holds the number.)
                return self._again(job, SendResult(
                    error="could not ask the provider whether it went out", permanent=False,
                    maybe_sent=True), on_result, tried=False)
            if sid:
                return self._finish(job, SendResult(sid=sid), on_result)
            since_first = float(f.get("retry_since") or "inf")
            if self.now() - since_first >= self.retry_seconds:
                # The try that may have gone out did not, and there is no time for another.
                return self._finish(job, SendResult(error=f.get("error") or "not sent"),
                                    on_result)
        self.wait_for_slot(sender.channel, rate)
        result = sender.send(job.to, job.body)
        if not result.ok and not result.permanent:
            return self._again(job, result, on_result, tried=True)
        return self._finish(job, result, on_result)

    def _again(self, job: Job, result: SendResult,
               on_result: Callable[[Job, SendResult], None] | None, tried: bool) -> str:
        """Put a job that failed for now off until its next try (backing off), or fail it for
        good once `retry_seconds` have passed since its first failed try. `tried`: this
        result is a send's (else the provider could not say whether an earlier one went out).
        """
        now = self.now()
        attempts = int(job.fields.get("attempts", "0")) + 1
        since = float(job.fields.get("retry_since") or now)
        left = since + self.retry_seconds - now
        # A send that may have gone out is always asked about once more, budget or not.
        if left <= 0 and not (tried and result.maybe_sent):
            unknown = "; whether it went out is not known" if result.maybe_sent else ""
            return self._finish(job, SendResult(error=f"{result.error}{unknown}"[:300],
                                                error_code=result.error_code), on_result)
        backoff = min(self.retry_base * 2 ** (attempts - 1), self.retry_cap, max(left, 0))
        not_before = now + max(backoff, result.retry_after)
        mapping = {"status": "unsure" if result.maybe_sent else "retry",
                   "attempts": str(attempts), "error": result.error,
                   "retry_since": repr(since), "not_before": repr(not_before)}
        if tried:
            # This try's claim is where the provider is asked from (if it may have gone out);
            # a try that certainly did not go out leaves nothing to ask about.
            mapping["unsure_ts"] = job.fields["claimed_ts"] if result.maybe_sent else ""
        pipe = self.r.pipeline(transaction=True)  # one slot: atomic on a Cluster too
        pipe.hset(self.job_key(job.id), mapping=mapping)
        pipe.zadd(self.later, {job.id: not_before})
        pipe.xack(self.stream, GROUP, job.entry)
        pipe.xdel(self.stream, job.entry)
        pipe.execute()
        return "retry"

    def _finish(self, job: Job, result: SendResult,
                on_result: Callable[[Job, SendResult], None] | None) -> str:
        mapping = {"status": "sent", "sid": result.sid} if result.ok else {
            "status": "failed", "error": result.error, "error_code": str(result.error_code or ""),
            "opted_out": "1" if result.opted_out else ""}
        mapping["finished_at"] = str(self.now())
        key = self.job_key(job.id)
        # The outcome first, kept even if this process dies now; then the rest of tala is told
        # (on_result: the invitation's delivery status in SQL, an opt-out); only then is the
        # stream entry let go. A sender killed in between leaves the entry pending, and whoever
        # takes it over finds 'recorded' 0 and tells the rest again (on_result is idempotent):
        # never sent again, never left saying "queued".
        if on_result:
            self.r.hset(key, mapping={**mapping, "recorded": "0"})
            try:
                on_result(job, result)
            except Exception as e:  # noqa: BLE001 - whatever it was, the send itself is done
                # SQL away, say: told again in a while, through the retry set; the sender
                # goes on with the next job meanwhile.
                log.warning("a send's result could not be recorded (%s); trying again in "
                            "%.0f s", type(e).__name__, self.record_again)
                pipe = self.r.pipeline(transaction=True)
                pipe.zadd(self.later, {job.id: self.now() + self.record_again})
                pipe.xack(self.stream, GROUP, job.entry)
                pipe.xdel(self.stream, job.entry)
                pipe.execute()
                return "finished"
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, mapping={**mapping, "recorded": "1"})
        pipe.expire(key, self.keep)
        pipe.xack(self.stream, GROUP, job.entry)
        pipe.xdel(self.stream, job.entry)
        pipe.execute()
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
        for member in self.r.zrange(self.later, 0, -1):
            if matches(member.decode()):
                self.r.zrem(self.later, member)
        for key in self.r.scan_iter(match=f"{self.stream}:job:*"):
            job_id = key.decode()[len(f"{self.stream}:job:"):]
            if matches(job_id):
                sid = self.r.hget(key, "sid")
                if sid:
                    self.r.delete(f"{self.prefix}:msg:{sid.decode()}")
                self.r.delete(key)
                gone += 1
        return gone
