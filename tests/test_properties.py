"""Random conversations: whatever a child types, the engine never raises, never loses an answer
it accepted, and always either ends or waits for the child with a question."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flows.engine import Finish, Runtime, SafetyLexicon, SaveAnswer, Say
from flows.i18n import Catalogs
from flows.model import load_dir
from tests.conftest import Talk

# Module-level rather than fixtures: hypothesis prints its arguments when a case fails.
RUNTIME = Runtime(Catalogs.load(), SafetyLexicon.load())
QUESTIONNAIRES = load_dir()

WORDS = ["ja", "nej", "yes", "no", "japp", "tillbaka", "back", "hoppa över", "skip", "paus",
         "sluta", "stop", "mina svar", "språk", "hjälp", "english", "svenska", "1", "2", "3",
         "0", "10", "11", "-1", "1 och 3", "1, 2, 3", "fem", "ten", "vet inte", "٣", "", " ",
         "pappa slår mig", "Jättebra", "något annat", "/help"]

replies = st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=30)), max_size=60)


@pytest.mark.parametrize("qid", ["followup-6-11", "followup-12-18", "session-feedback"])
@settings(max_examples=120, deadline=None)
@given(texts=replies)
def test_any_input_keeps_every_answer_and_ends_or_waits(qid, texts):
    qn = QUESTIONNAIRES[qid]
    t = Talk(RUNTIME, qn)
    given_answers: dict[int, dict] = {}
    finishes = 0
    for text in texts:
        effects = t.say(text)  # never raises
        s = t.state
        for e in effects:
            if isinstance(e, SaveAnswer):
                given_answers[e.answer["seq"]] = e.answer
            if isinstance(e, Finish):
                finishes += 1
        # Nothing the child answered is lost: every accepted answer is current or kept as an
        # earlier revision, and a real answer is never replaced by a skip.
        kept = {a["seq"]: a for a in list(s.answers.values()) + s.superseded}
        assert set(given_answers) <= set(kept)
        for a in given_answers.values():
            if not a["skipped"]:
                assert not s.answers[a["question_id"]]["skipped"]
        # Every session ends, or waits for the child with something to answer.
        assert s.status in ("active", "paused", "completed", "stopped")
        says = [e for e in effects if isinstance(e, Say)]
        assert says, f"no reply to {text!r}"
        if s.status == "active":
            assert qn.has(s.current) and qn.question(s.current).answerable
            prompts = [e.prompt.question_id for e in says if e.prompt]
            if s.pending is None:
                assert prompts and prompts[-1] == s.current
            elif s.pending == "language":
                assert prompts and prompts[-1] == "_language"
    assert finishes <= 1
    if t.state.status in ("completed", "stopped"):
        assert finishes == 1
