"""`tala flows cost`: what a questionnaire costs by SMS, WhatsApp and the web chat, per language.

The invitation, then every reply tala sends (one response to each message from the child),
laid out exactly as the SMS channel sends them and counted in real segments (GSM-7 160/153
septets, UCS-2 70/67 code units). The shortest and the longest
path are found over the questionnaire's graph (it has no loops: the loader checks), taking
every branch an answer can take and every skip. Help messages after an alert, re-prompts and
commands are not counted: they depend on the child.

On WhatsApp the invitation is the one paid message (a utility template); every reply goes
within the 24 hours the child's message opens, which WhatsApp does not charge for. What is
counted there is the messages along the longest path, laid out as the WhatsApp channel sends
them (up to 1,600 characters each).

The web chat costs the one SMS with its link (the invitation): every answer and reply goes
over the page, which costs no SMS. Reminders go by SMS with the link again, as for SMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

from bot.channels.sms import render_sms
from bot.channels.sms_text import segments
from bot.channels.whatsapp import split_reply
from bot.weblinks import TOKEN_LENGTH
from flows import engine
from flows import messages as M
from flows.engine import Runtime
from flows.model import END, Questionnaire


@dataclass(frozen=True)
class PathCost:
    segments: int
    messages: int  # separate text messages (a long reply is split into several)
    encoding: str  # GSM-7, UCS-2, or "mixed"


@dataclass(frozen=True)
class Cost:
    questionnaire: str
    lang: str
    shortest: PathCost
    longest: PathCost
    whatsapp: int  # WhatsApp messages along the longest path, the invitation's template too
    web: int  # SMS segments of the web chat's one SMS, the invitation with its link


Measure = Callable[[list[engine.Say]], tuple[int, int, frozenset[str]]]


def by_sms(says: list[engine.Say]) -> tuple[int, int, frozenset[str]]:
    """Segments, text messages and encodings, as the SMS channel sends `says`."""
    parts = render_sms(says)
    segs = [segments(p) for p in parts]
    return sum(s.count for s in segs), len(parts), frozenset(s.encoding for s in segs)


def by_whatsapp(lang: str) -> Measure:
    """WhatsApp has no segments: its messages, counted twice over (a question with buttons is
    a message of its own)."""
    def measure(says: list[engine.Say]) -> tuple[int, int, frozenset[str]]:
        parts, buttons = split_reply(says, lang, "-")
        n = len(parts) + (buttons is not None)
        return n, n, frozenset()

    return measure


def cost(rt: Runtime, qn: Questionnaire, lang: str, sender: str = "Socialtjänsten",
         public_url: str | None = None) -> Cost:
    """Segments from the invitation to the closing text, along the cheapest and the dearest
    way through the questionnaire; the WhatsApp messages along the longest; and the segments
    of the web chat's SMS, with a link to `public_url` (TALA_PUBLIC_URL)."""
    sms = _paths(rt, qn, lang, sender, by_sms)
    link = f"{(public_url or 'https://tala.kommun.se').rstrip('/')}/c/{'X' * TOKEN_LENGTH}"
    web = rt.catalogs.gettext(lang, M.INVITE_WEB).format(sender=sender, link=link)
    return Cost(qn.id, lang, sms(min), sms(max),
                _paths(rt, qn, lang, sender, by_whatsapp(lang))(max).messages,
                by_sms([engine.Say(web)])[0])


def _paths(rt: Runtime, qn: Questionnaire, lang: str, sender: str,
           measure: Measure) -> Callable[..., PathCost]:
    @lru_cache(maxsize=None)
    def edge(target: str, opening: bool = False) -> tuple[int, int, frozenset[str]]:
        return measure(engine.preview(rt, qn, lang, target, opening))

    def best(pick) -> PathCost:
        @lru_cache(maxsize=None)
        def walk(qid: str) -> tuple[int, int, frozenset[str]]:
            if qid == END:
                return 0, 0, frozenset()
            q = qn.question(qid)
            options = []
            for target in dict.fromkeys(qn.edges(q)):  # each answer's way, and the skip
                seg, msgs, enc = edge(target)
                rest = walk(target) if target == END or qn.question(target).answerable \
                    else walk(_next_question(qn, target))
                options.append((seg + rest[0], msgs + rest[1], enc | rest[2]))
            return pick(options, key=lambda o: (o[0], o[1]))

        invitation = rt.catalogs.gettext(lang, M.INVITE_SMS).format(sender=sender)
        inv = measure([engine.Say(invitation)])  # on WhatsApp the template: one message
        seg, msgs, enc = edge(qn.first.id, opening=True)
        rest = walk(_first_question(qn))
        encs = inv[2] | enc | rest[2]
        return PathCost(inv[0] + seg + rest[0], inv[1] + msgs + rest[1],
                        next(iter(encs)) if len(encs) == 1 else "mixed")

    return best


def _next_question(qn: Questionnaire, qid: str) -> str:
    """From an info text, the question (or END) the flow reaches next."""
    while qid != END and not qn.question(qid).answerable:
        qid = qn.default_next(qn.question(qid))
    return qid


def _first_question(qn: Questionnaire) -> str:
    return _next_question(qn, qn.first.id)
