"""The conversation service: one path for every channel.

    channel adapter -> handle(session, text, message id)
        -> (dedupe + read + engine.step + write) in one Redis transaction
        -> alerts and finished sessions to SQL (the outbox), then the replies back

Anything that must reach SQL (an alert, a finished session) is first put in the session's
outbox inside the same Redis transaction as the answer that caused it, then written; if SQL is
down the worker (`run_due`) writes it later. So nothing is lost between the two stores.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

from sqlalchemy.exc import SQLAlchemyError

from flows import engine
from flows.engine import Finish, Inbound, RaiseAlert, Runtime, Say, State, Wake
from flows.model import Questionnaire, pick_for_age
from storage.crypto import Crypto
from storage.sql import Database, Invitation, new_id
from storage.state import DUPLICATE, StateStore

log = logging.getLogger("tala.service")

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
FINISHED_TTL = 24 * 3600  # a finished session answers "already done" for a day, then goes
# A Swedish personal identity number (personnummer / samordningsnummer) in any usual form.
_PERSONAL_NUMBER = re.compile(r"^(19|20)?\d{6}[-+]?\d{4}$")


class InviteError(ValueError):
    """The invitation cannot be made; the message says what to type instead."""


@dataclass
class Invited:
    session_id: str
    case_ref: str
    questionnaire_id: str
    lang: str
    channel: str
    code: str
    expires_at: datetime


@dataclass
class Reply:
    says: list[Say] = field(default_factory=list)
    duplicate: bool = False
    finished: str | None = None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ConversationService:
    def __init__(self, store: StateStore, db: Database, crypto: Crypto,
                 questionnaires: dict[str, Questionnaire], runtime: Runtime,
                 clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.db = db
        self.crypto = crypto
        self.questionnaires = questionnaires
        self.rt = runtime
        self.clock = clock

    # ------------------------------------------------------------------ inviting
    def invite(self, case_ref: str, age: int, *, lang: str = "sv", channel: str = "console",
               contact: str | None = None, questionnaire_id: str | None = None,
               unit: str | None = None, caseworker: str | None = None,
               actor: str = "unknown") -> Invited:
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
        now = self.clock()
        child = self.db.ensure_child(case_ref, unit=unit, caseworker=caseworker,
                                     birth_year=now.year - age, preferred_lang=lang)
        sid = new_id()
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))
        ttl = self.rt.policy.invitation_open
        state = engine.new_state(sid, qn, lang, now)
        state.channel = channel
        state.case_ref = case_ref
        self.store.create(state, ttl=self._ttl(state))
        self.store.bind("code", self.crypto.lookup_hash(code), sid, self._ttl(state))
        self.store.schedule(sid, now + ttl)
        self.db.add_invitation(Invitation(
            child_id=child.id, session_id=sid, questionnaire_id=qn.id, channel=channel,
            lang=lang, code=code, created_by=actor, expires_at=now + ttl,
            contact_enc=self.crypto.encrypt(contact) if contact else None,
            contact_hash=self.crypto.lookup_hash(contact) if contact else None))
        self.db.audit(actor, "invite", case_ref, f"{qn.id} via {channel}")
        return Invited(sid, case_ref, qn.id, lang, channel, code, now + ttl)

    def session_for_code(self, code: str) -> str | None:
        normalised = re.sub(r"[^A-Z0-9]", "", code.upper())
        return self.store.lookup("code", self.crypto.lookup_hash(normalised))

    # ------------------------------------------------------------------ talking
    def open(self, sid: str) -> Reply:
        """The child opens the conversation (console, a deep link): start or resume it."""
        now = self.clock()
        return self._apply(sid, lambda s, qn: engine.start(self.rt, qn, s, now), now)

    def handle(self, sid: str, text: str, message_id: str | None = None,
               channel: str = "console") -> Reply:
        """One message from the child. A message id seen before is not applied again."""
        now = self.clock()
        inbound = Inbound(text, now)
        seen = (channel, message_id) if message_id else None
        return self._apply(sid, lambda s, qn: engine.step(self.rt, qn, s, inbound), now, seen)

    def state(self, sid: str) -> State | None:
        return self.store.get(sid)

    def _apply(self, sid: str, fn: Callable, now: datetime,
               seen: tuple[str, str] | None = None) -> Reply:
        def change(state: State) -> tuple[State, list]:
            qn = self.questionnaires[state.questionnaire_id]
            new, effects = fn(state, qn)
            self._queue_for_sql(new, effects)
            return new, effects

        result = self.store.transact(sid, change, ttl=self._ttl, seen=seen,
                                     wake_at=lambda s, effects: self._wake_at(s, effects, now))
        if result is DUPLICATE:
            return Reply(duplicate=True)
        if result is None:
            raise KeyError(sid)
        self.flush(sid)
        finished = next((e.status for e in result if isinstance(e, Finish)), None)
        return Reply([e for e in result if isinstance(e, Say)], finished=finished)

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
            if isinstance(e, RaiseAlert):
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
            child = self.db.child(state.case_ref)
        except SQLAlchemyError as e:
            log.warning("SQL unreachable for session %s (%s); outbox kept", sid, type(e).__name__)
            return
        if child is None:
            log.error("session %s has no child row; outbox kept", sid)
            return
        done: list[str] = []
        try:
            for item in state.outbox:
                if item["kind"] == "alert":
                    self.db.write_alert(state, child.id, item)
                elif item["kind"] == "finish":
                    self.db.write_session(state, child.id)
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

    # ------------------------------------------------------------------ time
    def run_due(self, now: datetime | None = None, limit: int = 100) -> list[tuple[State, Reply]]:
        """Reminders, expiry, and outbox retries for every session that is due. Returns the
        messages to deliver (the caller knows the channels)."""
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
                out.append((self.store.get(sid) or state, reply))
        return out
