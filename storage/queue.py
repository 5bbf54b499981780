"""Outgoing messages: a Redis-backed send queue with one shared rate limit.

    tala:{outq}:CHANNEL       Redis stream of the channel's job ids ready to go (its default
                              lane), consumer group "senders"
    tala:{outq}:CHANNEL:bulk  the channel's bulk lane (`tala invite --from-csv`)
    tala:{outq}:streams       set: the streams above that have been written to
    tala:{outq}:later         sorted set of job ids put off for a later try, scored by not-before
    tala:{outq}:job:ID        hash: channel, lane, status, sid, error, ... (short values only,
                              so Redis keeps it as a compact listpack: a third of the memory)
    tala:{outq}:text:ID       to whom and what (sealed with the session's key) until it is
                              sent (WhatsApp's: as long as its job, for a fallback to SMS);
                              jobs of versions before keep to/body in the hash
    tala:rate:CHANNEL         the next moment a message may go out (all processes share it)
    tala:msg:HASH             which job a provider's message id (keyed hash) belongs to, as
                              versions before kept it for delivery reports (a week): now
                              the report's URL names its job

Every job belongs to one channel (`channel` in its hash, given when it is queued) and is only
ever in that channel's streams: a sender reads only its own channel's streams, so an SMS is
never taken by the Telegram sender (and posted to Telegram with a phone number as chat id).
As a second line, the claim refuses a job whose channel is not the sender's; it is put back in
its own channel's stream, never sent, never marked sent. A sender takes its default lane
(replies, reminders, staff alerts) before its bulk lane, and a bulk job one at a time, so a
conversation's reply or an alert never waits behind a bulk run (RapidPro courier's way).
No key name holds a phone number, chat id or message text: jobs are named by tala's own ids,
and a provider's message id (Telegram's holds the chat) only by its keyed hash.

The streams, the sorted set and the jobs share the `{outq}` hash tag: on a Redis Cluster they
are in one slot, so the scripts that write a job with its stream entry, or move due jobs from
the sorted set into their channel's stream, and the MULTI that puts a job off, run there as
they do on one server. Queues of earlier versions are moved over by the first process that
starts (and looked for again now and then, for a process of the earlier version still
running): `tala:outq` and `tala:job:ID`, from before the tag; and the one stream all channels
shared, `tala:{outq}` (storage/queue_upgrades.py).

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

import json
import logging
import math
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Protocol

import redis

from storage import queue_scripts as lua
from storage.crypto import Crypto
from storage.queue_upgrades import _DROP_EMPTY, QueueUpgrades

log = logging.getLogger("tala.queue")

GROUP = "senders"
DEFAULT, BULK = "default", "bulk"  # the lanes: a sender takes the default lane first
LANES = (DEFAULT, BULK)
# Names under `tala:{outq}:` that are not a channel's stream.
_NOT_CHANNELS = frozenset({"job", "text", "later", "streams", "bulk"})
_CHANNEL = re.compile(r"[a-z][a-z0-9_]{0,31}")
# A job sent or failed for good is kept this long: Twilio's delivery reports come within hours
# (`tala:msg:SID`, which leads a report to its job, lasts a week), and an invitation queued
# again by a bulk run run again must find its job (the invitation is open 14 days by default).
KEEP_SECONDS = 30 * 86400

# What a job's hash needs only until it is sent or failed for good: nothing reads it after.
_ONLY_WHILE_SENDING = ("queued_at", "claimed_ts", "lane", "unsure_ts", "retry_since",
                       "not_before")


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
    stream: str = ""  # the stream the entry is in


def _let_go(r, stream: str, entry: str) -> None:
    """A stream entry done with: acknowledged and deleted (on `r`, a client or a pipeline)."""
    r.xack(stream, GROUP, entry)
    r.xdel(stream, entry)


class SendQueue(QueueUpgrades):
    group = GROUP
    def __init__(self, client: redis.Redis, crypto: Crypto, prefix: str = "tala",
                 lease_seconds: float = 60.0, consumer: str | None = None,
                 retry_seconds: float = 24 * 3600, keep_seconds: float = KEEP_SECONDS,
                 now: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep,
                 keep_text: frozenset[str] = frozenset()):
        self.r = client
        # Channels whose sent messages keep their text as long as their job (WhatsApp's: an
        # undelivered report can still send it again by SMS). Every other's goes once it is
        # sent or failed for good: nothing reads it again (an opt-out in a delivery report
        # finds the number through the invitation), and a job is kept a month.
        self.keep_text = keep_text
        # The queue's clock: claims, backoff, the retry budget and the shared rate all read
        # `now()` and wait with `sleep()`, so a test moves time instead of waiting for it.
        # (Taking over a dead sender's stream entries goes by Redis's own idle time.)
        self.now = now
        self.sleep = sleep
        self.crypto = crypto
        self.prefix = prefix
        self.base = f"{prefix}:{{outq}}"  # every queue key starts so: one hash slot
        self.later = f"{self.base}:later"
        self.streams = f"{self.base}:streams"
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
        self._enqueue = self.r.register_script(lua.ENQUEUE)
        self._claim = self.r.register_script(lua.CLAIM)
        self._rate = self.r.register_script(lua.RATE)
        self._due = self.r.register_script(lua.DUE)
        self._move = self.r.register_script(lua.MOVE)
        self._drop_empty = self.r.register_script(_DROP_EMPTY)  # storage.queue_upgrades
        self._ready = False
        self._groups: set[str] = set()
        self._legacy_checked = 0.0  # time.monotonic() of the last look for an older queue

    # ------------------------------------------------------------------ key names
    def job_key(self, job_id: str) -> str:
        return f"{self.base}:job:{job_id}"

    def text_key(self, job_id: str) -> str:
        return f"{self.base}:text:{job_id}"

    def stream_key(self, channel: str, lane: str = DEFAULT) -> str:
        """The stream of one channel's lane: `tala:{outq}:sms`, `tala:{outq}:sms:bulk`."""
        if not _CHANNEL.fullmatch(channel or "") or channel in _NOT_CHANNELS:
            raise ValueError(f"not a channel a job can be queued on: {channel!r}")
        if lane not in LANES:
            raise ValueError(f"no lane {lane!r}: {', '.join(LANES)}")
        return f"{self.base}:{channel}" if lane == DEFAULT else f"{self.base}:{channel}:{lane}"

    def message_key(self, sid: str) -> str:
        """Which job a provider's message id belongs to, for the delivery reports of messages
        sent by versions before the report's URL named its job. Named by the id's keyed hash:
        Telegram's ids hold the chat, and no key name may."""
        return f"{self.prefix}:msg:{self.crypto.lookup_hash(sid)}"

    def legacy_message_key(self, sid: str) -> str:
        """The same, as versions before named it (Twilio's ids only; kept a week)."""
        return f"{self.prefix}:msg:{sid}"

    # ------------------------------------------------------------------ upgrades
    def _group(self, stream: str) -> None:
        if stream in self._groups:
            return
        try:
            self.r.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._groups.add(stream)

    def _job_stream(self, job: dict[str, str]) -> str:
        """The stream a job (as its hash has it) belongs in. A job queued without a channel,
        before one was asked for, is an SMS: the only channel that sent first then."""
        return self.stream_key(job.get("channel") or "sms",
                               BULK if job.get("lane") == BULK else DEFAULT)

    # ------------------------------------------------------------------ producing
    def enqueue(self, job_id: str, to: str, body: str, *, channel: str, lane: str = DEFAULT,
                key_subject: str | None = None, **meta: str) -> bool:
        """Queue a message once on `channel` (its `lane`): False when this job id was queued
        before. Only a sender of that channel ever takes it. `to` and `body` are encrypted
        for `key_subject` (storage.keys.subject_of; "" for the installation key), by default
        the job's session."""
        if not channel:
            raise ValueError(f"job {job_id} has no channel: every job is queued on one")
        stream = self.stream_key(channel, lane)  # raises for a channel no sender can have
        self._ensure_ready()
        subject = (meta.get("session_id") if key_subject is None else key_subject) or None
        text = self.crypto.seal(json.dumps([to, body], ensure_ascii=False).encode(),
                                subject=subject)
        fields = {"status": "queued", "attempts": "0", "queued_at": str(self.now()),
                  **{k: str(v) for k, v in meta.items()}, "channel": channel, "lane": lane}
        flat = [x for kv in fields.items() for x in kv]
        return bool(self._enqueue(keys=[self.job_key(job_id), stream, self.streams,
                                        self.text_key(job_id)], args=[job_id, text, *flat]))

    def in_line(self, channel: str | None = None) -> int:
        """How many stream entries wait (or are being sent): `channel`'s, or every one's."""
        self._ensure_ready()
        if channel is not None:
            keys = [self.stream_key(channel, lane) for lane in LANES]
        else:
            keys = [k.decode() for k in self.r.smembers(self.streams)]
        return sum(self.r.xlen(k) for k in keys)

    def job(self, job_id: str) -> dict[str, str]:
        self._ensure_ready()  # a queue of an earlier version is moved first
        raw = self.r.hgetall(self.job_key(job_id))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def text(self, job_id: str, fields: dict[str, str]) -> tuple[str, str] | None:
        """To whom and what a job (`fields`: its hash, as `job()` gives it) sends; None once
        it is gone (an anonymous survey's, once sent)."""
        return self._open_text(self.r.get(self.text_key(job_id)), fields)

    def _open_text(self, blob: bytes | None, fields: dict[str, str]) -> tuple[str, str] | None:
        subject = fields.get("session_id") or None
        if blob:
            to, body = json.loads(self.crypto.unseal(blob, subject))
            return to, body
        if fields.get("to"):  # queued by a version before the text had a key of its own
            return (self.crypto.decrypt(fields["to"].encode(), subject),
                    self.crypto.decrypt(fields["body"].encode(), subject))
        return None

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

    def _read(self, channel: str, block_ms: int, count: int) -> list[tuple[str, str, str]]:
        """(stream, entry, job id) of `channel`'s jobs to send, the default lane's first: our
        own pending entries (we were killed), others' stale ones, new ones; of the bulk lane
        at most one new one, so whatever comes into the default lane meanwhile goes next."""
        self._ensure_ready()
        default, bulk = (self.stream_key(channel, lane) for lane in LANES)
        self._group(default)
        self._group(bulk)
        pipe = self.r.pipeline(transaction=False)  # one slot: one round trip on a Cluster too
        pipe.xreadgroup(GROUP, self.consumer, {default: "0", bulk: "0"}, count=count)
        for stream in (default, bulk):
            pipe.xautoclaim(stream, GROUP, self.consumer, min_idle_time=int(self.lease * 1000),
                            count=count)
        pipe.xreadgroup(GROUP, self.consumer, {default: ">"}, count=count)
        mine, stale_default, stale_bulk, new = pipe.execute()
        found: dict[str, list[tuple[str, str, str]]] = {default: [], bulk: []}

        def take(stream, entries) -> None:
            for eid, f in entries or []:
                if f and (eid := eid.decode()) not in {e for _, e, _ in found[stream]}:
                    found[stream].append((stream, eid, f[b"job"].decode()))

        for stream, entries in mine or []:
            take(stream.decode(), entries)
        take(default, stale_default[1])
        take(bulk, stale_bulk[1])
        for stream, entries in new or []:
            take(stream.decode(), entries)
        out = found[default] + found[bulk]
        if not out:
            new = self.r.xreadgroup(GROUP, self.consumer, {bulk: ">"}, count=1)
            if not new and block_ms:
                # Wait for either lane; one of each at most, so a bulk burst arriving now
                # still goes after whatever the default lane has by the next read.
                new = self.r.xreadgroup(GROUP, self.consumer, {default: ">", bulk: ">"},
                                        count=1, block=block_ms)
            for stream, entries in new or []:
                take(stream.decode(), entries)
            out = found[default] + found[bulk]
        return out

    def _promote(self) -> float | None:
        """Move the jobs that are due again into the stream; returns how many seconds until
        the next put-off job is due, or None when none waits."""
        now = self.now()
        nxt = self._due(keys=[self.later, self.streams], args=[repr(now), 100, self.base])
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
            self._look_for_legacy()
            due_in = self._promote()
            wait_ms = block_ms
            if block_ms and due_in is not None:  # wake up for it, not a whole block later
                wait_ms = max(1, min(block_ms, math.ceil(due_in * 1000)))
            batch = self._read(sender.channel, wait_ms, count=10)
            if not batch:
                if block_ms == 0:
                    if due_in is None or due_in > self.wait_seconds:
                        return done
                    # Only jobs put off for a moment: wait here for them (the caller asked for
                    # an empty queue), a little at a time so that stop() is heard.
                    self.sleep(min(max(due_in, 0.01), 0.5))
                continue
            progressed = False
            for stream, entry, job_id in batch:
                if stop() or (max_jobs is not None and tried >= max_jobs):
                    break
                outcome = self._handle(stream, entry, job_id, sender, rate, on_result)
                done += outcome == "finished"
                tried += outcome in ("finished", "retry")
                progressed = progressed or outcome != "skipped"
            if not progressed:
                self.sleep(0.2)  # only jobs another sender is busy with: do not spin
        return done

    def _handle(self, stream: str, entry: str, job_id: str, sender: Sender, rate: float,
                on_result: Callable[[Job, SendResult], None] | None) -> str:
        """'finished', 'retry' (put off for later), or 'skipped' (done already, busy, or not
        this sender's channel)."""
        key = self.job_key(job_id)
        verdict = self._claim(keys=[key], args=[repr(self.now()), self.consumer,
                                                 repr(self.lease), sender.channel]).decode()
        if verdict == "wrong":
            # Never sent here, never marked: back into its own channel's stream. (Logged by
            # job id and channels only: no number, no text.)
            channel, lane = (v.decode() if v else "" for v in self.r.hmget(key, "channel",
                                                                             "lane"))
            fields = {"channel": channel, "lane": lane}
            try:
                target = self._job_stream(fields)
            except ValueError:
                target = None
            log.error("job %s is for channel %s, not %s: refused, not sent", job_id,
                      fields.get("channel") or "sms", sender.channel)
            if target is not None and target != stream:
                self._move(keys=[stream, target, self.streams], args=[entry, job_id, GROUP])
            return "skipped"
        if verdict == "done":
            pipe = self.r.pipeline(transaction=True)
            _let_go(pipe, stream, entry)
            pipe.execute()
            return "skipped"
        if verdict == "busy":
            return "skipped"  # someone is sending it; it stays pending until they finish
        pipe = self.r.pipeline(transaction=False)  # one slot: one round trip
        pipe.hgetall(key)
        pipe.get(self.text_key(job_id))
        raw, blob = pipe.execute()
        f = {k.decode(): v.decode() for k, v in raw.items()}
        to, body = self._open_text(blob, f) or ("", "")
        job = Job(job_id, to, body, f, entry, stream)
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
                find = getattr(sender, "find_job", None)  # a sender that needs the job
                sid = find(job, since) if find else sender.find_sent(job.to, job.body, since)
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
        send_job = getattr(sender, "send_job", None)  # WhatsApp's reads the job's template
        result = send_job(job) if send_job else sender.send(job.to, job.body)
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
        _let_go(pipe, job.stream, job.entry)
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
                _let_go(pipe, job.stream, job.entry)
                pipe.execute()
                return "finished"
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, mapping={**mapping, "recorded": "1"})
        pipe.hdel(key, *_ONLY_WHILE_SENDING)  # a month of a small hash instead
        if job.fields.get("anonymous") == "1":
            pipe.hdel(key, "to", "body")  # an anonymous survey's: nothing left says to whom
        if result.ok and job.fields.get("anonymous") != "1" and \
                (job.fields.get("channel") or "sms") in self.keep_text:
            pipe.expire(self.text_key(job.id), self.keep)
        else:
            pipe.delete(self.text_key(job.id))
        pipe.expire(key, self.keep)
        _let_go(pipe, job.stream, job.entry)
        pipe.execute()
        return "finished"

    def forget(self, matches: Callable[[str], bool]) -> int:
        """Delete every job whose id `matches`, with its stream entry (for erasure)."""
        self._ensure_ready()
        gone = 0
        for stream in sorted(k.decode() for k in self.r.smembers(self.streams)):
            self._group(stream)
            for entry, fields in self.r.xrange(stream):
                job_id = fields.get(b"job", b"").decode()
                if matches(job_id):
                    _let_go(self.r, stream, entry)
        for member in self.r.zrange(self.later, 0, -1):
            if matches(member.decode()):
                self.r.zrem(self.later, member)
        for key in self.r.scan_iter(match=f"{self.base}:job:*"):
            job_id = key.decode()[len(f"{self.base}:job:"):]
            if matches(job_id):
                sid = self.r.hget(key, "sid")
                if sid:
                    self.r.delete(self.message_key(sid.decode()),
                                  self.legacy_message_key(sid.decode()))
                self.r.delete(key, self.text_key(job_id))
                gone += 1
        return gone
