"""`tala flows cost`: what a questionnaire costs by SMS, per language.

The invitation, then every reply tala sends (one response to each message from the child),
laid out exactly as the SMS channel sends them and counted in real segments (GSM-7 160/153
septets, UCS-2 70/67 code units). The shortest and the longest
path are found over the questionnaire's graph (it has no loops: the loader checks), taking
every branch an answer can take and every skip. Help messages after an alert, re-prompts and
commands are not counted: they depend on the child.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from bot.channels.sms import render_sms
from bot.channels.sms_text import segments
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


def _turn(rt: Runtime, qn: Questionnaire, lang: str, target: str,
          opening: bool = False) -> tuple[int, int, frozenset[str]]:
    parts = render_sms(engine.preview(rt, qn, lang, target, opening))
    segs = [segments(p) for p in parts]
    return sum(s.count for s in segs), len(parts), frozenset(s.encoding for s in segs)


def _invitation(rt: Runtime, lang: str, sender: str) -> tuple[int, int, frozenset[str]]:
    text = rt.catalogs.gettext(lang, M.INVITE_SMS).format(sender=sender)
    parts = render_sms([engine.Say(text)])
    segs = [segments(p) for p in parts]
    return sum(s.count for s in segs), len(parts), frozenset(s.encoding for s in segs)


def cost(rt: Runtime, qn: Questionnaire, lang: str, sender: str = "Socialtjänsten") -> Cost:
    """Segments from the invitation to the closing text, along the cheapest and the dearest
    way through the questionnaire."""
    @lru_cache(maxsize=None)
    def edge(target: str) -> tuple[int, int, frozenset[str]]:
        return _turn(rt, qn, lang, target)

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

        inv = _invitation(rt, lang, sender)
        seg, msgs, enc = _turn(rt, qn, lang, qn.first.id, opening=True)
        rest = walk(_first_question(qn))
        encs = inv[2] | enc | rest[2]
        return PathCost(inv[0] + seg + rest[0], inv[1] + msgs + rest[1],
                        next(iter(encs)) if len(encs) == 1 else "mixed")

    return Cost(qn.id, lang, best(min), best(max))


def _next_question(qn: Questionnaire, qid: str) -> str:
    """From an info text, the question (or END) the flow reaches next."""
    while qid != END and not qn.question(qid).answerable:
        qid = qn.default_next(qn.question(qid))
    return qid


def _first_question(qn: Questionnaire) -> str:
    return _next_question(qn, qn.first.id)
