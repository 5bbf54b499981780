"""The safeguarding lexicon and matcher (flows/safeguarding.py, flows/safeguarding.yaml): what a
child really types about harm must raise an alert with the right topic, however it is typed
(invisible characters, typos, stretched letters, words run together, look-alike letters,
leetspeak, colloquial forms), and everyday sentences, idioms ("jag dog av skratt") and near
misses ("slår in paketet", "en film om mord") must not.

tests/safety_corpus/dev.yaml is what the matcher is tuned on: every sentence there must come
out right. heldout.yaml was written before the tuning and is held to the issue's targets only
(recall >= 95 % sv/en, >= 85 % the others, at most 5 % false alarms), as `tala flows
safety-check` prints them. The phrases and sentences beyond Swedish and English are drafts to
be reviewed by native speakers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from flows import engine
from flows.engine import SafetyLexicon
from flows.i18n import normalise
from flows.safeguarding import CORPUS_DIR, MAX_FALSE_ALARMS, evaluate

YAML = Path(__file__).parent.parent / "flows" / "safeguarding.yaml"
LANGS = ("sv", "en", "fi", "so", "uk", "ar", "fa", "ti")
TOPICS = ["self_harm", "sexual_abuse", "violence_or_abuse", "violence_at_home",
          "threats_or_control", "afraid_to_go_home", "neglect"]


def _corpus(name: str) -> dict:
    return yaml.safe_load((CORPUS_DIR / name).read_text(encoding="utf-8"))


def _harm(name: str) -> list[tuple[str, str, str]]:
    return [(lang, ", ".join(str(x) for x in item[:-1]), item[-1])
            for lang, cases in _corpus(name).items() for item in cases["harm"]]


def _harmless(name: str) -> list[tuple[str, str]]:
    return [(lang, text) for lang, cases in _corpus(name).items() for text in cases["harmless"]]


@pytest.fixture(scope="module")
def lexicon() -> SafetyLexicon:
    return SafetyLexicon.load()


@pytest.mark.parametrize(("lang", "text", "topic"), _harm("dev.yaml"))
def test_a_disclosure_is_found_with_its_topic(lexicon, lang, text, topic):
    assert lexicon.scan(text) == ("urgent", topic)


@pytest.mark.parametrize(("lang", "text"), _harmless("dev.yaml"))
def test_an_everyday_sentence_raises_no_alarm(lexicon, lang, text):
    assert lexicon.scan(text) is None, lexicon.matches(text)


@pytest.mark.parametrize("corpus", ["dev.yaml", "heldout.yaml"])
def test_recall_and_false_alarms_meet_the_targets_in_every_language(lexicon, corpus):
    scores = evaluate(lexicon, CORPUS_DIR / corpus)
    assert sorted(sc.lang for sc in scores) == sorted(LANGS)
    for sc in scores:
        assert sc.recall >= sc.target, (sc.lang, sc.recall, sc.missed)
        assert sc.false_alarm_rate <= MAX_FALSE_ALARMS, (sc.lang, sc.alarmed)
        assert set(sc.by_topic) == set(TOPICS), (sc.lang, "a topic with no sentence")


@pytest.mark.parametrize("text", [
    "jag vill dö", "vill d\u200bö", "vill d\u00adö", "vi\u200ell dö", "vil dö", "villl dööö",
    "jagvilldö", "själv-mord", "s j ä l v m o r d", "v\u0456ll dö", "\u0455jälvmord",
    "vιll dö", "v1ll d0", "ta livet av mej", "ja vill ta livet av mej", "VILL DÖ!!!",
    "självmordstankar", "jag vill bara dö", "ibland vill jag dö",
])
def test_the_ways_children_write_i_want_to_die_all_alert(lexicon, text):
    assert lexicon.scan(text) == ("urgent", "self_harm")


@pytest.mark.parametrize("text", [
    "slår in paketet", "jag dog av skratt", "en film om mord", "vi läste en bok om självmord",
    "ingen slår mig", "han slår mig aldrig", "min bror slog mig i schack", "vill döda zombies",
    "I don't want to die", "we watched a movie about suicide",
])
def test_context_keeps_near_misses_quiet(lexicon, text):
    assert lexicon.scan(text) is None, lexicon.matches(text)


def test_a_harmless_sentence_does_not_hide_a_disclosure_beside_it(lexicon):
    assert lexicon.scan("vi såg en film om självmord. jag vill också dö") == ("urgent",
                                                                          "self_harm")
    assert lexicon.scan("jag slår in paketet, pappa slår mig") == ("urgent",
                                                                 "violence_or_abuse")


def test_the_first_topic_in_the_file_names_the_alert(lexicon):
    assert lexicon.scan("pappa slår mig och jag vill dö") == ("urgent", "self_harm")


def test_the_file_has_every_language_with_a_review_state_and_known_topics(lexicon):
    data = yaml.safe_load(YAML.read_text(encoding="utf-8"))
    assert [t["id"] for t in data["topics"]] == TOPICS
    assert tuple(data["languages"]) == LANGS
    for lang, block in data["languages"].items():
        assert block["review"] in ("reviewed", "draft"), lang
        assert set(block["phrases"]) == set(TOPICS), lang
        for phrases in block["phrases"].values():
            for phrase in phrases:
                assert isinstance(phrase, str) and normalise(phrase), (lang, phrase)
                assert lexicon.scan(phrase) is not None, (lang, phrase, "matches nothing")
    assert {x.lang: x.review for x in lexicon.languages}["sv"] == "reviewed"
    assert {x.lang for x in lexicon.languages if x.review == "draft"} == {
        "fi", "so", "uk", "ar", "fa", "ti"}


def test_topics_keep_working_with_the_engine_and_the_old_ids():
    lex = SafetyLexicon.load()
    assert lex.scan("pappa slår mig") == ("urgent", "violence_or_abuse")
    assert lex.scan("jag vill dö") == ("urgent", "self_harm")
    assert engine.about_suicide("self_harm")
    assert not any(engine.about_suicide(t) for t in TOPICS if t != "self_harm")
    assert "SafetyLexicon" in str(engine.Runtime.__dataclass_fields__["safety"].type)


def test_keyboard_variants_of_arabic_and_persian_letters_match_alike():
    assert normalise("يضربني") == normalise("یضربنی")
    assert normalise("كتك") == normalise("کتک")
    assert normalise("\u0431\u02bc\u0454 мене") == normalise("\u0431'\u0454 мене")  # бʼє, б'є


def test_the_check_is_fast(lexicon):
    """bench/safety.py measures it properly (budget 0.1 ms a message); this only catches a
    matcher that became many times slower."""
    texts = [t for _, t, _ in _harm("dev.yaml")] + [t for _, t in _harmless("dev.yaml")]
    for t in texts:
        lexicon.scan(t)
    t0 = time.perf_counter()
    for _ in range(5):
        for t in texts:
            lexicon.scan(t)
    mean_ms = (time.perf_counter() - t0) * 1000 / (5 * len(texts))
    assert mean_ms < 1.0
