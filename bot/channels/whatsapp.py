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
"""

from __future__ import annotations

import json
from datetime import datetime

from bot.channels.sms import TwilioSender
from bot.channels.sms_text import split_message
from bot.render import render
from bot.settings import Settings
from flows.engine import Say
from storage.queue import Job, SendResult

PREFIX = "whatsapp:"
MAX_CHARS = 1600


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
            return self.create(job.to, content_sid=template,
                               content_variables=job.fields.get("variables") or "{}")
        return self.send(job.to, job.body)

    def find_job(self, job: Job, since: datetime) -> str | None:
        """A template's text is WhatsApp's, not ours: any message to the child since the claim
        is taken for it (nothing else is sent to a child who has not yet answered)."""
        return self.find_sent(job.to, None if job.fields.get("template") else job.body, since)
