"""`tala serve` as an operator runs it: a real process, stopped with SIGTERM while messages
are in flight."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.fakes.twilio_api import FakeTwilio
from tests.test_bulk import _env, _stop_embedded_redis

pytestmark = pytest.mark.slow  # whole processes started and stopped

PUBLIC = "https://tala.example.org"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sms_in(url: str) -> float:
    """tala_messages_total{channel="sms",direction="in"} from the server's /metrics."""
    for line in requests.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("tala_messages_total{") and 'channel="sms"' in line \
                and 'direction="in"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_serve_answers_and_finishes_messages_in_flight_on_sigterm(tmp_path):
    children = [f"+4670{2000000 + i}" for i in range(12)]
    with FakeTwilio() as fake:
        env = {**_env(fake, tmp_path / "data"), "TALA_PUBLIC_URL": PUBLIC}
        csv = tmp_path / "kids.csv"
        csv.write_text("case,age,to\n" + "".join(f"S-{i},10,{n}\n" for i, n in
                                                  enumerate(children)))
        subprocess.run([sys.executable, "-m", "admin_cli.main", "invite", "--from-csv",
                        str(csv)], env=env, check=True, capture_output=True, timeout=120)
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "serve", "--port",
                                   str(port)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if requests.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except requests.ConnectionError:
                    time.sleep(0.2)
            validator = RequestValidator(fake.auth_token)
            results: list[tuple[str, int, str]] = []

            def text(number: str, body: str, n: int) -> None:
                params = {"MessageSid": f"SMserve{n:026d}", "From": number,
                          "To": "+46700000000", "Body": body}
                sig = validator.compute_signature(PUBLIC + "/sms/twilio", params)
                try:
                    r = requests.post(url + "/sms/twilio", data=params, timeout=30,
                                      headers={"X-Twilio-Signature": sig})
                    results.append((number, r.status_code, r.text))
                except requests.ConnectionError as e:
                    results.append((number, 0, str(e)))

            for i, number in enumerate(children):  # everyone starts
                text(number, "Hej", i)
            assert all(code == 200 for _, code, _ in results), results
            results.clear()
            threads = [threading.Thread(target=text, args=(n, "4", 100 + i))
                       for i, n in enumerate(children)]
            for t in threads:
                t.start()
            # SIGTERM once the server has taken in at least one of these messages (its
            # counter of inbound SMS has moved past the first round).
            deadline = time.monotonic() + 30
            while _sms_in(url) <= len(children):
                assert time.monotonic() < deadline, "no second message reached the server"
                time.sleep(0.005)
            server.send_signal(signal.SIGTERM)
            for t in threads:
                t.join()
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:
                server.kill()
                _stop_embedded_redis(tmp_path / "data")
        answered = [(n, body) for n, code, body in results if code == 200]
        refused = [n for n, code, _ in results if code == 0]
        # Every message the server took in was answered properly; none was cut off half-way.
        assert len(answered) + len(refused) == len(children)
        assert all(code in (0, 200) for _, code, _ in results), results
        assert answered, "SIGTERM came before any message: the test proves nothing"
        for _, body in answered:
            assert "<Message>" in body
        # ...and stored: the answers of every message that was answered are in the state.
        from bot.app import create_app
        from bot.settings import Settings
        app = create_app(Settings(TALA_DATA_DIR=str(tmp_path / "data")))
        try:
            for number, _ in answered:
                sid = app.service.session_for_contact("sms", number)
                assert app.service.state(sid).answers["home_feel"]["value"] == 4
        finally:
            app.close()


def test_tala_worker_sends_what_is_queued_and_stops_on_sigterm(tmp_path):
    with FakeTwilio() as fake:
        env = {**_env(fake, tmp_path / "data"), "TWILIO_FROM_NUMBER": "",
               "TWILIO_MESSAGING_SERVICE_SID": "MG" + "1" * 32}
        # Queue an invitation without sending it: Twilio is "down" for the first try.
        fake.fail_next(1, status=503)
        queued = subprocess.run([sys.executable, "-m", "admin_cli.main", "invite", "W-1",
                                 "--age", "9", "--channel", "sms", "--to", "0701230000",
                                 "--json"], env=env, capture_output=True, text=True,
                                timeout=120)
        assert queued.returncode == 0, queued.stderr
        worker = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "worker"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            [sent] = fake.wait_for(1, timeout=60)
            assert sent["to"] == "+46701230000" and sent["from"] is None
            assert sent["messaging_service_sid"] == "MG" + "1" * 32
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=60) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                _stop_embedded_redis(tmp_path / "data")
        assert len([m for m in fake.messages if m["sid"]]) == 1


def _embedded_redis_pid(data_dir) -> int:
    import json
    from pathlib import Path

    try:  # 0 while the registry or pidfile is being written
        registry = json.loads((Path(data_dir) / "redis.db.settings").read_text())
        return int(Path(registry["pidfile"]).read_text().strip())
    except (OSError, ValueError, KeyError):
        return 0


def _wait_healthy(url: str, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the server never became healthy"
        time.sleep(0.2)


def test_the_embedded_redis_killed_under_serve_is_started_again_with_its_data(tmp_path):
    """If the embedded redis-server dies (the OOM killer, a stray kill -9), `tala serve`
    starts it again on the same append-only file within seconds: /healthz is well again and
    the child's next answer lands in the conversation where it was, with no restart by hand."""
    import os

    number = "+46702223344"
    with FakeTwilio() as fake:
        env = {**_env(fake, tmp_path / "data"), "TALA_PUBLIC_URL": PUBLIC}
        subprocess.run([sys.executable, "-m", "admin_cli.main", "invite", "K-1", "--age", "10",
                        "--channel", "sms", "--to", number], env=env, check=True,
                       capture_output=True, timeout=120)
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "serve", "--port",
                                   str(port)], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        validator = RequestValidator(fake.auth_token)

        def text(body: str, n: int) -> requests.Response:
            params = {"MessageSid": f"SMkill{n:028d}", "From": number, "To": "+46700000000",
                      "Body": body}
            sig = validator.compute_signature(PUBLIC + "/sms/twilio", params)
            return requests.post(url + "/sms/twilio", data=params, timeout=30,
                                 headers={"X-Twilio-Signature": sig})

        try:
            _wait_healthy(url)
            first = text("Hej", 1)
            assert first.status_code == 200 and "<Message>" in first.text
            killed = _embedded_redis_pid(tmp_path / "data")
            assert killed
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while _embedded_redis_pid(tmp_path / "data") in (killed, 0):  # serve starts one
                assert time.monotonic() < deadline, "the embedded Redis was not started again"
                time.sleep(0.1)
            _wait_healthy(url)
            second = text("4", 2)
            assert second.status_code == 200, second.text
            assert "<Message>" in second.text and "Hur har du det" not in second.text
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            finally:
                if server.poll() is None:
                    server.kill()
                _stop_embedded_redis(tmp_path / "data")
        log = server.stdout.read()
        assert "The embedded Redis had stopped; started again" in log, log
        from bot.app import create_app
        from bot.settings import Settings
        app = create_app(Settings(TALA_DATA_DIR=str(tmp_path / "data")))
        try:
            sid = app.service.session_for_contact("sms", number)
            assert app.service.state(sid).answers["home_feel"]["value"] == 4
        finally:
            app.close()
