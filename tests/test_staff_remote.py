"""The CLI on a caseworker's own computer: a second data directory that holds only a login,
against a real `tala serve` process. Invite, summary, alerts and report print what they print
on the server's own machine, as the person the token (or the identity provider) proved, and
TALA_USER changes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.idp import FakeIdP
from tests.fakes.twilio_api import FakeTwilio
from tests.test_cli import FULL_6_11
from tests.test_serve import _free_port, _stop_embedded_redis, _wait_healthy

pytestmark = pytest.mark.slow  # a server process and a dozen CLI processes

# The last free-text answer tells of harm: an alert for the responsible caseworker.
DISCLOSURE = FULL_6_11.replace("Mer tid med min kompis", "Pappa slår mig när han är arg")


def _env(data_dir: Path, config: Path, user: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("REDIS_URL", "DATABASE_URL", "TALA_SERVER", "HTTP_PROXY",
                        "HTTPS_PROXY", "http_proxy", "https_proxy")}
    env.update({"TALA_DATA_DIR": str(data_dir), "XDG_CONFIG_HOME": str(config),
                "TALA_USER": user, "NO_PROXY": "127.0.0.1", "COLUMNS": "120", **extra})
    return env


def _tala(env: dict, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "admin_cli.main", *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=120)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_invite_summary_alerts_and_report_from_a_second_machine(tmp_path):
    server_dir = tmp_path / "server"
    with FakeIdP() as idp, FakeTwilio() as twilio:
        oidc = {"TALA_OIDC_ISSUER": idp.issuer, "TALA_OIDC_CLIENT_ID": idp.client_id}
        sms = {"TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
               "TWILIO_FROM_NUMBER": "+46700000000", "TWILIO_API_BASE_URL": twilio.base_url,
               "TALA_PUBLIC_URL": "https://tala.example.org"}
        here = _env(server_dir, tmp_path / "server-config", "admin", **oidc, **sms)
        _ok(_tala(here, "users", "add", "admin", "--role", "admin"))
        _ok(_tala(here, "users", "add", "anna", "--role", "caseworker", "--unit", "Nord"))
        _ok(_tala(here, "users", "add", "mia", "--role", "manager", "--unit", "Nord"))
        printed = _ok(_tala(here, "users", "token", "anna", "--label", "Annas dator"))
        [token] = re.findall(r"^tala_\S+$", printed, re.M)
        assert token not in (server_dir / "tala.db").read_bytes().decode("latin-1")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "serve", "--port",
                                   str(port)], env=here,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            _wait_healthy(url)
            _from_anna_s_laptop(tmp_path, here, url, token)
            _a_class_by_sms_from_anna_s_laptop(tmp_path, url, token, twilio)
            _from_mia_s_laptop(tmp_path, here, url, idp)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)
            _stop_embedded_redis(server_dir)


def _from_anna_s_laptop(tmp_path: Path, here: dict, url: str, token: str) -> None:
    laptop = tmp_path / "anna"
    # TALA_USER on the laptop names an admin: the server goes by the token alone.
    there = _env(laptop / "data", laptop / "config", "admin")
    said = _ok(_tala(there, "login", "--server", url, "--token", token))
    assert "som anna (handläggare, Nord)" in said
    login = laptop / "config" / "tala" / "login.json"
    assert stat.S_IMODE(login.stat().st_mode) == 0o600
    assert stat.S_IMODE(login.parent.stat().st_mode) == 0o700

    invited = json.loads(_ok(_tala(there, "invite", "K-9", "--age", "9", "--json")))
    assert invited["case"] == "K-9" and invited["channel"] == "console"
    # The child answers (on the server's machine: the console channel is its terminal).
    child = _ok(_tala(here, "demo", "--code", invited["code"], stdin=DISCLOSURE))
    assert "Tack för att du svarade" in child

    as_anna_here = {**here, "TALA_USER": "anna"}
    for command in (["summary", "K-9"], ["summary", "K-9", "--format", "json"]):
        remote = _ok(_tala(there, *command))
        assert remote == _ok(_tala(as_anna_here, *command)), command
    assert "Pappa slår mig" in remote
    alerts = json.loads(_ok(_tala(there, "alerts", "--json")))
    assert [a["case"] for a in alerts] == ["K-9"]
    table = _ok(_tala(there, "alerts"))
    assert "K-9" in table and "tala alerts ack ID" in table
    refused = _tala(there, "export")
    assert refused.returncode == 3 and "inte exportera svar" in refused.stderr
    _ok(_tala(there, "alerts", "ack", str(alerts[0]["id"]), "--note", "Ringde skolan."))
    assert "Inga öppna larm." in _ok(_tala(there, "alerts"))
    assert not (laptop / "data").exists()  # nothing of the children's on the laptop

    audit = json.loads(_ok(_tala(here, "audit", "--json")))
    mine = [(e["user"], e["action"], e["case"]) for e in audit]
    assert ("anna", "summary", "K-9") in mine and ("anna", "ack", "K-9") in mine
    assert ("anna", "api", "K-9") in mine and ("anna", "refused", None) in mine
    assert not any(e["action"] == "export" for e in audit)  # refused, as anna
    assert any(e["user"] == "anna" and e["action"] == "refused" and "export" in e["detail"]
               for e in audit)
    said = _ok(_tala(there, "logout"))
    assert not login.exists()
    # A personal token is the administrator's to revoke: kept (the next laptop uses it).
    assert "personliga token gäller fortfarande" in said and "tala users revoke anna" in said


def _a_class_by_sms_from_anna_s_laptop(tmp_path: Path, url: str, token: str,
                                       twilio: FakeTwilio) -> None:
    laptop = tmp_path / "anna-again"
    there = _env(laptop / "data", laptop / "config", "anna")
    _ok(_tala(there, "login", "--server", url, "--token", token))
    rows = tmp_path / "klass.csv"
    rows.write_text("case,age,to,unit\nB-1,9,0701234501,Nord\nB-2,10,0701234502,Nord\n"
                    "B-3,ett,0701234503,Nord\n", encoding="utf-8")
    result = _tala(there, "invite", "--from-csv", str(rows))
    assert result.returncode == 1, result.stderr  # one row could not be invited
    assert "2 av 3 inbjudna; 2 sms skickade." in result.stdout
    assert "rad 4:" in result.stdout and "inte ett antal år" in result.stdout
    assert sorted(m["to"] for m in twilio.messages) == ["+46701234501", "+46701234502"]
    again = _tala(there, "invite", "--from-csv", str(rows))  # the same file: nobody twice
    assert "2 av 3 inbjudna; 2 sms skickade." in again.stdout
    assert len(twilio.messages) == 2


def _from_mia_s_laptop(tmp_path: Path, here: dict, url: str, idp: FakeIdP) -> None:
    laptop = tmp_path / "mia"
    there = _env(laptop / "data", laptop / "config", "admin")
    login = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "login", "--server",
                              url], env=there, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        code = None
        for line in login.stderr:  # the CLI says where to sign in and the code to type
            found = re.search(r"kod: (\d{4}-\d{4})", line)
            if found:
                code = found.group(1)
                break
        assert code, "the CLI never showed a sign-in code"
        idp.approve(code, "mia")  # mia signs in at the provider's page, on her phone
        out, rest = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
    assert login.returncode == 0, rest
    assert "som mia (chef, Nord)" in out
    for command in (["report"], ["report", "--format", "csv"]):
        remote = _ok(_tala(there, *command))
        assert remote == _ok(_tala({**here, "TALA_USER": "mia"}, *command)), command
    summary = _tala(there, "summary", "K-9")
    assert summary.returncode == 3 and "inte läsa ett barns svar" in summary.stderr
    # The server answers in the language the laptop's CLI asks for (Accept-Language).
    english = _tala({**there, "TALA_LANG": "en"}, "summary", "K-9")
    assert english.returncode == 3 and "As manager, mia may not read a child's answers" in \
        english.stderr, english.stderr
    assert "No open alerts." in _ok(_tala({**there, "TALA_LANG": "en"}, "alerts"))
    assert "Inga öppna larm." in _ok(_tala(there, "alerts"))  # the unit's: all acknowledged
    made = _ok(_tala(there, "campaign", "create", "--name", "ak8", "--keyword", "SKOLA8",
                     "--opens", "2026-01-01", "--closes", "2030-12-31"))
    assert "skicka SKOLA8 till +46700000000" in made
    listed = _ok(_tala(there, "campaign", "list"))
    assert "ak8" in listed and "Nord" in listed  # a manager's campaign is her unit's
    # Logging out revokes the sign-in's session token on the server: a copy opens nothing.
    session = json.loads((laptop / "config" / "tala" / "login.json").read_text())["token"]
    assert "har spärrat inloggningen" in _ok(_tala(there, "logout"))
    again = _tala({**there, "XDG_CONFIG_HOME": str(tmp_path / "mia-copy")}, "login",
                  "--server", url, "--token", session)
    assert again.returncode == 3 and "spärrats" in again.stderr, again.stderr
    audit = json.loads(_ok(_tala(here, "audit", "--json")))
    assert any(e["user"] == "mia" and e["action"] == "logout" for e in audit)


def test_logging_out_while_the_server_is_away_forgets_the_login_and_says_what_still_holds(
        tmp_path, monkeypatch):
    from admin_cli.client import save_login

    there = _env(tmp_path / "data", tmp_path / "config", "anna")
    monkeypatch.setenv("XDG_CONFIG_HOME", there["XDG_CONFIG_HOME"])
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    path = save_login(url, "tala_0123456789abcdef_secret", {"name": "anna"})
    result = _tala(there, "logout")
    assert result.returncode == 0 and not path.exists()
    assert "kunde inte spärra inloggningen" in result.stderr
    assert "tala users revoke anna" in result.stderr
    assert "Du var inte inloggad" in _ok(_tala(there, "logout"))
