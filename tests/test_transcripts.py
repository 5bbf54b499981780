"""Golden transcripts (as goflow does): each script is replayed through the pure engine with a
fixed clock and session id, and everything the child sees, every saved answer, alert and
finish is compared with tests/golden/NAME.txt. A change to a question or a message shows up
as a readable diff. After an intended change: TALA_UPDATE_GOLDEN=1 pytest tests/test_transcripts.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.channels.console import render
from flows.engine import Finish, RaiseAlert, SaveAnswer, Say
from tests.conftest import Talk

GOLDEN = Path(__file__).parent / "golden"

SCRIPTS = {
    # Nonsense, help, a concern alert, back and change, pause and resume, a skipped follow-up,
    # language change by name and back, my answers, an urgent alert, and stop.
    "followup-6-11-everything": ("followup-6-11", "sv", [
        "kanske", "hjälp", "1", "tillbaka", "3", "ja", "paus", "hej", "fem", "nej",
        "hoppa över", "english", "four", "svenska", "4", "mina svar", "2",
        "Jag saknar min syster", "nej", "sluta", "ja",
    ]),
    # A whole conversation to the end, switching to English on the way, a 0-10 scale, number
    # words, choices by text, back, and a disclosure written in free text.
    "followup-12-18-complete": ("followup-12-18", "sv", [
        "7", "ja", "8", "1", "3", "1 4", "Det är svårt att orka", "språk", "2",
        "every day", "yes", "ten", "6", "5", "yes", "no", "yes", "skip", "no", "9", "back",
        "8", "8", "1", "3, 7", "skip", "My dad hits me sometimes",
    ]),
    "session-feedback-complete": ("session-feedback", "sv", [
        "2", "Om skolan", "5", "4", "5",
    ]),
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
