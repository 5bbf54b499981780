"""The conversation engine: pure functions from (questionnaire, state, input) to (state, effects).

No Redis, SQL, HTTP, clock or randomness here: the time comes in with the input and ids come in
with the state. Channels turn wire formats into `Inbound` and `Say` effects back into wire
formats; storage persists the state. That keeps every rule about talking with a child in one
place and lets the tests replay whole conversations without fakes.

    state, effects = start(rt, new_state(...), now)
    state, effects = step(rt, state, Inbound("ja", now))
    state, effects = tick(rt, state, now)          # reminders and expiry
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Union
from zoneinfo import ZoneInfo

from flows import messages as M
from flows import parsing
from flows.i18n import SOURCE_LANG, Catalogs, normalise
from flows.model import END, Question, Questionnaire
from flows.safeguarding import LazyLexicon, SafetyLexicon

ACTIVE, PAUSED, INVITED = "active", "paused", "invited"
COMPLETED, STOPPED, EXPIRED = "completed", "stopped", "expired"
FINISHED = (COMPLETED, STOPPED, EXPIRED)
STUCK_AFTER = 2  # answers in a row that did not fit before the "you can skip" hint


# --------------------------------------------------------------------------- values in and out


@dataclass(frozen=True)
class Inbound:
    text: str
    at: datetime
    # Who hears of an urgent answer now, so the child is told the truth: "office" (the
    # caseworker), "on_call" (the unit's on-call service) or "closed" (read when it opens).
    reach: str = "office"


@dataclass(frozen=True)
class Prompt:
    """A question laid out for any channel: the text, numbered choices and how to answer."""

    question_id: str
    text: str
    choices: tuple[tuple[str, str], ...] = ()  # (what to type, label)
    hint: str = ""
    multi: bool = False
    rtl: bool = False  # the language is written right to left
    scale_range: tuple[int, int] | None = None  # a number scale without a word on each point


@dataclass(frozen=True)
class Say:
    text: str = ""
    prompt: Prompt | None = None


@dataclass(frozen=True)
class SaveAnswer:
    question_id: str
    answer: dict


@dataclass(frozen=True)
class RaiseAlert:
    key: str  # unique within the session: one alert per question and topic
    question_id: str
    level: str
    topic: str
    text: str | None  # the child's own words when the alert came from free text
    at: datetime


@dataclass(frozen=True)
class Finish:
    status: str


@dataclass(frozen=True)
class Wake:
    """Call `tick` for this session at this time (reminder or expiry)."""

    at: datetime


Effect = Union[Say, SaveAnswer, RaiseAlert, Finish, Wake]


def say_to_dict(say: Say) -> dict:
    p = say.prompt
    return {"text": say.text, "prompt": p and {
        "question_id": p.question_id, "text": p.text, "choices": p.choices, "hint": p.hint,
        "multi": p.multi, "rtl": p.rtl, "scale_range": p.scale_range}}


def say_from_dict(data: dict) -> Say:
    p = data.get("prompt")
    prompt = Prompt(p["question_id"], p["text"], tuple(tuple(c) for c in p["choices"]),
                    p["hint"], p["multi"], p.get("rtl", False),
                    tuple(p["scale_range"]) if p.get("scale_range") else None) if p else None
    return Say(data.get("text", ""), prompt)


@dataclass(frozen=True)
class Policy:
    remind_after: timedelta = timedelta(hours=24)  # quiet this long: one reminder
    expire_after: timedelta = timedelta(days=14)  # quiet this long: expired, kept as partial
    invitation_open: timedelta = timedelta(days=14)  # an invitation nobody started
    # A reminder never wakes a child at night: only from day_starts to day_ends, local time.
    timezone: str = "Europe/Stockholm"
    day_starts: int = 8
    day_ends: int = 20

    def daytime(self, at: datetime) -> datetime:
        """`at` if it is daytime, else the next morning at day_starts (local time)."""
        local = at.astimezone(ZoneInfo(self.timezone))
        if self.day_starts <= local.hour < self.day_ends:
            return at
        morning = local.replace(hour=self.day_starts, minute=0, second=0, microsecond=0)
        if local.hour >= self.day_ends:
            morning += timedelta(days=1)
        return morning


@dataclass(frozen=True)
class Runtime:
    """Everything the engine reads besides the state: loaded once, shared by all sessions."""

    catalogs: Catalogs
    safety: SafetyLexicon | LazyLexicon
    policy: Policy = Policy()


# --------------------------------------------------------------------------- state


@dataclass
class State:
    session_id: str
    questionnaire_id: str
    questionnaire_version: int
    lang: str = SOURCE_LANG
    status: str = INVITED
    current: str | None = None
    path: list[str] = field(default_factory=list)  # answered questions, in order, for "back"
    answers: dict[str, dict] = field(default_factory=dict)
    superseded: list[dict] = field(default_factory=list)  # earlier answers the child changed
    pending: str | None = None  # "confirm_stop" | "language"
    misses: int = 0  # answers in a row that did not fit
    alerts: list[str] = field(default_factory=list)
    told: list[str] = field(default_factory=list)  # help texts shown in full (by kind)
    seq: int = 0  # how many answers were ever given: orders answers and revisions
    created_at: str = ""
    started_at: str | None = None
    last_activity_at: str | None = None
    finished_at: str | None = None
    reminded: bool = False
    # Kept for the service, never read by the engine: where the child is and what still has
    # to be written to SQL (alerts, the finished session) should a write fail.
    channel: str = "console"
    case_ref: str = ""
    contact: str | None = None  # phone number (the whole state is encrypted at rest)
    unit: str | None = None  # the case's unit: whose office hours an alert goes by
    campaign_id: int | None = None  # an anonymous survey: no case, and help is for the child
    trigger: str | None = None  # the keyword that started it: sent again, it is not an answer
    hold: str | None = None  # why the session waits besides the child pausing: "opted_out"
    # Another session that was open on the same chat when this one was opened there (siblings
    # on one phone): the chat goes back to it when this one ends.
    then: str | None = None
    outbox: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The fields as a dict for JSON, shallow: it shares its lists and dicts with the
        state (dataclasses.asdict would copy every answer, on every message)."""
        return {name: getattr(self, name) for name in _STATE_FIELDS}

    def copy(self) -> "State":
        """A deep copy. The state holds only JSON data, so this is a plain walk over dicts and
        lists: five times cheaper than copy.deepcopy, and it runs on every message."""
        return State(**{name: _json_copy(getattr(self, name)) for name in _STATE_FIELDS})

    @classmethod
    def from_dict(cls, data: dict) -> "State":
        return cls(**data)


_STATE_FIELDS = tuple(f.name for f in fields(State))


def _json_copy(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {k: _json_copy(v) for k, v in value.items()}
    if kind is list:
        return [_json_copy(v) for v in value]
    return value  # str, int, float, bool, None: immutable


def new_state(session_id: str, qn: Questionnaire, lang: str, now: datetime) -> State:
    return State(session_id=session_id, questionnaire_id=qn.id, questionnaire_version=qn.version,
                 lang=lang, created_at=now.isoformat())


# --------------------------------------------------------------------------- the public steps


def start(rt: Runtime, qn: Questionnaire, state: State, now: datetime) -> tuple[State, list]:
    """Open an invited session: the introduction and the first question."""
    s = state.copy()
    if s.status != INVITED:
        return _resume(rt, qn, s, now)
    return _begin(rt, qn, s, now)


def step(rt: Runtime, qn: Questionnaire, state: State, inbound: Inbound) -> tuple[State, list]:
    """Apply one message from the child."""
    s = state.copy()
    now = inbound.at
    t = _Talk(rt, s, inbound.reach)
    text = inbound.text.strip()
    norm = normalise(text)
    if s.status in FINISHED:
        return s, _after_end(t, qn, s, text, norm, now)
    s.last_activity_at = now.isoformat()
    s.reminded = False

    if s.status == INVITED:
        lang = parsing.language_named(rt.catalogs, norm)
        if lang:
            s.lang = lang
        first = _scan(t, s, "_before_start", text, now)
        s, begun = _begin(rt, qn, s, now)
        return s, first + begun
    q = qn.question(s.current)
    effects: list = []
    command = parsing.command(t, norm, text)

    if s.status == PAUSED:
        s.status = ACTIVE
        effects.append(Say(t._(M.WELCOME_BACK)))
        if command in (None, "pause"):
            # Whatever the child wrote only wakes the session; it is not taken as an answer.
            return s, effects + _scan(t, s, q.id, text, now) + _ask(t, qn, s) + [_wake(rt, now)]

    if s.pending == "confirm_stop":
        yn = parsing.yes_no(t, norm)
        if yn == "yes":
            return _finish(t, s, now, STOPPED, [Say(t._(M.STOPPED))])
        s.pending = None
        if yn == "no":
            return s, [Say(t._(M.NOT_STOPPED)), *_ask(t, qn, s), _wake(rt, now)]
        if command is None:
            effects += _scan(t, s, q.id, text, now)
            return s, effects + [*_ask(t, qn, s), _wake(rt, now)]

    if s.pending == "language":
        lang = parsing.pick_language(rt.catalogs, norm)
        if lang:
            return _switch_language(t, qn, s, lang, now)
        if not command:
            return s, [Say(t._(M.NOT_UNDERSTOOD)), *_language_menu(t), _wake(rt, now)]
        s.pending = None  # a command leaves the menu

    # An answer that is literally one of this question's options wins over a command word, so an
    # option such as "Vet inte" can never be read as "skip".
    parsed = parsing.parse(t, q, text, norm)
    if parsed.ok and parsing.is_option_text(t, q, norm):
        command = None

    if command is None and not parsed.ok:
        lang = parsing.language_named(rt.catalogs, norm)
        if lang and lang != s.lang:
            return _switch_language(t, qn, s, lang, now)

    if command:
        s2, replies = _do(t, qn, s, q, command, now)
        return s2, effects + replies

    if not parsed.ok:
        effects += _scan(t, s, q.id, text, now)
        if effects:
            # The child told us something serious: no "I did not understand" after that, just
            # the help message (in the effects) and the question again, gently.
            return s, effects + _ask(t, qn, s) + [_wake(rt, now)]
        s.misses += 1
        sorry = t._(M.NOT_UNDERSTOOD) + (" " + parsed.error if parsed.error else "")
        if s.misses > STUCK_AFTER:
            sorry += " " + t._(M.STUCK_HINT)
        # The question again, with its choices; the hint is in the apology already.
        again = replace(prompt_for(t, q), hint="")
        return s, effects + [Say(sorry), Say(prompt=again), _wake(rt, now)]

    return _answer(t, qn, s, q, parsed, text, now)


def _do(t: _Talk, qn: Questionnaire, s: State, q: Question, command: str,
        now: datetime) -> tuple[State, list]:
    """Carry out a command word; every command leaves the child with something to answer."""
    if command == "back":
        return _back(t, qn, s, now)
    if command == "skip":
        return _skip(t, qn, s, q, now)
    if command == "pause":
        s.status = PAUSED
        return s, [Say(t._(M.PAUSED)), _wake(t.rt, now)]
    if command == "stop":
        s.pending = "confirm_stop"
        return s, [Say(t._(M.CONFIRM_STOP)), _wake(t.rt, now)]
    if command == "language":
        s.pending = "language"
        return s, [*_language_menu(t), _wake(t.rt, now)]
    says = [Say(t._(M.HELP)), Say(t._(M.HELP_NOW))] if command == "help" else _my_answers(t, qn, s)
    return s, [*says, *_ask(t, qn, s), _wake(t.rt, now)]


def tick(rt: Runtime, qn: Questionnaire, state: State, now: datetime) -> tuple[State, list]:
    """Time passes: a quiet session gets one reminder, then expires (kept as partial)."""
    s = state.copy()
    if s.status in FINISHED:
        return s, []
    since = datetime.fromisoformat(s.last_activity_at or s.created_at)
    limit = rt.policy.invitation_open if s.status == INVITED else rt.policy.expire_after
    if now - since >= limit:
        s.finished_at = now.isoformat()
        s.status = EXPIRED
        return s, [Finish(EXPIRED)]
    if s.status != INVITED and not s.reminded and now - since >= rt.policy.remind_after:
        daytime = rt.policy.daytime(now)
        if daytime > now:
            return s, [Wake(daytime)]  # due at night: wait for the morning
        s.reminded = True
        return s, [Say(_Talk(rt, s)._(M.REMINDER)), Wake(since + rt.policy.expire_after)]
    if s.reminded or s.status == INVITED:
        return s, [Wake(since + limit)]
    return s, [Wake(rt.policy.daytime(since + rt.policy.remind_after))]


def preview(rt: Runtime, qn: Questionnaire, lang: str, target: str,
            opening: bool = False) -> list[Say]:
    """What the child is sent on arriving at `target` (a question id or END): the information
    texts on the way and the question, or the closing. `opening` adds the start of the
    conversation. For costing a questionnaire; it changes nothing."""
    s = State(session_id="preview", questionnaire_id=qn.id,
              questionnaire_version=qn.version, lang=lang, status=ACTIVE)
    t = _Talk(rt, s)
    says = [Say(t._(qn.title))] if opening else []
    now = datetime.fromtimestamp(0).astimezone()
    says += _advance_to(t, qn, s, target, now, intro=opening)
    return [e for e in says if isinstance(e, Say)]


# --------------------------------------------------------------------------- helpers


FSI, PDI, RLM = "\u2068", "\u2069", "\u200f"


def rtl_line(line: str) -> str:
    """A line of a right-to-left message that starts with a number or a Latin word (a numbered
    choice, "112 ..."), led by a right-to-left mark so the phone lays it out right to left."""
    for ch in line:
        kind = unicodedata.bidirectional(ch)
        if kind in ("R", "AL"):
            return line
        if kind == "L" or kind in ("EN", "AN"):
            return RLM + line
    return line


class _Talk:
    """Translation for the session's current language."""

    def __init__(self, rt: Runtime, s: State, reach: str = "office"):
        self.rt = rt
        self.s = s
        self.reach = reach
        self.rtl = rt.catalogs.rtl(s.lang)

    def _(self, msgid: str, **kw: Any) -> str:
        text = self.rt.catalogs.gettext(self.s.lang, msgid)
        if kw and self.rtl:
            # A number or Latin word inside Arabic or Persian text is isolated, so it keeps its
            # place in the sentence instead of dragging its neighbours along.
            kw = {k: f"{FSI}{v}{PDI}" for k, v in kw.items()}
        text = text.format(**kw) if kw else text
        if self.rtl:
            text = "\n".join(rtl_line(line) for line in text.split("\n"))
        return text

    def words(self, msgid: str) -> set[str]:
        return self.rt.catalogs.words(self.s.lang, msgid)


def child_text(rt: Runtime, s: State, msgid: str) -> str:
    """A fixed text in the session's language, laid out as the engine lays out its own."""
    return _Talk(rt, s)._(msgid)


def question_prompt(rt: Runtime, qn: Questionnaire, s: State) -> Prompt:
    """The question being asked now, as the engine would ask it (for a channel's buttons)."""
    return prompt_for(_Talk(rt, s), qn.question(s.current))


def _wake(rt: Runtime, now: datetime) -> Wake:
    return Wake(now + rt.policy.remind_after)


def _begin(rt: Runtime, qn: Questionnaire, s: State, now: datetime) -> tuple[State, list]:
    t = _Talk(rt, s)
    s.status = ACTIVE
    s.started_at = s.started_at or now.isoformat()
    s.last_activity_at = now.isoformat()
    says: list = [Say(t._(qn.title))]
    says += _advance_to(t, qn, s, qn.first.id, now, intro=True)
    if s.status == ACTIVE:
        says.append(_wake(rt, now))
    return s, says


def _resume(rt: Runtime, qn: Questionnaire, s: State, now: datetime) -> tuple[State, list]:
    t = _Talk(rt, s)
    if s.status in FINISHED:
        return s, [Say(t._(_over(s)))]
    s.status = ACTIVE
    s.pending = None
    s.last_activity_at = now.isoformat()
    return s, [Say(t._(M.WELCOME_BACK)), *_ask(t, qn, s), _wake(rt, now)]


def _advance_to(t: _Talk, qn: Questionnaire, s: State, target: str, now: datetime,
                intro: bool = False) -> list:
    """Walk from `target` through info texts to the next question to ask, or to the end."""
    says: list = []
    while target != END:
        q = qn.question(target)
        if q.answerable:
            s.current = q.id
            s.misses = 0
            if intro:
                says.append(Say(t._(M.START_HINT)))
            return says + _ask(t, qn, s)
        says.append(Say(t._(q.text)))
        target = qn.default_next(q)
    s.current = None
    _, fin = _finish(t, s, now, COMPLETED, says)
    return fin


def _finish(t: _Talk, s: State, now: datetime, status: str, says: list) -> tuple[State, list]:
    """A completed questionnaire closes with its own text (which says where to get help, a
    test checks it); a child who stops early hears where to get help from us."""
    s.status = status
    s.pending = None
    s.finished_at = now.isoformat()
    help_now = [Say(t._(M.HELP_NOW))] if status != COMPLETED else []
    return s, [*says, *help_now, Finish(status)]


def _ask(t: _Talk, qn: Questionnaire, s: State) -> list:
    q = qn.question(s.current)
    return [Say(prompt=prompt_for(t, q))]


def prompt_for(t: _Talk, q: Question) -> Prompt:
    if q.type == "yes_no":
        yes, no = _first_word(t, M.WORDS_YES), _first_word(t, M.WORDS_NO)
        return Prompt(q.id, t._(q.text), (("1", yes.capitalize()), ("2", no.capitalize())),
                      t._(M.HINT_YES_NO), rtl=t.rtl)
    if q.type == "scale":
        sc = q.scale
        if len(sc.labels) == sc.max - sc.min + 1:
            choices = tuple((str(v), t._(lbl)) for v, lbl in sc.labels.items())
            return Prompt(q.id, t._(q.text), choices, t._(M.HINT_SCALE, low=sc.min, high=sc.max),
                          rtl=t.rtl)
        return Prompt(q.id, t._(q.text), (), t._(
            M.HINT_SCALE_ENDS, low=sc.min, high=sc.max, low_word=t._(sc.labels[sc.min]),
            high_word=t._(sc.labels[sc.max])), rtl=t.rtl, scale_range=(sc.min, sc.max))
    if q.type in ("choice", "multi_choice"):
        choices = tuple((str(i), t._(o.text)) for i, o in enumerate(q.options, 1))
        multi = q.type == "multi_choice"
        return Prompt(q.id, t._(q.text), choices,
                      t._(M.HINT_MULTI if multi else M.HINT_CHOICE), multi, rtl=t.rtl)
    return Prompt(q.id, t._(q.text), (), t._(M.HINT_FREE), rtl=t.rtl)


def _first_word(t: _Talk, msgid: str) -> str:
    return t._(msgid).split(",")[0].strip()


LANGUAGE_PROMPT = "_language"  # the question id of the language menu's prompt (and buttons)


def _language_menu(t: _Talk) -> list:
    langs = t.rt.catalogs.languages
    choices = tuple((str(i), t.rt.catalogs.own_name(code)) for i, code in enumerate(langs, 1))
    return [Say(prompt=Prompt(LANGUAGE_PROMPT, t._(M.LANGUAGE_MENU), choices, rtl=t.rtl))]


def _switch_language(t: _Talk, qn: Questionnaire, s: State, lang: str,
                     now: datetime) -> tuple[State, list]:
    s.lang = lang
    s.pending = None
    t = _Talk(t.rt, s)
    return s, [Say(t._(M.LANGUAGE_SET)), *_ask(t, qn, s), _wake(t.rt, now)]


# --------------------------------------------------------------------------- doing things


def _scan(t: _Talk, s: State, qid: str, text: str, now: datetime) -> list:
    """Whatever a child writes is read for signs of harm; a hit alerts the caseworker at once
    and tells the child where to get help now."""
    hit = t.rt.safety.scan(text)
    if not hit:
        return []
    level, topic = hit
    return _alert(t, s, qid, level, topic, text, now)


def _alert(t: _Talk, s: State, qid: str, level: str, topic: str, text: str | None,
           now: datetime, tell_child: bool = True) -> list:
    key = f"{qid}:{topic}"
    effects: list = []
    if key not in s.alerts:
        s.alerts.append(key)
        effects.append(RaiseAlert(key, qid, level, topic, text, now))
    # The child hears where to get help every time, even when the caseworker already knows.
    if tell_child:
        effects.append(Say(_safety_text(t, s, level, [topic])))
    return effects


AFTER_END = "_after_end"  # the question id of what a child writes after the questions


def _over(s: State) -> str:
    """The questions are over: "already answered all" only when that is true."""
    return M.ALREADY_DONE if s.status == COMPLETED else M.QUESTIONS_OVER


def _after_end(t: _Talk, qn: Questionnaire, s: State, text: str, norm: str,
               now: datetime) -> list:
    """A text after the questions are over (completed, stopped or expired). "mina svar" still
    shows the answers; anything else is read for harm like every text, and kept for the
    caseworker: a real message ("Kan du ringa mig?") as an alert they are told of, a greeting
    or a thank-you as a note in the summary. The child is told honestly who reads it. In an
    anonymous survey nobody can: the child is told so, and nothing is kept."""
    command = parsing.command(t, norm, text)
    if command == "answers":
        return _my_answers(t, qn, s)
    if command == "help":
        return [Say(t._(M.HELP_NOW))]
    if command:  # back, skip, pause, stop, language: there is nothing left to do them to
        return [Say(t._(_over(s)))]
    harm = _scan(t, s, AFTER_END, text, now)
    if harm:
        return harm
    if s.campaign_id is not None:
        return [Say(t._(M.AFTER_END_ANONYMOUS))]
    small_talk = {w for phrase in t.words(M.WORDS_SMALL_TALK) for w in phrase.split()}
    small = all(w in small_talk for w in norm.split())  # emoji alone normalise to nothing
    level = "note" if small else "message"
    key = f"{AFTER_END}:{level}:{len(s.alerts)}"
    s.alerts.append(key)
    said = t._(_over(s)) if small else t._(M.AFTER_END_MESSAGE)
    return [RaiseAlert(key, AFTER_END, level, "message_after_end", text or None, now), Say(said)]


def about_suicide(topic: str) -> bool:
    """Whether an alert's topic (an id from the questionnaires or flows/safeguarding.yaml) is
    self-harm or suicidal thoughts: then the child is also given Självmordslinjen."""
    return topic.startswith(("self_harm", "suicid"))


# What the child is told after an urgent answer, by who hears of it now: honest at night too.
_URGENT_BY_REACH = {"office": M.SAFETY, "on_call": M.SAFETY_ON_CALL, "closed": M.SAFETY_CLOSED}


def _safety_text(t: _Talk, s: State, level: str, topics: list[str]) -> str:
    """Where to get help now. In an anonymous survey no caseworker can be told, so the child
    is pointed to the school's student health team, BRIS and 112 instead. An urgent answer
    (violence, abuse, self-harm, suicidal thoughts) gets the whole text every time, however
    often it was shown before, with Självmordslinjen for self-harm and suicidal thoughts; only
    a repeated concern gets the short reminder instead of the same paragraph again."""
    kind = "anonymous" if s.campaign_id is not None else level
    if level != "urgent" and kind in s.told:
        return t._(M.SAFETY_AGAIN)
    if kind not in s.told:
        s.told.append(kind)
    text = t._(M.SAFETY_ANONYMOUS if kind == "anonymous" else
               _URGENT_BY_REACH.get(t.reach, M.SAFETY) if level == "urgent" else
               M.SAFETY_CONCERN)
    if level == "urgent" and any(about_suicide(topic) for topic in topics):
        text += " " + t._(M.SAFETY_SUICIDE)
    return text


def _record(s: State, q: Question, value: Any, text: str | None, skipped: bool,
            now: datetime) -> dict:
    s.seq += 1
    answer = {"question_id": q.id, "domain": q.domain, "value": value, "text": text,
              "skipped": skipped, "at": now.isoformat(), "seq": s.seq, "lang": s.lang}
    old = s.answers.get(q.id)
    if old is not None:
        s.superseded.append(old)
    s.answers[q.id] = answer
    return answer


def _answer(t: _Talk, qn: Questionnaire, s: State, q: Question, parsed: parsing.Parsed, raw: str,
            now: datetime) -> tuple[State, list]:
    answer = _record(s, q, parsed.value, parsed.text, False, now)
    effects: list = [SaveAnswer(q.id, answer)]
    hits = [r for r in q.safeguarding if r.when.matches(parsed.value)]
    for rule in hits:
        effects += _alert(t, s, q.id, rule.level, rule.topic, None, now, tell_child=False)
    if hits:
        urgent = [r.topic for r in hits if r.level == "urgent"]
        effects.append(Say(_safety_text(t, s, "urgent" if urgent else "concern", urgent)))
    if q.type == "free_text":
        effects += _scan(t, s, q.id, raw, now)
    if q.id in s.path:
        # Answered again after going back: the path continues from here.
        s.path = s.path[:s.path.index(q.id)]
    s.path.append(q.id)
    effects += _advance_to(t, qn, s, qn.next_after(q, parsed.value), now)
    if s.status == ACTIVE:
        effects.append(_wake(t.rt, now))
    return s, effects


def _skip(t: _Talk, qn: Questionnaire, s: State, q: Question, now: datetime) -> tuple[State, list]:
    effects: list
    if q.id in s.answers and not s.answers[q.id]["skipped"]:
        # Skipping never throws away an answer the child already gave.
        value = s.answers[q.id]["value"]
        effects = [Say(t._(M.KEPT))]
    else:
        value = None
        answer = _record(s, q, None, None, True, now)
        effects = [SaveAnswer(q.id, answer), Say(t._(M.SKIPPED))]
    if q.id in s.path:
        s.path = s.path[:s.path.index(q.id)]
    s.path.append(q.id)
    effects += _advance_to(t, qn, s, qn.next_after(q, value), now)
    if s.status == ACTIVE:
        effects.append(_wake(t.rt, now))
    return s, effects


def _back(t: _Talk, qn: Questionnaire, s: State, now: datetime) -> tuple[State, list]:
    if not s.path:
        return s, [Say(t._(M.AT_FIRST)), *_ask(t, qn, s), _wake(t.rt, now)]
    s.current = s.path.pop()
    s.misses = 0
    says = [Say(t._(M.GOING_BACK))]
    previous = s.answers.get(s.current)
    if previous and not previous["skipped"]:
        says.append(Say(t._(M.YOU_ANSWERED, answer=answer_label(t, qn, previous))))
    return s, says + _ask(t, qn, s) + [_wake(t.rt, now)]


def answer_label(t: _Talk, qn: Questionnaire, answer: dict) -> str:
    """An answer as the child would recognise it, in the session's language."""
    if answer["skipped"]:
        return t._(M.ANSWER_SKIPPED)
    q = qn.question(answer["question_id"])
    v = answer["value"]
    if q.type == "free_text":
        return answer["text"] or ""
    if q.type == "yes_no":
        return _first_word(t, M.WORDS_YES if v == "yes" else M.WORDS_NO).capitalize()
    if q.type == "scale":
        label = q.scale.labels.get(v)
        return f"{v} ({t._(label)})" if label else str(v)
    ids = v if isinstance(v, list) else [v]
    return ", ".join(t._(q.option(i).text) for i in ids if q.option(i))


def _my_answers(t: _Talk, qn: Questionnaire, s: State) -> list:
    if not s.answers:
        return [Say(t._(M.NO_ANSWERS_YET))]
    lines = [t._(M.MY_ANSWERS)]
    for ans in sorted(s.answers.values(), key=lambda a: a["seq"]):
        if qn.has(ans["question_id"]):
            q = qn.question(ans["question_id"])
            lines.append(f"- {t._(q.text)} {answer_label(t, qn, ans)}")
    return [Say("\n".join(lines))]
