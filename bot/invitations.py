"""Inviting a child, and the invitation codes a chat (Telegram, Rasa, the console) opens its
invitation with. A mixin of `bot.service.ConversationService`."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from bot.refusal import Refusal, staff_text
from bot.weblinks import TOKEN_LENGTH, WEB
from flows import engine
from flows import messages as M
from flows.engine import Say, State
from flows.model import pick_for_age
from storage.queue import DEFAULT
from storage.sql import Invitation, new_id

CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by hand
CODE_CHANNELS = ("console", "telegram", "rasa")  # opened with an invitation code
STAFF_ROUTES = ("email",)  # queued and sent like a channel, but only ever to staff
MAX_CODE_TRIES = 5  # wrong invitation codes from one chat before it must wait an hour
# Wrong codes on one channel from all chats together in ten minutes before every chat waits
# for the rest of them: guessing from a new chat (or Rasa sender id) each time is slowed too.
# Far above what children mistyping make, and it costs a guesser who holds everyone off at
# most ten minutes at a time (the codes have 50 to 80 random bits).
MAX_CODE_FAILS_OVERALL, OVERALL_WINDOW = 300, 600


# A Swedish personal identity number (personnummer / samordningsnummer) in any usual form.
_PERSONAL_NUMBER = re.compile(r"^(19|20)?\d{6}[-+]?\d{4}$")


class CodeError(LookupError):
    """An invitation code that cannot be used: `kind` is "unknown" or "too_many"."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


def normal_code(code: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", code.upper())


class InviteError(Refusal):
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


class Invitations:
    def invite(self, case_ref: str, age: int, *, lang: str = "sv", channel: str = "console",
               contact: str | None = None, questionnaire_id: str | None = None,
               unit: str | None = None, caseworker: str | None = None,
               actor: str = "unknown", session_id: str | None = None,
               lane: str = DEFAULT, phase: str | None = None) -> Invited:
        """Invite a child. With `session_id` given, inviting again is a no-op that returns the
        first invitation: a bulk run that was cut off can simply be run again. `lane`: BULK
        for a bulk run's invitations, which then never hold up a conversation's replies.
        `phase`: the case phase (storage.models.PHASES) the invitation is made in, kept with
        it and with the session written from it."""
        if session_id:
            earlier = self.db.invitation(session_id)
            if earlier is not None:
                state = self.store.get(session_id)
                if state is not None and state.status == engine.INVITED:
                    self._send_invitation(state, lane)  # queued once: a no-op after
                return self._invited(earlier)
        case_ref = case_ref.strip()
        if not case_ref:
            raise InviteError(staff_text("Skriv ärendets referens, till exempel: "
                                         "tala invite K-17 --age 9"))
        if _PERSONAL_NUMBER.match(case_ref.replace(" ", "")):
            raise InviteError(staff_text("Det ser ut som ett personnummer. tala sparar bara "
                                         "pseudonyma ärendereferenser: använd enhetens "
                                         "referens för ärendet, till exempel K-17."))
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}", case_ref):
            raise InviteError(staff_text("En ärendereferens består av bokstäver, siffror och "
                                         "- _ . : / (högst 64 tecken), till exempel K-17."))
        if not 4 <= age <= 25:
            raise InviteError(staff_text("--age {age} ser fel ut: skriv barnets ålder i år "
                                         "(6–18)."), age=age)
        if not self.rt.catalogs.has(lang):
            known = ", ".join(self.rt.catalogs.languages)
            raise InviteError(staff_text("Det finns ingen översättning till '{lang}'. Språk: "
                                         "{known}."), lang=lang, known=known)
        if questionnaire_id:
            qn = self.questionnaires.get(questionnaire_id)
            if qn is None:
                known = ", ".join(sorted(self.questionnaires))
                raise InviteError(staff_text("Det finns inget frågeformulär '{questionnaire}'. "
                                             "De som finns: {known}."),
                                  questionnaire=questionnaire_id, known=known)
        else:
            qn = pick_for_age(self.questionnaires, age)
            if qn is None:
                raise InviteError(staff_text("Inget uppföljningsformulär är skrivet för "
                                             "{age}-åringar. Välj ett med --questionnaire."),
                                  age=age)
        contact = self._check_contact(channel, contact, session_id)
        now = self.clock()
        # Who is responsible (alerts go to them): the one named, else whoever invites; a new
        # invitation changes it, as `tala case assign` does.
        responsible = caseworker or (actor if actor != "unknown" else None)
        if caseworker and self.db.has_users() and self.db.user(caseworker) is None:
            raise InviteError(staff_text("Det finns ingen användare '{caseworker}' i tala som "
                                         "kan vara ansvarig för {case}. 'tala users list' "
                                         "visar vilka som finns."),
                              caseworker=caseworker, case=case_ref)
        child = self.db.ensure_child(case_ref, unit=unit, caseworker=responsible,
                                     birth_year=now.year - age, preferred_lang=lang)
        sid = session_id or new_id()
        # A deep link's code must not be guessable: 16 characters is 80 bits; a web chat's
        # link token is longer still, for it is the only key to the page.
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(
            TOKEN_LENGTH if channel == WEB else 16 if channel == "telegram" else 10))
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
        if channel == WEB:  # the link's token: only ever in the SMS, never a code to type
            self.keep_web_token(sid, code, ttl)
            code = ""
        else:
            self.store.bind("code", code_hash, sid, ttl)
        if contact:
            self.store.bind(channel, self.crypto.lookup_hash(contact), sid, ttl)
        self.store.schedule(sid, expires)
        inv = self.db.add_invitation(Invitation(
            child_id=child.id, session_id=sid, questionnaire_id=qn.id, channel=channel,
            lang=lang, code_hash=code_hash, created_by=actor, expires_at=expires,
            contact_enc=self.crypto.encrypt(contact, sid) if contact else None,
            contact_hash=self.crypto.lookup_hash(contact) if contact else None,
            delivery_status="queued" if contact else None, phase=phase))
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
        if channel == WEB:  # its links go by SMS
            if not self.web_url:
                raise InviteError(staff_text("--channel web behöver sms (TWILIO_*) och "
                                             "TALA_PUBLIC_URL, adressen som länken pekar på: "
                                             "se README."))
            out = self.outbound["sms"]
        if channel in STAFF_ROUTES:
            raise InviteError(staff_text("--channel {channel} är bara till för larm till "
                                         "personalen, inte för barn."), channel=channel)
        if channel not in CODE_CHANNELS and out is None:
            raise InviteError(staff_text("--channel {channel} är inte inställd i den här "
                                         "installationen: README säger vilka inställningar "
                                         "som behövs."), channel=channel)
        if channel in CODE_CHANNELS:
            # The child opens these with the invitation's code; the chat is learnt then.
            if contact:
                raise InviteError(staff_text("--to används inte med --channel {channel}."),
                                  channel=channel)
            if channel == "telegram" and out is None:
                raise InviteError(staff_text("--channel telegram behöver TELEGRAM_BOT_TOKEN "
                                             "och TELEGRAM_BOT_USERNAME: se README."))
            return None
        if not contact:
            raise InviteError(staff_text("--channel {channel} behöver --to med barnets "
                                         "nummer."), channel=channel)
        try:
            contact = out.normalise(contact)
        except Refusal as e:  # the number cannot be used: said as the channel says it
            raise InviteError(e.template, **e.params) from None
        except ValueError as e:
            raise InviteError("{problem}", problem=str(e)) from None
        if self.is_opted_out("sms" if channel == WEB else channel, contact):
            raise InviteError(staff_text("Det här numret har svarat STOP på våra sms, så "
                                         "inget kan skickas dit. Barnet kan skicka START till "
                                         "vårt nummer för att få sms igen."))
        open_sid = self.session_for_contact(channel, contact)
        open_state = self.store.get(open_sid) if open_sid and open_sid != session_id else None
        if open_state is not None and open_state.status not in engine.FINISHED:
            raise InviteError(staff_text("Det här numret har redan obesvarade frågor "
                                         "({questionnaire}, inbjudan skickad {invited}). Ett "
                                         "samtal i taget per nummer: vänta tills det är klart "
                                         "eller har gått ut."),
                              questionnaire=open_state.questionnaire_id,
                              invited=open_state.created_at[:10])
        return contact

    def session_for_code(self, code: str) -> str | None:
        return self.store.lookup("code", self.crypto.lookup_hash(normal_code(code)))

    def claim_code(self, channel: str, address: str, code: str) -> str:
        """Bind a chat (Telegram, Rasa) to the invitation with this code. A code works once
        and expires with its invitation; a wrong, used or expired code gets the same answer
        (so guessing learns nothing), and a chat that keeps guessing is held off for an hour."""
        r = self.store.r
        addr = self.crypto.lookup_hash(address)
        fails_key = self.store.codefail_key(channel, addr)
        overall_key = self.store.codefail_key(channel, "all")
        pipe = r.pipeline(transaction=False)  # two slots on a Cluster: not one MGET
        pipe.get(fails_key)
        pipe.get(overall_key)
        mine, everyone = pipe.execute()
        if int(mine or 0) >= MAX_CODE_TRIES or int(everyone or 0) >= MAX_CODE_FAILS_OVERALL:
            raise CodeError("too_many")
        sid_raw = r.getdel(self.store.bind_key("code", self.crypto.lookup_hash(
            normal_code(code))))
        sid = sid_raw.decode() if sid_raw else None
        state = self.store.get(sid) if sid else None
        if state is None or state.channel in ("sms", "whatsapp", WEB) or \
                state.status != engine.INVITED:
            pipe = r.pipeline(transaction=False)
            pipe.incr(fails_key)
            pipe.expire(fails_key, 3600)
            pipe.set(overall_key, 0, nx=True, ex=OVERALL_WINDOW)  # the window opens once
            pipe.incr(overall_key)
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
