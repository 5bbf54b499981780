"""Every child in their own language: whole questionnaires in Arabic, Somali, Tigrinya and
Ukrainian, summarised for the caseworker in Swedish exactly like a Swedish session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flows import messages as M
from flows.engine import FSI, PDI, RLM, Say
from flows.i18n import Catalogs
from tests.conftest import Talk
from tests.test_transcripts import GOLDEN, _fmt

LANGS = ["ar", "so", "ti", "uk"]
CATALOGS = Catalogs.load()


def _word(lang: str, msgid: str) -> str:
    """The first word a child in this language would type for yes, no, skip ..."""
    return CATALOGS.gettext(lang, msgid).split(",")[0].strip()


def replies(lang: str) -> list[str]:
    """One followup-6-11 conversation, typed in the child's language: numbers, the
    language's own yes/no words, a multiple choice, a skip and a free-text answer."""
    yes, no, skip = _word(lang, M.WORDS_YES), _word(lang, M.WORDS_NO), _word(lang, M.WORDS_SKIP)
    free = {"sv": "Mer tid med kompisar", "ar": "وقت أكثر مع أصدقائي",
            "so": "Waqti badan oo aan la qaato asxaabtayda", "ti": "ምስ ኣዕሩኽተይ ዝያዳ ግዜ",
            "uk": "Більше часу з друзями"}[lang]
    return ["4", yes, "4", yes, skip, "5", "3", yes, no, yes, no, "4", "2, 3", free]


def _demo(tmp_path: Path, lang: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["TALA_DATA_DIR"] = str(tmp_path / lang)
    played = subprocess.run([sys.executable, "-m", "admin_cli.main", "demo", "--lang", lang],
                            input="\n".join(replies(lang)) + "\n", capture_output=True,
                            text=True, env=env, timeout=120)
    assert played.returncode == 0, played.stderr
    out = subprocess.run([sys.executable, "-m", "admin_cli.main", "summary", "DEMO-1",
                          "--format", "json"], capture_output=True, text=True, env=env,
                         timeout=120)
    return json.loads(out.stdout)


def _shape(summary: dict) -> list[tuple]:
    [session] = summary["sessions"]
    assert session["status"] == "completed"
    return [(a["question_id"], a["domain"], a["value"], a["label"], a["skipped"])
            for a in session["answers"]]


@pytest.mark.slow
@pytest.mark.parametrize("lang", LANGS)
def test_tala_demo_in_the_childs_language_is_summarised_like_swedish(tmp_path, lang):
    swedish = _demo(tmp_path, "sv")
    theirs = _demo(tmp_path, lang)
    assert _shape(theirs) == _shape(swedish)  # same ids, values and Swedish labels
    [session] = theirs["sessions"]
    assert session["language"] == lang
    free = [a["text"] for a in session["answers"] if a["text"]]
    assert free == [replies(lang)[-1]]  # the child's own words, as written


@pytest.mark.parametrize("lang", LANGS)
def test_golden_transcript_in_the_childs_language(runtime, questionnaires, lang):
    t = Talk(runtime, questionnaires["followup-6-11"], lang)
    lines = [f"# followup-6-11 in {lang}"]
    for e in t.last:
        lines += _fmt(e)
    for reply in replies(lang):
        lines.append(f"child | {reply}")
        for e in t.say(reply):
            lines += _fmt(e)
    lines.append(f"# status: {t.state.status}, answers: {len(t.state.answers)}")
    got = "\n".join(lines) + "\n"
    assert t.state.status == "completed"
    assert "förstod inte" not in got.lower()  # every reply was understood
    path = GOLDEN / f"followup-6-11-{lang}.txt"
    if os.environ.get("TALA_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert got == path.read_text(encoding="utf-8")


def test_switching_from_swedish_to_arabic_mid_way_keeps_every_answer(runtime, questionnaires):
    t = Talk(runtime, questionnaires["followup-6-11"], "sv")
    for reply in ["4", "ja", "5"]:
        t.say(reply)
    before = dict(t.state.answers)
    t.say("العربية")  # the language's own name switches at once
    assert t.state.lang == "ar"
    assert t.state.answers == before
    assert "Har du någon kompis" not in t.texts  # the question is asked again, in Arabic
    t.say(_word("ar", M.WORDS_YES))
    assert t.state.answers["friends_have"]["value"] == "yes"
    assert {k: v for k, v in t.state.answers.items() if k in before} == before
    t.say("tillbaka")  # Swedish command words still work after the switch
    assert t.state.current == "friends_have"


def test_arabic_hint_isolates_its_numbers_exactly(runtime, questionnaires):
    t = Talk(runtime, questionnaires["followup-12-18"], "ar")
    hint = [e.prompt.hint for e in t.last if isinstance(e, Say) and e.prompt][0]
    assert f"{FSI}0{PDI}" in hint and f"{FSI}10{PDI}" in hint
    numbered = [e for e in t.effects if isinstance(e, Say) and e.prompt]
    assert numbered and not hint.startswith(RLM)  # starts with an Arabic letter: no mark


def test_the_summary_says_the_language_and_that_its_translation_is_a_draft(tmp_path):
    from admin_cli.summary import language_note
    summary = _demo(tmp_path, "so")
    [session] = summary["sessions"]
    assert (session["language"], session["translation"]) == ("so", "draft")
    assert language_note("so", "draft") == \
        "språk: somaliska (översättningen är ett utkast, inte granskad)"
    assert language_note("sv", "source") == "språk: svenska"
