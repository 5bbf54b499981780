"""The send queue on its own (storage/queue.py), with a scripted sender: tries put off in Redis
rather than slept on, the retry budget, asking the provider about a try that may have gone out,
and how long a finished job is kept. Runs on the embedded Redis and on a real server."""

from __future__ import annotations

import time
from datetime import datetime
from itertools import pairwise

import pytest

from storage.queue import KEEP_SECONDS, ReconcileError, SendQueue, SendResult

TO = "+46701234567"
DOWN = SendResult(error="Twilio 503: down", error_code=20503, permanent=False)
NO_ANSWER = SendResult(error="Twilio did not answer: ReadTimeout", permanent=False,
                       maybe_sent=True)


class Killed(BaseException):
    """A sender process dying mid-way (not an error anything in tala would catch)."""


class Scripted:
    """A sender that answers each send (and each question) with the next scripted result, or
    raises it; and records what it was asked, when (by the queue's clock)."""

    channel = "sms"
    now = staticmethod(time.time)

    def __init__(self, sends=(), finds=()):
        self.sends, self.finds = list(sends), list(finds)
        self.sent: list[tuple[float, str]] = []  # (when, body)
        self.asked: list[datetime] = []  # find_sent's `since`

    def send(self, to: str, body: str) -> SendResult:
        self.sent.append((self.now(), body))
        if self.sends:
            return self.sends.pop(0)
        return SendResult(sid=f"SM{len(self.sent)}")

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        self.asked.append(since)
        answer = self.finds.pop(0) if self.finds else None
        if isinstance(answer, Exception):
            raise answer
        return answer


class QueueClock:
    """The real time plus however far the queue (or the test) slept: sleeping moves the clock
    at once instead of waiting. Real time still passes, so a worker blocked in Redis for a
    moment sees that moment go by."""

    def __init__(self):
        self.slept = 0.0

    def now(self) -> float:
        return time.time() + self.slept

    def sleep(self, seconds: float) -> None:
        self.slept += max(seconds, 0.0)


@pytest.fixture
def qclock(monkeypatch) -> QueueClock:
    c = QueueClock()
    monkeypatch.setattr(Scripted, "now", staticmethod(c.now))
    return c


@pytest.fixture
def queue(store, qclock):
    q = SendQueue(store.r, store.crypto, consumer="test:1", now=qclock.now, sleep=qclock.sleep)
    q.retry_base = 1.0  # on the queue's clock: a budget of minutes costs no time
    return q


def _until(done, what: str, timeout: float = 20.0, every=lambda: None) -> None:
    """Poll `done()` (calling `every()` before each look) until it is true, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        every()
        if done():
            return
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.02)


def _sends(sender: Scripted, body: str) -> list[float]:
    return [at for at, b in sender.sent if b == body]


def test_a_job_put_off_waits_in_redis_and_holds_up_nothing_behind_it(queue):
    sender = Scripted(sends=[SendResult(error="Twilio 429", permanent=False, retry_after=60)])
    queue.enqueue("a", TO, "first", channel="sms")
    queue.enqueue("b", TO, "second", channel="sms")
    started = queue.now()
    assert queue.process(sender, rate=1000, block_ms=0) == 1  # b sent; a is left for later
    assert queue.now() - started < 1  # not slept on: a minute's wait is the worker's
    assert [b for _, b in sender.sent] == ["first", "second"]
    a = queue.job("a")
    assert a["status"] == "retry" and a["attempts"] == "1" and a["error"] == "Twilio 429"
    assert queue.job("b")["status"] == "sent"
    not_before = queue.r.zscore(queue.later, "a")
    assert not_before == pytest.approx(queue.now() + 60, abs=1)
    assert float(a["not_before"]) == pytest.approx(not_before)
    assert queue.left_to_worker(a)
    assert queue.in_line() == 0  # nothing left in line: finished entries go

    queue.sleep(61)  # a minute later

    assert queue.process(sender, rate=1000, block_ms=0) == 1
    assert queue.job("a")["status"] == "sent"
    assert _sends(sender, "first") and len(_sends(sender, "first")) == 2
    assert queue.r.zcard(queue.later) == 0
    assert queue.process(sender, rate=1000, block_ms=0) == 0  # nothing more, ever
    assert len(sender.sent) == 3


def test_a_worker_sending_with_block_ms_wakes_up_for_a_retry_when_it_is_due(queue):
    queue.retry_base = 0.05  # a worker blocked in Redis waits in real time
    sender = Scripted(sends=[DOWN])
    queue.enqueue("a", TO, "Hej", channel="sms")
    sent_at: list[float] = []
    queue.process(sender, rate=1000, block_ms=5000, stop=lambda: bool(sent_at),
                  on_result=lambda job, result: sent_at.append(queue.now()))
    first, second = _sends(sender, "Hej")
    # 0.05 s later, not a whole 5 s block later.
    assert 0.04 <= second - first < 1, second - first
    assert queue.job("a")["status"] == "sent"


def test_retries_back_off_and_fail_for_good_only_once_the_budget_is_spent(queue):
    queue.retry_seconds = 60  # on the queue's clock: no real minute goes by
    sender = Scripted(sends=[DOWN] * 100)
    queue.enqueue("a", TO, "Hej", channel="sms")
    failed = []
    started = queue.now()
    for _ in range(100):  # as the worker does: each try when it is due, until it fails
        queue.process(sender, rate=1000, block_ms=0,
                      on_result=lambda job, result: failed.append(result))
        due = queue.r.zscore(queue.later, "a")
        if due is None:
            break
        queue.sleep(due - queue.now())
    took = queue.now() - started
    tries = _sends(sender, "Hej")
    gaps = [b - a for a, b in pairwise(tries)]
    assert all(b > a for a, b in pairwise(gaps[:-1])), gaps  # each wait longer than the last
    assert 60 <= took < 65, took  # tried for the whole budget, the last try at its end
    assert tries[-1] - tries[0] == pytest.approx(60, abs=1)
    job = queue.job("a")
    assert job["status"] == "failed" and job["error"] == "Twilio 503: down"
    assert int(job["attempts"]) == len(tries) - 1
    [result] = failed
    assert not result.ok and result.error == "Twilio 503: down"


def test_a_try_that_may_have_gone_out_is_asked_about_and_not_sent_again(queue):
    sender = Scripted(sends=[NO_ANSWER], finds=["SMtaken"])
    queue.enqueue("a", TO, "Hej", channel="sms")
    claimed = []
    real_claim = queue._claim

    def claim(keys, args):
        claimed.append(float(args[0]))
        return real_claim(keys=keys, args=args)

    queue._claim = claim
    queue.process(sender, rate=1000, block_ms=0)
    assert len(sender.sent) == 1  # sent once, never blindly again
    job = queue.job("a")
    assert (job["status"], job["sid"]) == ("sent", "SMtaken")
    # Twilio is asked about messages since that try's claim (less a margin for its clock).
    [since] = sender.asked
    assert since.timestamp() == pytest.approx(claimed[0] - 5, abs=0.01)


def test_a_try_that_did_not_go_out_after_all_is_sent_again_once(queue):
    sender = Scripted(sends=[NO_ANSWER], finds=[None])
    queue.enqueue("a", TO, "Hej", channel="sms")
    queue.process(sender, rate=1000, block_ms=0)
    assert len(sender.asked) == 1 and len(sender.sent) == 2
    assert queue.job("a")["status"] == "sent"


def test_a_provider_that_cannot_say_is_asked_again_later_and_never_sent_blindly(queue):
    sender = Scripted(sends=[NO_ANSWER], finds=[ReconcileError("list: 503")] * 3 + ["SMtaken"])
    queue.enqueue("a", TO, "Hej", channel="sms")
    queue.process(sender, rate=1000, block_ms=0)
    assert len(sender.sent) == 1 and len(sender.asked) == 4
    assert len(set(sender.asked)) == 1  # always about the same try, however often asked
    job = queue.job("a")
    assert (job["status"], job["sid"]) == ("sent", "SMtaken")


def test_a_try_that_may_have_gone_out_is_never_failed_unasked(queue):
    """Past the budget, a try that may have gone out is asked about once more; it is recorded
    as sent if it went out, and failed (not sent again) if it did not."""
    queue.retry_seconds = 0.0
    went_out = Scripted(sends=[NO_ANSWER], finds=["SMtaken"])
    queue.enqueue("a", TO, "Hej", channel="sms")
    queue.process(went_out, rate=1000, block_ms=0)
    assert queue.job("a")["status"] == "sent" and len(went_out.sent) == 1
    did_not = Scripted(sends=[NO_ANSWER], finds=[None])
    queue.enqueue("b", TO, "Hej då", channel="sms")
    queue.process(did_not, rate=1000, block_ms=0)
    assert len(did_not.sent) == 1 and len(did_not.asked) == 1
    assert queue.job("b")["status"] == "failed"


def _dead_sender(queue: SendQueue) -> SendQueue:
    """Another process's sender on the same clock, whose lease is over quickly."""
    return SendQueue(queue.r, queue.crypto, lease_seconds=0.3, consumer="dead:1",
                     now=queue.now, sleep=queue.sleep)


def _take_over(queue: SendQueue, sender: Scripted, until, **kw) -> None:
    """The lease passes (on the queue's clock at once; Redis's idle time of the dead sender's
    stream entry, which decides when it may be taken over, in real time): `queue` processes
    until `until()` holds."""
    queue.lease = 0.3
    queue.sleep(1.5)
    _until(until, "the dead sender's job taken over",
           every=lambda: queue.process(sender, rate=1000, block_ms=0, **kw))


def test_a_dead_senders_claim_is_asked_about_from_the_time_of_that_claim(queue):
    class DiesSending(Scripted):
        def send(self, to, body):
            raise Killed

    dead = _dead_sender(queue)
    queue.enqueue("a", TO, "Hej", channel="sms")
    with pytest.raises(Killed):
        dead.process(DiesSending(), rate=1000, block_ms=0)
    dead_claim = float(queue.job("a")["claimed_ts"])
    sender = Scripted(finds=["SMtaken"])
    _take_over(queue, sender, lambda: sender.asked)
    # From the dead claim, not from the take-over: a lease of a minute would otherwise hide
    # the message the dead sender got out.
    [since] = sender.asked
    assert since.timestamp() == pytest.approx(dead_claim - 5, abs=0.01)
    assert sender.sent == [] and queue.job("a")["sid"] == "SMtaken"


def test_a_sender_killed_before_telling_the_result_leaves_it_told_not_sent_again(queue):
    """Killed between the send and telling the rest of tala (the invitation's delivery status
    in SQL): whoever takes the job over tells it, and sends nothing."""
    def dies(job, result):
        raise Killed

    dead = _dead_sender(queue)
    queue.enqueue("a", TO, "Hej", channel="sms")
    with pytest.raises(Killed):
        dead.process(Scripted(), rate=1000, block_ms=0, on_result=dies)
    assert queue.job("a")["status"] == "sent" and queue.job("a")["recorded"] == "0"
    told, sender = [], Scripted()
    _take_over(queue, sender, lambda: told, on_result=lambda j, r: told.append((j.id, r)))
    assert sender.sent == [] and sender.asked == []
    assert told == [("a", SendResult(sid="SM1"))]
    assert queue.job("a")["recorded"] == "1" and queue.in_line() == 0
    queue.process(sender, rate=1000, block_ms=0, on_result=lambda j, r: told.append((j.id, r)))
    assert len(told) == 1  # told once


def test_a_result_sql_cannot_take_now_is_told_again_later_and_holds_up_nothing(queue):
    told: list[str] = []
    down = [True]

    def record(job, result):
        if down[0] and job.id == "a":
            raise ConnectionError("SQL away")
        told.append(job.id)

    sender = Scripted()
    queue.enqueue("a", TO, "first", channel="sms")
    queue.enqueue("b", TO, "second", channel="sms")
    queue.process(sender, rate=1000, block_ms=0, on_result=record)
    assert [b for _, b in sender.sent] == ["first", "second"] and told == ["b"]
    assert queue.job("a")["recorded"] == "0"
    again = queue.r.zscore(queue.later, "a")
    assert again == pytest.approx(queue.now() + queue.record_again, abs=1)
    down[0] = False
    queue.sleep(queue.record_again)  # the half minute has passed
    queue.process(sender, rate=1000, block_ms=0, on_result=record)
    assert told == ["b", "a"] and len(sender.sent) == 2  # told, never sent again
    assert queue.job("a")["recorded"] == "1" and queue.r.zcard(queue.later) == 0


def test_finished_jobs_expire_and_waiting_ones_do_not(queue):
    sender = Scripted(sends=[SendResult(error="Twilio 21211: bad number", error_code=21211),
                             SendResult(sid="SM1"),
                             SendResult(error="Twilio 429", permanent=False, retry_after=600)])
    for job_id in ("failed", "sent", "waiting"):
        queue.enqueue(job_id, TO, job_id, channel="sms")
    assert queue.r.ttl(queue.job_key("sent")) == -1  # queued: kept until it is done
    queue.process(sender, rate=1000, block_ms=0)
    assert [queue.job(j)["status"] for j in ("failed", "sent", "waiting")] == [
        "failed", "sent", "retry"]
    for job_id in ("failed", "sent"):
        assert KEEP_SECONDS - 60 < queue.r.ttl(queue.job_key(job_id)) <= KEEP_SECONDS
        assert not queue.r.exists(queue.text_key(job_id))  # nothing sends it again
    assert queue.r.ttl(queue.job_key("waiting")) == -1
    assert queue.r.ttl(queue.text_key("waiting")) == -1


def test_a_job_kept_for_a_month_is_small(queue):
    """A sent job is kept 30 days (delivery reports, a bulk run run again): its hash holds
    short values only, so Redis keeps it as a listpack; the text has a key of its own."""
    body = "Hej! Socialtjänsten vill gärna veta hur du har det. " * 3  # a long invitation
    queue.enqueue("invite:s1:0", TO, body, channel="sms", session_id="s1", kind="invite")
    queue.process(Scripted(sends=[SendResult(sid="SM" + "0" * 32)]), rate=1000, block_ms=0)
    key = queue.job_key("invite:s1:0")
    assert queue.job("invite:s1:0")["status"] == "sent"
    assert queue.r.object("encoding", key) in (b"listpack", b"ziplist")  # Redis 7, 6
    assert queue.text("invite:s1:0", queue.job("invite:s1:0")) is None  # sent: it goes
    assert queue.r.memory_usage(key, samples=0) < 400  # 1,800 B with the text in the hash

    # A channel that may send it again later (WhatsApp's fallback to SMS) keeps it, sealed.
    queue.keep_text = frozenset({"sms"})
    queue.enqueue("invite:s2:0", TO, body, channel="sms", session_id="s2", kind="invite")
    queue.process(Scripted(sends=[SendResult(sid="SM" + "1" * 32)]), rate=1000, block_ms=0)
    assert queue.text("invite:s2:0", queue.job("invite:s2:0")) == (TO, body)
    assert body.encode() not in queue.r.get(queue.text_key("invite:s2:0"))
    assert KEEP_SECONDS - 60 < queue.r.ttl(queue.text_key("invite:s2:0")) <= KEEP_SECONDS


def test_a_job_queued_by_a_version_before_still_sends(queue):
    """Jobs of versions before keep to/body in the hash: an upgrade sends them as they were."""
    queue.enqueue("old", TO, "ignored", channel="sms")
    queue.r.delete(queue.text_key("old"))
    queue.r.hset(queue.job_key("old"), mapping={"to": queue.crypto.encrypt(TO).decode(),
                                                "body": queue.crypto.encrypt("Hej").decode()})
    sender = Scripted(sends=[SendResult(sid="SM1")])
    queue.process(sender, rate=1000, block_ms=0)
    assert [b for _, b in sender.sent] == ["Hej"] and queue.job("old")["status"] == "sent"


def test_forget_takes_a_job_out_of_the_retries_too(queue):
    sender = Scripted(sends=[SendResult(error="Twilio 429", permanent=False, retry_after=600)])
    queue.enqueue("invite:s1:0", TO, "Hej", channel="sms")
    queue.process(sender, rate=1000, block_ms=0)
    assert queue.r.zscore(queue.later, "invite:s1:0") is not None
    assert queue.forget(lambda job_id: job_id.startswith("invite:s1:")) == 1
    assert queue.r.zcard(queue.later) == 0 and queue.job("invite:s1:0") == {}
    queue.r.zadd(queue.later, {"invite:s1:0": 0})  # even were it left behind: not sent
    queue.process(sender, rate=1000, block_ms=0)
    assert len(sender.sent) == 1


def test_a_sent_job_outlives_its_invitation(sms_app):
    """A bulk run run again on the last day of an invitation finds its job (and so does not
    send the invitation twice), whatever TALA_INVITATION_DAYS says."""
    assert sms_app.queue.keep >= KEEP_SECONDS
    assert sms_app.queue.keep >= sms_app.runtime.policy.invitation_open.total_seconds()
    assert sms_app.queue.retry_seconds == sms_app.settings.send_retry_seconds == 24 * 3600


def test_the_queue_keys_share_one_hash_tag(queue):
    tags = {k.split("{")[1].split("}")[0]
            for k in (queue.stream_key("sms"), queue.stream_key("telegram", "bulk"),
                      queue.streams, queue.later, queue.job_key("x"))}
    assert tags == {"outq"}


class TelegramScripted(Scripted):
    channel = "telegram"

    def send(self, to: str, body: str) -> SendResult:
        super().send(to, body)
        return SendResult(sid=f"tg{to}:1")  # as Telegram's sender once named its messages


def test_each_job_is_taken_only_by_a_sender_of_its_own_channel(queue):
    sms, telegram = Scripted(), TelegramScripted()
    queue.enqueue("invite:s1:0", TO, "by SMS", channel="sms")
    queue.enqueue("invite:s2:0", TO, "also by SMS", channel="sms")
    # Only SMS jobs in line: the Telegram sender sends nothing and leaves them queued.
    assert queue.process(telegram, rate=1000, block_ms=0) == 0
    assert telegram.sent == []
    assert {queue.job(j)["status"] for j in ("invite:s1:0", "invite:s2:0")} == {"queued"}
    assert queue.in_line("sms") == 2 and queue.in_line("telegram") == 0

    queue.enqueue("remind:s3:0", "12345", "by Telegram", channel="telegram")
    assert queue.process(telegram, rate=1000, block_ms=0) == 1
    assert [b for _, b in telegram.sent] == ["by Telegram"]
    assert queue.process(sms, rate=1000, block_ms=0) == 2
    assert sorted(b for _, b in sms.sent) == ["also by SMS", "by SMS"]
    assert queue.in_line() == 0
    assert queue.process(telegram, rate=1000, block_ms=0) == 0
    assert queue.process(sms, rate=1000, block_ms=0) == 0
    assert len(sms.sent) == 2 and len(telegram.sent) == 1


def test_a_job_is_never_queued_without_a_channel(queue):
    with pytest.raises(TypeError):
        queue.enqueue("a", TO, "Hej")  # noqa - the channel is required
    for bad in ("", "job", "later", "SMS", "sms:x"):
        with pytest.raises(ValueError):
            queue.enqueue("a", TO, "Hej", channel=bad)
    assert queue.job("a") == {}


def test_a_job_in_another_channels_line_is_refused_not_sent_and_goes_to_its_own(queue):
    """Defence in depth: were an SMS job ever in Telegram's stream, the Telegram sender
    neither sends it nor marks it sent; it goes back to SMS's line and is sent once there."""
    queue.enqueue("invite:s1:0", TO, "Hej", channel="sms")
    sms_stream, tg_stream = queue.stream_key("sms"), queue.stream_key("telegram")
    [(entry, _)] = queue.r.xrange(sms_stream)
    queue.r.xadd(tg_stream, {"job": "invite:s1:0"})
    queue.r.xdel(sms_stream, entry)
    telegram, sms = TelegramScripted(), Scripted()
    assert queue.process(telegram, rate=1000, block_ms=0) == 0
    assert telegram.sent == [] and queue.job("invite:s1:0")["status"] == "queued"
    assert queue.r.xlen(tg_stream) == 0 and queue.r.xlen(sms_stream) == 1
    assert queue.process(sms, rate=1000, block_ms=0) == 1
    assert [b for _, b in sms.sent] == ["Hej"] and queue.job("invite:s1:0")["status"] == "sent"


def test_a_put_off_job_comes_back_in_its_own_channels_line(queue):
    telegram = TelegramScripted()
    queue.enqueue("a", TO, "Hej", channel="sms", lane="bulk")
    later = SendResult(error="Twilio 429", permanent=False, retry_after=600)
    queue.process(Scripted(sends=[later]), rate=1000, block_ms=0)
    assert queue.job("a")["status"] == "retry"
    queue.sleep(601)
    assert queue.process(telegram, rate=1000, block_ms=0) == 0  # it promotes, never sends
    assert telegram.sent == [] and queue.r.xlen(queue.stream_key("sms", "bulk")) == 1
    sms = Scripted()
    assert queue.process(sms, rate=1000, block_ms=0) == 1 and len(sms.sent) == 1


def test_a_conversations_reply_never_waits_behind_a_bulk_run(queue):
    sms = Scripted()
    for i in range(5):
        queue.enqueue(f"invite:b{i}:0", TO, f"bulk {i}", channel="sms", lane="bulk")
    queue.process(sms, rate=1000, block_ms=0, max_jobs=2)
    queue.enqueue("reply:s1:x", TO, "reply", channel="sms")
    queue.enqueue("alert:1:notify:0", TO, "alert", channel="sms")
    queue.process(sms, rate=1000, block_ms=0)
    assert [b for _, b in sms.sent] == ["bulk 0", "bulk 1", "reply", "alert", "bulk 2",
                                        "bulk 3", "bulk 4"]


def test_no_key_name_holds_a_number_a_chat_or_a_text(queue):
    queue.enqueue("remind:s1:0", "4670555", "Hemligt", channel="telegram")
    told = []
    queue.process(TelegramScripted(), rate=1000, block_ms=0,
                  on_result=lambda job, result: told.append(result))
    queue.r.set(queue.message_key(told[0].sid), "remind:s1:0")  # as the service does
    names = [k.decode() for k in queue.r.scan_iter()]
    assert names and not [k for k in names if "4670555" in k or "Hemligt" in k], names


def test_jobs_in_the_shared_stream_of_an_earlier_version_are_moved_and_sent_once(queue):
    """An upgrade: jobs the version before queued in its one stream for every channel (one of
    them taken by a sender of that version, not yet acknowledged) go to their own channel's
    line, lose none, and go out once, by their own channel's sender."""
    old = "tala:{outq}"
    crypto = queue.crypto
    for job_id, channel in (("invite:a:0", "sms"), ("invite:b:0", "sms"),
                            ("remind:c:0", "telegram")):
        queue.r.hset(queue.job_key(job_id), mapping={
            "status": "queued", "to": crypto.encrypt(TO).decode(),
            "body": crypto.encrypt(job_id).decode(), "attempts": "0", "channel": channel})
        queue.r.xadd(old, {"job": job_id})
    queue.r.xgroup_create(old, "senders", id="0")
    queue.r.xreadgroup("senders", "old:1", {old: ">"}, count=1)  # invite:a:0, pending there

    import threading
    queues = [SendQueue(queue.r, crypto, consumer=f"new:{i}", now=queue.now,
                        sleep=queue.sleep) for i in range(2)]
    sms = Scripted()
    threads = [threading.Thread(target=q.process, args=(sms, 1000.0), kwargs={"block_ms": 0})
               for q in queues]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(b for _, b in sms.sent) == ["invite:a:0", "invite:b:0"]
    assert not queue.r.exists(old)
    telegram = TelegramScripted()
    assert queue.process(telegram, rate=1000, block_ms=0) == 1
    assert [b for _, b in telegram.sent] == ["remind:c:0"]
    assert queue.process(sms, rate=1000, block_ms=0) == 0 and len(sms.sent) == 2
    assert queue.in_line() == 0
