"""A fake Twilio REST API on 127.0.0.1, for tests that must never reach Twilio.

`FakeTwilio` is a real HTTP server (stdlib `ThreadingHTTPServer`, one thread per connection,
HTTP/1.1 keep-alive like the real API) that serves what tala uses of Twilio:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json?To=...   (newest first, one page)

with HTTP Basic auth and a form-encoded body (To, From or MessagingServiceSid, Body,
StatusCallback), answering with Twilio's JSON: 201 and a Message resource, or an error body
``{"code", "message", "more_info", "status"}`` that twilio-python turns into
`twilio.base.exceptions.TwilioRestException` with `.code` and `.status`. Every request to that
endpoint is recorded in `fake.messages`, failed ones too. Anything else is answered 404 and
listed in `fake.unhandled`, so a test can assert that nothing un-faked was called.

Pointing the real client at it (checked against twilio 9.13's source)::

    client = Client(fake.account_sid, fake.auth_token)
    client.api.base_url = fake.base_url

`client.api` is the cached `Api` domain (`twilio/rest/api/ApiBase.py`, base_url
"https://api.twilio.com"); `client.messages` is `client.api.account.messages`, whose `V2010`
version prefixes "2010-04-01" and whose `MessageList` adds
"/Accounts/{account_sid}/Messages.json"; `Domain.absolute_url` joins them onto `base_url` at
every request. So the override holds for the life of the client. It redirects only
api.twilio.com: other domains (`client.messaging`, `client.lookups`, ...) still point at
Twilio.

Two things in the client's environment can send its requests past this fake:

- `TWILIO_EDGE` / `TWILIO_REGION` (read from os.environ even when `Client(environment={})` is
  given, because an empty mapping is falsy) make `ClientBase.get_hostname` splice the edge and
  region into the host: "http://127.0.0.1:PORT" becomes "http://127.ie1.0.1:PORT".
- `HTTP_PROXY` without "127.0.0.1" in `NO_PROXY`: requests routes the call through the proxy.

Tests that build a client therefore unset the first two and add 127.0.0.1 to NO_PROXY.

WhatsApp goes through the same endpoint with "whatsapp:+46..." in To and From. A message may
carry a Content API template instead of a Body (ContentSid, ContentVariables as JSON): the
fake knows the templates it is given (`FakeTwilio(templates={"HX...": "Hej {{1}}!"})`), fills
in the variables as Twilio does, and records the filled-in text as "body"; an unknown
ContentSid gets Twilio's 21655. It also serves the Content API itself (content.twilio.com's
`POST /v1/Content` and `GET /v1/Content`, JSON): a created quick-reply or list-picker is kept
(`contents`, by its sid), checked against WhatsApp's limits (3 quick replies of at most 20
characters, 10 list items of at most 24), and usable as a ContentSid at once.

Faithful where it is cheap: the same validation errors as Twilio for a missing To (21604),
From/MessagingServiceSid (21603) or Body (21602) and a body over 1600 characters (21617);
status "accepted" instead of "queued" when sent through a Messaging Service without From, as
Twilio does; `num_segments` counted as GSM-7 (160/153 septets) or UCS-2 (70/67 code units).
Sids are "SM" plus a 32-hex-digit counter, so they are unique per fake and repeat from run to
run. Status callbacks are recorded, never called.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections import deque
from datetime import datetime, timezone
from email.message import Message
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http import Answer, HTTPFake

DEFAULT_ACCOUNT_SID = "ACtest" + "0" * 28
DEFAULT_AUTH_TOKEN = "test-token"
API_VERSION = "2010-04-01"

_MESSAGES_PATH = re.compile(rf"^/{API_VERSION}/Accounts/(?P<account_sid>[^/]+)/Messages\.json$")
_CONTENT_PATH = "/v1/Content"
# WhatsApp's limits on what a content template may hold in a session (Twilio's Content API).
_LIMITS = {"twilio/quick-reply": ("actions", "title", 3, 20),
           "twilio/list-picker": ("items", "item", 10, 24)}

# Errors that Twilio returns on create for one recipient: code -> message (all HTTP 400).
RECIPIENT_ERRORS: dict[int, str] = {
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
}

# GSM 03.38: the basic set costs one septet a character, the extension set two (escape + char).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def num_segments(body: str) -> int:
    """How many SMS segments Twilio bills for `body` (without Smart Encoding)."""
    if all(c in _GSM_BASIC or c in _GSM_EXTENDED for c in body):
        units, single, multi = sum(2 if c in _GSM_EXTENDED else 1 for c in body), 160, 153
    else:
        units, single, multi = len(body.encode("utf-16-le")) // 2, 70, 67
    return 1 if units <= single else -(-units // multi)


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's (pre RFC-9457) error shape, the one twilio-python maps to TwilioRestException."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _server_error(status: int) -> tuple[int, int, str]:
    if status != 429 and not 500 <= status <= 599:
        raise ValueError(f"expected 429 or a 5xx HTTP status, got {status}")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Server Error"
    # Twilio's own codes for these are 20000 + status (20429, 20500, 20503).
    return status, 20000 + status, phrase


class FakeTwilio(HTTPFake):
    """A local Twilio REST API that records what it is sent and fails when told to.

    Use as `with FakeTwilio() as fake:` or call `start()` and `stop()`. All methods are safe to
    call from any thread while the server answers requests.
    """

    content_type = "application/json; charset=utf-8"

    def __init__(
        self, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN,
        templates: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        # The Content API's templates this account has (ContentSid -> its text, with {{1}}
        # ... for variables): a message with a ContentSid gets its body from them.
        self.templates: dict[str, str] = dict(templates or {})
        self._records: list[dict[str, Any]] = []
        self._resources: list[dict[str, Any]] = []  # created messages, as GET lists them
        self._unhandled: list[tuple[str, str]] = []
        self._fail_for: dict[str, tuple[int, int, str]] = {}
        self._fail_next: deque[tuple[int, int, str]] = deque()
        self._sid_counter = 0
        self._contents: dict[str, dict[str, Any]] = {}  # created by the Content API, by sid
        self.content_down = False  # the Content API answers 503 (Messages still work)

    # -- lifecycle (start, stop, `with`: HTTPFake) ------------------------------------------

    @property
    def base_url(self) -> str:
        """ "http://127.0.0.1:PORT", to put in `client.api.base_url`."""
        return self._base_url()

    # -- what the test reads ----------------------------------------------------------------

    @property
    def messages(self) -> list[dict[str, Any]]:
        """A copy of every Messages.json request received, in arrival order: dicts with "to",
        "from", "messaging_service_sid", "body", "content_sid", "content_variables",
        "status_callback" (None when not sent), "sid"
        (None when the request failed), "status_code" and "at" (time.monotonic())."""
        with self._cond:
            return [dict(r) for r in self._records]

    @property
    def contents(self) -> dict[str, dict[str, Any]]:
        """The content templates created through the Content API, by sid: the JSON as sent
        ("friendly_name", "language", "types"), plus "sid"."""
        with self._cond:
            return {k: dict(v) for k, v in self._contents.items()}

    @property
    def unhandled(self) -> list[tuple[str, str]]:
        """(method, path) of every request this fake does not serve; each got a 404."""
        with self._cond:
            return list(self._unhandled)

    def wait_for(self, count: int, timeout: float = 10) -> list[dict[str, Any]]:
        """Block until at least `count` messages were created successfully; return those.

        Raises AssertionError after `timeout` seconds, listing what did arrive."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                sent = [dict(r) for r in self._records if r["sid"] is not None]
                if len(sent) >= count:
                    return sent
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"FakeTwilio: expected {count} sent message(s) within {timeout}s, "
                        f"got {len(sent)}; all requests received: {self._records!r}; "
                        f"unhandled: {self._unhandled!r}"
                    )
                self._cond.wait(remaining)

    # -- what the test arranges -------------------------------------------------------------

    def fail_for(self, number: str, code: int) -> None:
        """Fail every create to `number`: with Twilio's error `code` (one of RECIPIENT_ERRORS,
        HTTP 400), or, when `code` is an HTTP status 429 or 5xx, with that status."""
        if code in RECIPIENT_ERRORS:
            rule = (400, code, RECIPIENT_ERRORS[code])
        else:
            try:
                rule = _server_error(code)
            except ValueError:
                known = ", ".join(map(str, RECIPIENT_ERRORS))
                raise ValueError(
                    f"fail_for knows Twilio codes {known} and HTTP 429/5xx, not {code}"
                ) from None
        with self._cond:
            self._fail_for[number] = rule

    def fail_next(self, n: int, status: int = 503) -> None:
        """Fail the next `n` Messages.json requests, to any number and before the credentials
        are looked at (as an outage would), with HTTP `status` (429 or 5xx). Adds to any
        failures still pending."""
        rule = _server_error(status)
        with self._cond:
            self._fail_next.extend([rule] * n)

    def reset(self) -> None:
        """Forget every record and failure rule. Sids keep counting, so they stay unique."""
        with self._cond:
            self._records.clear()
            self._resources.clear()
            self._unhandled.clear()
            self._fail_for.clear()
            self._fail_next.clear()

    # -- the server side --------------------------------------------------------------------

    def _handle(self, method: str, target: str, headers: Message, raw: bytes) -> Answer:
        authorization = headers.get("Authorization")
        split = urlsplit(target)
        path = split.path
        if path == _CONTENT_PATH:
            return self._content(method, authorization, raw)
        match = _MESSAGES_PATH.match(path)
        if method == "GET" and match is not None:
            return self._list(match["account_sid"], authorization, parse_qs(split.query))
        if method != "POST" or match is None:
            with self._cond:
                self._unhandled.append((method, target))
                self._cond.notify_all()
            msg = f"FakeTwilio does not serve {method} {path}"
            return 404, error_body(404, 20404, msg), {}

        at = time.monotonic()
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8"), keep_blank_values=True).items()}
        record: dict[str, Any] = {
            "to": form.get("To"),
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "body": form.get("Body"),
            "content_sid": form.get("ContentSid"),
            "content_variables": form.get("ContentVariables"),
            "status_callback": form.get("StatusCallback"),
            "sid": None,
            "status_code": None,
            "at": at,
        }
        with self._cond:
            status, payload, extra = self._respond(match["account_sid"], authorization, record)
            record["status_code"] = status
            self._records.append(record)
            self._cond.notify_all()
        return status, payload, extra

    def _respond(
        self, path_sid: str, authorization: str | None, record: dict[str, Any]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Decide the answer; called with the lock held, so rules and sids are consistent."""
        if self._fail_next:
            status, code, msg = self._fail_next.popleft()
            return status, error_body(status, code, msg), {}
        if not self._authorized(path_sid, authorization):
            return (
                401,
                error_body(401, 20003, "Authenticate"),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        to, from_, body = record["to"], record["from"], record["body"]
        service = record["messaging_service_sid"]
        if not to:
            return 400, error_body(400, 21604, "A 'To' phone number is required."), {}
        if not from_ and not service:
            return 400, error_body(400, 21603, "A 'From' phone number is required."), {}
        content_sid = record["content_sid"]
        if content_sid:
            if content_sid not in self.templates:
                return 400, error_body(400, 21655, "The ContentSid is Invalid"), {}
            try:
                variables = json.loads(record["content_variables"] or "{}")
            except ValueError:
                return 400, error_body(400, 21656, "The ContentVariables Parameter is "
                                       "invalid"), {}
            body = re.sub(r"\{\{(\w+)\}\}", lambda m: str(variables.get(m[1], m[0])),
                          self.templates[content_sid])
            record["body"] = body  # what the child is sent, as Twilio's Message has it
        if not body:
            return 400, error_body(400, 21602, "Message body is required."), {}
        if len(body) > 1600:
            msg = "The concatenated message body exceeds the 1600 character limit."
            return 400, error_body(400, 21617, msg), {}
        if to in self._fail_for:
            status, code, msg = self._fail_for[to]
            return status, error_body(status, code, msg), {}

        self._sid_counter += 1
        sid = f"SM{self._sid_counter:032x}"
        record["sid"] = sid
        now = format_datetime(datetime.now(timezone.utc))
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        resource = {
                "account_sid": self.account_sid,
                "api_version": API_VERSION,
                "body": body,
                "date_created": now,
                "date_sent": None,
                "date_updated": now,
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": from_,
                "messaging_service_sid": service,
                "num_media": "0",
                "num_segments": str(num_segments(body)),
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                # Through a Messaging Service Twilio picks the sender later: "accepted" first.
                "status": "queued" if from_ else "accepted",
                "subresource_uris": {
                    "media": f"{uri}/Media.json",
                    "feedback": f"{uri}/Feedback.json",
                },
                "to": to,
                "uri": f"{uri}.json",
        }
        self._resources.append(resource)
        return 201, resource, {}

    def _list(
        self, path_sid: str, authorization: str | None, query: dict[str, list[str]]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """GET Messages.json?To=...: the messages created so far, newest first, one page (what
        tala asks when it reconciles a send that a killed process may have made)."""
        if not self._authorized(path_sid, authorization):
            return 401, error_body(401, 20003, "Authenticate"), {}
        to = (query.get("To") or [None])[0]
        size = int((query.get("PageSize") or ["50"])[0])
        with self._cond:
            found = [m for m in reversed(self._resources) if to is None or m["to"] == to]
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages.json"
        return 200, {"messages": found[:size], "first_page_uri": uri, "next_page_uri": None,
                     "previous_page_uri": None, "page": 0, "page_size": size, "start": 0,
                     "end": max(len(found[:size]) - 1, 0), "uri": uri}, {}

    def _content(self, method: str, authorization: str | None, raw: bytes) -> Answer:
        """The Content API: create a template (POST, JSON), or list them (GET)."""
        if self.content_down:
            return 503, error_body(503, 20500, "Service unavailable"), {}
        if not self._authorized(self.account_sid, authorization):
            return 401, error_body(401, 20003, "Authenticate"), {}
        if method == "GET":
            with self._cond:
                found = list(self._contents.values())
            return 200, {"contents": found, "meta": {"page": 0, "page_size": len(found),
                                                     "next_page_url": None}}, {}
        if method != "POST":
            return 405, error_body(405, 20004, "Method not allowed"), {}
        try:
            data = json.loads(raw.decode("utf-8"))
            types = data["types"]
            assert isinstance(types, dict) and types and data.get("language")
        except (ValueError, KeyError, AssertionError, AttributeError):
            return 400, error_body(400, 20001, "Invalid content"), {}
        for kind, (field_name, title, most, longest) in _LIMITS.items():
            entries = types.get(kind, {}).get(field_name) if kind in types else None
            if entries is not None and (not 0 < len(entries) <= most or any(
                    len(e.get(title) or "") > longest or not e.get("id") for e in entries)):
                return 400, error_body(400, 20001, f"{kind}: 1-{most} {field_name}, each "
                                       f"{title} at most {longest} characters"), {}
        body = next((t.get("body") for t in types.values() if t.get("body")), None)
        if not body or len(body) > 1024:
            return 400, error_body(400, 20001, "A body of 1-1024 characters is needed"), {}
        with self._cond:
            self._sid_counter += 1
            sid = f"HX{self._sid_counter:032x}"
            self._contents[sid] = {**data, "sid": sid}
            self.templates[sid] = body
            self._cond.notify_all()
        return 201, {**data, "sid": sid, "account_sid": self.account_sid}, {}

    def _authorized(self, path_sid: str, authorization: str | None) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == path_sid == self.account_sid and password == self.auth_token
