"""A fake Telegram Bot API on 127.0.0.1, for tests that must never reach Telegram.

`FakeTelegram` is a real HTTP server (stdlib `ThreadingHTTPServer`, one thread per connection,
HTTP/1.1 keep-alive) that answers ``POST|GET {api_base_url}/bot{token}/{method}`` as the Bot
API does: ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code", "description",
"parameters"?}`` with the matching HTTP status. It serves what tala uses:

    getMe, setWebhook, deleteWebhook, getWebhookInfo, getUpdates (long polling), sendMessage,
    editMessageText, editMessageReplyMarkup, answerCallbackQuery, sendVoice, setMyCommands

Every request for a served method is recorded in `fake.calls`, failed ones too; anything else
(another method, another path such as file downloads) is answered 404 in Telegram's shape and
listed in `fake.unhandled`, so a test can assert that nothing un-faked was called.

Pointing aiogram at it (checked against aiogram 3.31's source)::

    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    with FakeTelegram() as fake:
        session = AiohttpSession(api=TelegramAPIServer.from_base(fake.api_base_url))
        bot = Bot(fake.token, session=session)
        await bot.send_message(42, "Hej")          # inside a coroutine
        assert fake.sent[0]["text"] == "Hej"

`TelegramAPIServer.from_base(url)` (aiogram/client/telegram.py) builds the URL templates
"{url}/bot{token}/{method}" and "{url}/file/bot{token}/{path}"; `BaseSession(api=...)` keeps
it and `AiohttpSession.make_request` formats it on every call. Nothing else in aiogram knows
api.telegram.org, so the whole bot talks to the fake.

What aiogram puts on the wire (aiogram/client/session/aiohttp.py `build_form_data` and
base.py `prepare_value`), all of which this fake accepts:

- Always a POST with form data, never JSON. Without a file it is
  application/x-www-form-urlencoded (getMe sends an empty body); with a file it is
  multipart/form-data sent with ``Transfer-Encoding: chunked`` and no Content-Length, because
  `InputFile.read` is an async generator.
- Every value is a string: str as is; int and bool through json.dumps ("42", "true",
  "false"); objects and lists (reply_markup, allowed_updates, commands) as JSON text; None and
  "" are left out. A file is a part named by a random key with its filename, and the
  parameter says "attach://<key>".

The Bot API also takes a query string and application/json bodies; so does this fake. Values
are decoded back to JSON types, except free-text parameters (text, caption, data, ...) which
stay strings, so a text "1" is not turned into the number 1.

Faithful where it is cheap: errors with Telegram's descriptions for an empty or too long text,
an unparsable reply_markup, callback_data over 64 bytes, an inline button without an action, an
unknown callback query id, editing a message that is missing, not the bot's, or unchanged
("message is not modified"), a non-HTTPS or wrong-port webhook, an invalid bot command, and the
two 409 conflicts of getUpdates (a webhook is set; a newer getUpdates took over). Message ids
count per chat, shared by the bot's messages and those built by `message_update`, as in a
private chat. Not modelled: parse_mode is recorded but the text is not parsed for entities,
lengths are counted in UTF-16 code units of the raw text, and voice URLs are not fetched.

Tests push updates with `fake.push_update(fake.message_update(chat_id, "hej"))`; getUpdates
returns them with update_id >= offset, forgets those below offset, waits at most
`long_poll_cap` seconds (not the requested `timeout`) and returns as soon as one arrives.

What a test reads: `calls` (everything, failures too), and the successful calls as `sent`,
`voices`, `callback_answers`, `edits`; `webhook`; `message(chat_id, message_id)` as the chat
shows it now; `pending_updates`; `unhandled`; `wait_for(method, count)`. What it arranges:
`push_update`, `fail_next(method, n, error_code, description, retry_after)`,
`fail_for(chat_id)` (403 "bot was blocked by the user" by default), `reset()`.

How aiogram reports the answers (base.py `check_response`): a `parameters.retry_after`
raises `TelegramRetryAfter` whatever the status, and its message is rewritten ("Flood control
exceeded on method ... Original description: ..."); otherwise the HTTP status picks the type
(400 TelegramBadRequest, 401 TelegramUnauthorizedError, 403 TelegramForbiddenError, 404
TelegramNotFound, 409 TelegramConflictError, 5xx TelegramServerError) and `.message` is the
description. aiogram never retries a call by itself; only its polling loop backs off.

aiohttp's ClientSession is created without trust_env, so HTTP_PROXY cannot take a test's
requests away from the fake (unlike requests, for Twilio).
"""

from __future__ import annotations

import copy
import json
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message as _MimeHeaders
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.http import Answer, HTTPFake

DEFAULT_TOKEN = "123456:TEST-token"
DEFAULT_USERNAME = "tala_test_bot"

MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64  # bytes
MAX_UPDATES = 100

# Telegram delivers all update types except these unless allowed_updates names them.
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

# Parameters that are free text (or a file reference): kept as strings, never JSON-decoded.
_TEXT_PARAMS = frozenset({
    "text", "caption", "parse_mode", "secret_token", "url", "callback_query_id",
    "inline_message_id", "language_code", "business_connection_id", "message_effect_id",
    "ip_address", "description", "short_description", "name", "title", "query", "data",
    "emoji", "voice", "audio", "document", "photo", "video", "animation", "sticker",
    "video_note", "thumbnail", "certificate",
})

_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[A-Za-z]+)/?$")
_TOKEN = re.compile(r"^(?P<id>\d+):[A-Za-z0-9_-]+$")
_LEADING_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?")
_BOT_COMMAND = re.compile(r"^[a-z0-9_]{1,32}$")
_WEBHOOK_PORTS = (80, 88, 443, 8443)

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_QUERY_TOO_OLD = (
    "Bad Request: query is too old and response timeout expired or query ID is invalid"
)
_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict: terminated by other getUpdates request; make sure that only one bot "
    "instance is running",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


class TelegramError(Exception):
    """A Bot API error answer: HTTP status = error_code, as Telegram does."""

    def __init__(
        self, error_code: int, description: str, retry_after: int | None = None
    ) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False, "error_code": self.error_code, "description": self.description
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def make_error(
    error_code: int, description: str | None = None, retry_after: int | None = None
) -> TelegramError:
    """An error as Telegram words it; 429 always carries retry_after (default 1)."""
    if not 400 <= error_code <= 599:
        raise ValueError(f"error_code must be an HTTP error status (400-599), got {error_code}")
    if error_code == 429 and retry_after is None:
        retry_after = 1
    if description is None:
        if error_code == 429:
            description = f"Too Many Requests: retry after {retry_after}"
        else:
            description = _DEFAULT_DESCRIPTIONS.get(error_code) or HTTPStatus(error_code).phrase
    return TelegramError(error_code, description, retry_after)


def _bad_request(what: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {what}")


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (offsets and limits are in UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart request."""

    field: str
    filename: str | None
    content_type: str | None
    content: bytes


def _parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, Upload]]:
    """multipart/form-data -> (text fields, file parts by field name). Parts with a filename
    are files; the others are text in their declared charset (UTF-8 by default)."""
    header = _MimeHeaders()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise _bad_request("multipart body without a boundary")
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    # A delimiter is CRLF "--" boundary; the first one may start the body without the CRLF.
    chunks = (b"\r\n" + body).split(b"\r\n--" + boundary.encode("latin-1"))
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter
        _, _, chunk = chunk.partition(b"\r\n")  # rest of the delimiter line
        head, _, content = chunk.partition(b"\r\n\r\n")
        headers = _MimeHeaders()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip()] = value.strip()
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = headers.get_filename()
        if filename is not None:
            files[name] = Upload(name, filename, headers.get("content-type"), content)
        else:
            charset = headers.get_content_charset() or "utf-8"
            fields[name] = content.decode(charset)
    return fields, files


def _decode(params: dict[str, Any]) -> dict[str, Any]:
    """Turn the wire's strings back into what they stand for: "42" -> 42, "true" -> True,
    '{"inline_keyboard": ...}' -> dict. Free text stays as sent."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, str) and key not in _TEXT_PARAMS:
            try:
                value = json.loads(value)
            except ValueError:
                pass  # "@channel", "attach://x", ...: a plain string
        out[key] = value
    return out


def _update_type(update: dict[str, Any]) -> str | None:
    return next((k for k in update if k != "update_id"), None)


class FakeTelegram(HTTPFake):
    """A local Telegram Bot API that records what it is sent and fails when told to.

    Use as `with FakeTelegram() as fake:` or call `start()` and `stop()`. Every method is safe
    to call from any thread while the server answers requests.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        username: str = DEFAULT_USERNAME,
        *,
        first_name: str = "Tala (test)",
        long_poll_cap: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        match = _TOKEN.match(token)
        if match is None:
            raise ValueError(f"a bot token looks like '123456:ABC-def_0', not {token!r}")
        super().__init__()
        self.token = token
        self.username = username
        self.bot_id = int(match["id"])
        self.first_name = first_name
        self.long_poll_cap = long_poll_cap
        self._clock = clock  # message dates; give a fixed one for reproducible transcripts
        # Counters survive reset(), so ids stay unique for the life of the fake.
        self._next_update_id = 1
        self._next_message_id: defaultdict[int | str, int] = defaultdict(lambda: 1)
        self._next_callback = 1
        self._next_file = 1
        self._poll_generation = 0
        self._stopping = False
        self._clear()

    def _clear(self) -> None:
        self._calls: list[dict[str, Any]] = []
        self._unhandled: list[tuple[str, str]] = []
        self._fail_next: defaultdict[str, deque[TelegramError]] = defaultdict(deque)
        self._fail_for: dict[int | str, TelegramError] = {}
        self._updates: list[dict[str, Any]] = []
        self._last_pushed_id = 0
        self._allowed_updates: list[str] = []
        self._webhook: dict[str, Any] | None = None
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._chats: dict[int | str, dict[str, Any]] = {}
        self._callback_ids: set[str] = set()
        self._files: dict[str, dict[str, Any]] = {}

    # -- lifecycle (start, stop, `with`: HTTPFake) ------------------------------------------

    def start(self) -> FakeTelegram:
        if self._server is None:
            self._stopping = False  # a restarted fake long-polls again
        return super().start()

    def _before_shutdown(self) -> None:
        # A waiting getUpdates returns at once instead of outliving the fake.
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    @property
    def api_base_url(self) -> str:
        """ "http://127.0.0.1:PORT", for `TelegramAPIServer.from_base(...)`."""
        return self._base_url()

    # -- what the test reads ----------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every request to a served method, in the order they were answered: dicts with
        "method" (canonical spelling), "params" (decoded), "files" (field -> `Upload`),
        "result" (what was answered, None on error), "error_code" (None when it succeeded)
        and "at" (time.monotonic() on arrival)."""
        with self._cond:
            return copy.deepcopy(self._calls)

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        """`calls` of one method (any spelling), failed ones included."""
        name = self._canonical(method)
        return [c for c in self.calls if c["method"] == name]

    @property
    def polls_started(self) -> int:
        """How many getUpdates calls have started waiting (a test's signal that one is
        under way)."""
        with self._cond:
            return self._poll_generation

    @property
    def unhandled(self) -> list[tuple[str, str]]:
        """(HTTP method, path) of every request this fake does not serve (answered 404), or
        that crashed the fake (answered 500)."""
        with self._cond:
            return list(self._unhandled)

    @property
    def sent(self) -> list[dict[str, Any]]:
        """Successful sendMessage calls: "chat_id", "text", "parse_mode", "reply_markup" (the
        parsed JSON, or None), "message_id", "at"."""
        return [
            {
                "chat_id": c["params"].get("chat_id"),
                "text": c["params"].get("text"),
                "parse_mode": c["params"].get("parse_mode"),
                "reply_markup": c["params"].get("reply_markup"),
                "message_id": c["result"]["message_id"],
                "at": c["at"],
            }
            for c in self._succeeded("sendMessage")
        ]

    @property
    def voices(self) -> list[dict[str, Any]]:
        """Successful sendVoice calls: "chat_id", "caption", "filename" and "content" (bytes;
        both None when an existing file_id or a URL was sent), "duration", "file_id",
        "message_id", "at"."""
        out = []
        for c in self._succeeded("sendVoice"):
            upload = self._voice_upload(c["params"], c["files"])
            out.append({
                "chat_id": c["params"].get("chat_id"),
                "caption": c["params"].get("caption"),
                "filename": upload.filename if upload else None,
                "content": upload.content if upload else None,
                "duration": c["params"].get("duration"),
                "file_id": c["result"]["voice"]["file_id"],
                "message_id": c["result"]["message_id"],
                "at": c["at"],
            })
        return out

    @property
    def callback_answers(self) -> list[dict[str, Any]]:
        """Successful answerCallbackQuery calls: "callback_query_id", "text", "show_alert"
        (False when not sent), "at"."""
        return [
            {
                "callback_query_id": c["params"].get("callback_query_id"),
                "text": c["params"].get("text"),
                "show_alert": c["params"].get("show_alert", False),
                "at": c["at"],
            }
            for c in self._succeeded("answerCallbackQuery")
        ]

    @property
    def edits(self) -> list[dict[str, Any]]:
        """Successful editMessageText / editMessageReplyMarkup calls: "method", "chat_id",
        "message_id", "text" (None for a markup edit), "reply_markup", "at"."""
        return [
            {
                "method": c["method"],
                "chat_id": c["params"].get("chat_id"),
                "message_id": c["params"].get("message_id"),
                "text": c["params"].get("text"),
                "reply_markup": c["params"].get("reply_markup"),
                "at": c["at"],
            }
            for c in self._succeeded("editMessageText", "editMessageReplyMarkup")
        ]

    @property
    def webhook(self) -> dict[str, Any] | None:
        """The params of the setWebhook in force ("url", "secret_token", "allowed_updates",
        ...), or None when no webhook is set."""
        with self._cond:
            return copy.deepcopy(self._webhook)

    def message(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        """A message as the chat shows it now (edits applied), or None if the fake never saw
        it."""
        with self._cond:
            found = self._messages.get((chat_id, message_id))
            return copy.deepcopy(found)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Pushed updates that no getUpdates offset has confirmed yet."""
        with self._cond:
            return copy.deepcopy(self._updates)

    def wait_for(self, method: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Block until at least `count` calls of `method` succeeded; return those `calls`.

        A call counts once the fake has decided its answer, which the client may still be
        reading. Raises AssertionError after `timeout` seconds, listing what did arrive."""
        name = self._canonical(method)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                done = [c for c in self._calls if c["method"] == name and c["error_code"] is None]
                if len(done) >= count:
                    return copy.deepcopy(done)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(c["method"], c["error_code"]) for c in self._calls]
                    raise AssertionError(
                        f"FakeTelegram: expected {count} successful {name} call(s) within "
                        f"{timeout}s, got {len(done)}; all calls (method, error_code): "
                        f"{seen!r}; unhandled: {self._unhandled!r}"
                    )
                self._cond.wait(remaining)

    # -- what the test arranges -------------------------------------------------------------

    def push_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue an update for getUpdates; returns it. Without "update_id" it gets the next
        one. Ids must increase, as Telegram's do: an older id would be skipped by a client
        whose offset has passed it, so that is refused."""
        update = copy.deepcopy(update)
        with self._cond:
            if "update_id" not in update:
                update["update_id"] = self._take_update_id()
            if update["update_id"] <= self._last_pushed_id:
                raise ValueError(
                    f"update_id {update['update_id']} is not above the last pushed "
                    f"({self._last_pushed_id}); push updates in the order they were built"
                )
            self._last_pushed_id = update["update_id"]
            self._next_update_id = max(self._next_update_id, update["update_id"] + 1)
            self._updates.append(update)
            self._cond.notify_all()
        return copy.deepcopy(update)

    def fail_next(
        self,
        method: str,
        n: int = 1,
        error_code: int = 429,
        description: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        """Fail the next `n` calls of `method` (after the token is checked) with a Bot API
        error. 429 gets "Too Many Requests: retry after N" and parameters.retry_after (1 unless
        given). Adds to failures still pending for that method."""
        name = self._canonical(method)
        error = make_error(error_code, description, retry_after)
        with self._cond:
            self._fail_next[name].extend([error] * n)

    def fail_for(
        self, chat_id: int | str, error_code: int = 403, description: str | None = None
    ) -> None:
        """Fail every call whose chat_id is `chat_id`, by default as a child who blocked the
        bot does: 403 "Forbidden: bot was blocked by the user"."""
        error = make_error(error_code, description)
        with self._cond:
            self._fail_for[chat_id] = error

    def reset(self) -> None:
        """Forget records, rules, queued updates, the webhook and known messages. Ids keep
        counting, so they stay unique."""
        with self._cond:
            self._clear()
            self._cond.notify_all()

    # -- building updates -------------------------------------------------------------------

    def message_update(
        self,
        chat_id: int,
        text: str,
        user_id: int | None = None,
        first_name: str = "Test",
        *,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """An Update with a text message from a user in a private chat, shaped as the Bot API
        sends it (a leading /command gets its bot_command entity). Not queued: pass it to
        `push_update`, or post it to the bot's webhook."""
        user = self._user(chat_id if user_id is None else user_id, first_name, language_code)
        with self._cond:
            chat = self._remember_chat(chat_id, first_name)
            message: dict[str, Any] = {
                "message_id": self._take_message_id(chat_id),
                "from": user,
                "chat": chat,
                "date": int(self._clock()),
                "text": text,
            }
            if command := _LEADING_COMMAND.match(text):
                message["entities"] = [
                    {"offset": 0, "length": utf16_len(command.group()), "type": "bot_command"}
                ]
            self._messages[(chat_id, message["message_id"])] = message
            return {"update_id": self._take_update_id(), "message": copy.deepcopy(message)}

    def callback_update(
        self,
        chat_id: int,
        data: str,
        message_id: int,
        user_id: int | None = None,
        first_name: str = "Test",
        *,
        language_code: str | None = None,
    ) -> dict[str, Any]:
        """An Update for a press on an inline button with `data` under the bot's message
        `message_id`. The message is the one the fake sent (as it is now); if the fake never
        saw it, a bare bot message with that id is assumed and remembered, so it can be
        edited. The query id is registered, so answerCallbackQuery accepts it."""
        user = self._user(chat_id if user_id is None else user_id, first_name, language_code)
        with self._cond:
            chat = self._remember_chat(chat_id, first_name)
            message = self._messages.get((chat_id, message_id))
            if message is None:
                message = {
                    "message_id": message_id,
                    "from": self._bot_user(),
                    "chat": chat,
                    "date": int(self._clock()),
                }
                self._messages[(chat_id, message_id)] = message
                self._next_message_id[chat_id] = max(
                    self._next_message_id[chat_id], message_id + 1
                )
            # Telegram's ids are opaque decimal strings; this one stays unique per fake.
            query_id = str(4_000_000_000_000_000_000 + self._next_callback)
            self._next_callback += 1
            self._callback_ids.add(query_id)
            query = {
                "id": query_id,
                "from": user,
                "message": copy.deepcopy(message),
                "chat_instance": str(-7_000_000_000_000_000_000 - chat_id),  # one per chat
                "data": data,
            }
            return {"update_id": self._take_update_id(), "callback_query": query}

    # -- the server side --------------------------------------------------------------------

    def _handle(self, http_method: str, target: str, headers: _MimeHeaders, raw: bytes) -> Answer:
        at = time.monotonic()
        content_type = headers.get("Content-Type", "")
        split = urlsplit(target)
        path = unquote(split.path)
        match = _PATH.match(path)
        name = self._canonical(match["method"], strict=False) if match else None
        if match is None or name is None or http_method not in ("GET", "POST"):
            with self._cond:
                self._unhandled.append((http_method, path))
                self._cond.notify_all()
            return 404, make_error(404, f"Not Found: FakeTelegram does not serve "
                                        f"{http_method} {path}").body(), {}
        record: dict[str, Any] = {
            "method": name, "params": {}, "files": {}, "result": None, "error_code": None,
            "at": at,
        }
        try:
            try:
                record["params"], record["files"] = self._params(split.query, content_type, raw)
                if match["token"] != self.token:
                    raise make_error(401)
                with self._cond:
                    result, description = self._respond(name, record["params"], record["files"])
                record["result"] = result
                payload: dict[str, Any] = {"ok": True, "result": result}
                if description:
                    payload["description"] = description
                status = 200
            except TelegramError as error:
                record["error_code"] = error.error_code
                status, payload = error.error_code, error.body()
        except Exception as crash:  # a bug in the fake: answer loudly, and list it
            with self._cond:
                self._unhandled.append((http_method, path))
            status = 500
            payload = make_error(500, f"FakeTelegram crashed: {crash!r}").body()
            record["error_code"] = 500
        with self._cond:
            self._calls.append(record)
            self._cond.notify_all()
        return status, payload, {}

    def _params(
        self, query: str, content_type: str, raw: bytes
    ) -> tuple[dict[str, Any], dict[str, Upload]]:
        params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
        files: dict[str, Upload] = {}
        kind = content_type.split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            fields, files = _parse_multipart(raw, content_type)
            params.update(fields)
        elif kind == "application/json" and raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise _bad_request("can't parse JSON object") from None
            if not isinstance(body, dict):
                raise _bad_request("parameters must be a JSON object")
            params.update(body)
        elif raw:
            params.update(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        return _decode(params), files

    def _respond(
        self, name: str, params: dict[str, Any], files: dict[str, Upload]
    ) -> tuple[Any, str | None]:
        """Decide the answer; called with the lock held (getUpdates waits on it)."""
        if self._fail_next[name]:
            raise self._fail_next[name].popleft()
        chat_id = params.get("chat_id")
        if isinstance(chat_id, (int, str)) and chat_id in self._fail_for:
            raise self._fail_for[chat_id]
        handler = getattr(self, f"_api_{name}")
        answer = handler(params, files)
        return answer if isinstance(answer, tuple) else (answer, None)

    _METHODS = (
        "getMe", "setWebhook", "deleteWebhook", "getWebhookInfo", "getUpdates", "sendMessage",
        "editMessageText", "editMessageReplyMarkup", "answerCallbackQuery", "sendVoice",
        "setMyCommands",
    )
    _BY_LOWER = {m.lower(): m for m in _METHODS}

    def _canonical(self, method: str, strict: bool = True) -> str | None:
        # The Bot API matches method names case-insensitively.
        name = self._BY_LOWER.get(method.lower())
        if name is None and strict:
            raise ValueError(f"FakeTelegram does not serve {method!r}; it serves "
                             f"{', '.join(self._METHODS)}")
        return name

    def _succeeded(self, *methods: str) -> list[dict[str, Any]]:
        with self._cond:
            return copy.deepcopy(
                [c for c in self._calls if c["method"] in methods and c["error_code"] is None]
            )

    # -- building blocks (lock held) --------------------------------------------------------

    def _take_update_id(self) -> int:
        with self._cond:
            update_id = self._next_update_id
            self._next_update_id += 1
            return update_id

    def _take_message_id(self, chat_id: int | str) -> int:
        message_id = self._next_message_id[chat_id]
        self._next_message_id[chat_id] += 1
        return message_id

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id, "is_bot": True, "first_name": self.first_name,
            "username": self.username,
        }

    @staticmethod
    def _user(user_id: int, first_name: str, language_code: str | None) -> dict[str, Any]:
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        return user

    def _remember_chat(self, chat_id: int, first_name: str) -> dict[str, Any]:
        chat = self._chat(chat_id)
        if chat["type"] == "private":
            chat["first_name"] = first_name
        with self._cond:
            self._chats[chat_id] = chat
        return copy.deepcopy(chat)

    def _chat(self, chat_id: int | str) -> dict[str, Any]:
        if chat_id in self._chats:
            return copy.deepcopy(self._chats[chat_id])
        if isinstance(chat_id, int) and chat_id > 0:
            return {"id": chat_id, "type": "private"}
        if isinstance(chat_id, int):
            return {"id": chat_id, "type": "supergroup" if chat_id < -10**12 else "group"}
        raise _bad_request("chat not found")  # "@username" of a chat the fake cannot know

    def _target_chat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        return self._chat(chat_id)

    @staticmethod
    def _check_markup(params: dict[str, Any]) -> dict[str, Any] | None:
        markup = params.get("reply_markup")
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _bad_request("can't parse reply keyboard markup JSON object")
        for row in markup.get("inline_keyboard") or []:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                    raise _bad_request("BUTTON_DATA_INVALID")
                if set(button) <= {"text"}:
                    raise _bad_request("can't parse inline keyboard button: Text buttons are "
                                       "unallowed in the inline keyboard")
        return markup

    def _new_message(self, chat: dict[str, Any], **content: Any) -> dict[str, Any]:
        message = {
            "message_id": self._take_message_id(chat["id"]),
            "from": self._bot_user(),
            "chat": chat,
            "date": int(self._clock()),
            **{k: v for k, v in content.items() if v is not None},
        }
        markup = message.get("reply_markup")
        if markup is not None and "inline_keyboard" not in markup:
            del message["reply_markup"]  # a Message shows only an inline keyboard
        self._messages[(chat["id"], message["message_id"])] = message
        return copy.deepcopy(message)

    def _message_to_edit(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """The stored message an edit targets; None for an inline message (not stored)."""
        if params.get("inline_message_id"):
            return None
        key = (params.get("chat_id"), params.get("message_id"))
        message = self._messages.get(key)  # type: ignore[arg-type]
        if message is None:
            raise _bad_request("message to edit not found")
        if message["from"].get("id") != self.bot_id:
            raise _bad_request("message can't be edited")
        return message

    # -- the methods ------------------------------------------------------------------------

    def _api_getMe(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _api_setWebhook(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        url = params.get("url") or ""
        if not url:  # setWebhook without a url removes the webhook
            was, self._webhook = self._webhook, None
            return True, "Webhook was deleted" if was else "Webhook is already deleted"
        parts = urlsplit(url)
        if parts.scheme != "https":
            raise _bad_request("bad webhook: An HTTPS URL must be provided for webhook")
        if (parts.port or 443) not in _WEBHOOK_PORTS:
            raise _bad_request(
                "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"
            )
        if "allowed_updates" in params:
            self._allowed_updates = list(params["allowed_updates"] or [])
        if params.get("drop_pending_updates"):
            self._updates.clear()
        same = self._webhook is not None and self._webhook.get("url") == url
        self._webhook = {
            "url": url,
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
            **params,
        }
        return True, "Webhook is already set" if same else "Webhook was set"

    def _api_deleteWebhook(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        was, self._webhook = self._webhook, None
        return True, "Webhook was deleted" if was else "Webhook is already deleted"

    def _api_getWebhookInfo(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        info: dict[str, Any] = {
            "url": self._webhook["url"] if self._webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook:
            info["max_connections"] = self._webhook.get("max_connections", 40)
            if self._allowed_updates:
                info["allowed_updates"] = list(self._allowed_updates)
        return info

    def _api_getUpdates(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        if self._webhook is not None:
            raise TelegramError(409, "Conflict: can't use getUpdates method while webhook is "
                                     "active; use deleteWebhook to delete the webhook first")
        if "allowed_updates" in params:
            self._allowed_updates = list(params["allowed_updates"] or [])
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or MAX_UPDATES), 1), MAX_UPDATES)
        wait = min(max(float(params.get("timeout") or 0), 0.0), self.long_poll_cap)
        if offset < 0:  # the last -offset updates; all before them are forgotten
            del self._updates[: max(len(self._updates) + offset, 0)]
        elif offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        # A newer getUpdates ends this one with 409, as on Telegram.
        self._poll_generation += 1
        generation = self._poll_generation
        deadline = time.monotonic() + wait
        while True:
            wanted = set(self._allowed_updates)
            # Updates of types the bot did not ask for are never delivered.
            self._updates = [
                u for u in self._updates
                if (t := _update_type(u)) in wanted or (not wanted and t not in _NOT_BY_DEFAULT)
            ]
            if self._updates or self._stopping:
                return copy.deepcopy(self._updates[:limit])
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            self._cond.wait(remaining)
            if self._poll_generation != generation:
                raise make_error(409)

    def _api_sendMessage(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat = self._target_chat(params)
        text = params.get("text")
        if not text:
            raise _bad_request("message text is empty")
        if utf16_len(str(text)) > MAX_TEXT:
            raise _bad_request("message is too long")
        markup = self._check_markup(params)
        return self._new_message(chat, text=str(text), reply_markup=markup)

    def _api_editMessageText(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        text = params.get("text")
        if not text:
            raise _bad_request("message text is empty")
        if utf16_len(str(text)) > MAX_TEXT:
            raise _bad_request("MESSAGE_TOO_LONG")
        markup = self._check_markup(params)
        message = self._message_to_edit(params)
        if message is None:
            return True
        if "text" not in message and "voice" in message:
            raise _bad_request("there is no text in the message to edit")
        if message.get("text") == text and message.get("reply_markup") == markup:
            raise _bad_request(_NOT_MODIFIED)
        message["text"] = str(text)
        self._set_markup(message, markup)
        message["edit_date"] = int(self._clock())
        return copy.deepcopy(message)

    def _api_editMessageReplyMarkup(
        self, params: dict[str, Any], files: dict[str, Upload]
    ) -> Any:
        markup = self._check_markup(params)
        message = self._message_to_edit(params)
        if message is None:
            return True
        if message.get("reply_markup") == markup:
            raise _bad_request(_NOT_MODIFIED)
        self._set_markup(message, markup)
        message["edit_date"] = int(self._clock())
        return copy.deepcopy(message)

    @staticmethod
    def _set_markup(message: dict[str, Any], markup: dict[str, Any] | None) -> None:
        if markup and markup.get("inline_keyboard"):
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)  # no markup, or an empty one, removes it

    def _api_answerCallbackQuery(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        if str(params.get("callback_query_id")) not in self._callback_ids:
            raise TelegramError(400, _QUERY_TOO_OLD)
        return True

    @staticmethod
    def _voice_upload(params: dict[str, Any], files: dict[str, Any]) -> Upload | None:
        voice = params.get("voice")
        if isinstance(voice, str) and voice.startswith("attach://"):
            return files.get(voice.removeprefix("attach://"))
        return files.get("voice")  # the file itself as the "voice" part

    def _api_sendVoice(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        chat = self._target_chat(params)
        caption = params.get("caption")
        if caption is not None and utf16_len(str(caption)) > MAX_CAPTION:
            raise _bad_request("message caption is too long")
        markup = self._check_markup(params)
        upload = self._voice_upload(params, files)
        reference = params.get("voice")
        if upload is not None:
            file_id = f"AwACAgQAAxkBAAI{self._next_file:06d}FakeVoice"
            self._next_file += 1
            voice = {
                "file_id": file_id,
                "file_unique_id": f"AgAD{self._next_file - 1:06d}",
                "duration": int(params.get("duration") or 0),
                "mime_type": "audio/ogg",
                "file_size": len(upload.content),
            }
            self._files[file_id] = voice
        elif isinstance(reference, str) and reference in self._files:
            voice = dict(self._files[reference])  # a file_id sent before: no new upload
        elif isinstance(reference, str) and reference.startswith(("http://", "https://")):
            # Telegram would download it; the fake cannot, so it trusts the URL.
            voice = {
                "file_id": f"AwACAgQAAxkBAAI{self._next_file:06d}FakeUrl",
                "file_unique_id": f"AgAD{self._next_file:06d}",
                "duration": int(params.get("duration") or 0),
                "mime_type": "audio/ogg",
            }
            self._next_file += 1
        elif reference:
            raise _bad_request("wrong file identifier/HTTP URL specified")
        else:
            raise _bad_request("there is no voice in the request")
        return self._new_message(chat, voice=voice, caption=caption, reply_markup=markup)

    def _api_setMyCommands(self, params: dict[str, Any], files: dict[str, Upload]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        for command in commands:
            if not _BOT_COMMAND.match(str(command.get("command", ""))):
                raise _bad_request("BOT_COMMAND_INVALID")
        return True
