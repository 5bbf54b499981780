"""What the staff pages' browser tests stand on (issue 19): Debian's Chromium driven by
Playwright, an axe-core check, the console's errors, and the whole product running as separate
processes the way an installation runs it.

- `browser`: a pytest fixture, one headless Chromium for a test module (Debian's
  /usr/bin/chromium through `executable_path`; Playwright never downloads a browser). Import it
  into a test file: `from tests.browser import browser  # noqa: F401`.
- `new_page(browser, PHONE or DESKTOP)`: a page in a context of its own (its own cookies).
- `assert_accessible(page, what)`: axe-core finds nothing serious or critical.
- `console_errors(page)`: console errors and CSP refusals ("Refused to ...") seen so far.
- `staff_server(folder)`: `tala serve` as a process of its own, on a data directory of its own
  (embedded Redis and SQLite), with SMS (the fake Twilio), Telegram (the fake Bot API) and
  e-mail alerts (a real local SMTP server) all configured; `tala ...` as more processes on the
  same data directory; a child's SMS as a signed Twilio webhook.

While Playwright's sync API is open, `asyncio.run()` in the test's own thread fails
("cannot be called from a running event loop": Playwright leaves its loop marked as running
between calls). That is why `browser` lives for one module, not for the whole session (the
test modules after it start event loops), and why `staff_server` drives tala only through
other processes and HTTP.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

import psutil
import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.fakes.telegram_api import FakeTelegram
from tests.fakes.twilio_api import FakeTwilio
from tests.mailbox import Mailbox

CHROMIUM = "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else \
    shutil.which("chromium")
NEEDS_CHROMIUM = ("needs Debian's chromium and chromium-driver packages "
                  "(apt-get install chromium chromium-driver)")
# This machine's closed network refuses Chromium's own background connections (updates,
# sync, QUIC probes); without these flags each one is a wait or an error in the log.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
TIMEOUT_MS = 15_000

SMS_FROM = "+46700000000"  # tala's own number, the To of every child's text
TELEGRAM_SECRET = "browser-webhook-secret"
ALERT_FROM = "tala@nacka.example"


# --------------------------------------------------------------------------- the browser

@pytest.fixture(scope="module")
def browser():
    """A headless Debian Chromium for the test module, closed after it; skipped where
    Chromium or Playwright is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip(NEEDS_CHROMIUM)
    if not CHROMIUM:
        pytest.skip(NEEDS_CHROMIUM)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


# What each page has said in its console, from its first request (see console_errors).
_SEEN: WeakKeyDictionary[Any, list[str]] = WeakKeyDictionary()


def new_page(browser, viewport: dict, locale: str = "sv-SE", base_url: str | None = None):
    """A page in a fresh context (cookies of its own: another person, another device), every
    wait on it at most 15 s. Close it with `page.context.close()`; the browser closes any
    left at the end of the module."""
    context = browser.new_context(viewport=viewport, locale=locale, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    console_errors(page)  # listening before the first request
    return page


def console_errors(page) -> list[str]:
    """Console errors, CSP refusals (at whatever level Chromium reports them) and uncaught
    script errors the page has had so far: `assert console_errors(page) == []` after a step
    proves it broke no CSP rule. A page from `new_page` is heard from its first request,
    another one from the first call of this."""
    if page not in _SEEN:
        seen: list[str] = []
        _SEEN[page] = seen

        def heard(message) -> None:
            where = (message.location or {}).get("url") or ""
            if where.endswith("/favicon.ico"):
                return  # the browser's own request for a tab icon, not the page's
            if message.text.startswith("Failed to load resource") and where == page.url:
                return  # the page itself answered 4xx (a refusal, a form sent back to be
                # put right): the tests assert that status; its parts still count here
            if message.type == "error" or _csp(message.text):
                seen.append(f"{message.type}: {message.text}" + (f" ({where})" if where
                                                                  else ""))

        page.on("console", heard)
        page.on("pageerror", lambda error: seen.append(f"pageerror: {error}"))
    return list(_SEEN[page])


def _csp(text: str) -> bool:
    # Chromium's wording changes between releases ("Refused to load ...", "Executing inline
    # script violates the following Content Security Policy directive ..."): both kinds.
    return text.startswith("Refused to") or "Content Security Policy" in text


def assert_accessible(page, what: str) -> None:
    """axe-core (bundled by axe-playwright-python) on the page as it is now: fails with each
    serious or critical violation's rule, impact, help text and first elements."""
    from axe_playwright_python.sync_playwright import Axe

    violations = Axe().run(page).response["violations"]
    bad = [v for v in violations if v.get("impact") in ("serious", "critical")]
    lines = []
    for v in bad:
        targets = [" ".join(map(str, node["target"])) for node in v["nodes"][:3]]
        more = f" (+{len(v['nodes']) - 3} more)" if len(v["nodes"]) > 3 else ""
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} -> {', '.join(targets)}{more}")
    assert not bad, f"{what} ({page.url}) has accessibility violations:\n" + "\n".join(lines)


# --------------------------------------------------------------------------- the product

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen | None = None, log: Path | None = None,
                 timeout: float = 60) -> None:
    """Until GET /healthz answers 200; fails at once if `server` exits, showing its log."""
    deadline = time.monotonic() + timeout
    while True:
        if server is not None and server.poll() is not None:
            raise AssertionError(f"tala serve exited ({server.returncode}):\n{_tail(log)}")
        try:
            if requests.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url}/healthz not healthy within {timeout:g} s:\n"
                                 f"{_tail(log)}")
        time.sleep(0.1)


def _tail(log: Path | None, lines: int = 40) -> str:
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def stop_leftover_redis(data_dir: Path) -> None:
    """The embedded redis-server of `data_dir`, if a crashed tala left it running (one that
    stops cleanly stops it too)."""
    try:
        registry = json.loads((data_dir / "redis.db.settings").read_text())
        proc = psutil.Process(int(Path(registry["pidfile"]).read_text().strip()))
        if "redis" in proc.name():
            proc.terminate()
            proc.wait(30)
    except (OSError, ValueError, KeyError, psutil.Error):
        pass


def _base_env(folder: Path) -> dict[str, str]:
    # Nothing of the caller's installation: no server of its own, no proxy between tala and
    # the fakes, no Twilio edge spliced into the fake's host name.
    drop = {"REDIS_URL", "DATABASE_URL", "TALA_SERVER", "TWILIO_EDGE", "TWILIO_REGION",
            "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update({"TALA_DATA_DIR": str(folder / "data"), "XDG_CONFIG_HOME": str(folder / "config"),
                "TALA_LANG": "sv", "NO_PROXY": "127.0.0.1,localhost", "COLUMNS": "120"})
    return env


@dataclass
class StaffServer:
    """A running `tala serve` and what it talks to. `twilio.messages` is every SMS it sent,
    `telegram.sent` every Telegram message, `mailbox` every e-mail."""

    url: str
    env: dict[str, str]
    data_dir: Path
    log: Path
    twilio: FakeTwilio
    telegram: FakeTelegram
    mailbox: Mailbox
    _ids: Iterator[int] = field(default_factory=itertools.count)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every SMS tala asked Twilio to send (dicts with "to", "body", "sid", ...)."""
        return self.twilio.messages

    def wait_sms(self, to: str, n: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        """The SMS sent to `to`, once there are at least `n` of them."""
        deadline = time.monotonic() + timeout
        while True:
            mine = [m for m in self.sent if m["to"] == to and m["sid"]]
            if len(mine) >= n:
                return mine
            assert time.monotonic() < deadline, \
                f"no {n} SMS to {to} within {timeout:g} s; sent: {self.sent}"
            time.sleep(0.05)

    def tala(self, *args: str, user: str = "admin", stdin: str = "",
             check: bool = True) -> subprocess.CompletedProcess:
        """`tala ARGS` as staff member `user`, another process on the server's data directory
        (no TALA_SERVER: the local way, as on the server's own machine). With `check`, a
        non-zero exit fails the test showing what it printed."""
        done = subprocess.run([sys.executable, "-m", "admin_cli.main", *args], input=stdin,
                              capture_output=True, text=True, timeout=120,
                              env={**self.env, "TALA_USER": user})
        if check:
            assert done.returncode == 0, (f"tala {' '.join(args)} exited {done.returncode}:\n"
                                          f"{done.stdout}{done.stderr}")
        return done

    def sms_in(self, from_number: str, body: str) -> str:
        """A child's text as Twilio delivers it (signed for TALA_PUBLIC_URL + /sms/twilio);
        returns tala's TwiML answer. `from_number` in E.164, as Twilio sends it."""
        params = {"MessageSid": f"SMbrowser{next(self._ids):025d}",
                  "AccountSid": self.twilio.account_sid, "From": from_number, "To": SMS_FROM,
                  "Body": body}
        signature = RequestValidator(self.twilio.auth_token).compute_signature(
            self.url + "/sms/twilio", params)
        resp = requests.post(self.url + "/sms/twilio", data=params, timeout=30,
                             headers={"X-Twilio-Signature": signature})
        assert resp.status_code == 200, f"/sms/twilio answered {resp.status_code}: {resp.text}"
        return resp.text

    def telegram_in(self, update: dict) -> requests.Response:
        """A Telegram update as the Bot API delivers it to the webhook, e.g.
        `server.telegram_in(server.telegram.message_update(7100, "/start CODE"))`."""
        return requests.post(self.url + "/telegram/webhook", json=update, timeout=30,
                             headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})


@contextmanager
def staff_server(folder: Path) -> Iterator[StaffServer]:
    """`tala serve --port P` (its worker too) on `folder`/data, every channel configured:
    SMS through the fake Twilio, Telegram through the fake Bot API (webhook), e-mail alerts to
    a real SMTP server with STARTTLS. TALA_PUBLIC_URL is the server's own http://127.0.0.1:P,
    so signatures, links and the pages' origin checks all name the address the browser uses.
    Healthy when it yields; stopped with SIGTERM (and waited for) after."""
    folder.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        twilio = stack.enter_context(FakeTwilio())
        telegram = stack.enter_context(FakeTelegram())
        mailbox = stack.enter_context(Mailbox(folder))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {**_base_env(folder), "TALA_PUBLIC_URL": url,
               "TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
               "TWILIO_FROM_NUMBER": SMS_FROM, "TWILIO_API_BASE_URL": twilio.base_url,
               "TALA_SMS_RATE": "100", "TELEGRAM_BOT_TOKEN": telegram.token,
               "TELEGRAM_BOT_USERNAME": telegram.username,
               "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
               "TELEGRAM_API_BASE_URL": telegram.api_base_url,
               "TALA_SMTP_URL": mailbox.url, "TALA_ALERT_FROM": ALERT_FROM,
               "TALA_SENDER_NAME": "Socialtjänsten i Nacka"}
        data_dir, log = folder / "data", folder / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen([sys.executable, "-m", "admin_cli.main", "serve",
                                       "--port", str(port)], env=env, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, server, log)
            yield StaffServer(url, env, data_dir, log, twilio, telegram, mailbox)
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
            stop_leftover_redis(data_dir)
