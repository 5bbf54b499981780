"""Bulk invitations: a real `tala invite --from-csv` process against the fake Twilio, killed
half-way and started again; every child gets exactly one text, at the configured rate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.fakes.twilio_api import FakeTwilio

ROWS = 1000
RATE = 100.0  # messages per second


def _env(fake: FakeTwilio, data_dir: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "TWILIO_EDGE", "TWILIO_REGION",
                        "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env.update({"TALA_DATA_DIR": str(data_dir), "TWILIO_ACCOUNT_SID": fake.account_sid,
                "TWILIO_AUTH_TOKEN": fake.auth_token, "TWILIO_FROM_NUMBER": "+46700000000",
                "TWILIO_API_BASE_URL": fake.base_url, "TALA_SMS_RATE": str(RATE),
                "TALA_SEND_LEASE_SECONDS": "2", "NO_PROXY": "127.0.0.1", "TALA_USER": "anna"})
    return env


def _csv(path: Path) -> list[str]:
    numbers = [f"+4670{1000000 + i}" for i in range(ROWS)]
    lines = ["case,age,to,unit"] + [f"B-{i},{8 + i % 10},{n},Skola {i % 4}"
                                    for i, n in enumerate(numbers)]
    lines.insert(5, "B-bad,9,12345,Skola 1")  # one row that cannot be invited: line 6
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return numbers


def _kill_tree(pid: int) -> None:
    proc = psutil.Process(pid)
    for p in [proc] + proc.children(recursive=True):
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


@pytest.mark.slow
def test_bulk_invite_sends_each_exactly_once_at_the_rate_even_when_killed(tmp_path):
    with FakeTwilio() as fake:
        numbers = _csv(tmp_path / "class.csv")
        cmd = [sys.executable, "-m", "admin_cli.main", "invite", "--from-csv",
               str(tmp_path / "class.csv")]
        env = _env(fake, tmp_path / "data")
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while len(fake.messages) < ROWS // 3 and time.monotonic() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        assert len(fake.messages) >= ROWS // 3, "the first run sent too little in two minutes"
        os.kill(first.pid, signal.SIGKILL)  # mid-flight: no clean-up at all
        first.wait(10)
        sent_before_restart = len(fake.messages)
        assert sent_before_restart < ROWS

        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        out = second.stdout + second.stderr
        assert second.returncode == 1, out  # 1: one row could not be invited
        assert "rad 6:" in out and "är inte ett telefonnummer" in out
        assert f"{ROWS} av {ROWS + 1} inbjudna; {ROWS} sms skickade." in out

        sent = [m for m in fake.messages if m["sid"]]
        assert sorted(m["to"] for m in sent) == sorted(numbers)  # each exactly once
        assert all("bestämmer själv" in m["body"] for m in sent)
        times = sorted(m["at"] for m in sent)
        # Never faster than the rate in any one-second window (the limiter is shared through
        # Redis, so the restarted run keeps to it too).
        j = 0
        for i, t in enumerate(times):
            while times[j] < t - 1.0:
                j += 1
            assert i - j + 1 <= RATE + 2, f"{i - j + 1} messages within one second"
        # A third run finds nothing left to do.
        third = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert len(fake.messages) == len([m for m in fake.messages if m["sid"]]) == ROWS
        assert f"{ROWS} sms skickade" in third.stdout
        _stop_embedded_redis(tmp_path / "data")


def _stop_embedded_redis(data_dir: Path) -> None:
    """The killed run left its embedded redis-server behind (as a crash would); the second
    run reused it. Stop it so the test leaves nothing running."""
    settings = data_dir / "redis.db.settings"
    if settings.exists():
        import json
        pidfile = Path(json.loads(settings.read_text())["pidfile"])
        if pidfile.exists():
            try:
                _kill_tree(int(pidfile.read_text().strip()))
            except (psutil.NoSuchProcess, ValueError):
                pass


def test_a_long_twilio_outage_leaves_the_rest_to_the_worker_and_says_so(sms_app, fake, tmp_path):
    """`tala invite --from-csv` during an outage does not wait for it: what Twilio cannot take
    for a while is left to the worker (which keeps trying), and the report says so by line."""
    import io

    from rich.console import Console

    from admin_cli.bulk import invite_from_csv

    numbers = ["+46701110001", "+46701110002"]
    path = tmp_path / "class.csv"
    path.write_text("case,age,to\n" + "".join(f"O-{i},12,{n}\n" for i, n in enumerate(numbers)))
    fake.fail_next(1000, status=503)
    sms_app.queue.wait_seconds = 0.5  # as a run waits for a retry 15 s off, but quicker
    sms_app.queue.retry_seconds = 30  # were the run to wait for the outage, it would end
    started = time.monotonic()
    report = invite_from_csv(sms_app, path, "anna", Console(file=io.StringIO()))
    assert time.monotonic() - started < 15
    assert (report.invited, report.sent) == (2, 0)
    assert [line for line, _ in report.failures] == [2, 3]
    assert all("inte skickat än" in what and "fortsätter att försöka" in what
               for _, what in report.failures)
    jobs = [f"invite:{sms_app.service.session_for_contact('sms', n)}:0" for n in numbers]
    assert {sms_app.queue.job(j)["status"] for j in jobs} == {"retry"}  # not failed

    fake.reset()  # Twilio is back; the worker's next look, once they are due
    sms_app.queue.r.zadd(sms_app.queue.later, {j: 0 for j in jobs})
    assert sms_app.service.send_queued("sms", block_ms=0) == 2
    assert sorted(m["to"] for m in fake.messages if m["sid"]) == numbers
    assert {sms_app.queue.job(j)["status"] for j in jobs} == {"sent"}
