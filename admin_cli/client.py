"""The CLI as a client of the staff API: the login it keeps, and a staff operation sent to the
server instead of run on the local data directory.

`tala login --server URL` keeps the server and a token in the user's config directory
($XDG_CONFIG_HOME/tala/login.json, else ~/.config/tala/login.json), readable by its owner only.
From then on every staff command goes to that server, until `tala logout`. TALA_SERVER names
a server without a login file only to say that a login is needed. Only the standard library is
used here, so a command on a caseworker's own computer starts quickly.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from admin_cli.i18n import _, staff_lang
from admin_cli.ops import Document, Op
from bot.net import is_loopback

API = "/api/v1"
TIMEOUT = 300.0  # an export of a year's sessions takes a while


class ClientError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.message, self.code = message, code


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "tala"


def login_file() -> Path:
    return config_dir() / "login.json"


def check_url(server: str) -> str:
    """The server's base URL, or ClientError: https, or http only to this machine."""
    url = urllib.parse.urlsplit(server.strip())
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ClientError(_("'{server}' är ingen serveradress: skriv den som "
                            "https://tala.kommun.se").format(server=server))
    if url.scheme == "http" and not is_loopback(url.hostname):
        raise ClientError(_("{server} är vanlig HTTP: din token skulle gå oskyddad över "
                            "nätet. Använd https://{host}").format(server=server,
                                                                   host=url.netloc))
    return f"{url.scheme}://{url.netloc}{url.path.rstrip('/')}"


def save_login(server: str, token: str, who: dict) -> Path:
    path = login_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"server": server, "token": token, "user": who}, fh)
    os.replace(tmp, path)
    return path


def load_login() -> dict | None:
    try:
        return json.loads(login_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def remote() -> Server | None:
    """The server this CLI talks to, or None to work on the local data directory."""
    login = load_login()
    named = os.environ.get("TALA_SERVER")
    if login and login.get("server") and login.get("token"):
        if named and check_url(named) != login["server"]:
            raise ClientError(_("Du är inloggad på {server}, inte på {named}: "
                                "tala login --server {named}").format(server=login["server"],
                                                                      named=named))
        return Server(login["server"], login["token"])
    if named:
        raise ClientError(_("TALA_SERVER är {named}, men du har inte loggat in där: "
                            "tala login --server {named}").format(named=named), 3)
    return None


def _plain(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Server:
    url: str
    token: str | None = None

    def request(self, method: str, path: str, *, query: dict | None = None,
                body: dict | None = None) -> Document:
        target = self.url + API + path
        if query:
            target += "?" + urllib.parse.urlencode(
                {k: _plain(v) for k, v in query.items() if v is not None})
        # The server answers in the language this person reads (admin_cli/i18n.py).
        headers = {"Accept": "application/json", "User-Agent": "tala-cli",
                   "Accept-Language": staff_lang()}
        data = None
        if body is not None:
            data = json.dumps({k: v.isoformat() if isinstance(v, date) else v
                               for k, v in body.items() if v is not None}).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(target, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
                return Document(resp.read(), resp.headers.get_content_type())
        except urllib.error.HTTPError as e:
            raise self._error(e) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ClientError(_("Kan inte nå {url} ({reason}). Är tala serve igång där?")
                              .format(url=self.url, reason=reason), 4) from None

    def _error(self, e: urllib.error.HTTPError) -> ClientError:
        try:
            answer = json.loads(e.read() or b"{}")
        except ValueError:
            answer = {}
        message = answer.get("error") or _("{url} svarade {status} {reason}.").format(
            url=self.url, status=e.code, reason=e.reason)
        if e.code == 401:
            return ClientError(_("{message} Logga in igen: tala login --server {url}").format(
                message=message, url=self.url), 3)
        return ClientError(message, int(answer.get("exit", 3 if e.code == 403 else 2)))

    def call(self, op: Op, params: dict[str, Any]) -> Any:
        """Operation `op` with these parameters: its JSON data, or its Document."""
        path = op.path
        query, body = {}, {}
        for p in op.params:
            value = params.get(p.name)
            if p.where == "path":
                path = path.replace("{%s}" % p.name, urllib.parse.quote(_plain(value), safe=""))
            elif value is not None:
                (query if p.where == "query" else body)[p.name] = value
        reply = self.request(op.method, path, query=query or None,
                             body=body if op.method in ("POST", "PUT") else None)
        return reply if op.document else json.loads(reply.content)
