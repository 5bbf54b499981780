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
    queue.enqueue("a", TO, "first")
    queue.enqueue("b", TO, "second")
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
    assert queue.r.xlen(queue.stream) == 0  # nothing left in line: finished entries go

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
    queue.enqueue("a", TO, "Hej")
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
    queue.enqueue("a", TO, "Hej")
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
    queue.enqueue("a", TO, "Hej")
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
    queue.enqueue("a", TO, "Hej")
    queue.process(sender, rate=1000, block_ms=0)
    assert len(sender.asked) == 1 and len(sender.sent) == 2
    assert queue.job("a")["status"] == "sent"


def test_a_provider_that_cannot_say_is_asked_again_later_and_never_sent_blindly(queue):
    sender = Scripted(sends=[NO_ANSWER], finds=[ReconcileError("list: 503")] * 3 + ["SMtaken"])
    queue.enqueue("a", TO, "Hej")
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
    queue.enqueue("a", TO, "Hej")
    queue.process(went_out, rate=1000, block_ms=0)
    assert queue.job("a")["status"] == "sent" and len(went_out.sent) == 1
    did_not = Scripted(sends=[NO_ANSWER], finds=[None])
    queue.enqueue("b", TO, "Hej då")
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
    queue.enqueue("a", TO, "Hej")
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
    queue.enqueue("a", TO, "Hej")
    with pytest.raises(Killed):
        dead.process(Scripted(), rate=1000, block_ms=0, on_result=dies)
    assert queue.job("a")["status"] == "sent" and queue.job("a")["recorded"] == "0"
    told, sender = [], Scripted()
    _take_over(queue, sender, lambda: told, on_result=lambda j, r: told.append((j.id, r)))
    assert sender.sent == [] and sender.asked == []
    assert told == [("a", SendResult(sid="SM1"))]
    assert queue.job("a")["recorded"] == "1" and queue.r.xlen(queue.stream) == 0
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
    queue.enqueue("a", TO, "first")
    queue.enqueue("b", TO, "second")
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
        queue.enqueue(job_id, TO, job_id)
    assert queue.r.ttl(queue.job_key("sent")) == -1  # queued: kept until it is done
    queue.process(sender, rate=1000, block_ms=0)
    assert [queue.job(j)["status"] for j in ("failed", "sent", "waiting")] == [
        "failed", "sent", "retry"]
    for job_id in ("failed", "sent"):
        assert KEEP_SECONDS - 60 < queue.r.ttl(queue.job_key(job_id)) <= KEEP_SECONDS
    assert queue.r.ttl(queue.job_key("waiting")) == -1


def test_forget_takes_a_job_out_of_the_retries_too(queue):
    sender = Scripted(sends=[SendResult(error="Twilio 429", permanent=False, retry_after=600)])
    queue.enqueue("invite:s1:0", TO, "Hej")
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
            for k in (queue.stream, queue.later, queue.job_key("x"))}
    assert tags == {"outq"}
