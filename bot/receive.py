"""One entry for a child's message, whatever the channel: find the session the number or chat
is bound to, or bind or start one from a code or a survey keyword, then step it. Channels only
translate their wire format to a call of `receive` and its `Received` back to their wire format
(bot/channels/). A mixin of `bot.service.ConversationService`.

    SMS       receive("sms", number, body, sid, keyword=True)
    Telegram  receive("telegram", chat, text, update id)               a message
              receive("telegram", chat, text, update id, start=True,   /start CODE
                      codes=[code])                       (or survey=CODE for a survey's link)
              receive("telegram", chat, value, query id, answers=qid)  a button
    Rasa      receive("rasa", sender, text, message id, codes=find_code(text))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from bot.conversation import SessionGone
from bot.invitations import CodeError
from flows import engine
from flows import messages as M
from flows.engine import Say, State
from flows.i18n import SOURCE_LANG, normalise
from storage import redis_io

# A message is looked up (read only) under at most this many of its candidate codes, and when
# none exists it counts as one wrong code: a chat held off after MAX_CODE_TRIES wrong codes has
# tried at most this many times as many codes.
MAX_LOOKUPS = 3

# What became of a message, for the channel to answer in its own way where nothing was said.
ANSWERED = "answered"  # stepped (or opened): `says` is the reply
DUPLICATE = "duplicate"  # seen before: `says` is what was said then (empty for a replay
#                          into a later session); the channel answers it as the first time
STALE = "stale"  # a button for a question no longer asked: nothing changed
NO_SESSION = "no_session"  # nothing bound to this contact, and no code or keyword in it
GONE = "gone"  # bound, but the session is gone (ended and let go, or erased)
CODE_UNKNOWN = "code_unknown"  # a wrong, used or expired code
TOO_MANY = "too_many"  # too many wrong codes from this contact (or the channel): it waits
OPTED_OUT = "opted_out"  # this number said STOP: nothing is answered until START


@dataclass
class Received:
    outcome: str
    says: list[Say] = field(default_factory=list)
    sid: str | None = None
    state: State | None = None  # the session as the message left it, when it has one

    @property
    def active(self) -> bool:
        """Whether the conversation goes on (Rasa keeps handing messages to tala while so)."""
        return self.state is not None and self.state.status not in engine.FINISHED


class Receiving:
    def receive(self, channel: str, address: str, text: str, message_id: str | None = None, *,
                answers: str | None = None, start: bool = False, codes: Sequence[str] = (),
                survey: str | None = None, keyword: bool = False) -> Received:
        """A child's message on `channel` from `address` (a number, a chat id).

        answers: a button's question id (the press counts only while that question is asked).
        start:   the message opens the conversation (Telegram's /start): open, do not answer.
        codes:   invitation codes the message may hold, likeliest first; tried when nothing is
                 bound yet, or always with `start` (a sibling's link on a shared chat).
        survey:  a survey's code (a shared link) that starts an anonymous session when nothing
                 is bound yet; on a chat already answering, the conversation goes on.
        keyword: the text may be a survey's keyword (SMS) when nothing is bound yet."""
        sid, opted_out, applied_by = self.lookup_contact(channel, address, message_id)
        if opted_out:
            return Received(OPTED_OUT, sid=sid)
        if applied_by is not None and (sid is None or not sid.startswith(applied_by)):
            # Applied in an earlier session of this number: a replay, not an answer here.
            # (The session it is bound to answers a retry of its own messages itself.)
            return Received(DUPLICATE, sid=sid)
        seen = (channel, message_id) if message_id else None
        if sid is None or (start and codes):
            campaign = None if sid is not None else self.campaign_by_code(survey) if survey \
                else self.campaign_by_keyword(text) if keyword else None
            if survey and campaign is None:
                return Received(CODE_UNKNOWN)  # no such survey, or its link mistyped
            if campaign is not None:
                trigger = normalise(text).split()[0] if keyword else None
                reply = self.start_anonymous(channel, address, campaign, message_id=message_id,
                                             trigger=trigger)
                if reply.state is None:  # closed or not yet open: said so, nothing started
                    return Received(ANSWERED, reply.says)
                return Received(ANSWERED, reply.says, reply.state.session_id, reply.state)
            if codes:
                try:
                    sid = self.claim_code(channel, address, self._likeliest(codes))
                except CodeError as e:
                    if e.kind == "too_many":
                        return Received(TOO_MANY)
                    if sid is None:  # a retried /start finds its chat already bound: go on
                        return Received(CODE_UNKNOWN)
                start = True
            if sid is None:
                return Received(NO_SESSION)
        try:
            reply = self.open(sid, seen=seen) if start else \
                self.handle(sid, text, message_id=message_id, channel=channel, expect=answers)
        except SessionGone:
            # Its session ended and was let go, or erased: the binding goes with it.
            if self.store.lookup(channel, self.crypto.lookup_hash(address)) == sid:
                self.store.unbind(channel, self.crypto.lookup_hash(address))
            return Received(GONE)
        if reply.duplicate:  # rare (a provider's retry): read the session for its language
            return Received(DUPLICATE, reply.says, sid, self.state(sid))
        return Received(STALE if reply.stale else ANSWERED, reply.says, sid, reply.state)

    async def receive_fast(self, client, run: Callable, channel: str, address: str, text: str,
                           message_id: str) -> Received | None:
        """`receive` on the event loop (`client`: redis.asyncio) for what most messages are: an
        answer, with its id, from a contact bound to a live session whose key this process
        holds. None, with nothing changed, for anything else (not bound, opted out, a code, a
        session gone, a key to read first): the caller runs `receive` in a thread then (the
        lookup's renewals, done twice, are the same). What follows an alert or an ending runs
        in a thread through `run`. A duplicate's `state` is None (not read)."""
        if not self.crypto.hash_ready:
            return None
        sid, opted_out, applied_by, record = await redis_io.drive_async(
            self.lookup_steps(channel, address, message_id, read=True), client)
        if opted_out or sid is None or not self.crypto.holds_key(sid):
            return None
        if applied_by is not None and not sid.startswith(applied_by):
            return Received(DUPLICATE, sid=sid)  # as `receive`: a replay, not an answer here
        reply = await self.handle_async(client, run, sid, text, message_id, channel, record)
        if reply is None:
            return None
        if reply.duplicate:
            return Received(DUPLICATE, reply.says, sid)
        return Received(STALE if reply.stale else ANSWERED, reply.says, sid, reply.state)

    def _likeliest(self, codes: Sequence[str]) -> str:
        """The one of the likeliest few that exists (read only), else the likeliest: the claim
        is what counts a wrong code, so a word beside the code never does."""
        return next((c for c in codes[:MAX_LOOKUPS] if self.session_for_code(c) is not None),
                    codes[0])

    def first_today(self, channel: str, address: str) -> bool:
        """Whether a contact with nothing waiting has not been answered yet today: it gets one
        short reply a day at most, which says nothing about anyone and cannot be used to make
        tala send many messages."""
        key = self.store.unknown_key(self.crypto.lookup_hash(address))
        return bool(self.store.r.set(key, b"1", nx=True, ex=24 * 3600))

    # ------------------------------------------------------------------ what a channel shows
    def asking(self, channel: str, address: str) -> State | None:
        """The session this contact is bound to, as it is now (None: none)."""
        sid = self.session_for_contact(channel, address)
        return self.state(sid) if sid else None

    def prompt(self, state: State) -> engine.Prompt:
        """The question being asked, laid out in the child's language (for buttons)."""
        return engine.question_prompt(self.rt, self.questionnaires[state.questionnaire_id],
                                      state)

    def text_for(self, state: State | None, msgid: str) -> str:
        """A fixed text in the child's language when there is a session, else in Swedish."""
        return engine.child_text(self.rt, state, msgid) if state else \
            self.rt.catalogs.gettext(SOURCE_LANG, msgid)

    def read_aloud_instead(self, state: State | None) -> str | None:
        """What to say instead of reading the question aloud (a message id), or None when there
        is a question to read: /readaloud is always answered."""
        if state is None:
            return M.NEEDS_INVITATION
        if state.status == engine.COMPLETED:
            return M.ALREADY_DONE
        if not state.current or state.status in engine.FINISHED:  # stopped, expired
            return M.READ_ALOUD_NOTHING
        return None
