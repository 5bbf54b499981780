"""Queues of earlier versions, moved over by the first process that starts (and looked for
again now and then, for a process of an earlier version still running): a mixin of
storage.queue.SendQueue, which has the keys, scripts and clock these use."""

from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger("tala.queue")

LEGACY_EVERY = 60.0  # seconds between looks for a queue an earlier version is still writing

# Deletes the shared stream of earlier versions only once it is empty (a process of the
# earlier version may still be writing to it).
_DROP_EMPTY = """
if redis.call('XLEN', KEYS[1]) == 0 then return redis.call('DEL', KEYS[1]) end
return 0
"""


class QueueUpgrades:
    def _ensure_ready(self) -> None:
        if not self._ready:
            self._move_untagged()
            self._move_shared()
            self._ready = True
            self._legacy_checked = time.monotonic()

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
                job.setdefault("channel", "sms")
                flat = [x for kv in job.items() for x in kv]
                self._enqueue(keys=[self.job_key(job_id), self._job_stream(job), self.streams,
                                    self.text_key(job_id)], args=[job_id, "", *flat])
            self.r.delete(old_key)
        self.r.delete(old_stream)

    def _move_shared(self) -> None:
        """Jobs queued by a version that had one stream for every channel (`tala:{outq}`) are
        moved to their own channel's stream, pending ones too (one a sender of that version
        is sending is claimed: it is reconciled once the lease is over, as for any sender that
        stopped half-way, so it is not sent twice). Each entry is moved in one script that
        finds it still there: several processes can do this at once."""
        old = self.base
        try:
            if self.r.type(old) != b"stream":
                return
        except redis.ResponseError:
            return
        moved = 0
        for entry, fields in self.r.xrange(old):
            job_id = fields.get(b"job", b"").decode()
            raw = self.r.hmget(self.job_key(job_id), "channel", "lane") if job_id else None
            channel = (raw[0] or b"sms").decode() if raw else "sms"
            lane = (raw[1] or b"").decode() if raw else ""
            try:
                target = self._job_stream({"channel": channel, "lane": lane})
            except ValueError:
                log.error("queued job %s has a channel no sender has; left where it is", job_id)
                continue
            moved += self._move(keys=[old, target, self.streams], args=[entry, job_id, self.group])
        self._drop_empty(keys=[old])
        if moved:
            log.info("moved %d queued job(s) from the shared stream to their channels'", moved)

    def _look_for_legacy(self) -> None:
        """A process of an earlier version may still be queueing: look now and then."""
        if time.monotonic() - self._legacy_checked >= LEGACY_EVERY:
            self._legacy_checked = time.monotonic()
            self._move_untagged()
            self._move_shared()
