"""Rasa: the real rasa-sdk action server (`tala rasa-actions`), driven with real `/webhook`
payloads like a Rasa assistant sends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from tests.test_bulk import _stop_embedded_redis

SCRIPT_12_18 = ["7", "ja", "8", "1", "3", "1 4", "Det är svårt att orka", "nästan varje dag",
                "ja", "10", "6", "5", "ja", "nej", "ja", "hoppa över", "nej", "9", "tillbaka",
                "8", "8", "1", "3, 7", "hoppa över", "Inget mer"]


def _payload(sender: str, text: str, n: int) -> dict:
    return {
        "next_action": "action_tala_step", "sender_id": sender, "version": "3.6.0",
        "tracker": {
            "sender_id": sender, "slots": {"tala_active": True}, "paused": False,
            "latest_message": {"text": text, "message_id": f"{sender}-{n}",
                               "intent": {"name": "nlu_fallback", "confidence": 1.0},
                               "entities": []},
            "latest_event_time": time.time(), "followup_action": None, "events": [],
            "latest_input_channel": "rest", "active_loop": {},
            "latest_action": {"action_name": "action_listen"},
            "latest_action_name": "action_listen",
        },
        "domain": {"version": "3.1", "slots": {}, "responses": {}, "intents": [],
                   "actions": ["action_tala_step"]},
    }


@pytest.fixture
def rasa_server(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"TALA_DATA_DIR": str(tmp_path / "data"), "TALA_USER": "anna"})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    invite = subprocess.run([sys.executable, "-m", "admin_cli.main", "invite", "R-1", "--age",
                             "14", "--json"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert invite.returncode == 0, invite.stderr
    code = json.loads(invite.stdout)["code"]
    proc = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "rasa-actions", "--port",
                             str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
    yield url, code, env
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    _stop_embedded_redis(tmp_path / "data")


def _say(url: str, sender: str, text: str, n: int) -> dict:
    resp = requests.post(url + "/webhook", json=_payload(sender, text, n), timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def _slot(result: dict, name: str):
    return next(e["value"] for e in result["events"] if e.get("name") == name)


def test_a_whole_followup_12_18_conversation_through_the_rasa_action_server(rasa_server):
    url, code, env = rasa_server
    wrong = _say(url, "chat-1", "ABCDE-12345", 0)
    assert "hittar ingen inbjudan" in wrong["responses"][0]["text"]
    assert _slot(wrong, "tala_active") is False

    first = _say(url, "chat-1", f"Min kod är {code}", 1)
    assert _slot(first, "tala_active") is True
    question = first["responses"][-1]
    assert "Hur har du det" in question["text"] and "0 till 10" in question["text"]
    n = 1
    for reply in SCRIPT_12_18:
        n += 1
        result = _say(url, "chat-1", reply, n)
        assert not any("förstod inte" in r.get("text", "") for r in result["responses"]), reply
    assert _slot(result, "tala_active") is False  # finished: the assistant takes over again
    assert "116 111" in result["responses"][-1]["text"]

    # A retried webhook (same message id) is answered without being applied twice.
    again = _say(url, "chat-1", "Inget mer", n)
    assert again["responses"] == result["responses"]

    # The code was single use: another conversation cannot take it.
    thief = _say(url, "chat-2", code, 0)
    assert "hittar ingen inbjudan" in thief["responses"][0]["text"]

    summary = subprocess.run([sys.executable, "-m", "admin_cli.main", "summary", "R-1",
                              "--format", "json"], env=env, capture_output=True, text=True,
                             timeout=120)
    [session] = json.loads(summary.stdout)["sessions"]
    assert session["channel"] == "rasa" and session["status"] == "completed"
    got = {a["question_id"]: a for a in session["answers"]}
    assert got["home_feel"]["value"] == 7 and got["caseworker_talk"]["value"] == 8
    assert got["anything_else"]["text"] == "Inget mer"


def test_buttons_carry_what_the_child_would_type(rasa_server):
    url, code, _ = rasa_server
    _say(url, "chat-9", code, 0)
    result = _say(url, "chat-9", "7", 1)  # home_feel -> trusted_adult (yes/no)
    buttons = result["responses"][-1]["buttons"]
    assert [b["payload"] for b in buttons] == ["1", "2"]
    assert [b["title"] for b in buttons] == ["Ja", "Nej"]
    after = _say(url, "chat-9", buttons[0]["payload"], 2)
    assert "förstod inte" not in json.dumps(after, ensure_ascii=False)


def test_guessing_codes_is_held_off(rasa_server):
    url, code, _ = rasa_server
    for i in range(5):
        _say(url, "guesser", f"AAAAA-{i:05d}", i)
    held = _say(url, "guesser", code, 9)  # even the right code, once held off
    assert "provat många gånger" in held["responses"][0]["text"]
