"""SMS through Twilio: phone numbers, how a conversation looks as text messages, and sending.

Inbound messages arrive at `POST /sms/twilio` (bot/server.py) and go through the same
conversation service as every channel; this module holds only what is particular to SMS.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Callable
from urllib.parse import quote

import phonenumbers
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError

from bot.channels.sms_text import fit_gsm7, is_gsm7, split_message
from bot.receive import GONE, NO_SESSION, OPTED_OUT, STALE
from bot.refusal import Refusal, staff_text
from bot.render import render
from bot.settings import Settings
from flows import messages as M
from flows.engine import Say
from flows.i18n import normalise
from storage.queue import Job, ReconcileError, SendResult

if TYPE_CHECKING:
    from bot.service import ConversationService

log = logging.getLogger("tala.sms")

# Twilio's own keywords (https://help.twilio.com/articles/223134027). Twilio acts on them
# itself (stops delivery, sends its confirmation); tala follows suit. The opt-in words count
# only for a number that opted out: "yes" is otherwise an answer.
OPT_OUT_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit",
                           "revoke", "optout", "opt out"})
OPT_IN_WORDS = frozenset({"start", "yes", "unstop"})
ERROR_OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient"
MAX_SEGMENTS_PER_MESSAGE = 3
HTTP_TIMEOUT = 10  # seconds; well under TALA_SEND_LEASE_SECONDS
_NUMBERS = re.compile(r"\+?\d[\d\s().-]{4,}\d")


class NumberError(Refusal):
    """Not a mobile number we can send to; the message says how to write one."""


def normalise_number(raw: str, region: str = "SE") -> str:
    """A phone number in E.164 (+46701234567), from the ways people write them."""
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None or not phonenumbers.is_valid_number(parsed):
        raise NumberError(staff_text("'{number}' är inte ett telefonnummer som vi kan skicka "
                                     "sms till. Skriv det som +46701234567 eller "
                                     "070-123 45 67."), number=raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


_E164 = re.compile(r"\+[1-9]\d{6,14}")


def inbound_number(raw: str, region: str = "SE") -> str:
    """The sender of a webhook Twilio signed: its `From` is E.164 already, and taken as it is
    (parsing it costs more than the rest of the message's handling but the engine); anything
    else is normalised (raises NumberError)."""
    return raw if _E164.fullmatch(raw) else normalise_number(raw, region)


def keyword(body: str) -> str:
    return normalise(body)


def render_sms(says: list[Say]) -> list[str]:
    """The replies as text messages: everything in one message where it fits (each message
    costs at least one segment), split at sentence boundaries where it does not. Emoji and
    typographic quotes are dropped when they are all that would make it UCS-2."""
    body = "\n\n".join(render(s) for s in says if render(s))
    if not body:
        return []
    gsm = fit_gsm7(body)
    if is_gsm7(gsm):
        body = gsm
    return split_message(body, max_segments=MAX_SEGMENTS_PER_MESSAGE)


def _certainly_not_sent(e: requests.RequestException) -> bool:
    """Whether a failed request never reached Twilio: no connection was made (refused, no
    such host, connect timeout). Anything else (a read timeout, a connection dropped after the
    request was written) may have been a message Twilio took."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    reason = getattr(e.args[0], "reason", None) if e.args else None  # urllib3's MaxRetryError
    return isinstance(reason, ConnectTimeoutError)  # NewConnectionError is one too


class TwilioSender:
    """Sends through the Twilio REST API (or the Twilio-compatible TWILIO_API_BASE_URL)."""

    channel = "sms"

    def __init__(self, settings: Settings):
        settings.check_channels()
        # A timeout, or a Twilio that never answers would hold the send thread for ever.
        self.client = Client(settings.twilio_account_sid, settings.twilio_auth_token,
                             http_client=TwilioHttpClient(timeout=HTTP_TIMEOUT))
        # twilio-python logs request URLs at INFO, and a reconciliation's URL holds the
        # child's number: logs carry no numbers.
        logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
        if settings.twilio_api_base_url:
            self.client.api.base_url = settings.twilio_api_base_url.rstrip("/")
        self.from_number = settings.twilio_from_number
        self.service_sid = settings.twilio_messaging_service_sid
        self.status_callback = (settings.public_url.rstrip("/") + "/sms/twilio/status"
                                if settings.public_url else None)

    def address(self, to: str) -> str:
        """The number as this channel's `To` (WhatsApp's has a prefix)."""
        return to

    def send(self, to: str, body: str) -> SendResult:
        return self.create(to, body=body)

    def send_job(self, job: Job) -> SendResult:
        return self.create(job.to, job_id=job.id, body=job.body)

    def create(self, to: str, job_id: str | None = None, **content: str) -> SendResult:
        """One message to `to`: a `body`, or (WhatsApp) a template's `content_sid` and
        `content_variables`; Twilio's refusals as a SendResult. The delivery report for a
        queued job's message names the job in its URL (which Twilio signs): nothing in Redis
        has to lead the report to it."""
        kwargs: dict = {"to": self.address(to), **content}
        if self.service_sid:
            kwargs["messaging_service_sid"] = self.service_sid
        else:
            kwargs["from_"] = self.from_number
        if self.status_callback:
            kwargs["status_callback"] = self.status_callback + (
                f"?job={quote(job_id, safe='')}" if job_id else "")
        try:
            msg = self.client.messages.create(**kwargs)
        except TwilioRestException as e:
            log.warning("Twilio refused a message: %s %s", e.status, e.code)
            # Twilio's messages can quote the number ("The 'To' number +46... is not valid"):
            # what is kept of them carries no digits that could be one.
            said = _NUMBERS.sub("[number]", str(e.msg or "").replace(to, "[number]"))
            return SendResult(error_code=e.code, error=f"Twilio {e.code}: {said}"[:300],
                              permanent=e.status < 500 and e.status != 429,
                              opted_out=e.code == ERROR_OPTED_OUT)
        except requests.RequestException as e:
            if _certainly_not_sent(e):
                log.warning("Twilio unreachable: %s", type(e).__name__)
                return SendResult(error=f"Twilio unreachable: {type(e).__name__}",
                                  permanent=False)
            # The request may have reached Twilio: the queue asks Twilio whether the message
            # went out before it sends it again, once Twilio has had as long again to finish.
            log.warning("Twilio did not answer: %s", type(e).__name__)
            return SendResult(error=f"Twilio did not answer: {type(e).__name__}",
                              permanent=False, maybe_sent=True,
                              retry_after=2 * (self.client.http_client.timeout or HTTP_TIMEOUT))
        return SendResult(sid=msg.sid)

    def find_sent(self, to: str, body: str | None, since: datetime) -> str | None:
        """A message to `to` with this body (None: any body) made after `since`."""
        # Filtered here by creation time: Twilio's DateSent filter would miss a message that
        # is still queued, and that is exactly the one a killed sender may have left.
        try:
            for msg in self.client.messages.list(to=self.address(to), limit=50):
                if (body is None or msg.body == body) and msg.date_created and \
                        msg.date_created >= since:
                    return msg.sid
        except (TwilioException, requests.RequestException) as e:
            # Unknown: better not to send again than to send twice.
            raise ReconcileError(f"cannot ask Twilio whether a message went out: {e}") from e
        return None


class SmsInbound:
    """What `POST /sms/twilio` does once the signature is checked: Twilio's keywords first,
    then the conversation, and the reply laid out as text messages. WhatsApp (`whatsapp:`
    numbers on the same webhook) goes the same way, but there Twilio does not act on STOP:
    tala stops sending itself, and says so in the child's language."""

    def __init__(self, service: "ConversationService", unknown_reply: str):
        self.service = service
        self.unknown_reply = unknown_reply

    async def handle_async(self, client, run: Callable, number: str, body: str,
                           message_sid: str, opt_out_type: str | None = None,
                           channel: str = "sms", button: str | None = None) -> list[str]:
        """`handle`, with an SMS answer in a going conversation on the event loop (`client`:
        redis.asyncio; bot/receive.py `receive_fast`) and the rest in a thread (`run`)."""
        if client is not None and channel == "sms" and message_sid and not opt_out_type \
                and keyword(body) not in OPT_OUT_WORDS:
            got = await self.service.receive_fast(client, run, channel, number, body,
                                                  message_sid)
            if got is not None:  # answered, or a duplicate: as `handle` lays them out
                self.service.metrics.on_loop.labels(channel).inc()
                return self.service.outbound[channel].render(got.says)
        return await run(self.handle, number, body, message_sid, opt_out_type, channel, button)

    def handle(self, number: str, body: str, message_sid: str,
               opt_out_type: str | None = None, channel: str = "sms",
               button: str | None = None) -> list[str]:
        """`button`: what a WhatsApp button sends back (its id, "question|answer")."""
        svc = self.service
        word = keyword(body)
        kind = (opt_out_type or "").upper()
        render_as = svc.outbound[channel].render  # the server takes only configured channels
        if kind == "STOP" or (not kind and word in OPT_OUT_WORDS):
            svc.opt_out(channel, number)  # Twilio confirms an SMS STOP to the child itself
            return render_as([Say(svc.stopped_text(channel, number))]) \
                if channel == "whatsapp" else []
        answer = None
        if channel == "whatsapp":
            from bot.channels.whatsapp import lay_out, pressed

            answer = pressed(button)
        how = {"answers": answer[0]} if answer else {"keyword": True}
        text = answer[1] if answer else body
        got = svc.receive(channel, number, text, message_sid, **how)
        if got.outcome == OPTED_OUT:
            if not (kind == "START" or (not kind and word in OPT_IN_WORDS)):
                return []  # Twilio would not deliver a reply anyway
            svc.opt_in(channel, number)
            got = svc.receive(channel, number, text, message_sid, **how)
        if got.outcome in (NO_SESSION, GONE):
            return [self.unknown_reply] if svc.first_today(channel, number) else []
        if got.outcome == STALE:  # an old question's button: nothing changed
            return render_as([Say(svc.text_for(got.state, M.ALREADY_ANSWERED))])
        if channel == "whatsapp":
            return lay_out(svc, number, got.says, message_sid, got.state)
        return render_as(got.says)
