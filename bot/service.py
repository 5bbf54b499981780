"""The conversation service: one path for every channel.

    channel adapter -> handle(session, text, message id)
        -> (dedupe + read + engine.step + write) in one Redis transaction
        -> alerts and finished sessions to SQL (the outbox), then the replies back

Anything that must reach SQL (an alert, a finished session) is first put in the session's
outbox inside the same Redis transaction as the answer that caused it, then written; if SQL is
down the worker (`run_due`) writes it later. So nothing is lost between the two stores.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError

from bot.metrics import Metrics
from bot.notify import StaffNotifier
from flows import engine
from flows import messages as M
from flows.engine import (Finish, Inbound, RaiseAlert, Runtime, Say, State, Wake, say_from_dict,
                          say_to_dict)
from flows.i18n import SOURCE_LANG, normalise
from flows.model import Questionnaire, pick_for_age
from storage.crypto import Crypto
from storage.queue import DEFAULT, Job, SendQueue, Sender, SendResult
from storage.sql import Campaign, Database, Invitation, new_id
from storage.state import Duplicate, StateStore

log = logging.getLogger("tala.service")

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
# Words a campaign keyword may never be: the SMS provider's own, and tala's commands.
ALWAYS_RESERVED = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit",
                             "revoke", "optout", "start", "yes", "unstop", "help", "info",
                             "ja", "nej", "no", "hej", "hi", "paus", "sluta", "hjalp", "svar",
                             "sprak", "language", "tillbaka", "back", "skip"})
CODE_CHANNELS = ("console", "telegram", "rasa")  # opened with an invitation code
STAFF_ROUTES = ("email",)  # queued and sent like a channel, but only ever to staff
MAX_CODE_TRIES = 5  # wrong invitation codes from one chat before it must wait an hour
FINISHED_TTL = 24 * 3600  # a finished session answers "already done" for a day, then goes
MAX_REPLY = 459  # three GSM-7 segments
# A Swedish personal identity number (personnummer / samordningsnummer) in any usual form.
_PERSONAL_NUMBER = re.compile(r"^(19|20)?\d{6}[-+]?\d{4}$")


class _Started:
    """Marks, among a step's effects, that the child has just started (for the metrics)."""


class _Stale:
    """Marks a button press for a question that is no longer being asked."""


class CampaignError(ValueError):
    """The campaign cannot be made as asked; the message says what to change."""


class CodeError(LookupError):
    """An invitation code that cannot be used: `kind` is "unknown" or "too_many"."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def _still_asked(s: State, question_id: str) -> bool:
    """Whether a button for `question_id` answers what the child is being asked now: the
    language menu's ("_language") while it is open, a question's while it is the current one
    and nothing else is pending."""
    if s.status != engine.ACTIVE:
        return False
    if question_id == engine.LANGUAGE_PROMPT:
        return s.pending == "language"
    return s.current == question_id and not s.pending


def _normal_code(code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", code.upper())


class ReplyError(ValueError):
    """The reply cannot be sent; the message says why and what to do."""


class InviteError(ValueError):
    """The invitation cannot be made; the message says what to type instead."""


@dataclass
class Invited:
    session_id: str
    case_ref: str
    questionnaire_id: str
    lang: str
    channel: str
    code: str  # shown once, when made ("" for an invitation made before): SQL has its hash
    expires_at: datetime


@dataclass
class Reply:
    says: list[Say] = field(default_factory=list)
    duplicate: bool = False
    finished: str | None = None
    stale: bool = False  # a button for a question already answered: nothing was changed


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Outbound:
    """How to reach a child on a channel that can send first (SMS): lay the messages out, and
    the sender the queue hands them to at `rate` per second."""

    render: Callable[[list[Say]], list[str]]
    sender: Sender
    rate: float
    normalise: Callable[[str], str]


class ConversationService:
    def __init__(self, store: StateStore, db: Database, crypto: Crypto,
                 questionnaires: dict[str, Questionnaire], runtime: Runtime,
                 queue: SendQueue | None = None, outbound: dict[str, Outbound] | None = None,
                 sender_name: str = "Socialtjänsten", metrics: Metrics | None = None,
                 escalate_after: timedelta = timedelta(hours=4),
                 clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.db = db
        self.crypto = crypto
        self.questionnaires = questionnaires
        self.rt = runtime
        self.queue = queue
        self.outbound = outbound or {}
        self.sender_name = sender_name
        self.metrics = metrics or Metrics()
        self.clock = clock
        # Who hears of an alert, how and when (bot/notify.py); its clock is the service's.
        self.notifier = StaffNotifier(
            db, store, queue, routes=lambda: {r for r in ("sms", "email") if r in self.outbound},
            timezone=runtime.policy.timezone, escalate_after=escalate_after,
            clock=lambda: self.clock())
        # How a finished session reaches SQL: at once by default; `tala serve` hands it to a
        # thread of its own, so no request ever waits on SQL (see bot/server.py). Alerts are
        # always written and notified at once.
        self.write_later: Callable[[str], None] = self.flush

    # ------------------------------------------------------------------ inviting
    def invite(self, case_ref: str, age: int, *, lang: str = "sv", channel: str = "console",
               contact: str | None = None, questionnaire_id: str | None = None,
               unit: str | None = None, caseworker: str | None = None,
               actor: str = "unknown", session_id: str | None = None,
               lane: str = DEFAULT) -> Invited:
        """Invite a child. With `session_id` given, inviting again is a no-op that returns the
        first invitation: a bulk run that was cut off can simply be run again. `lane`: BULK
        for a bulk run's invitations, which then never hold up a conversation's replies."""
        if session_id:
            earlier = self.db.invitation(session_id)
            if earlier is not None:
                state = self.store.get(session_id)
                if state is not None and state.status == engine.INVITED:
                    self._send_invitation(state, lane)  # queued once: a no-op after
                return self._invited(earlier)
        case_ref = case_ref.strip()
        if not case_ref:
            raise InviteError("Give a case reference, for example: tala invite K-17 --age 9")
        if _PERSONAL_NUMBER.match(case_ref.replace(" ", "")):
            raise InviteError("That looks like a personal identity number. tala only stores "
                              "pseudonymous case references: use your unit's case reference, "
                              "for example K-17.")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}", case_ref):
            raise InviteError("A case reference is letters, digits and - _ . : / (at most 64), "
                              "for example K-17.")
        if not 4 <= age <= 25:
            raise InviteError(f"--age {age} looks wrong: give the child's age in years (6-18).")
        if not self.rt.catalogs.has(lang):
            known = ", ".join(self.rt.catalogs.languages)
            raise InviteError(f"There is no '{lang}' translation. Languages: {known}.")
        if questionnaire_id:
            qn = self.questionnaires.get(questionnaire_id)
            if qn is None:
                known = ", ".join(sorted(self.questionnaires))
                raise InviteError(f"No questionnaire '{questionnaire_id}'. There are: {known}.")
        else:
            qn = pick_for_age(self.questionnaires, age)
            if qn is None:
                raise InviteError(f"No follow-up questionnaire is written for age {age}. "
                                  "Pick one with --questionnaire.")
        contact = self._check_contact(channel, contact, session_id)
        now = self.clock()
        # Who is responsible (alerts go to them): the one named, else whoever invites; a new
        # invitation changes it, as `tala case assign` does.
        responsible = caseworker or (actor if actor != "unknown" else None)
        if caseworker and self.db.has_users() and self.db.user(caseworker) is None:
            raise InviteError(f"There is no tala user '{caseworker}' to be responsible for "
                              f"{case_ref}. 'tala users list' shows who there is.")
        child = self.db.ensure_child(case_ref, unit=unit, caseworker=responsible,
                                     birth_year=now.year - age, preferred_lang=lang)
        sid = session_id or new_id()
        # A deep link's code must not be guessable: 16 characters is 80 bits.
        code = "".join(secrets.choice(CODE_ALPHABET)
                       for _ in range(16 if channel == "telegram" else 10))
        state = engine.new_state(sid, qn, lang, now)
        state.channel = channel
        state.case_ref = case_ref
        state.unit = child.unit
        state.contact = contact
        ttl = self._ttl(state)
        expires = now + self.rt.policy.invitation_open
        if self.store.get(sid) is None:
            self.store.create(state, ttl=ttl)
        code_hash = self.crypto.lookup_hash(code)
        self.store.bind("code", code_hash, sid, ttl)
        if contact:
            self.store.bind(channel, self.crypto.lookup_hash(contact), sid, ttl)
        self.store.schedule(sid, expires)
        inv = self.db.add_invitation(Invitation(
            child_id=child.id, session_id=sid, questionnaire_id=qn.id, channel=channel,
            lang=lang, code_hash=code_hash, created_by=actor, expires_at=expires,
            contact_enc=self.crypto.encrypt(contact) if contact else None,
            contact_hash=self.crypto.lookup_hash(contact) if contact else None,
            delivery_status="queued" if contact else None))
        self.db.audit(actor, "invite", case_ref, f"{qn.id} via {channel}")
        self._send_invitation(state, lane)
        return self._invited(inv, code)

    def _send_invitation(self, state: State, lane: str = DEFAULT) -> None:
        if state.contact:
            text = self.rt.catalogs.gettext(state.lang, M.INVITE_SMS).format(
                sender=self.sender_name)
            self.deliver(state, [Say(text)], f"invite:{state.session_id}", kind="invite",
                         lane=lane)

    def _invited(self, inv: Invitation, code: str = "") -> Invited:
        """`code` only when the invitation is made: SQL keeps its hash, never the code."""
        child_ref = self.db.case_ref_of(inv.child_id)
        return Invited(inv.session_id, child_ref, inv.questionnaire_id, inv.lang, inv.channel,
                       code, inv.expires_at)

    def _check_contact(self, channel: str, contact: str | None,
                       session_id: str | None = None) -> str | None:
        out = self.outbound.get(channel)
        if channel in STAFF_ROUTES:
            raise InviteError(f"--channel {channel} is for staff alerts only, not for children.")
        if channel not in CODE_CHANNELS and out is None:
            raise InviteError(f"--channel {channel} is not set up on this installation: see "
                              "the README for the settings it needs.")
        if channel in CODE_CHANNELS:
            # The child opens these with the invitation's code; the chat is learnt then.
            if contact:
                raise InviteError(f"--to is not used with --channel {channel}.")
            if channel == "telegram" and out is None:
                raise InviteError("--channel telegram needs TELEGRAM_BOT_TOKEN and "
                                  "TELEGRAM_BOT_USERNAME: see the README.")
            return None
        if not contact:
            raise InviteError(f"--channel {channel} needs --to with the child's number.")
        try:
            contact = out.normalise(contact)
        except ValueError as e:
            raise InviteError(str(e)) from None
        if self.is_opted_out(channel, contact):
            raise InviteError("This number has said STOP to our messages, so nothing can be "
                              "sent to it. The child can text START to our number to allow "
                              "messages again.")
        open_sid = self.session_for_contact(channel, contact)
        open_state = self.store.get(open_sid) if open_sid and open_sid != session_id else None
        if open_state is not None and open_state.status not in engine.FINISHED:
            raise InviteError(f"This number already has open questions "
                              f"({open_state.questionnaire_id}, invited "
                              f"{open_state.created_at[:10]}). One conversation per number at "
                              "a time: wait until it is finished or has expired.")
        return contact

    def session_for_code(self, code: str) -> str | None:
        return self.store.lookup("code", self.crypto.lookup_hash(_normal_code(code)))

    def claim_code(self, channel: str, address: str, code: str) -> str:
        """Bind a chat (Telegram, Rasa) to the invitation with this code. A code works once
        and expires with its invitation; a wrong, used or expired code gets the same answer
        (so guessing learns nothing), and a chat that keeps guessing is held off for an hour."""
        r, prefix = self.store.r, self.store.prefix
        addr = self.crypto.lookup_hash(address)
        fails_key = f"{prefix}:codefail:{channel}:{addr}"
        if int(r.get(fails_key) or 0) >= MAX_CODE_TRIES:
            raise CodeError("too_many")
        sid_raw = r.getdel(self.store.bind_key("code", self.crypto.lookup_hash(
            _normal_code(code))))
        sid = sid_raw.decode() if sid_raw else None
        state = self.store.get(sid) if sid else None
        if state is None or state.channel == "sms" or state.status != engine.INVITED:
            pipe = r.pipeline()
            pipe.incr(fails_key)
            pipe.expire(fails_key, 3600)
            pipe.execute()
            raise CodeError("unknown")

        # Questions still open on this chat (a brother's or sister's, or the child's own
        # other invitation) wait, paused and keeping their chat, and come back after these.
        earlier_sid = self.store.lookup(channel, addr)
        earlier = self.store.get(earlier_sid) if earlier_sid and earlier_sid != sid else None
        waits = earlier is not None and earlier.status not in engine.FINISHED
        if waits:
            def park(s: State) -> tuple[State, None]:
                if s.status == engine.ACTIVE:
                    s.status, s.pending = engine.PAUSED, None
                return s, None

            self.store.transact(earlier_sid, park, ttl=self._ttl)

        def bind(s: State) -> tuple[State, None]:
            s.channel, s.contact = channel, address
            s.then = earlier_sid if waits else None
            return s, None

        self.store.transact(sid, bind, ttl=self._ttl)
        self.store.bind(channel, addr, sid, self._ttl(state))
        return sid

    def _hand_back(self, sid: str) -> str | None:
        """A session has ended: if another was waiting on its chat, the chat opens that one
        again. Returns the ended session's language if it did."""
        state = self.store.get(sid)
        waiting = self.store.get(state.then) if state and state.then and state.contact else None
        if waiting is None or waiting.status in engine.FINISHED or \
                waiting.contact != state.contact or waiting.channel != state.channel:
            return None
        self.store.bind(state.channel, self.crypto.lookup_hash(state.contact),
                        waiting.session_id, self._ttl(waiting))
        return state.lang

    # ------------------------------------------------------------------ contacts
    def session_for_contact(self, channel: str, contact: str) -> str | None:
        return self.store.lookup(channel, self.crypto.lookup_hash(contact))

    def lookup_contact(self, channel: str, contact: str) -> tuple[str | None, bool]:
        """The session a number opens and whether it opted out, in one round trip."""
        h = self.crypto.lookup_hash(contact)
        pipe = self.store.r.pipeline(transaction=False)
        pipe.get(self.store.bind_key(channel, h))
        pipe.exists(f"{self.store.prefix}:optout:{channel}:{h}")
        sid, opted_out = pipe.execute()
        return (sid.decode() if sid else None), bool(opted_out)

    def _optout_key(self, channel: str, contact: str) -> str:
        return f"{self.store.prefix}:optout:{channel}:{self.crypto.lookup_hash(contact)}"

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
        out = self.outbound.get(state.channel)
        if out is None or self.queue is None or not state.contact:
            return 0
        if self.is_opted_out(state.channel, state.contact):
            return 0
        parts = out.render(says)
        for i, body in enumerate(parts):
            self.queue.enqueue(f"{job_id}:{i}", state.contact, body, kind=kind,
                               channel=state.channel, lane=lane, session_id=state.session_id)
        return len(parts)

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
            # Leads the provider's delivery report to the job; named by the id's keyed hash
            # (Telegram's message id holds the chat id).
            self.store.r.set(self.queue.message_key(result.sid), job.id, ex=7 * 86400)
            if job.fields.get("kind") == "invite" and sid:
                self.db.set_delivery(sid, "sent")
            elif job.fields.get("kind") == "staff":
                self.notifier.delivered(job.id, "sent")
            return
        if job.fields.get("kind") == "staff":
            self.notifier.delivered(job.id, "failed", result.error)  # escalates at once
        elif result.opted_out:
            self.opt_out(channel, job.to)
        elif job.fields.get("kind") == "invite" and sid:
            self.db.set_delivery(sid, "failed", result.error)

    def record_delivery(self, message_sid: str, status: str, error_code: str | None,
                        opted_out: bool = False) -> None:
        """A provider's delivery report (Twilio's status callback) for a message we sent."""
        if self.queue is None or not message_sid:
            return
        job_id = (self.store.r.get(self.queue.message_key(message_sid))
                  or self.store.r.get(self.queue.legacy_message_key(message_sid)))
        if job_id is None:
            return
        job_id = job_id.decode()
        job = self.queue.job(job_id)
        if job.get("kind") == "staff":
            if status in ("delivered", "undelivered", "failed"):
                self.notifier.delivered(job_id, status,
                                        f"error {error_code}" if error_code else None)
            return  # a work phone's STOP is not a child's
        if opted_out:
            self.opt_out(job.get("channel", "sms"), self.crypto.decrypt(job["to"].encode()))
            return
        if job.get("kind") == "invite" and job.get("session_id") and status in (
                "delivered", "undelivered", "failed"):
            self.db.set_delivery(job["session_id"], status,
                                 f"error {error_code}" if error_code else None)

    # ------------------------------------------------------------------ talking
    def open(self, sid: str, seen: tuple[str, str] | None = None) -> Reply:
        """The child opens the conversation (console, a deep link, a keyword): start or resume
        it. `seen` marks the message that opened it, so a retry of it is not an answer."""
        now = self.clock()
        return self._apply(sid, lambda s, qn: engine.start(self.rt, qn, s, now), now, seen)

    def handle(self, sid: str, text: str, message_id: str | None = None,
               channel: str = "console", expect: str | None = None) -> Reply:
        """One message from the child. A message id seen before is not applied again. With
        `expect` (a button's question id), it applies only while that question is the one
        being asked: a second press of an old button changes nothing."""
        now = self.clock()
        seen = (channel, message_id) if message_id else None

        def step(s: State, qn: Questionnaire) -> tuple[State, list]:
            if expect is not None and not _still_asked(s, expect):
                return s, [_Stale()]
            if s.trigger and normalise(text).split()[:1] == [s.trigger]:
                # The survey's keyword again (sent twice, or Twilio retried it): carry on
                # where the pupil is; "SKOLA8" must never be read as the answer 8.
                return engine.start(self.rt, qn, s, now)
            # What the child can be told of who hears of an urgent answer now.
            reach = self.notifier.reach(s.unit, now) if s.campaign_id is None else "office"
            return engine.step(self.rt, qn, s, Inbound(text, now, reach))

        return self._apply(sid, step, now, seen)

    def state(self, sid: str) -> State | None:
        return self.store.get(sid)

    def _apply(self, sid: str, fn: Callable, now: datetime,
               seen: tuple[str, str] | None = None) -> Reply:
        def change(state: State) -> tuple[State, list]:
            qn = self.questionnaires[state.questionnaire_id]
            new, effects = fn(state, qn)
            if state.status == engine.INVITED and new.status != engine.INVITED:
                effects = [*effects, _Started()]
                if new.then:  # opened on a chat where other questions wait: say so first
                    effects.insert(0, Say(self.rt.catalogs.gettext(new.lang, M.OTHER_WAITS)))
            self._queue_for_sql(new, effects)
            return new, effects

        result = self.store.transact(
            sid, change, ttl=self._ttl, seen=seen,
            wake_at=lambda s, effects: self._wake_at(s, effects, now),
            remember=lambda effects: self.crypto.seal(json.dumps(
                [say_to_dict(e) for e in effects if isinstance(e, Say)]).encode(), compress=True))
        if isinstance(result, Duplicate):
            says = [say_from_dict(d) for d in json.loads(self.crypto.unseal(result.remembered))
                    ] if result.remembered else []
            return Reply(says, duplicate=True)
        if result is None:
            raise KeyError(sid)
        if any(isinstance(e, RaiseAlert) for e in result):
            self.flush(sid)  # the caseworker hears of it now
        elif any(isinstance(e, Finish) for e in result):
            self.write_later(sid)  # the outbox keeps it until written, whatever happens
        if any(isinstance(e, _Stale) for e in result):
            return Reply(stale=True)
        if any(isinstance(e, _Started) for e in result):
            self.metrics.sessions_started.inc()
        finished = next((e.status for e in result if isinstance(e, Finish)), None)
        says = [e for e in result if isinstance(e, Say)]
        if finished:
            self.metrics.sessions_finished.labels(finished).inc()
            lang = self._hand_back(sid)
            if lang:
                says.append(Say(self.rt.catalogs.gettext(lang, M.MORE_WAITING)))
        return Reply(says, finished=finished)

    def _ttl(self, state: State) -> int:
        """How long Redis keeps a session: a finished one a day (to answer "already done"), a
        live one a week past its expiry, so the worker always gets to write it to SQL."""
        if state.status in engine.FINISHED and not state.outbox:
            return FINISHED_TTL
        p = self.rt.policy
        longest = max(p.expire_after, p.invitation_open)
        return int((longest + timedelta(days=7)).total_seconds())

    @staticmethod
    def _queue_for_sql(state: State, effects: Iterable) -> None:
        for e in effects:
            if isinstance(e, RaiseAlert) and state.campaign_id is not None:
                # Anonymous: counted for the survey's owner, with nothing that says which.
                state.outbox.append({"kind": "flag", "key": f"flag:{e.key}"})
            elif isinstance(e, RaiseAlert):
                item = asdict(e)
                item["at"] = e.at.isoformat()
                state.outbox.append({"kind": "alert", **item})
            elif isinstance(e, Finish):
                state.outbox.append({"kind": "finish", "key": "finish"})

    @staticmethod
    def _wake_at(state: State, effects: list, now: datetime) -> datetime | None:
        if state.outbox:
            return now  # the worker retries whatever could not be written straight away
        wakes = [e.at for e in effects if isinstance(e, Wake)]
        return min(wakes) if wakes else None

    # ------------------------------------------------------------------ SQL
    def flush(self, sid: str) -> None:
        """Write the session's outbox to SQL, then take what was written out of it."""
        state = self.store.get(sid)
        if state is None or not state.outbox:
            return
        try:
            child = self.db.child(state.case_ref) if state.campaign_id is None else None
        except SQLAlchemyError as e:
            log.warning("SQL unreachable for session %s (%s); outbox kept", sid, type(e).__name__)
            return
        if child is None and state.campaign_id is None:
            log.error("session %s has no child row; outbox kept", sid)
            return
        done: list[str] = []
        try:
            for item in state.outbox:
                if item["kind"] == "alert":
                    # Notified while nobody has been: also when an earlier attempt stored
                    # the alert but was cut off before queueing the text. The text's job id
                    # is the alert's, so queueing it twice still sends it once.
                    alert_id, unnotified = self.db.write_alert(state, child.id, item)
                    if unnotified and item["level"] != "note":
                        self.notifier.notify(alert_id, child, item["level"])
                elif item["kind"] == "flag":
                    self.db.flag_campaign(state.campaign_id)
                elif item["kind"] == "finish":
                    self.db.write_session(state, child.id if child else None)
                done.append(item["key"])
        except SQLAlchemyError as e:
            # The child still gets the reply; the outbox stays and the worker writes it later.
            log.warning("SQL write for session %s failed (%s); kept for the worker", sid,
                        type(e).__name__)
            if not done:
                return

        def remove(s: State) -> tuple[State, list]:
            s.outbox = [i for i in s.outbox if i["key"] not in done]
            return s, s.outbox

        left = self.store.transact(sid, remove, ttl=self._ttl)
        if state.status in engine.FINISHED and not left:
            self.store.unschedule(sid)  # all written: nothing more for the worker
            if state.campaign_id is not None:
                self._forget_contact(state)

    # ------------------------------------------------------------------ anonymous surveys
    def create_campaign(self, name: str, questionnaire_id: str, keyword: str, opens: date,
                        closes: date, *, unit: str | None = None, langs: list[str] | None = None,
                        actor: str = "unknown", reserved: frozenset[str] = frozenset()
                        ) -> Campaign:
        """A survey pupils join by texting `keyword` (matched like RapidPro's triggers: the
        first word, case and accents folded) or by opening its Telegram link."""
        langs = langs or [SOURCE_LANG]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise CampaignError("A campaign's name is letters, digits and - _ . (at most 64), "
                                "for example ak8-hosten-2026.")
        if self.db.campaign(name) is not None:
            raise CampaignError(f"There is already a campaign called {name}.")
        if questionnaire_id not in self.questionnaires:
            raise CampaignError(f"No questionnaire '{questionnaire_id}'. There are: "
                                f"{', '.join(sorted(self.questionnaires))}.")
        word = normalise(keyword)
        if word in reserved or word in ALWAYS_RESERVED:
            raise CampaignError(f"'{keyword}' is a word the SMS provider or tala already uses; "
                                "pick another keyword.")
        if not re.fullmatch(r"[a-z0-9]{3,20}", word):
            raise CampaignError("A keyword is one word of 3 to 20 letters or digits, e.g. "
                                "SKOLA8: it is what the pupils text.")
        if closes < opens:
            raise CampaignError("--closes is before --opens.")
        unknown = [lang for lang in langs if not self.rt.catalogs.has(lang)]
        if unknown:
            raise CampaignError(f"No translation for {', '.join(unknown)}. Languages: "
                                f"{', '.join(self.rt.catalogs.languages)}.")
        for other in self.db.campaigns():
            if (other.keyword == word and other.closed_at is None
                    and other.opens <= closes and opens <= other.closes):
                raise CampaignError(f"The keyword is taken by the campaign {other.name} "
                                    f"({other.opens} - {other.closes}); pick another.")
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
        campaign = self.db.add_campaign(Campaign(
            name=name, questionnaire_id=questionnaire_id, keyword=word, code=code, unit=unit,
            opens=opens, closes=closes, langs=langs, created_by=actor))
        self._publish_campaign(campaign)
        self.db.audit(actor, "campaign", None, f"created {name}")
        return campaign

    def close_campaign(self, name: str, actor: str) -> Campaign | None:
        campaign = self.db.close_campaign(name, self.clock())
        if campaign is not None:
            self._publish_campaign(campaign)
            self.db.audit(actor, "campaign", None, f"closed {name}")
        return campaign

    def _publish_campaign(self, c: Campaign) -> None:
        """What the per-message path needs to know of a campaign, in Redis (no SQL there)."""
        info = json.dumps({"id": c.id, "name": c.name, "questionnaire": c.questionnaire_id,
                           "opens": c.opens.isoformat(), "closes": c.closes.isoformat(),
                           "langs": c.langs, "closed": c.closed_at is not None})
        pipe = self.store.r.pipeline()
        pipe.hset(f"{self.store.prefix}:campaigns:keyword", c.keyword, info)
        pipe.hset(f"{self.store.prefix}:campaigns:code", c.code, info)
        pipe.execute()

    def campaign_by_keyword(self, text: str) -> dict | None:
        words = normalise(text).split()
        if not words:
            return None
        raw = self.store.r.hget(f"{self.store.prefix}:campaigns:keyword", words[0])
        return json.loads(raw) if raw else None

    def campaign_by_code(self, code: str) -> dict | None:
        raw = self.store.r.hget(f"{self.store.prefix}:campaigns:code", _normal_code(code))
        return json.loads(raw) if raw else None

    def start_anonymous(self, channel: str, address: str, campaign: dict,
                        message_id: str | None = None, trigger: str | None = None) -> Reply:
        """A pupil joins a survey. The phone number or chat id is kept only in the live
        session (encrypted) to go on talking, and is dropped when the session ends."""
        now = self.clock()
        lang = campaign["langs"][0] if campaign["langs"] else SOURCE_LANG
        today = now.astimezone(ZoneInfo(self.rt.policy.timezone)).date()
        if campaign["closed"] or today > date.fromisoformat(campaign["closes"]):
            return Reply([Say(self.rt.catalogs.gettext(lang, M.SURVEY_CLOSED))])
        if today < date.fromisoformat(campaign["opens"]):
            opens = date.fromisoformat(campaign["opens"]).strftime("%Y-%m-%d")
            return Reply([Say(self.rt.catalogs.gettext(lang, M.SURVEY_NOT_OPEN).format(
                date=opens))])
        qn = self.questionnaires[campaign["questionnaire"]]
        sid = new_id()
        state = engine.new_state(sid, qn, lang, now)
        state.channel, state.contact, state.campaign_id = channel, address, campaign["id"]
        state.trigger = trigger
        self.store.create(state, ttl=self._ttl(state))
        self.store.bind(channel, self.crypto.lookup_hash(address), sid, self._ttl(state))
        self.store.schedule(sid, now + self.rt.policy.invitation_open)
        return self.open(sid, seen=(channel, message_id) if message_id else None)

    def _forget_contact(self, state: State) -> None:
        """An anonymous session has ended: drop (not hide) the number or chat id."""
        if state.contact:
            self.store.unbind(state.channel, self.crypto.lookup_hash(state.contact))

        def drop(s: State) -> tuple[State, None]:
            s.contact = None
            return s, None

        self.store.transact(state.session_id, drop, ttl=self._ttl)

    # ------------------------------------------------------------------ staff
    @property
    def escalate_after(self) -> timedelta:
        return self.notifier.escalate_after

    def escalate_alerts(self, now: datetime | None = None) -> int:
        """Alerts nobody acknowledged in time go to the unit's managers (bot/notify.py)."""
        return self.notifier.escalate(now)

    def reply(self, case_ref: str, text: str, actor: str) -> str:
        """The caseworker's short answer back to the child, on the channel the child used.
        Returns the queued job's id."""
        text = " ".join(text.split())
        if not text:
            raise ReplyError("Write the message in quotes, for example: tala reply K-17 "
                             "\"Tack! Vi pratar om skolan på torsdag.\"")
        if len(text) > MAX_REPLY:
            raise ReplyError(f"Keep it short: at most {MAX_REPLY} characters (three text "
                             f"messages); this is {len(text)}.")
        child = self.db.child(case_ref)
        if child is None:
            raise ReplyError(f"There is no case '{case_ref}'.")
        for inv in reversed(self.db.invitations(child.id)):
            # Where the child answered: the live session knows (a Telegram chat is learnt when
            # the child opens the link), and SQL keeps it once the session is written.
            state = self.store.get(inv.session_id)
            channel = state.channel if state and state.contact else inv.channel
            contact = (state.contact if state and state.contact else
                       self.crypto.decrypt(inv.contact_enc) if inv.contact_enc else None)
            if channel not in self.outbound or not contact:
                continue
            if self.is_opted_out(channel, contact):
                raise ReplyError("The child has said STOP to our messages, so nothing can be "
                                 "sent until they write START.")
            job_id = f"reply:{inv.session_id}:{new_id()[:8]}"
            self.queue.enqueue(job_id, contact, text, kind="reply", channel=channel,
                               session_id=inv.session_id)
            self.db.audit(actor, "reply", case_ref, f"via {channel}")
            return job_id
        can = ", ".join(c for c in self.outbound if c not in STAFF_ROUTES) or "none set up"
        raise ReplyError(f"{case_ref} has not answered on a channel tala can send on ({can}): "
                         "there is nowhere to send a reply.")

    def erase(self, case_ref: str, actor: str) -> bool:
        """Remove everything about a child from SQL and Redis. What stays is one audit entry
        that an erasure happened, naming the case only by a keyed hash (so the municipality can
        check a given case was erased, but the log itself names nobody)."""
        erased = self.db.erase_child(case_ref)
        if erased is None:
            return False
        invitations, alert_ids = erased
        r, prefix = self.store.r, self.store.prefix
        job_ids = [f"alert:{a}:" for a in alert_ids]
        for inv in invitations:
            sid = inv.session_id
            r.delete(*[k for k in r.scan_iter(match=f"{prefix}:{{{sid}}}:*")] or [b"-"])
            self.store.unschedule(sid)
            if inv.code_hash:
                self.store.unbind("code", inv.code_hash)
            if inv.contact_hash:
                self.store.unbind(inv.channel, inv.contact_hash)
                r.delete(f"{prefix}:optout:{inv.channel}:{inv.contact_hash}",
                         f"{prefix}:unknown:{inv.contact_hash}")
            job_ids += [f"invite:{sid}:", f"remind:{sid}:", f"reply:{sid}:"]
        if self.queue is not None:
            self.queue.forget(lambda job_id: job_id.startswith(tuple(job_ids)))
        self.db.audit(actor, "erase", None,
                      f"case #{self.crypto.lookup_hash(case_ref)[:16]}, "
                      f"{len(invitations)} invitation(s)")
        return True

    # ------------------------------------------------------------------ time
    def run_due(self, now: datetime | None = None, limit: int = 100) -> list[tuple[State, Reply]]:
        """Reminders, expiry, and outbox retries for every session that is due. A reminder is
        queued on the session's channel; all of them are returned too."""
        now = now or self.clock()
        out: list[tuple[State, Reply]] = []
        for sid in self.store.due(now, limit):
            state = self.store.get(sid)
            if state is None:
                self.store.unschedule(sid)
                continue
            if state.outbox:
                self.flush(sid)
                state = self.store.get(sid)
                if state is None or state.status in engine.FINISHED:
                    continue
            reply = self._apply(sid, lambda s, qn: engine.tick(self.rt, qn, s, now), now)
            if reply.says or reply.finished:
                state = self.store.get(sid) or state
                if reply.says:
                    self.deliver(state, reply.says, f"remind:{sid}:{int(now.timestamp())}",
                                 kind="reminder")
                out.append((state, reply))
        return out
