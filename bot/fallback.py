"""Channels that may write to a child only for a while after the child wrote (WhatsApp: 24
hours), and what tala does when such a channel cannot take a message: it goes by SMS to the
same number, and the caseworker is told it did. A mixin of `bot.service.ConversationService`.

The window is a Redis key per number (`StateStore.window_key`), set in the same round trip as
the contact lookup of each of the child's messages (`Contacts.lookup_contact`).
"""

from __future__ import annotations

from flows import messages as M
from flows.engine import Say
from flows.i18n import SOURCE_LANG
from storage.queue import DEFAULT, Job

# Seconds after the child's last message in which the channel takes free text from tala. A
# little less than WhatsApp's 24 hours, so that a message queued at the edge still arrives.
WINDOWED = {"whatsapp": 23 * 3600}
# Twilio's codes for a WhatsApp message WhatsApp will not deliver, each a reason to send it by
# SMS instead: outside the window (63016), the template not approved, paused or unknown (63013,
# 63024, 63027, 21655), the number not on WhatsApp (63003), undeliverable (63049, 63051).
FALL_BACK_CODES = frozenset({21655, 63003, 63013, 63016, 63024, 63027, 63049, 63051})
TO_CHILD = ("invite", "remind", "reply")
# How every note on a message that went by SMS in WhatsApp's place ends (the caseworker's
# `tala invite`, the summary and the invitation's delivery_error read it).
BY_SMS = "sent by SMS instead"
AFTER_WINDOW = f"WhatsApp's 24 hours had passed; {BY_SMS}"


def went_by_sms(note: str | None) -> bool:
    return (note or "").endswith(BY_SMS)


class Fallback:
    def window_open(self, channel: str, contact: str) -> bool:
        """Whether `channel` lets tala write freely to `contact` now (always, but WhatsApp)."""
        if channel not in WINDOWED:
            return True
        return bool(self.store.r.exists(
            self.store.window_key(channel, self.crypto.lookup_hash(contact))))

    def stopped_text(self, channel: str, contact: str) -> str:
        """What a child who said STOP on a channel that does not confirm it itself is told."""
        state = self.asking(channel, contact)
        return self.rt.catalogs.gettext(state.lang if state else SOURCE_LANG, M.STOPPED)

    def stopped_anywhere(self, contact: str) -> bool:
        """A STOP on WhatsApp or by SMS from this number: neither sends to it again."""
        return any(self.is_opted_out(channel, contact) for channel in ("whatsapp", "sms"))

    def by_sms(self, sid: str, contact: str, says: list[Say], job_id: str, kind: str,
               note: str, lane: str = DEFAULT) -> int:
        """Send by SMS what a windowed channel cannot take; the child's SMS answer finds the
        session (unless the number's SMS is another live session's). `note` is what the
        caseworker is told. Returns how many text messages were queued: 0 with no SMS."""
        sms = self.outbound.get("sms")
        if sms is None or self.queue is None or self.stopped_anywhere(contact):
            return 0
        h = self.crypto.lookup_hash(contact)
        if self.store.lookup("sms", h) in (None, sid):
            self.store.bind("sms", h, sid, self._live_ttl())
        parts = sms.render(says)
        for i, body in enumerate(parts):
            self.queue.enqueue(f"{job_id}:sms:{i}", contact, body, kind=kind, channel="sms",
                               lane=lane, session_id=sid, note=note)
        return len(parts)

    def fall_back(self, job: Job, code: int | None, why: str) -> bool:
        """A WhatsApp message to a child that WhatsApp refused or could not deliver (`code`):
        sent again by SMS. False where it is not for SMS (staff, other failures, no SMS)."""
        if job.fields.get("channel") not in WINDOWED or code not in FALL_BACK_CODES:
            return False
        sid, kind = job.fields.get("session_id"), job.fields.get("kind")
        if kind not in TO_CHILD or not sid:
            return False
        note = f"WhatsApp could not take it ({why}); {BY_SMS}"
        queued = self.by_sms(sid, job.to, [Say(job.body)], job.id, kind, note)
        if queued and kind == "invite":
            self.db.set_delivery(sid, "queued", note)
        return bool(queued)
