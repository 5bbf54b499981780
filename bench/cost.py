"""What a completed questionnaire costs by SMS, per language: `python -m bench.cost`.

Three figures per questionnaire and language, all in billed segments (GSM-7 160/153, UCS-2
70/67) of the text messages tala sends, laid out exactly as the SMS channel sends them
(bot.channels.sms.render_sms: one reply per message from the child, split where it must be):

- shortest and longest: admin_cli.cost.cost (`tala flows cost`), the cheapest and the
  dearest way through the questionnaire's graph;
- typical: the questionnaire played through the engine (flows.engine, as tests/conftest.py's
  Talk does) by a child who gives middle-of-the-road answers: the middle of every scale, and
  for yes/no, choices and multiple choice the first answer that neither raises an alert nor
  opens a follow-up question; free text gets a short reply ("ok");
- sampled: `--samples` made-up children per questionnaire and language (admin_cli.seed's
  answer_path, seeded: its mix of answers, worries, skips, free text and changed answers,
  sent as a child would type them, with "back" before a changed answer), played through the
  engine; median and 90th percentile. Help texts after a worrying answer are counted here.

Each conversation starts with the invitation SMS (M.INVITE_SMS with TALA_SENDER_NAME, default
"Socialtjänsten") and the child's first reply ("hej"); school-survey is an anonymous campaign
with no invitation (the pupil texts the keyword), so it starts at the opening and its
invitation column is empty. `tala flows cost` counts an invitation for every questionnaire.

Writes bench/results/cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from admin_cli.cost import cost
from admin_cli.seed import Answer, answer_path
from bot.channels.sms import render_sms
from bot.channels.sms_text import segments
from bot.settings import Settings
from flows import engine
from flows import messages as M
from flows.engine import Inbound, Runtime, SafetyLexicon, Say
from flows.i18n import Catalogs
from flows.model import Question, Questionnaire, load_dir

RESULTS = Path(__file__).resolve().parent / "results" / "cost.json"
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)  # a Monday afternoon: no night hold
CAMPAIGN_ONLY = {"school-survey"}  # started by a keyword, never by an invitation SMS


@dataclass
class Tally:
    segments: int = 0
    messages: int = 0
    encodings: set[str] = field(default_factory=set)
    turns: int = 0  # messages from the child

    def add(self, says: list[Say]) -> None:
        for part in render_sms(says):
            s = segments(part)
            self.segments += s.count
            self.messages += 1
            self.encodings.add(s.encoding)

    @property
    def encoding(self) -> str:
        return next(iter(self.encodings)) if len(self.encodings) == 1 else "mixed"


def _says(effects: list) -> list[Say]:
    return [e for e in effects if isinstance(e, Say)]


def _first_word(rt: Runtime, lang: str, msgid: str) -> str:
    return rt.catalogs.gettext(lang, msgid).split(",")[0].strip()


class Child:
    """Plays one conversation through the pure engine, a minute a message (like Talk)."""

    def __init__(self, rt: Runtime, qn: Questionnaire, lang: str, sender: str):
        self.rt, self.qn, self.lang, self.now = rt, qn, lang, T0
        self.tally = Tally()
        self.invitation = Tally()
        self.state = engine.new_state("bench-cost", qn, lang, self.now)
        if qn.id in CAMPAIGN_ONLY:
            self.state.campaign_id = 1
            self.state, effects = engine.start(rt, qn, self.state, self.now)
            self.tally.add(_says(effects))
        else:
            text = rt.catalogs.gettext(lang, M.INVITE_SMS).format(sender=sender)
            self.invitation.add([Say(text)])
            self.say("hej")

    def say(self, text: str) -> None:
        self.now += timedelta(minutes=1)
        self.state, effects = engine.step(self.rt, self.qn, self.state, Inbound(text, self.now))
        self.tally.turns += 1
        self.tally.add(_says(effects))

    @property
    def asking(self) -> Question | None:
        if self.state.status in engine.FINISHED or not self.state.current:
            return None
        return self.qn.question(self.state.current)


# --------------------------------------------------------------------------- the typical child


def _alerts(q: Question, value: Any) -> bool:
    return any(rule.when.matches(value) for rule in q.safeguarding)


def _branches(q: Question, value: Any) -> bool:
    return any(b.when.matches(value) for b in q.branches)


def middle_reply(q: Question) -> str:
    """A middle-of-the-road answer, as the child types it."""
    if q.type == "scale":
        lo, hi = q.scale.min, q.scale.max
        mid = (lo + hi + 1) // 2
        for v in sorted(range(lo, hi + 1), key=lambda v: (abs(v - mid), -v)):
            if not _alerts(q, v):
                return str(v)
    if q.type == "yes_no":
        for number, value in (("1", "yes"), ("2", "no")):
            if not _alerts(q, value) and not _branches(q, value):
                return number
        for number, value in (("1", "yes"), ("2", "no")):
            if not _alerts(q, value):
                return number
    if q.type in ("choice", "multi_choice"):
        multi = q.type == "multi_choice"
        options = list(enumerate(q.options, 1))
        for i, o in options:
            value = [o.id] if multi else o.id
            if not (multi and o.exclusive) and not _alerts(q, value) \
                    and not _branches(q, value):
                return str(i)
        for i, o in options:
            if not _alerts(q, [o.id] if multi else o.id):
                return str(i)
    return "ok"  # free text


def typical(rt: Runtime, qn: Questionnaire, lang: str, sender: str) -> Child:
    child = Child(rt, qn, lang, sender)
    while (q := child.asking) is not None:
        child.say(middle_reply(q))
        if child.tally.turns > 200:
            raise RuntimeError(f"{qn.id}/{lang}: the typical child is stuck at {q.id}")
    if child.state.status != engine.COMPLETED:
        raise RuntimeError(f"{qn.id}/{lang}: ended {child.state.status}, not completed")
    return child


# --------------------------------------------------------------------------- sampled children


def _typed(rt: Runtime, lang: str, q: Question, value: Any, text: str | None) -> str:
    """How a child types this value (numbers, as the prompts offer them)."""
    if q.type == "free_text":
        return text or "ok"
    if q.type == "scale":
        return str(value)
    if q.type == "yes_no":
        return "1" if value == "yes" else "2"
    ids = [o.id for o in q.options]
    if q.type == "choice":
        return str(ids.index(value) + 1)
    return " ".join(str(ids.index(v) + 1) for v in value)


def sampled(rt: Runtime, qn: Questionnaire, lang: str, sender: str,
            rng: random.Random) -> Child | None:
    """One made-up child (admin_cli.seed's answers) who completes the questionnaire."""
    path: list[Answer] = answer_path(qn, rng, rng.betavariate(4, 2))
    skip, back = _first_word(rt, lang, M.WORDS_SKIP), _first_word(rt, lang, M.WORDS_BACK)
    child = Child(rt, qn, lang, sender)
    for a in path:
        q = child.asking
        if q is None or q.id != a.question_id:
            return None  # the engine went elsewhere (cannot happen: same branches)
        if a.skipped or (q.type == "free_text" and not a.text):
            child.say(skip)
            continue
        if a.earlier is not None:
            child.say(_typed(rt, lang, q, a.earlier, None))
            child.say(back)
        child.say(_typed(rt, lang, q, a.value, a.text))
    return child if child.state.status == engine.COMPLETED else None


# --------------------------------------------------------------------------- main


def _pct(values: list[int], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo), 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100,
                        help="made-up children per questionnaire and language (default 100)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    rt = Runtime(Catalogs.load(), SafetyLexicon.load())
    sender = Settings().sender_name
    rows = []
    head = (f"{'questionnaire':<17}{'lang':<5}{'invite':>7}{'shortest':>10}{'typical':>9}"
            f"{'longest':>9}{'sampled p50':>13}{'p90':>6}  {'typ. msgs':>9}  encoding")
    print("SMS segments for one completed questionnaire, invitation included (segments of "
          f"the invitation alone in 'invite'); sender '{sender}'.")
    print(head)
    for qn in load_dir().values():
        for lang in rt.catalogs.languages:
            c = cost(rt, qn, lang, sender)
            t = typical(rt, qn, lang, sender)
            rng = random.Random(f"{args.seed}|{qn.id}|{lang}")
            sample = [s for s in (sampled(rt, qn, lang, sender, rng)
                                  for _ in range(args.samples)) if s is not None]
            totals = [s.tally.segments + s.invitation.segments for s in sample]
            campaign = qn.id in CAMPAIGN_ONLY
            inv = None if campaign else t.invitation.segments
            # cost() always counts an invitation: taken out again for a campaign.
            inv_parts = render_sms([Say(rt.catalogs.gettext(lang, M.INVITE_SMS).format(
                sender=sender))]) if campaign else []
            inv_cost = sum(segments(x).count for x in inv_parts)
            row = {
                "questionnaire": qn.id, "lang": lang, "campaign": campaign,
                "review_state": rt.catalogs.by_lang[lang].review_state,
                "invitation_segments": inv,
                "shortest": {"segments": c.shortest.segments - inv_cost,
                             "messages": c.shortest.messages - len(inv_parts),
                             "encoding": c.shortest.encoding},
                "longest": {"segments": c.longest.segments - inv_cost,
                            "messages": c.longest.messages - len(inv_parts),
                            "encoding": c.longest.encoding},
                "typical": {"segments": t.tally.segments + t.invitation.segments,
                            "messages": t.tally.messages + t.invitation.messages,
                            "replies_from_child": t.tally.turns,
                            "encoding": Tally(encodings=t.tally.encodings
                                              | t.invitation.encodings).encoding},
                "sampled": {"children": len(sample), "asked": args.samples,
                            "median": statistics.median(totals) if totals else None,
                            "p90": _pct(totals, 0.9) if totals else None,
                            "min": min(totals, default=None), "max": max(totals, default=None),
                            "mean": round(statistics.mean(totals), 1) if totals else None},
                "flows_cost": {"shortest": c.shortest.segments, "longest": c.longest.segments},
            }
            rows.append(row)
            s = row["sampled"]
            print(f"{qn.id:<17}{lang:<5}{'-' if inv is None else inv:>7}"
                  f"{row['shortest']['segments']:>10}{row['typical']['segments']:>9}"
                  f"{row['longest']['segments']:>9}{s['median'] if totals else '-':>13}"
                  f"{s['p90'] if totals else '-':>6}  {row['typical']['messages']:>9}  "
                  f"{row['typical']['encoding']}", flush=True)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "nproc": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_average": [round(x, 2) for x in os.getloadavg()]},
        "sender": sender, "samples": args.samples, "seed": args.seed,
        "units": "billed SMS segments (GSM-7 160/153 septets, UCS-2 70/67 code units); "
                 "messages = separate texts",
        "notes": ["Invitation included in every total except the campaign questionnaire "
                  "(school-survey), which has none.",
                  "shortest/longest from admin_cli.cost.cost; flows_cost keeps its own figures "
                  "(which count an invitation for every questionnaire).",
                  "typical: middle-of-the-road answers, no alerts, no follow-up branches.",
                  "sampled: admin_cli.seed.answer_path children who completed; help texts "
                  "after worrying answers, skips, free text and going back included."],
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    print(f"Written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
