"""The `tala` command as a person runs it: real processes, the embedded default, no set-up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

# A whole followup-6-11 conversation: nonsense first, a low score with follow-ups, back and
# change, skip, my answers, and the safety questions answered without alarm.
FULL_6_11 = """hej
2
1 och 3
Det är mycket bråk
tillbaka
Lite bråk bara
ja
4
ja
hoppa över
5
mina svar
3
ja
nej
ja
nej
4
2, 3
Mer tid med min kompis
"""


def tala(data_dir: Path, *args: str, stdin: str = "", timeout: int = 120):
    env = {**os.environ, "TALA_DATA_DIR": str(data_dir), "TALA_USER": "anna"}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "admin_cli.main", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=timeout)


def test_demo_plays_a_whole_conversation_from_a_pipe_and_prints_the_summary(tmp_path):
    result = tala(tmp_path, "demo", stdin=FULL_6_11)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Förlåt, jag förstod inte riktigt" in out  # "hej" was not an answer
    assert "Förut svarade du: Det är mycket bråk" in out
    assert "Tack för att du svarade" in out  # the closing text: the conversation finished
    assert "Det här ser handläggaren" in out
    assert "Sammanfattning: DEMO-1" in out
    assert "klar" in out and "Lite bråk bara" in out and "Mer tid med min kompis" in out
    summary = tala(tmp_path, "summary", "DEMO-1", "--format", "json")
    data = json.loads(summary.stdout)
    [session] = data["sessions"]
    assert session["status"] == "completed" and session["questionnaire"] == "followup-6-11"
    answers = {a["question_id"]: a for a in session["answers"]}
    assert answers["home_feel"]["value"] == 2 and answers["home_feel"]["label"] == \
        "2 av 5 (Ganska dåligt)"
    assert answers["home_more"]["text"] == "Lite bråk bara"
    assert answers["home_hard"]["value"] == ["arguing", "lonely"]
    assert answers["free_time"]["skipped"] is True and answers["friends_have"]["value"] == "yes"
    assert answers["help_wanted"]["value"] == ["school_friends", "feelings"]
    assert data["alerts"] == []


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started (here: the embedded redis-server)."""
    parent = psutil.Process(pid)
    for p in parent.children(recursive=True) + [parent]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _embedded_servers(data_dir: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            if "redis-server" in (p.info["name"] or "") and \
                    (data_dir / "redis.db.settings").exists():
                settings = json.loads((data_dir / "redis.db.settings").read_text())
                if str(p.pid) == Path(settings["pidfile"]).read_text().strip():
                    found.append(p)
        except (psutil.Error, OSError, ValueError):
            continue
    return found


@pytest.mark.slow
@pytest.mark.parametrize("kill_redis_too", [False, True], ids=["process", "process+redis"])
def test_killing_the_demo_mid_session_and_starting_again_continues_where_it_was(
        tmp_path, kill_redis_too):
    env = {**os.environ, "TALA_DATA_DIR": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "demo"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    proc.stdin.write("4\nja\n")
    proc.stdin.flush()
    seen = ""
    deadline = time.time() + 60
    while "Hur har du det i skolan?" not in seen and time.time() < deadline:
        seen += proc.stdout.readline()
    assert "Hur har du det i skolan?" in seen
    servers = _embedded_servers(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)  # no clean-up, no atexit: like a crash
    proc.wait(timeout=10)
    if kill_redis_too:
        assert servers, "the embedded redis-server should be running"
        for s in servers:
            s.kill()
            s.wait(timeout=10)

    result = tala(tmp_path, "demo", stdin="5\n")
    assert result.returncode == 0, result.stderr
    assert "Demon fortsätter där den var" in result.stdout
    assert "Välkommen tillbaka! Vi fortsätter där du var." in result.stdout
    after_welcome = result.stdout.split("Välkommen tillbaka")[1]
    assert after_welcome.index("Hur har du det i skolan?") < after_welcome.index("> 5")
    assert "3 svar hittills" in result.stdout  # home_feel, home_adult and school_feel kept


@pytest.mark.slow
def test_invite_json_and_errors_that_say_what_to_type(tmp_path):
    ok = tala(tmp_path, "invite", "K-17", "--age", "14", "--json")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["case"] == "K-17" and data["questionnaire"] == "followup-12-18"
    assert len(data["code"]) == 10
    bad = tala(tmp_path, "invite", "199001011234", "--age", "9")
    assert bad.returncode == 2 and "ser ut som ett personnummer" in bad.stderr
    played = tala(tmp_path, "demo", "--code", data["code"], stdin="7\n")
    assert "Hur har du det" in played.stdout and "Sammanfattning: K-17" in played.stdout
    missing = tala(tmp_path, "summary", "K-99")
    assert missing.returncode == 2 and "tala invite K-99" in missing.stderr
