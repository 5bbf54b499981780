"""WhatsApp through Twilio: the same account, webhook (`POST /sms/twilio`, signature checked)
and REST API as SMS, with `whatsapp:` in front of the numbers, and WhatsApp's own rules:

- A business may start a conversation only with a template the child's language has approved
  in WhatsApp Manager (Twilio's Content API: a `ContentSid`, with TALA_SENDER_NAME as its
  variable {{1}}). So the invitation is a template (TWILIO_WHATSAPP_TEMPLATES).
- Anything else (a reminder, a caseworker's reply) may be free text only within 24 hours of the
  child's last message: tala remembers when that was, per number. Outside it, or when WhatsApp
  refuses the template, the message goes by SMS instead, honestly marked as such for the
  caseworker, when SMS is configured (bot/fallback.py: the window, the codes, the SMS).
- Twilio does not act on STOP for WhatsApp: tala does (bot/channels/sms.py, SmsInbound).

Messages are not counted in segments: one WhatsApp message holds up to 1,600 characters
(Twilio's limit), emoji included.

Buttons: a question with at most three choices comes with quick-reply buttons, one with up to
ten as a list to pick from (WhatsApp's limits, with labels of at most 20 and 24 characters);
others are numbered and typed, as by SMS, and typing always works. WhatsApp shows buttons only
from a Content API template, which needs no approval within the 24 hours: the sender makes one
per question and language the first time it is sent, named by a hash of what it holds, and
reuses it after that. The button's id carries the question and the answer ("question|key"),
so a press counts only while that question is asked, as Telegram's do. A reply with buttons
goes through the send queue (TwiML cannot carry a template), the text before it too, in order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import datetime
from typing import Any

import requests
from twilio.base.exceptions import TwilioException

from bot.channels.sms import TwilioSender
from bot.channels.sms_text import split_message
from bot.render import face, render
from bot.settings import Settings
from flows import messages as M
from flows.engine import RLM, Prompt, Say, State
from storage.queue import Job, SendResult

log = logging.getLogger("tala.whatsapp")
WHATSAPP = "whatsapp"
PREFIX = "whatsapp:"
MAX_CHARS = 1600
CONTENT_URL = "https://content.twilio.com"
QUICK_REPLIES, QUICK_TITLE = 3, 20  # WhatsApp's limits in a session (Twilio's Content API)
LIST_ITEMS, LIST_TITLE = 10, 24
MAX_BODY = 1024
CONTENT_RETRY = 60.0  # seconds without buttons after the Content API failed, then try again


def buttons_for(p: Prompt, lang: str, choose: str) -> dict[str, Any] | None:
    """The Content API template that shows `p`'s choices as buttons (its `types`, `language`
    and a `friendly_name` that names what it holds), or None where WhatsApp cannot show them:
    more than ten choices or a number scale, several to tick, a label too long. `choose` is the
    list's button in the child's language."""
    if p.multi or not p.choices:
        return None
    labels = [f"{face(p, k)} {label.lstrip(RLM)}" if face(p, k) else label.lstrip(RLM)
              for k, label in p.choices]
    ids = [f"{p.question_id}|{k}" for k, _ in p.choices]
    body = p.text + (f"\n\n{p.hint}" if p.hint else "")
    if len(body) > MAX_BODY:
        return None
    if len(labels) <= QUICK_REPLIES and all(len(x) <= QUICK_TITLE for x in labels):
        types = {"twilio/quick-reply": {"body": body, "actions": [
            {"title": x, "id": i} for x, i in zip(labels, ids, strict=True)]}}
    elif len(labels) <= LIST_ITEMS and all(len(x) <= LIST_TITLE for x in labels):
        types = {"twilio/list-picker": {"body": body, "button": choose[:QUICK_TITLE],
                                        "items": [{"item": x, "id": i, "description": ""}
                                                  for x, i in zip(labels, ids, strict=True)]}}
    else:
        return None
    types["twilio/text"] = {"body": render(Say(prompt=p))}  # where buttons cannot be shown
    blob = json.dumps([lang, types], ensure_ascii=False, sort_keys=True)
    return {"friendly_name": "tala_" + hashlib.sha256(blob.encode()).hexdigest()[:32],
            "language": lang, "types": types}


def lay_out(svc: Any, number: str, says: list[Say], message_sid: str,
            state: State | None) -> list[str]:
    """A reply on WhatsApp: as TwiML messages (returned), or, when it ends with a question
    WhatsApp can show buttons for, all of it through the send queue, in order, named by the
    message it answers (a retried webhook queues nothing twice); then nothing is returned."""
    if state is None:
        return render_whatsapp(says)
    parts, template = split_reply(says, state.lang, svc.rt.catalogs.gettext(state.lang,
                                                                             M.CHOOSE))
    if template is None:
        return parts
    for i, text in enumerate(parts):
        svc.send_to(WHATSAPP, number, text, f"{message_sid}:{i}", state)
    svc.send_to(WHATSAPP, number, render(says[-1]), f"{message_sid}:{len(parts)}", state,
                buttons=json.dumps(template, ensure_ascii=False))
    return []


def split_reply(says: list[Say], lang: str, choose: str) -> tuple[list[str], dict | None]:
    """A reply as WhatsApp messages: the texts, and the buttons template of the question it
    ends with (then sent after the texts), or None when it has none (all of it is texts)."""
    last = says[-1] if says else None
    template = buttons_for(last.prompt, lang, choose) if last and last.prompt else None
    return render_whatsapp(says[:-1] if template else says), template


def pressed(payload: str | None) -> tuple[str, str] | None:
    """(question, answer) from a button's id as WhatsApp sends it back (Twilio's
    ButtonPayload, or ListId for a list), or None for a message that was typed."""
    question, bar, answer = (payload or "").partition("|")
    if not bar or not question or not answer or len(payload) > 200:
        return None
    return question, answer


def render_whatsapp(says: list[Say]) -> list[str]:
    """The replies as WhatsApp messages: all in one where it fits, split at paragraphs (then
    sentences) where it does not. Nothing is dropped to save segments."""
    body = "\n\n".join(render(s) for s in says if render(s))
    return split_message(body, max_chars=MAX_CHARS) if body else []


class WhatsAppSender(TwilioSender):
    """Sends WhatsApp messages through Twilio: a template where the job names one, else the
    text."""

    channel = "whatsapp"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.from_number = PREFIX + (settings.twilio_whatsapp_from or "")
        self.service_sid = None  # WhatsApp goes from its own sender, not the SMS service
        self.templates = settings.whatsapp_templates
        self.content_url = (settings.twilio_api_base_url or CONTENT_URL).rstrip("/") + \
            "/v1/Content"
        self._contents: dict[str, str] | None = None  # friendly name -> ContentSid, made here
        self._lock = threading.Lock()
        self._failed_at = -CONTENT_RETRY  # when the Content API last failed (time.monotonic)

    def content_sid(self, template: dict[str, Any]) -> str | None:
        """The ContentSid of a buttons template: made through the Content API the first time
        (an earlier one of the same name is found and reused), None where Twilio refuses."""
        name = template["friendly_name"]
        with self._lock:
            if name not in (self._contents or {}) and \
                    time.monotonic() - self._failed_at < CONTENT_RETRY:
                return None  # it failed a moment ago: the numbered text, without a wait
            if self._contents is None:
                self._contents = {}
                found = self._call("GET", None)
                for c in (found or {}).get("contents", []):
                    if str(c.get("friendly_name", "")).startswith("tala_"):
                        self._contents[c["friendly_name"]] = c["sid"]
            if name not in self._contents:
                made = self._call("POST", template)
                if made is None or "sid" not in made:
                    return None
                self._contents[name] = made["sid"]
            return self._contents[name]

    def _call(self, method: str, data: dict | None) -> dict | None:
        try:
            resp = self.client.request(
                method, self.content_url, params={"PageSize": 500} if method == "GET" else None,
                data=data,  # sent as JSON, for the Content-Type
                headers={"Content-Type": "application/json", "Accept": "application/json"})
        except (TwilioException, requests.RequestException) as e:  # no buttons: text goes
            log.warning("Twilio's Content API unreachable: %s", type(e).__name__)
            self._failed_at = time.monotonic()
            return None
        if resp.status_code >= 300:
            log.warning("Twilio's Content API refused (%s): no buttons", resp.status_code)
            self._failed_at = time.monotonic()
            return None
        try:
            return json.loads(resp.text)
        except ValueError:
            return None

    def invitation_meta(self, lang: str, sender_name: str) -> dict[str, str]:
        """What an invitation's job carries for `send_job`: the template for the child's
        language (Swedish where that language has none yet) and its variable."""
        return {"template": self.templates.get(lang) or self.templates["sv"],
                "variables": json.dumps({"1": sender_name}, ensure_ascii=False)}

    def address(self, to: str) -> str:
        return to if to.startswith(PREFIX) else PREFIX + to

    def send_job(self, job: Job) -> SendResult:
        template = job.fields.get("template")
        if template:
            return self.create(job.to, job_id=job.id, content_sid=template,
                               content_variables=job.fields.get("variables") or "{}")
        buttons = job.fields.get("buttons")
        sid = self.content_sid(json.loads(buttons)) if buttons else None
        if sid:
            return self.create(job.to, job_id=job.id, content_sid=sid)
        return super().send_job(job)  # numbered, typed: as without buttons

    def find_job(self, job: Job, since: datetime) -> str | None:
        """A template's text is WhatsApp's, not ours: any message to the child since the claim
        is taken for it (nothing else is sent to a child who has not yet answered). A question
        with buttons is found by its text."""
        if job.fields.get("buttons"):
            template = json.loads(job.fields["buttons"])["types"]
            body = next(t["body"] for k, t in template.items() if k != "twilio/text")
            return self.find_sent(job.to, body, since) or self.find_sent(job.to, job.body, since)
        return self.find_sent(job.to, None if job.fields.get("template") else job.body, since)
