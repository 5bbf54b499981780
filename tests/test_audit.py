"""The CI's vulnerability audit (.ci/audit.py), against a local server that speaks PyPI's
JSON API: a known vulnerability fails the run, and what cannot be audited is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest

AUDIT = Path(__file__).resolve().parent.parent / ".ci" / "audit.py"


class FakePyPI:
    """Release pages for every installed distribution but `hidden`; one vulnerability for
    `vulnerable` (and a withdrawn one for `withdrawn`)."""

    def __init__(self, vulnerable: str, withdrawn: str, hidden: str):
        self.asked: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake.asked.append(self.path)
                parts = self.path.strip("/").split("/")  # pypi/NAME[/VERSION]/json
                name = parts[1] if len(parts) >= 3 else ""
                if name == hidden or len(parts) != 4:
                    self.send_response(404)
                    self.end_headers()
                    return
                vulns = []
                if name in (vulnerable, withdrawn):
                    vulns = [{"id": "PYSEC-2099-1", "aliases": ["CVE-2099-0001"],
                              "fixed_in": ["99.0"], "link": "https://osv.dev/PYSEC-2099-1",
                              "withdrawn": "2099-01-02T00:00:00Z" if name == withdrawn
                              else None}]
                body = json.dumps({"info": {"version": parts[2]},
                                   "vulnerabilities": vulns}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/pypi"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pypi():
    made = []

    def make(**kw) -> FakePyPI:
        made.append(FakePyPI(**kw))
        return made[-1]

    yield make
    for f in made:
        f.close()


def run_audit(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TALA_AUDIT_PYPI": url, "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    return subprocess.run([sys.executable, str(AUDIT)], env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_known_vulnerability_fails_the_audit_and_is_named(pypi):
    fake = pypi(vulnerable="redis", withdrawn="aiohttp", hidden="babel")
    done = run_audit(fake.url)
    assert done.returncode == 1, done.stdout + done.stderr
    redis_version = metadata.version("redis")
    assert f"VULNERABLE redis {redis_version}: PYSEC-2099-1, CVE-2099-0001 (fixed in 99.0)" \
        in done.stdout
    assert "aiohttp" not in done.stdout  # withdrawn: not a finding
    assert f"not audited: babel {metadata.version('babel')}" in done.stdout  # never silent
    assert "1 known vulnerabilities" in done.stdout
    assert f"/pypi/redis/{redis_version}/json" in fake.asked  # the installed release's page


def test_a_clean_audit_passes(pypi):
    fake = pypi(vulnerable="", withdrawn="", hidden="")
    done = run_audit(fake.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 known vulnerabilities, 0 not audited" in done.stdout
    assert not any("/tala/" in p for p in fake.asked)  # this project is not on PyPI
