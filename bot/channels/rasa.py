"""Rasa: the action server (`tala rasa-actions`) with one action, `action_tala_step`.

A municipality's Rasa assistant hands the conversation to tala while the slot `tala_active` is
true: the action reads the latest user message from the tracker, binds the conversation to a
session by invitation code on first use, runs the same conversation service as every channel,
and returns the reply as responses with buttons, plus slot events. The few lines the Rasa
project needs are in the README ("Inside a Rasa assistant").

rasa-sdk's server has no authentication of its own, and whoever can call it answers for a
child. So every call but `GET /health` must carry TALA_RASA_TOKEN, as Rasa's `endpoints.yml`
sends it: a header `Authorization: Bearer <token>` (`headers:`), or `?token=<token>` (`token:`).
Without a token the server starts only on this machine's loopback address, and says so.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher

from bot.receive import ANSWERED, DUPLICATE, GONE, STALE, TOO_MANY
from bot.service import CODE_ALPHABET, ConversationService
from flows import messages as M
from flows.engine import Say
from flows.i18n import SOURCE_LANG

ACTION_NAME = "action_tala_step"
CHANNEL = "rasa"
MIN_TOKEN_LENGTH = 16
# As long as the codes `invite()` makes: 10 characters (console, Rasa), 16 (Telegram).
CODE_LENGTHS = (10, 16)
_RUN = re.compile(r"[^\W_]+")  # a run of letters and digits
_JOIN = re.compile(r"\s*[-\u2010-\u2015]?\s*")  # what may stand in a code: "ABCDE FGHJK"
_ALPHABET = frozenset(CODE_ALPHABET)
_MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"

log = logging.getLogger("tala.rasa")


class ExposureError(RuntimeError):
    """The action server would be open to anyone who reaches it; the message says what to set."""


def check_exposure(token: str | None, host: str) -> str | None:
    """Raise ExposureError when the server must not start like this; return the warning to
    show when it starts without a token (loopback only), else None."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ExposureError(f"TALA_RASA_TOKEN is too short to be a secret: use at least "
                            f"{MIN_TOKEN_LENGTH} random characters, made with: {_MAKE_TOKEN}")
    if token:
        return None
    if not _is_loopback(host):
        raise ExposureError(
            f"tala rasa-actions would listen on {host} with no TALA_RASA_TOKEN: anyone who "
            "reaches the port could answer for a child. Set TALA_RASA_TOKEN to a long random "
            f"string ({_MAKE_TOKEN}) and send it from Rasa's endpoints.yml (see the README, "
            "\"Inside a Rasa assistant\"), or listen on 127.0.0.1.")
    return (f"TALA_RASA_TOKEN is not set: every program on this machine can call the action "
            f"server on {host}. Set it (and send it from Rasa) before Rasa runs anywhere else.")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bearer(header: str) -> str | None:
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def require_token(server: Any, token: str | None) -> None:
    """Refuse, with 403, every call to `server` (rasa-sdk's Sanic app) but `GET /health` that
    does not carry `token`; compared in constant time. And, token or not, only JSON is taken:
    a web page in a browser on this machine cannot send that to another origin unasked."""
    from sanic import response

    expected = token.encode("utf-8") if token else None

    def matches(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            given.encode("utf-8", "surrogatepass"), expected)

    async def check(request: Any) -> Any:
        if request.path == "/health":
            return None
        if expected is not None and not (
                matches(_bearer(request.headers.get("authorization", "")))
                | matches(request.args.get("token"))):
            log.warning("refused a call to %s without the right TALA_RASA_TOKEN (from %s)",
                        request.path, request.remote_addr or request.ip)
            return response.json({"error": "forbidden"}, status=403)
        if request.method == "POST" and request.content_type.split(";")[0].strip().lower() \
                != "application/json":
            return response.json({"error": "send JSON"}, status=415)
        return None

    server.on_request(check, priority=100)  # before rasa-sdk's own middleware


@dataclass(frozen=True)
class Found:
    """What a child's message holds that may be an invitation code."""
    candidates: list[str]  # could be a code, the likeliest first
    attempt: str | None  # what a wrong claim counts as (None: the message holds no code)


def find_code(text: str) -> Found:
    """The invitation code in a message such as "I have a code from social services:
    D5A2NKCPSP", found by the code's own alphabet and length, not as the first long word: a run
    of letters and digits, or two runs joined by a space or hyphen ("D5A2N KCPSP"), that is,
    upper-cased, as long as a code and only CODE_ALPHABET ("services", "socialtjänsten" are
    not). Likeliest first: with a digit, then typed in upper case, then a lower-case word (a
    code typed in lower case, or a word such as "understand": they cannot be told apart); two
    lower-case words together ("please help") are never taken for a code. A code-shaped guess
    the alphabet rules out ("ABCDE-12345": no code has a 0, 1, I or O) is no candidate, but it
    is an attempt, and counts as a wrong code as it always did."""
    text = unicodedata.normalize("NFKC", text)
    runs = list(_RUN.finditer(text))
    ranked: list[tuple[tuple[int, int, int], str]] = []
    impossible: str | None = None
    for i, run in enumerate(runs):
        groups = [(run.group(0), False)]
        if i + 1 < len(runs) and _JOIN.fullmatch(text[run.end():runs[i + 1].start()]):
            groups.append((run.group(0) + runs[i + 1].group(0), True))
        for typed, joined in groups:
            code = typed.upper()
            if not typed.isascii() or len(code) not in CODE_LENGTHS:
                continue
            digit = any(c.isdigit() for c in code)
            if not _ALPHABET.issuperset(code):
                if digit and not code.isdigit() and impossible is None:
                    impossible = code
                continue
            tier = 0 if digit else 1 if typed.isupper() else 2
            if tier == 2 and joined:
                continue
            ranked.append(((tier, joined, i), code))
    candidates = list(dict.fromkeys(code for _, code in sorted(ranked)))
    return Found(candidates, candidates[0] if candidates else impossible)


@dataclass
class Step:
    responses: list[dict[str, Any]]
    active: bool
    session: str | None


def _points(scale: tuple[int, int] | None) -> tuple[int, int]:
    return (scale[0], scale[1] + 1) if scale else (0, 0)


def responses(says: list[Say]) -> list[dict[str, Any]]:
    """Rasa responses: a question's text with its hint, and its choices (or a number scale's
    points, as on Telegram) as buttons whose payload is what the child would type."""
    out = []
    for say in says:
        if say.prompt is None:
            out.append({"text": say.text})
            continue
        p = say.prompt
        text = p.text + (f"\n{p.hint}" if p.hint else "")
        choices = p.choices or [(str(n), str(n)) for n in range(*_points(p.scale_range))]
        out.append({"text": text, "buttons": [{"title": label, "payload": key}
                                                for key, label in choices]})
    return out


class TalaStep(Action):
    def __init__(self, service: ConversationService):
        self.service = service

    def name(self) -> str:
        return ACTION_NAME

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        latest = tracker.latest_message or {}
        step = await asyncio.to_thread(self.step, tracker.sender_id, latest.get("text") or "",
                                       latest.get("message_id"))
        for r in step.responses:
            dispatcher.utter_message(**r)
        return [SlotSet("tala_active", step.active), SlotSet("tala_session", step.session)]

    def step(self, sender: str, text: str, message_id: str | None) -> Step:
        """One message: the code in it opens the invitation when the conversation is not bound
        yet (an unknown code is answered as one); after that, the conversation."""
        found = find_code(text)
        got = self.service.receive(CHANNEL, sender, text, message_id,
                                   codes=found.candidates or ([found.attempt] if found.attempt
                                                              else []))
        if got.outcome in (ANSWERED, DUPLICATE, STALE):
            return Step(responses(got.says), got.active, got.sid if got.active else None)
        msg = {TOO_MANY: M.CODE_TOO_MANY, GONE: M.NEEDS_INVITATION}.get(got.outcome,
                                                                         M.CODE_UNKNOWN)
        return Step([{"text": self._sv(msg)}], False, None)

    def _sv(self, msgid: str) -> str:
        return self.service.rt.catalogs.gettext(SOURCE_LANG, msgid)


def build_executor(service: ConversationService) -> ActionExecutor:
    executor = ActionExecutor()
    executor.register_action(TalaStep(service))
    return executor


def build_server(service: ConversationService, token: str | None) -> Any:
    """rasa-sdk's own Sanic app with the token check in front. No CORS: Rasa calls from a
    server, never from a browser."""
    from rasa_sdk.endpoint import create_app

    server = create_app(build_executor(service), cors_origins=None)
    require_token(server, token)
    return server


def run(service: ConversationService, token: str | None, host: str, port: int) -> None:
    """The server, in this one process (the action holds tala's clients, which cannot be
    handed to forked workers). Refuses to start open to the network (ExposureError); the
    caller shows the warning check_exposure gives for a loopback server without a token."""
    check_exposure(token, host)
    build_server(service, token).run(host=host, port=port, single_process=True, access_log=False)
