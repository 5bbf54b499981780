"""Contacts and sending: which session a number or chat opens, STOP and START, messages a
channel sends first (invitations, reminders, a caseworker's reply), what the provider says
became of them, and erasing a child. A mixin of `bot.service.ConversationService`."""

from __future__ import annotations

from typing import Callable

from bot.fallback import AFTER_WINDOW, WINDOWED
from bot.invitations import STAFF_ROUTES
from bot.refusal import Refusal, staff_text
from bot.weblinks import DEVICE, WEB
from flows import engine
from flows.engine import Say, State
from storage.crypto import subject_of
from storage import redis_io
from storage.queue import DEFAULT, Job, SendResult
from storage.state import legacy_field, message_field
from storage.sql import new_id

MAX_REPLY = 459  # three GSM-7 segments


class ReplyError(Refusal):
    """The reply cannot be sent; the message says why and what to do."""


class Contacts:
    def session_for_contact(self, channel: str, contact: str) -> str | None:
        return self.store.lookup(channel, self.crypto.lookup_hash(contact))

    def lookup_contact(self, channel: str, contact: str, message_id: str | None = None
                       ) -> tuple[str | None, bool, str | None]:
        """The session a number opens, whether it opted out, and which of its ended sessions
        applied this message id already (None: none), in one round trip; in the same trip the
        binding is renewed for as long as a live session is kept, so a child who answers now
        and then never loses the conversation (a binding whose session is gone is removed
        when it is next used: see `receive`)."""
        return redis_io.drive(self.lookup_steps(channel, contact, message_id),
                              self.store.r)[:3]

    def lookup_steps(self, channel: str, contact: str, message_id: str | None,
                     read: bool = False) -> redis_io.Steps:
        """`lookup_contact`'s Redis work, for either driver (storage/redis_io.py), and with
        `read` the session's record too, in the same round trip where Redis can
        (`StateStore.contact_steps`)."""
        ids = (message_field(channel, message_id), legacy_field(channel, message_id)) \
            if message_id else None
        # The child wrote: a windowed channel lets tala answer for a while.
        return self.store.contact_steps(channel, self.crypto.lookup_hash(contact), ids,
                                        self._live_ttl(), WINDOWED.get(channel, 0), read)

    def _optout_key(self, channel: str, contact: str) -> str:
        return self.store.optout_key(channel, self.crypto.lookup_hash(contact))

    def is_opted_out(self, channel: str, contact: str) -> bool:
        return bool(self.store.r.exists(self._optout_key(channel, contact)))

    def opt_out(self, channel: str, contact: str) -> None:
        """The child said STOP (or the provider says they did): nothing more is sent, the
        session waits, and the caseworker sees why."""
        self.store.r.set(self._optout_key(channel, contact), b"1")
        sid = self.session_for_contact(channel, contact)
        if sid is None:
            return

        def hold(s: State) -> tuple[State, None]:
            if s.status not in engine.FINISHED:
                s.hold = "opted_out"
                if s.status == engine.ACTIVE:
                    s.status = engine.PAUSED
            return s, None

        self.store.transact(sid, hold, ttl=self._ttl)
        self.db.set_delivery(sid, "opted_out", "the child answered STOP")

    def opt_in(self, channel: str, contact: str) -> None:
        self.store.r.delete(self._optout_key(channel, contact))
        sid = self.session_for_contact(channel, contact)
        if sid is not None:
            self.store.transact(sid, lambda s: (setattr(s, "hold", None) or s, None),
                                ttl=self._ttl)

    # ------------------------------------------------------------------ sending first
    def deliver(self, state: State, says: list[Say], job_id: str, kind: str = "message",
                lane: str = DEFAULT) -> int:
        """Queue messages to the child on the session's channel (invitations, reminders), in
        that channel's line: only its own sender takes them. Returns how many text messages
        were queued; 0 where the channel cannot send first."""
        if state.channel == WEB and state.contact:  # all by SMS, with the page's link
            return self.by_link(state, says, job_id, kind, lane)
        out = self.outbound.get(state.channel)
        if out is None or self.queue is None or not state.contact:
            return 0
        if self.is_opted_out(state.channel, state.contact):
            return 0
        parts, meta = out.render(says), {}
        if state.channel in WINDOWED:
            if kind == "invite":  # WhatsApp: only an approved template may start it
                parts = parts[:1]
                meta = out.sender.invitation_meta(state.lang, self.sender_name)
            elif not self.window_open(state.channel, state.contact):
                return self.by_sms(state.session_id, state.contact, says, job_id, kind,
                                   AFTER_WINDOW, lane)
        for i, body in enumerate(parts):
            self.queue.enqueue(f"{job_id}:{i}", state.contact, body, kind=kind,
                               channel=state.channel, lane=lane, session_id=state.session_id,
                               key_subject=subject_of(state), **meta)
        return len(parts)

    def send_to(self, channel: str, address: str, body: str, message_id: str,
                state: State | None = None, **meta: str) -> bool:
        """Queue the answer to a child's message (Telegram's, laid out by the channel): the
        channel's own sender sends it. The job is named by the session and the message it
        answers, so a retried update queues nothing twice (False) and erasing the child takes
        it too. An answer in an anonymous survey, or to a chat with no session, keeps no chat
        id once it is sent."""
        if self.queue is None:
            raise RuntimeError("replies go through the send queue, and this service has none")
        sid = state.session_id if state else "-"
        anonymous = state is None or state.campaign_id is not None
        return self.queue.enqueue(f"chat:{sid}:{message_id}", address, body, kind="message",
                                  channel=channel, lane=DEFAULT, session_id=sid,
                                  key_subject=subject_of(state) if state else "",
                                  **({"anonymous": "1"} if anonymous else {}), **meta)

    def send_queued(self, channel: str, block_ms: int = 0, max_jobs: int | None = None,
                    stop: Callable[[], bool] = lambda: False,
                    on_result: Callable[[Job, SendResult], None] | None = None) -> int:
        """Send what is queued for `channel` at its rate; returns how many jobs finished."""
        out = self.outbound.get(channel)
        if out is None or self.queue is None:
            return 0

        def done(job: Job, result: SendResult) -> None:
            self._sent(job, result)
            if on_result:
                on_result(job, result)

        return self.queue.process(out.sender, out.rate, on_result=done, block_ms=block_ms,
                                  max_jobs=max_jobs, stop=stop)

    def _sent(self, job: Job, result: SendResult) -> None:
        channel = job.fields.get("channel", "sms")
        sid = job.fields.get("session_id")
        self.metrics.messages.labels(channel, "out" if result.ok else "failed").inc()
        if result.ok:
            if job.fields.get("kind") == "invite" and sid:
                self.db.set_delivery(sid, "sent", job.fields.get("note"))
            elif job.fields.get("kind") == "staff":
                self.notifier.delivered(job.id, "sent")
            return
        if job.fields.get("kind") == "staff":
            self.notifier.delivered(job.id, "failed", result.error)  # escalates at once
        elif self.fall_back(job, result.error_code, f"Twilio {result.error_code}"):
            return
        elif result.opted_out:
            self.opt_out(channel, job.to)
        elif job.fields.get("kind") == "invite" and sid:
            self.db.set_delivery(sid, "failed", result.error)

    def record_delivery(self, message_sid: str, status: str, error_code: str | None,
                        opted_out: bool = False, job_id: str | None = None) -> None:
        """A provider's delivery report (Twilio's status callback) for a message we sent;
        `job_id` as its URL names it (a message sent before it did is found by its id)."""
        if self.queue is None or not message_sid:
            return
        if not job_id:
            found = (self.store.r.get(self.queue.message_key(message_sid))
                     or self.store.r.get(self.queue.legacy_message_key(message_sid)))
            if found is None:
                return
            job_id = found.decode()
        job = self.queue.job(job_id)
        if job.get("sid") not in (None, "", message_sid):
            return  # not the message this job sent (its report before its result, if empty)
        if job.get("kind") == "staff":
            if status in ("delivered", "undelivered", "failed"):
                self.notifier.delivered(job_id, status,
                                        f"error {error_code}" if error_code else None)
            return  # a work phone's STOP is not a child's
        text = self.queue.text(job_id, job) if opted_out or status in (
            "undelivered", "failed") else None
        if opted_out:
            to = text[0] if text is not None else self._contact_of(job.get("session_id"))
            if to:
                self.opt_out(job.get("channel", "sms"), to)
            return
        if text is not None and job.get("channel") in WINDOWED and \
                (error_code or "").isdigit():
            if self.fall_back(Job(job_id, *text, job), int(error_code), f"error {error_code}"):
                return
        if job.get("kind") == "invite" and job.get("session_id") and status in (
                "delivered", "undelivered", "failed"):
            self.db.set_delivery(job["session_id"], status,
                                 f"error {error_code}" if error_code else None)

    def _contact_of(self, sid: str | None) -> str | None:
        """The number a session's messages went to, once its queued texts are gone: the live
        session's, else its invitation's."""
        state = self.store.get(sid) if sid else None
        if state is not None and state.contact:
            return state.contact
        inv = self.db.invitation(sid) if sid else None
        return self.crypto.decrypt(inv.contact_enc, sid) if inv and inv.contact_enc else None

    # ------------------------------------------------------------------ a caseworker's
    def reply(self, case_ref: str, text: str, actor: str) -> str:
        """The caseworker's short answer back to the child, on the channel the child used.
        Returns the queued job's id."""
        text = " ".join(text.split())
        if not text:
            raise ReplyError(staff_text("Skriv meddelandet inom citattecken, till exempel: "
                                        "tala reply K-17 \"Tack! Vi pratar om skolan på "
                                        "torsdag.\""))
        if len(text) > MAX_REPLY:
            raise ReplyError(staff_text("Håll det kort: högst {most} tecken (tre sms); det här "
                                        "är {length}."), most=MAX_REPLY, length=len(text))
        child = self.db.child(case_ref)
        if child is None:
            raise ReplyError(staff_text("Det finns inget ärende '{case}'."), case=case_ref)
        for inv in reversed(self.db.invitations(child.id)):
            # Where the child answered: the live session knows (a Telegram chat is learnt when
            # the child opens the link), and SQL keeps it once the session is written.
            state = self.store.get(inv.session_id)
            channel = state.channel if state and state.contact else inv.channel
            contact = (state.contact if state and state.contact else
                       self.crypto.decrypt(inv.contact_enc, inv.session_id) if inv.contact_enc
                       else None)
            web = channel == WEB and "sms" in self.outbound  # by SMS: the page only answers
            if not (channel in self.outbound or web) or not contact:
                continue
            if self.stopped_anywhere(contact) if web else self.is_opted_out(channel, contact):
                raise ReplyError(staff_text("Barnet har svarat STOP på våra meddelanden, så "
                                            "inget kan skickas förrän barnet skriver START."))
            job_id = f"reply:{inv.session_id}:{new_id()[:8]}"
            if web:
                self.by_sms(inv.session_id, contact, [Say(text)], job_id, "reply", "")
                self.db.audit(actor, "reply", case_ref, "via sms (web chat)")
                return f"{job_id}:sms:0"
            if not self.window_open(channel, contact):
                if not self.by_sms(inv.session_id, contact, [Say(text)], job_id, "reply",
                                   AFTER_WINDOW):
                    raise ReplyError(staff_text(
                        "Barnet har inte skrivit på WhatsApp det senaste dygnet, och då får "
                        "tala bara skicka en godkänd mall där, inte ett svar. Sms är inte "
                        "inställt: svaret kan inte skickas nu."))
                self.db.audit(actor, "reply", case_ref, "via sms (WhatsApp's 24 hours had "
                              "passed)")
                return f"{job_id}:sms:0"
            self.queue.enqueue(job_id, contact, text, kind="reply", channel=channel,
                               session_id=inv.session_id)
            self.db.audit(actor, "reply", case_ref, f"via {channel}")
            return job_id
        can = ", ".join(c for c in self.outbound if c not in STAFF_ROUTES)
        if not can:
            raise ReplyError(staff_text("{case} har inte svarat i en kanal som tala kan skicka "
                                        "i (ingen är inställd): det finns ingenstans att "
                                        "skicka ett svar."), case=case_ref)
        raise ReplyError(staff_text("{case} har inte svarat i en kanal som tala kan skicka i "
                                    "({channels}): det finns ingenstans att skicka ett svar."),
                         case=case_ref, channels=can)

    def erase(self, case_ref: str, actor: str) -> bool:
        """Remove everything about a child from SQL and Redis. The child's data keys go first
        (storage/keys.py): from then on every copy of what they wrote, in Redis's files, the
        database's log, backups and replicas, is unreadable; then the rows and keys, then
        Redis and SQLite are compacted so even the unreadable copies leave their files. What
        stays is one audit entry that an erasure happened, naming the case only by a keyed
        hash (so the municipality can check a given case was erased, but the log itself
        names nobody)."""
        child = self.db.child(case_ref)
        if child is None:
            return False
        sids = [inv.session_id for inv in self.db.invitations(child.id)]
        # A chat bound since the invitation is not in SQL until the session is written: the
        # live state says which, read while its key is there.
        live = {sid: self.store.get(sid) for sid in sids}
        if self.crypto.keys is not None:
            self.crypto.keys.destroy(sids)
        erased = self.db.erase_child(case_ref)
        if erased is None:
            return False
        invitations, alert_ids = erased
        r = self.store.r
        job_ids = [f"alert:{a}:" for a in alert_ids]
        for inv in invitations:
            sid = inv.session_id
            live_state = live.get(sid)
            if live_state is not None and live_state.contact:
                h = self.crypto.lookup_hash(live_state.contact)
                if self.store.lookup(live_state.channel, h) == sid:  # not a sibling's chat
                    self.store.unbind(live_state.channel, h)
                    r.delete(self.store.contact_seen_key(live_state.channel, h))
            r.delete(*[k for k in r.scan_iter(match=self.store.session_pattern(sid))] or [b"-"])
            self.store.unschedule(sid)
            if inv.code_hash and inv.channel == WEB:  # the link, and the device it was open on
                self.store.unbind(WEB, inv.code_hash)
                self.store.unbind(DEVICE, inv.code_hash)
            elif inv.code_hash:
                self.store.unbind("code", inv.code_hash)
            # A number or chat a brother's or sister's session is on now stays theirs: its
            # binding, its STOP and its message ids are theirs too.
            if inv.contact_hash and self.store.lookup(inv.channel, inv.contact_hash) in (
                    sid, None):
                self.store.unbind(inv.channel, inv.contact_hash)
                r.delete(self.store.optout_key(inv.channel, inv.contact_hash),
                         self.store.window_key(inv.channel, inv.contact_hash),
                         self.store.unknown_key(inv.contact_hash),
                         self.store.contact_seen_key(inv.channel, inv.contact_hash))
            if inv.contact_hash and (inv.channel in WINDOWED or inv.channel == WEB) and \
                    self.store.lookup("sms", inv.contact_hash) == sid:
                self.store.unbind("sms", inv.contact_hash)  # bound when it went by SMS instead
            job_ids += [f"invite:{sid}:", f"remind:{sid}:", f"reply:{sid}:", f"chat:{sid}:"]
        if self.queue is not None:
            self.queue.forget(lambda job_id: job_id.startswith(tuple(job_ids)))
        self.db.audit(actor, "erase", None,
                      f"case #{self.crypto.lookup_hash(case_ref)[:16]}, "
                      f"{len(invitations)} invitation(s)")
        self.store.compact()
        self.db.compact()
        return True
