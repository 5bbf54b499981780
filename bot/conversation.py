"""The conversation core: one path for every channel.

    channel adapter -> handle(session, text, message id)
        -> (dedupe + read + engine.step + write) in one Redis transaction
        -> alerts and finished sessions to SQL (the outbox), then the replies back

Anything that must reach SQL (an alert, a finished session) is first put in the session's
outbox inside the same Redis transaction as the answer that caused it, then written; if SQL is
down the worker (`run_due`) writes it later. So nothing is lost between the two stores.

The service's other jobs are mixins of `bot.service.ConversationService`, each in its own
module: invitations and codes (bot/invitations.py), contacts, opt-out and sending
(bot/contacts.py), anonymous surveys (bot/campaigns.py); who hears of an alert is
bot/notify.py.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable

from sqlalchemy.exc import SQLAlchemyError

from bot.metrics import Metrics
from bot.notify import StaffNotifier
from flows import engine
from flows import messages as M
from flows.engine import (Finish, Inbound, RaiseAlert, Runtime, Say, State, Wake, say_from_dict,
                          say_to_dict)
from flows.i18n import normalise
from flows.model import Questionnaire
from storage.crypto import Crypto
from storage.queue import SendQueue, Sender
from storage.sql import Database
from storage.state import Duplicate, StateStore

log = logging.getLogger("tala.service")

FINISHED_TTL = 24 * 3600  # a finished session answers "already done" for a day, then goes


class SessionGone(KeyError):
    """The session is no longer in Redis (ended and let go, or erased): the channel answers as
    to a chat with nothing waiting."""


class _Started:
    """Marks, among a step's effects, that the child has just started (for the metrics)."""


class _Stale:
    """Marks a button press for a question that is no longer being asked."""


def _still_asked(s: State, question_id: str) -> bool:
    """Whether a button for `question_id` answers what the child is being asked now: the
    language menu's ("_language") while it is open, a question's while it is the current one
    and nothing else is pending."""
    if question_id == engine.LANGUAGE_PROMPT:
        return s.status == engine.ACTIVE and s.pending == "language"
    # A paused child pressing the question still on screen wakes the session, as any text does.
    return s.status in (engine.ACTIVE, engine.PAUSED) and s.current == question_id \
        and not s.pending


@dataclass
class Reply:
    says: list[Say] = field(default_factory=list)
    duplicate: bool = False
    finished: str | None = None
    stale: bool = False  # a button for a question already answered: nothing was changed
    # The session as the step left it (its language, question, status), so a channel lays the
    # reply out without reading it again; None for a duplicate.
    state: State | None = None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class WriteHealth:
    """Whether SQL takes tala's writes now: the last write failed (and none has got through
    since), by what. `/healthz` reports it, so a database that answers but cannot write (a
    full disk, a read-only replica after a failover) is seen, not only one that is away."""

    def __init__(self) -> None:
        self.failing: str | None = None
        self.since: datetime | None = None

    def failed(self, error: Exception) -> None:
        if self.failing is None:
            self.since = utcnow()
        self.failing = type(error).__name__

    def ok(self) -> None:
        self.failing = self.since = None


@dataclass
class Outbound:
    """How to reach a child on a channel that can send first (SMS): lay the messages out, and
    the sender the queue hands them to at `rate` per second."""

    render: Callable[[list[Say]], list[str]]
    sender: Sender
    rate: float
    normalise: Callable[[str], str]


class ConversationCore:
    def __init__(self, store: StateStore, db: Database, crypto: Crypto,
                 questionnaires: dict[str, Questionnaire], runtime: Runtime,
                 queue: SendQueue | None = None, outbound: dict[str, Outbound] | None = None,
                 sender_name: str = "Socialtjänsten", metrics: Metrics | None = None,
                 escalate_after: timedelta = timedelta(hours=4),
                 clock: Callable[[], datetime] = utcnow, web_url: str | None = None):
        self.store = store
        self.db = db
        self.crypto = crypto
        self.questionnaires = questionnaires
        self.rt = runtime
        self.queue = queue
        self.outbound = outbound or {}
        self.sender_name = sender_name
        # Where the web chat's links point (TALA_PUBLIC_URL), when it is on (bot/weblinks.py).
        self.web_url = web_url
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.sql_writes = WriteHealth()
        # Who hears of an alert, how and when (bot/notify.py); its clock is the service's.
        self.notifier = StaffNotifier(
            db, store, queue, routes=lambda: {r for r in ("sms", "email") if r in self.outbound},
            timezone=runtime.policy.timezone, escalate_after=escalate_after,
            clock=lambda: self.clock())
        # How a finished session reaches SQL: at once by default; `tala serve` hands it to a
        # thread of its own, so no request ever waits on SQL (see bot/server.py). Alerts are
        # always written and notified at once.
        self.write_later: Callable[[str], None] = self.flush

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
        return self._apply(sid, self._answer(text, now, expect), now, seen)

    async def handle_async(self, client, run: Callable, sid: str, text: str, message_id: str,
                           channel: str, record: bytes | None = None) -> Reply | None:
        """`handle` on the event loop, with `client` (redis.asyncio): the session's
        transaction there, and what follows it there too unless it needs SQL or more of Redis
        (an alert, an ending), which `run` runs in a thread. None: the session is gone (the
        caller answers through `receive`, which lets its binding go). `record`: the session's
        record as the contact's lookup read it."""
        now = self.clock()
        if self.notifier.units_due():  # the units' hours, read once a minute: here, not below
            self.notifier.units_read(self.store.parse_units(
                await client.hgetall(self.store.units_key)))
        change, after, options = self._transaction(self._answer(text, now, None), now)
        result = await self.store.transact_async(client, sid, change, seen=(channel, message_id),
                                                 record=record, **options)
        if result is None:
            return None
        if self._needs_io(result, after):
            return await run(self._applied, sid, result, after)
        return self._applied(sid, result, after)

    def _answer(self, text: str, now: datetime, expect: str | None) -> Callable:
        """The step a message makes (pure: it may run again after a conflicting write)."""

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

        return step

    def state(self, sid: str) -> State | None:
        return self.store.get(sid)

    def _apply(self, sid: str, fn: Callable, now: datetime,
               seen: tuple[str, str] | None = None) -> Reply:
        change, after, options = self._transaction(fn, now)
        return self._applied(sid, self.store.transact(sid, change, seen=seen, **options), after)

    def _transaction(self, fn: Callable, now: datetime) -> tuple[Callable, list[State], dict]:
        """The change `fn` makes as the state store's transaction takes it (with its TTL, its
        wake-up and the reply it keeps), and the list that holds the new state after it."""
        after: list[State] = []

        def change(state: State) -> tuple[State, list]:
            qn = self.questionnaires[state.questionnaire_id]
            new, effects = fn(state, qn)
            after[:] = [new]
            if state.status == engine.INVITED and new.status != engine.INVITED:
                effects = [*effects, _Started()]
                if new.then:  # opened on a chat where other questions wait: say so first
                    effects.insert(0, Say(self.rt.catalogs.gettext(new.lang, M.OTHER_WAITS)))
            self._queue_for_sql(new, effects)
            return new, effects

        options = {"ttl": self._ttl,
                   "wake_at": lambda s, effects: self._wake_at(s, effects, now),
                   "remember": lambda effects: json.dumps(
                       [say_to_dict(e) for e in effects if isinstance(e, Say)],
                       separators=(",", ":"), ensure_ascii=False).encode()}
        return change, after, options

    @staticmethod
    def _needs_io(result, after: list[State]) -> bool:
        """Whether what follows a transaction reads or writes anything (`_applied`): an alert
        or an ending does (SQL, the chat's next session); an answer in a going conversation
        or a duplicate does not."""
        if result is None or isinstance(result, Duplicate):
            return False
        if any(isinstance(e, (RaiseAlert, Finish)) for e in result):
            return True
        return bool(after) and after[-1].status in engine.FINISHED

    def _applied(self, sid: str, result, after: list[State]) -> Reply:
        """What a transaction did, as the reply: an alert written and told, an ending written
        (later) and its chat handed on, the metrics."""
        if isinstance(result, Duplicate):
            says = [say_from_dict(d) for d in json.loads(result.remembered)
                    ] if result.remembered else []
            return Reply(says, duplicate=True)
        if result is None:
            raise SessionGone(sid)
        if any(isinstance(e, RaiseAlert) for e in result):
            self.flush(sid)  # the caseworker hears of it now
        elif any(isinstance(e, Finish) for e in result):
            self.write_later(sid)  # the outbox keeps it until written, whatever happens
        state = after[-1] if after else None
        if state is not None and state.status in engine.FINISHED and state.contact \
                and state.campaign_id is None:
            # Ended: its message ids outlive it under its number or chat (a survey's, whose
            # number is forgotten, keep nothing).
            self.store.remember_for_contact(sid, state.channel,
                                            self.crypto.lookup_hash(state.contact))
        if any(isinstance(e, _Stale) for e in result):
            return Reply(stale=True, state=state)
        if any(isinstance(e, _Started) for e in result):
            self.metrics.sessions_started.inc()
        finished = next((e.status for e in result if isinstance(e, Finish)), None)
        says = [e for e in result if isinstance(e, Say)]
        if finished:
            self.metrics.sessions_finished.labels(finished).inc()
            lang = self._hand_back(sid)
            if lang:
                says.append(Say(self.rt.catalogs.gettext(lang, M.MORE_WAITING)))
        return Reply(says, finished=finished, state=state)

    def _ttl(self, state: State) -> int:
        """How long Redis keeps a session: a finished one a day (to answer "already done"), a
        live one a week past its expiry, so the worker always gets to write it to SQL."""
        if state.status in engine.FINISHED and not state.outbox:
            return FINISHED_TTL
        return self._live_ttl()

    def _live_ttl(self) -> int:
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
            self.sql_writes.failed(e)
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
            self.sql_writes.ok()
        except SQLAlchemyError as e:
            # The child still gets the reply; the outbox stays and the worker writes it later.
            log.warning("SQL write for session %s failed (%s); kept for the worker", sid,
                        type(e).__name__)
            self.sql_writes.failed(e)
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

    # ------------------------------------------------------------------ staff and time
    @property
    def escalate_after(self) -> timedelta:
        return self.notifier.escalate_after

    def escalate_alerts(self, now: datetime | None = None) -> int:
        """Alerts nobody acknowledged in time go to the unit's managers (bot/notify.py)."""
        return self.notifier.escalate(now)

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
