"""Golden transcripts (as goflow does): each script is replayed through the pure engine with a
fixed clock and session id, and everything the child sees, every saved answer, alert and
finish is compared with tests/golden/NAME.txt. A change to a question or a message shows up
as a readable diff. After an intended change: TALA_UPDATE_GOLDEN=1 pytest tests/test_transcripts.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.render import render
from flows.engine import Finish, RaiseAlert, SaveAnswer, Say
from tests.conftest import Talk

GOLDEN = Path(__file__).parent / "golden"

SCRIPTS = {
    # followup-6-11, to the end: nonsense, help, a concern alert, back and change, pause and
    # resume, a skipped follow-up, language change by name and back, my answers, an urgent
    # alert and its follow-up, multi-choice by number.
    "followup-6-11-complete": ("followup-6-11", "sv", [
        "kanske", "hjälp", "1", "tillbaka", "3", "ja", "paus", "hej", "fem", "nej",
        "hoppa över", "english", "four", "svenska", "4", "mina svar", "2",
        "Jag saknar min syster", "nej", "Det är läskigt på natten", "nej", "ja", "nej", "4",
        "2 och 3", "Mer tid med min kompis",
    ]),
    # followup-6-11, stopped half-way after an answer that raises an alert.
    "followup-6-11-stop": ("followup-6-11", "sv", [
        "4", "ja", "2", "1", "hoppa över", "ja", "sluta", "nej", "3", "sluta", "ja",
    ]),
    # followup-12-18, to the end: nonsense, a 0-10 scale, choices by text, number words, the
    # language menu, pause and resume, back and change, skip, and a disclosure in free text.
    "followup-12-18-complete": ("followup-12-18", "sv", [
        "bra typ", "7", "ja", "8", "1", "3", "1 4", "Det är svårt att orka", "språk", "2",
        "every day", "yes", "pause", "hi again", "ten", "6", "5", "yes", "no", "yes", "skip",
        "no", "9", "back", "8", "8", "1", "3, 7", "skip", "My dad hits me sometimes",
    ]),
    # followup-12-18 stopped at the safety questions after a self-harm answer.
    "followup-12-18-stop": ("followup-12-18", "sv", [
        "5", "nej", "4", "2", "Jag träffar min bror för lite", "6", "nästan varje dag", "ja",
        "5", "7", "2", "1", "Jag är ledsen och orolig", "ja", "nej", "ja", "nej", "ja",
        "avsluta", "ja",
    ]),
    # session-feedback, to the end: nonsense, a low score and its follow-up with a disclosure,
    # back and change, pause and resume, language change, skip.
    "session-feedback-complete": ("session-feedback", "sv", [
        "hmm", "2", "Någon i klassen slår mig", "tillbaka", "Om skolan", "paus", "hej", "5",
        "language", "1", "hoppa över", "5",
    ]),
    "session-feedback-stop": ("session-feedback", "sv", ["4", "sluta", "ja"]),
}


def _fmt(effect) -> list[str]:
    if isinstance(effect, Say):
        return [f"  tala | {line}" for line in render(effect).splitlines() or [""]]
    if isinstance(effect, SaveAnswer):
        a = effect.answer
        shown = "(skipped)" if a["skipped"] else repr(a["text"] if a["text"] else a["value"])
        return [f"       [saved {effect.question_id} = {shown}]"]
    if isinstance(effect, RaiseAlert):
        return [f"       [ALERT {effect.level} {effect.question_id}/{effect.topic}]"]
    if isinstance(effect, Finish):
        return [f"       [finished: {effect.status}]"]
    return []  # Wake: timing, not content


def transcript(runtime, questionnaires, name: str) -> str:
    qid, lang, replies = SCRIPTS[name]
    t = Talk(runtime, questionnaires[qid], lang)
    lines = [f"# {name}: {qid}, starting in {lang}"]
    for e in t.last:
        lines += _fmt(e)
    for reply in replies:
        lines.append(f"child | {reply}")
        for e in t.say(reply):
            lines += _fmt(e)
    lines.append(f"# status: {t.state.status}, language: {t.state.lang}, "
                 f"answers: {len(t.state.answers)}, changed: {len(t.state.superseded)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_golden_transcript(runtime, questionnaires, name):
    got = transcript(runtime, questionnaires, name)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("TALA_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(got, encoding="utf-8")
    assert path.exists(), f"no golden file yet: run TALA_UPDATE_GOLDEN=1 pytest {__file__}"
    assert got == path.read_text(encoding="utf-8")
