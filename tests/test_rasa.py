"""Rasa: the real rasa-sdk action server (`tala rasa-actions`), driven with real `/webhook`
payloads like a Rasa assistant sends."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager

import pytest
import requests

from bot.channels.rasa import TalaStep, find_code
from bot.receive import MAX_LOOKUPS
from bot.service import CODE_ALPHABET, MAX_CODE_TRIES
from flows import messages as M
from tests.test_bulk import _stop_embedded_redis

SCRIPT_12_18 = ["7", "ja", "8", "1", "3", "1 4", "Det är svårt att orka", "nästan varje dag",
                "ja", "10", "6", "5", "ja", "nej", "ja", "hoppa över", "nej", "9", "tillbaka",
                "8", "8", "1", "3, 7", "hoppa över", "Inget mer"]


def webhook_payload(sender: str, text: str, n: int) -> dict:
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


TOKEN = "rasa-shared-secret-6Hq2xW9pL0aZ"  # what Rasa's endpoints.yml sends
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "TALA_RASA_TOKEN")}
    env.update({"TALA_DATA_DIR": str(tmp_path / "data"), "TALA_USER": "anna", **extra})
    return env


def _invite_code(env: dict, case: str = "R-1") -> str:
    invite = subprocess.run([sys.executable, "-m", "admin_cli.main", "invite", case, "--age",
                             "14", "--json"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert invite.returncode == 0, invite.stderr
    return json.loads(invite.stdout)["code"]


@contextmanager
def _action_server(tmp_path, env: dict, host: str = "127.0.0.1"):
    """`tala rasa-actions` in its own process; yields (url, the process)."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "rasa-actions", "--host",
                             host, "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                if requests.get(url + "/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.2)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        _stop_embedded_redis(tmp_path / "data")


@pytest.fixture
def rasa_server(tmp_path):
    env = _env(tmp_path, TALA_RASA_TOKEN=TOKEN)
    code = _invite_code(env)
    with _action_server(tmp_path, env) as (url, _):
        yield url, code, env


def _post(url: str, payload: dict, **kw) -> requests.Response:
    return requests.post(url + "/webhook", json=payload, timeout=30, **kw)


def _say(url: str, sender: str, text: str, n: int) -> dict:
    resp = _post(url, webhook_payload(sender, text, n), headers=AUTH)
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


# --------------------------------------------------------------------------- the code in a sentence

def test_the_code_is_found_in_what_a_child_types_through_the_action_server(tmp_path):
    """The README's own example, in English and in Swedish: each binds the conversation,
    where the first long word ("services", "socialtj") was taken for the code before. (Lower
    case and a code typed in two halves: further down, without a server process.)"""
    env = _env(tmp_path, TALA_RASA_TOKEN=TOKEN)
    codes = [_invite_code(env, f"R-{n}") for n in range(2)]
    said = [f"I have a code from social services: {codes[0]}",
            f"Hej! Jag har en kod från socialtjänsten: {codes[1]}"]
    with _action_server(tmp_path, env) as (url, _):
        for n, text in enumerate(said):
            result = _say(url, f"child-{n}", text, 0)
            assert _slot(result, "tala_active") is True, text
            assert "Hur har du det" in result["responses"][-1]["text"], text
            assert _slot(result, "tala_session")


@pytest.mark.parametrize("text, candidates", [
    ("I have a code from social services: D5A2NKCPSP", ["D5A2NKCPSP"]),
    ("Jag har en kod från socialtjänsten: D5A2NKCPSP", ["D5A2NKCPSP"]),
    ("min kod är d5a2nkcpsp!", ["D5A2NKCPSP"]),
    ("koden:D5A2NKCPSP.", ["D5A2NKCPSP"]),
    ("D5A2N KCPSP", ["D5A2NKCPSP"]),
    ("d5a2n-kcpsp", ["D5A2NKCPSP"]),
    ("ABCDE – FGHJK", ["ABCDEFGHJK"]),
    ("Ｄ５Ａ２ＮＫＣＰＳＰ", ["D5A2NKCPSP"]),  # typed in full width
    ("t.me code 23456789ABCDEFGH", ["23456789ABCDEFGH"]),  # a Telegram invitation's length
    # A digit, then upper case, then a lower-case word: the likeliest first.
    ("abcdefghjk or ABCDEFGHJK or D5A2NKCPSP", ["D5A2NKCPSP", "ABCDEFGHJK"]),
    ("understand? MY CODE IS ABCDEFGHJK", ["ABCDEFGHJK", "UNDERSTAND"]),
])
def test_a_code_is_found_by_its_alphabet_and_length(text, candidates):
    found = find_code(text)
    assert found.candidates == candidates and found.attempt == candidates[0]
    assert all(set(c) <= set(CODE_ALPHABET) for c in found.candidates)


@pytest.mark.parametrize("text", [
    "I have a code from social services", "Jag har en kod från socialtjänsten", "hello",
    "Hej!", "please help", "abcde fghjk", "ring mig på 0701234567", "", "Straße straße",
    "Jag förstår inte vad jag ska skriva", "socialtjänsten socialtjänsten"])
def test_words_are_no_code_and_no_attempt(text):
    assert find_code(text).candidates == [] and find_code(text).attempt is None


@pytest.mark.parametrize("text", ["I have a code from social services: ABCDE-12345",
                                  "min kod är GUESS-00000", "AAAAA 00001"])
def test_a_code_no_invitation_can_have_still_counts_as_a_wrong_code(text):
    """No code has a 0, 1, I or O: such a guess is looked up under nothing, but it is a guess."""
    found = find_code(text)
    assert found.candidates == [] and found.attempt is not None


def _invite(app, want=lambda code: True) -> tuple[str, str]:
    """An invitation for Rasa whose code is as `want`s: codes are random, so invite until."""
    for n in range(500):
        inv = app.service.invite(f"R-{n}", 14, channel="rasa", actor="anna")
        if want(inv.code):
            return inv.code, inv.session_id
    raise AssertionError("no such code in 500 invitations")


def _texts(step) -> list[str]:
    return [r["text"] for r in step.responses]


def test_a_wrong_code_in_a_sentence_is_unknown_and_counts_once(app):
    code, _ = _invite(app)
    action = TalaStep(app.service)
    unknown = app.runtime.catalogs.gettext("sv", M.CODE_UNKNOWN)
    too_many = app.runtime.catalogs.gettext("sv", M.CODE_TOO_MANY)
    for i in range(MAX_CODE_TRIES):
        step = action.step("guesser", f"Min kod från socialtjänsten är HJKLM-{i + 2}ABCD", f"g{i}")
        assert _texts(step) == [unknown] and not step.active and step.session is None
    step = action.step("guesser", f"Min kod från socialtjänsten är {code}", "g9")
    assert _texts(step) == [too_many] and not step.active


def test_ordinary_words_never_use_up_a_wrong_code_try(app):
    code, sid = _invite(app)
    action = TalaStep(app.service)
    unknown = app.runtime.catalogs.gettext("sv", M.CODE_UNKNOWN)
    words = ["Hej!", "I have a code from social services", "Jag har en kod från socialtjänsten",
             "hello", "please help", "Jag förstår inte", "Vad ska jag skriva?", "kod?",
             "ring mig på 0701234567"]
    for n, text in enumerate(words):
        step = action.step("child", text, f"w{n}")
        assert _texts(step) == [unknown] and not step.active, text
    for n in range(MAX_CODE_TRIES - 1):  # the tries are all still there
        assert _texts(action.step("child", f"koden är {n + 2}BCDEFGHJK", f"c{n}")) == [unknown]
    # A word beside the code is no try either: of the likeliest candidates, the code that
    # exists is claimed (the last try would otherwise be gone on "ABCDE23456").
    assert MAX_LOOKUPS >= 2
    step = action.step("child", f"inte ABCDE23456 utan {code[:5]} {code[5:]}", "c9")
    assert step.active and step.session == sid
    assert "Hur har du det" in step.responses[-1]["text"]


def test_a_code_typed_in_lower_case_or_in_two_halves_opens_the_invitation(app):
    action = TalaStep(app.service)
    # Lower case with no digit in it, the case that is most like a word.
    letters, sid = _invite(app, lambda c: not any(ch.isdigit() for ch in c))
    step = action.step("child-1", f"min kod är {letters.lower()}", "a0")
    assert step.active and step.session == sid
    for n, form in enumerate(["{a}-{b}", "{a} {b}", "{a} - {b}", "{a}–{b}"]):
        code, sid = _invite(app, lambda c: any(ch.isdigit() for ch in c))
        text = "koden: " + form.format(a=code[:5].lower(), b=code[5:])
        step = action.step(f"child-h{n}", text, "h0")
        assert step.active and step.session == sid, text


# --------------------------------------------------------------------------- its own door

def test_a_call_without_the_right_token_is_refused_and_changes_nothing(rasa_server):
    url, code, _ = rasa_server
    claim = webhook_payload("intruder", f"Min kod är {code}", 0)  # would bind the child's session
    wrong = [{}, {"Authorization": f"Bearer {TOKEN[:-1]}X"}, {"Authorization": f"Bearer {TOKEN}x"},
             {"Authorization": TOKEN}, {"Authorization": f"Basic {TOKEN}"},
             {"X-Rasa-Token": TOKEN}, {"Authorization": "Bearer åäö"}]
    for headers in wrong:
        assert _post(url, claim, headers=headers).status_code == 403, headers
    assert _post(url, claim, params={"token": TOKEN[:-1]}).status_code == 403
    assert requests.get(url + "/actions", timeout=30).status_code == 403
    assert requests.get(url + "/health", timeout=30).status_code == 200  # for load balancers
    # Nothing was applied: the code is still unused, and Rasa, with the token, claims it.
    child = _say(url, "child", f"Min kod är {code}", 0)
    assert _slot(child, "tala_active") is True and "Hur har du det" in json.dumps(
        child, ensure_ascii=False)
    # Rasa's own `token:` setting sends it as ?token=... instead: that is accepted too.
    via_query = _post(url, webhook_payload("child", "7", 1), params={"token": TOKEN})
    assert via_query.status_code == 200 and _slot(via_query.json(), "tala_active") is True


def test_without_a_token_it_will_not_listen_beyond_this_machine(tmp_path):
    port = _free_port()
    started = subprocess.run([sys.executable, "-m", "admin_cli.main", "rasa-actions", "--host",
                              "0.0.0.0", "--port", str(port)], env=_env(tmp_path),
                             capture_output=True, text=True, timeout=120)
    assert started.returncode != 0
    assert "TALA_RASA_TOKEN" in started.stderr and "127.0.0.1" in started.stderr
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_token_too_short_to_be_a_secret_is_refused(tmp_path):
    started = subprocess.run([sys.executable, "-m", "admin_cli.main", "rasa-actions", "--port",
                              str(_free_port())], env=_env(tmp_path, TALA_RASA_TOKEN="changeme"),
                             capture_output=True, text=True, timeout=120)
    assert started.returncode != 0 and "too short" in started.stderr


@pytest.mark.slow
def test_without_a_token_on_localhost_it_warns_and_takes_only_json(tmp_path):
    env = _env(tmp_path)
    code = _invite_code(env)
    with _action_server(tmp_path, env) as (url, proc):
        # A web page in a browser here can POST text/plain to localhost without asking first.
        page = requests.post(url + "/webhook", data=json.dumps(webhook_payload("page", code, 0)),
                             headers={"Content-Type": "text/plain"}, timeout=30)
        assert page.status_code == 415
        assert "access-control-allow-origin" not in {k.lower() for k in page.headers}
        result = _post(url, webhook_payload("child", code, 0))  # Rasa on this machine, no token
        assert result.status_code == 200 and _slot(result.json(), "tala_active") is True
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "TALA_RASA_TOKEN is not set" in output


def test_tala_invite_for_rasa_prints_a_code_that_opens_the_conversation(app, monkeypatch):
    from tests.test_staff import _cli

    done = _cli(app, monkeypatch, "anna", "invite", "R-CLI", "--age", "14", "--channel",
                "rasa", "--json")
    assert done.exit_code == 0, done.output
    shown = json.loads(done.output)
    assert shown["channel"] == "rasa" and shown["link"] is None and len(shown["code"]) == 10
    said = _cli(app, monkeypatch, "anna", "invite", "R-CLI2", "--age", "14", "--channel",
                "rasa")
    assert said.exit_code == 0 and "Jag har en kod:" in said.output, said.output
    step = TalaStep(app.service).step("web-chat-1", f"Jag har en kod: {shown['code']}", "w1")
    assert step.active and step.session == shown["session_id"]
    assert "Hur har du det" in " ".join(_texts(step))


def test_guessing_from_a_new_sender_each_time_is_held_off_too(app, monkeypatch):
    """The per-chat limit alone would let a guesser who takes a new Rasa sender id for every
    try go on for ever: wrong codes on a channel from everyone together are limited as well
    (here 8, to keep the test short), and only on that channel."""
    import bot.invitations

    monkeypatch.setattr(bot.invitations, "MAX_CODE_FAILS_OVERALL", 8)
    code, sid = _invite(app)
    action = TalaStep(app.service)
    unknown = app.runtime.catalogs.gettext("sv", M.CODE_UNKNOWN)
    too_many = app.runtime.catalogs.gettext("sv", M.CODE_TOO_MANY)
    for i in range(8):
        step = action.step(f"guesser-{i}", f"Min kod är HJKLM{i + 2}ABCD", f"g{i}")
        assert _texts(step) == [unknown], i
    held = action.step("a-real-child", f"Jag har en kod: {code}", "c1")
    assert _texts(held) == [too_many] and not held.active
    assert app.service.state(sid).status == "invited"  # the code is still good for later
    other = app.service.invite("C-OK", 9, channel="console", actor="anna")
    assert app.service.claim_code("console", "terminal", other.code) == other.session_id
