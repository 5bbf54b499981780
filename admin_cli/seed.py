"""Made-up children, invitations and answers for trying out reports: `python -m admin_cli.seed`.

Everything is written straight to SQL in one transaction (no Redis, no conversations replayed),
so 500 children take about a second. The data is deterministic: the same `seed` gives the same
children, dates and answers. Answers are valid for the questionnaire a child of that age gets
(option ids, scale values, the branches a real conversation would take); free text is made up
and encrypted like a real child's. The case references start with SEED, so made-up cases are
easy to tell from real ones; never run this against a production database.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import insert, select

from bot.app import App
from flows.model import END, Question, Questionnaire, pick_for_age
from storage.sql import AnswerRow, Child, Invitation, SessionRow

# Units of a made-up municipality, with how large a share of the children each has: one is
# small on purpose, so reports meet groups too small to show.
UNITS = [("Nord", 0.27), ("Syd", 0.23), ("Öst", 0.19), ("Väst", 0.15), ("Familjehem", 0.11),
         ("Mottagning", 0.05)]
CASEWORKERS = ["Anna Berg", "Omar Khalil", "Lena Nyström", "Erik Sjöberg", "Sara Lind",
               "Jonas Ek", "Maria Holm", "Ali Hassan", "Karin Dahl", "Petra Lund", "Johan Wik",
               "Fatima Ali", "Nils Åberg", "Eva Strand", "Mikael Björk", "Hanna Falk"]
LANGUAGES = [("sv", 0.74), ("en", 0.07), ("so", 0.07), ("uk", 0.07), ("fi", 0.05)]
# The four quarters the made-up invitations fall in.
YEAR = 2025
# Free text a made-up child writes. Distinctive on purpose: tests look for it in reports.
FREE_TEXTS = ["Det är bråk hemma ibland", "Jag saknar min bror", "Jag vill ha en egen lampa",
              "Fotboll på tisdagar är bäst", "Läraren är snäll", "Jag sover dåligt på natten",
              "Vet inte riktigt", "Jag vill träffa mamma oftare"]
# The case phase of a child's invitations: about one child in five is placed (and is to be
# heard four times a year); the others' first invitation is mostly in the preliminary
# assessment, later ones in the investigation or the follow-up of an intervention.
PLACED_SHARE = 0.15
FIRST_PHASES = [("forhandsbedomning", 0.45), ("utredning", 0.3), ("uppfoljning", 0.25)]
LATER_PHASES = [("forhandsbedomning", 0.2), ("utredning", 0.4), ("uppfoljning", 0.4)]
# How often a preliminary assessment goes on to an investigation (a second invitation).
GOES_ON = 0.5
# How many questionnaires a placed child finished in the year: 0 to 6, four most often.
PLACED_TIMES = [(0, 0.08), (1, 0.1), (2, 0.14), (3, 0.18), (4, 0.24), (5, 0.16), (6, 0.1)]
OUTCOMES = [("completed", 0.66), ("stopped", 0.08), ("expired", 0.07), ("not_started", 0.13),
            ("opted_out", 0.03), ("sent", 0.03)]


@dataclass
class Answer:
    """One answer as the engine would store it: value None with `skipped` or for free text."""

    question_id: str
    value: Any = None
    text: str | None = None
    skipped: bool = False
    earlier: Any = None  # a value the child gave first and then changed (kept, not current)


@dataclass
class _Pending:
    children: list[dict] = field(default_factory=list)
    invitations: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)


class Builder:
    """Collects children, invitations, sessions and answers, and writes them all in `commit()`.

    A child is referred to by its case reference until it is written; `commit()` fills in the
    database ids. Ids and times come from the random generator given, never from the clock.
    """

    def __init__(self, app: App, rng: random.Random | None = None):
        self.app = app
        # Without a generator of its own (a hand-made set), ids must not collide with another.
        self.rng = rng or random.Random()
        self._p = _Pending()

    def _id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def child(self, case_ref: str, *, unit: str | None, caseworker: str | None,
              birth_year: int | None, lang: str = "sv") -> str:
        self._p.children.append({"case_ref": case_ref, "unit": unit, "caseworker": caseworker,
                                 "birth_year": birth_year, "preferred_lang": lang,
                                 "created_at": datetime(YEAR - 1, 12, 1, tzinfo=timezone.utc)})
        return case_ref

    def invitation(self, case_ref: str, questionnaire: str, at: datetime, outcome: str, *,
                   lang: str = "sv", answers: list[Answer] | None = None,
                   channel: str = "sms", phase: str | None = None) -> str:
        """One invitation and what became of it.

        outcome: completed, stopped or expired (the child started: a session with `answers`),
        not_started (expired before the child began), opted_out, sent (still waiting), or a live
        state such as paused (the child began; nothing is in SQL yet)."""
        qn = self.app.questionnaires[questionnaire]
        sid = self._id()
        started = outcome in ("completed", "stopped", "expired")
        inv_status = {"not_started": "expired"}.get(outcome, outcome)
        self._p.invitations.append({
            "id": self._id(), "case_ref": case_ref, "session_id": sid,
            "questionnaire_id": qn.id, "channel": channel, "lang": lang,
            "status": inv_status,
            "delivery_status": ("opted_out" if outcome == "opted_out" else "delivered")
            if channel == "sms" else None,
            "created_by": "seed", "created_at": at, "expires_at": at + timedelta(days=14),
            "phase": phase})
        if not started:
            return sid
        begun = at + timedelta(hours=self.rng.randint(1, 96))
        now = begun
        revised = [(Answer(a.question_id, a.earlier), False) for a in answers or []
                   if a.earlier is not None]
        for seq, (a, current) in enumerate(revised + [(a, True) for a in answers or []],
                                           start=1):
            now += timedelta(seconds=self.rng.randint(20, 200))
            v = a.value
            self._p.answers.append({
                "session_id": sid, "question_id": a.question_id,
                "domain": qn.question(a.question_id).domain, "seq": seq, "current": current,
                "skipped": a.skipped,
                "value_num": float(v) if isinstance(v, int) and not isinstance(v, bool)
                else None,
                "value_option": v if isinstance(v, str) else None,
                "value_options": v if isinstance(v, list) else None,
                # Made-up children: the installation key, not a data key each (one
                # write to the key store per session would be most of the seeding).
                "text_enc": self.app.crypto.encrypt(a.text) if a.text else None,
                "lang": lang, "answered_at": now})
        finished = now + timedelta(minutes=1)
        if outcome == "expired":
            finished = now + timedelta(days=14)
        self._p.sessions.append({
            "id": sid, "case_ref": case_ref, "invitation_id": self._p.invitations[-1]["id"],
            "questionnaire_id": qn.id, "questionnaire_version": qn.version, "lang": lang,
            "channel": channel, "status": outcome, "started_at": begun,
            "completed_at": finished, "written_at": finished, "phase": phase})
        return sid

    def commit(self) -> None:
        p = self._p
        with self.app.db.Session.begin() as db:
            refs = [c["case_ref"] for c in p.children]
            taken = set(db.scalars(select(Child.case_ref).where(Child.case_ref.in_(refs))))
            if taken:
                raise ValueError(f"These cases exist already: {', '.join(sorted(taken)[:5])}. "
                                 "Seed an empty database, or use another --seed.")
            rows = [Child(**c) for c in p.children]
            db.add_all(rows)
            db.flush()
            ids = {c.case_ref: c.id for c in rows}
            for r in p.invitations:
                r["child_id"] = ids[r.pop("case_ref")]
            for r in p.sessions:
                r["child_id"] = ids[r.pop("case_ref")]
            if p.invitations:
                db.execute(insert(Invitation), p.invitations)
            if p.sessions:
                db.execute(insert(SessionRow), p.sessions)
            if p.answers:
                db.execute(insert(AnswerRow), p.answers)
        self._p = _Pending()


# --------------------------------------------------------------------------- made-up answers


def _risk_answer(q: Question) -> str | None:
    """The yes/no answer that raises an alert on this question, if any."""
    for rule in q.safeguarding:
        if rule.when.equals in ("yes", "no"):
            return rule.when.equals
    return None


def answer_path(qn: Questionnaire, rng: random.Random, wellbeing: float,
                stop_after: int | None = None) -> list[Answer]:
    """A plausible way through a questionnaire for a child who is doing `wellbeing` well
    (0 badly .. 1 well), following the branches a real conversation takes. `stop_after`
    answers, then the child stops."""
    out: list[Answer] = []
    target = qn.first.id
    while target != END and (stop_after is None or len(out) < stop_after):
        q = qn.question(target)
        if not q.answerable:
            target = qn.default_next(q)
            continue
        a = _one_answer(q, rng, wellbeing)
        out.append(a)
        target = qn.next_after(q, None if a.skipped or q.type == "free_text" else a.value)
    return out


def _one_answer(q: Question, rng: random.Random, w: float) -> Answer:
    if q.type == "free_text":
        if rng.random() < 0.35:
            return Answer(q.id, None, rng.choice(FREE_TEXTS))
        return Answer(q.id, skipped=True)
    if rng.random() < 0.04:
        return Answer(q.id, skipped=True)
    if q.type == "scale":
        lo, hi = q.scale.min, q.scale.max
        mean = lo + w * (hi - lo)
        value = max(lo, min(hi, round(rng.gauss(mean, (hi - lo) / 4))))
        earlier = None
        if rng.random() < 0.05:  # went back and changed it
            earlier = rng.choice([v for v in range(lo, hi + 1) if v != value])
        return Answer(q.id, value, earlier=earlier)
    if q.type == "yes_no":
        risk = _risk_answer(q)
        if risk is None:
            yes = rng.random() < 0.45 + 0.5 * w
        else:
            bad = rng.random() < 0.03 + 0.25 * (1 - w) ** 2
            yes = bad if risk == "yes" else not bad
        return Answer(q.id, "yes" if yes else "no")
    options = list(q.options)
    if q.type == "choice":
        weights = [1 / (i + 1) for i in range(len(options))]
        return Answer(q.id, rng.choices(options, weights)[0].id)
    exclusive = [o for o in options if o.exclusive]
    if exclusive and rng.random() < 0.3:
        return Answer(q.id, [exclusive[0].id])
    plain = [o for o in options if not o.exclusive]
    picked = rng.sample(plain, k=min(len(plain), rng.choice([1, 1, 1, 2, 2, 3])))
    return Answer(q.id, [o.id for o in options if o in picked])


def _weighted(rng: random.Random, pairs: list[tuple[Any, float]]) -> Any:
    return rng.choices([v for v, _ in pairs], [wt for _, wt in pairs])[0]


def seed(app: App, children: int = 500, seed: int = 1) -> None:
    """Write `children` made-up children with their invitations, sessions and answers.

    Six units of different sizes, two or three caseworkers each, ages 6-18, a few languages,
    invitations in the four quarters of 2025: most children are followed up in the quarters
    after their first, most answer the whole questionnaire, some stop, some never start.
    Every invitation has a case phase: a placed child (one in five) is invited in placement
    and finishes 0-6 questionnaires spread over the year; the others are invited in the
    preliminary assessment, the investigation or the follow-up."""
    rng = random.Random(seed)
    b = Builder(app, rng)
    staff: dict[str, list[str]] = {}
    names = iter(CASEWORKERS * 4)
    for unit, _ in UNITS:
        staff[unit] = [next(names) for _ in range(3 if unit != "Mottagning" else 2)]
    quarter_starts = [date(YEAR, m, 1) for m in (1, 4, 7, 10)]
    for i in range(children):
        unit = _weighted(rng, UNITS)
        age = rng.randint(6, 18)
        lang = _weighted(rng, LANGUAGES)
        ref = b.child(f"SEED{seed}-{i + 1:04d}", unit=unit, caseworker=rng.choice(staff[unit]),
                      birth_year=YEAR - age, lang=lang)
        qn = pick_for_age(app.questionnaires, age)
        wellbeing = rng.betavariate(4, 2)
        if rng.random() < PLACED_SHARE:
            _placed_child(b, rng, ref, qn, lang, wellbeing)
            continue
        first = rng.choices(range(4), [4, 3, 2, 2])[0]
        for quarter in range(first, 4):
            if quarter > first and rng.random() < 0.3:
                break  # not followed up any more
            start = quarter_starts[quarter]
            at = datetime(start.year, start.month, start.day, 7, tzinfo=timezone.utc) + \
                timedelta(days=rng.randint(0, 85), minutes=rng.randint(0, 600))
            phase = _weighted(rng, FIRST_PHASES if quarter == first else LATER_PHASES)
            _case_invitation(b, rng, ref, qn, at, lang, wellbeing, phase)
            later = at + timedelta(days=rng.randint(20, 45))
            if phase == "forhandsbedomning" and rng.random() < GOES_ON and later.year == YEAR:
                # The preliminary assessment led to an investigation: heard again in it.
                _case_invitation(b, rng, ref, qn, later, lang, wellbeing, "utredning")
    b.commit()


def _case_invitation(b: Builder, rng: random.Random, ref: str, qn: Questionnaire,
                     at: datetime, lang: str, wellbeing: float, phase: str) -> None:
    outcome = _weighted(rng, OUTCOMES)
    answers = None
    if outcome in ("completed", "stopped", "expired"):
        stop = None if outcome == "completed" else rng.randint(1, 12)
        answers = answer_path(qn, rng, min(1.0, max(0.0, wellbeing + rng.gauss(0, 0.1))), stop)
    b.invitation(ref, qn.id, at, outcome, lang=lang, answers=answers,
                 channel=rng.choice(["sms", "sms", "sms", "console"]), phase=phase)


def _placed_child(b: Builder, rng: random.Random, ref: str, qn: Questionnaire, lang: str,
                  wellbeing: float) -> None:
    """A placed child's year: 0-6 finished questionnaires on days spread over the year, and
    now and then an invitation the child did not answer."""
    done = _weighted(rng, PLACED_TIMES)
    missed = rng.choice([0, 0, 1, 1, 2])
    days = sorted(rng.sample(range(0, 350), done + missed))
    finished = set(rng.sample(range(len(days)), done))
    for i, day in enumerate(days):
        at = datetime(YEAR, 1, 1, 7, tzinfo=timezone.utc) + timedelta(
            days=day, minutes=rng.randint(0, 600))
        if i in finished:
            b.invitation(ref, qn.id, at, "completed", lang=lang, phase="placering",
                         answers=answer_path(qn, rng, wellbeing))
        else:
            b.invitation(ref, qn.id, at, _weighted(rng, [("not_started", 0.7),
                                                         ("stopped", 0.3)]),
                         lang=lang, phase="placering",
                         answers=answer_path(qn, rng, wellbeing, rng.randint(1, 5)))


def main(argv: list[str] | None = None) -> int:
    from bot.app import create_app
    from bot.settings import Settings

    parser = argparse.ArgumentParser(
        prog="python -m admin_cli.seed",
        description="Fill the configured database (TALA_DATA_DIR / DATABASE_URL) with made-up "
                    "children, invitations and answers, for trying out reports. Never run it "
                    "against a production database.")
    parser.add_argument("--children", type=int, default=500, help="how many children")
    parser.add_argument("--seed", type=int, default=1, help="the same seed, the same data")
    args = parser.parse_args(argv)
    app = create_app(Settings())
    try:
        began = time.perf_counter()
        try:
            seed(app, args.children, args.seed)
        except ValueError as e:
            print(e, file=sys.stderr)
            return 1
        where = app.db.engine.url.render_as_string(hide_password=True)
        print(json.dumps({"children": args.children, "seed": args.seed, "database": where,
                          "seconds": round(time.perf_counter() - began, 2)}))
    finally:
        app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
