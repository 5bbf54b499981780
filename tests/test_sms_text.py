"""SMS text: what a message costs in segments, and keeping it cheap without losing a word."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.sms_text import (
    GSM7_BASIC,
    GSM7_EXTENDED,
    Segments,
    fit_gsm7,
    is_gsm7,
    segments,
    split_message,
    strip_emoji,
)

SWEDISH = "Hur mår du i skolan, Åsa? Är det något som är svårt där, eller känns det bra? Öva på é!"
ARABIC = "كيف حالك في البيت؟ هل تريد أن تتحدث مع أحد؟"
PERSIAN = "می‌خواهم با کسی صحبت کنم. حال من خوب است."  # with a zero-width non-joiner
TIGRINYA = "ከመይ ኣለኻ፧ ኣብ ቤት ትምህርቲ ጽቡቕ ድዩ። ሓገዝ ትደሊ ዶ፧"
CYRILLIC = "Как ты себя чувствуешь дома?"
SOMALI = "Sidee tahay? Ma jeceshahay dugsiga?"


# --- The alphabet ---------------------------------------------------------------------------


def test_the_default_alphabet_has_127_characters_and_the_extension_table_10():
    assert len(GSM7_BASIC) == 127  # 128 positions, one of them the escape
    assert GSM7_EXTENDED == frozenset("\f^{}\\[~]|€")
    assert not GSM7_BASIC & GSM7_EXTENDED
    assert "\x1b" not in GSM7_BASIC


@pytest.mark.parametrize("c", list("åäöÅÄÖéÉÜüÇ@£$¥¤§¡¿ΔΦΓΛΩΠΨΣΘΞÆæßØøÑñàèéùìò_\n\r"))
def test_characters_in_the_basic_table(c):
    assert c in GSM7_BASIC
    assert segments(c) == Segments("GSM-7", 1, 1)


@pytest.mark.parametrize("c", list("çáóíúÁÓÍÚâêãõğşıœ`€{") + ["\u00a0", "\u2019", "\u201c"])
def test_characters_outside_the_basic_table(c):
    assert c not in GSM7_BASIC


def test_a_swedish_sentence_is_gsm7():
    assert is_gsm7(SWEDISH)
    assert segments(SWEDISH) == Segments("GSM-7", len(SWEDISH), 1)


@pytest.mark.parametrize("text", [ARABIC, PERSIAN, TIGRINYA, CYRILLIC, "Ça va, ça va?", "Está"])
def test_other_letters_make_a_message_ucs2(text):
    assert not is_gsm7(text)
    assert segments(text).encoding == "UCS-2"


# --- Segments -------------------------------------------------------------------------------


@pytest.mark.parametrize("n, count", [
    (1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4),
])
def test_gsm7_segment_boundaries(n, count):
    assert segments("a" * n) == Segments("GSM-7", n, count)


@pytest.mark.parametrize("n, count", [
    (1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4),
])
def test_ucs2_segment_boundaries(n, count):
    assert segments("ж" * n) == Segments("UCS-2", n, count)


def test_the_empty_text_is_no_segment():
    assert segments("") == Segments("GSM-7", 0, 0)


def test_extension_characters_count_two_septets():
    assert segments("€" * 80) == Segments("GSM-7", 160, 1)
    assert segments("€" * 81) == Segments("GSM-7", 162, 2)
    assert segments("a" * 159 + "[") == Segments("GSM-7", 161, 2)
    assert segments("{}") == Segments("GSM-7", 4, 1)


def test_an_extension_character_is_not_split_across_segments():
    # 152 septets, then "€" (escape + code) does not fit in the first 153: it opens segment 2.
    pushed = "a" * 152 + "€" + "a" * 152
    assert segments(pushed) == Segments("GSM-7", 306, 3)  # ceil(306 / 153) would say 2
    # The same 306 septets with "€" wholly inside the first segment: two segments.
    inside = "a" * 151 + "€" + "a" * 153
    assert segments(inside) == Segments("GSM-7", 306, 2)


def test_an_emoji_outside_the_bmp_is_two_units_and_not_split():
    assert segments("😀") == Segments("UCS-2", 2, 1)
    assert segments("ж" * 68 + "😀") == Segments("UCS-2", 70, 1)
    assert segments("ж" * 69 + "😀") == Segments("UCS-2", 71, 2)
    pushed = "ж" * 66 + "😀" + "ж" * 66
    assert segments(pushed) == Segments("UCS-2", 134, 3)  # ceil(134 / 67) would say 2
    inside = "ж" * 65 + "😀" + "ж" * 67
    assert segments(inside) == Segments("UCS-2", 134, 2)


def test_one_emoji_turns_a_gsm7_message_ucs2_and_triples_its_cost():
    text = "a" * 150
    assert segments(text) == Segments("GSM-7", 150, 1)
    assert segments(text + " 🙂") == Segments("UCS-2", 153, 3)


# --- Emoji ----------------------------------------------------------------------------------


def test_strip_emoji_restores_gsm7():
    text = "Tack för dina svar 😊 Vi hörs snart!"
    assert segments(text).encoding == "UCS-2"
    stripped = strip_emoji(text)
    assert stripped == "Tack för dina svar Vi hörs snart!"
    assert segments(stripped).encoding == "GSM-7"


@pytest.mark.parametrize("text, expected", [
    ("Hej 😀 där", "Hej där"),
    ("😀 Hej", "Hej"),
    ("Hej 😀", "Hej"),
    ("Hej då 👋!", "Hej då!"),
    ("Hej 👨‍👩‍👧 där", "Hej där"),  # a ZWJ family, joiners and all
    ("Bra 👍🏽 jobbat", "Bra jobbat"),  # skin tone
    ("Hej från 🇸🇪 och 🏴󠁧󠁢󠁳󠁣󠁴󠁿.", "Hej från och."),  # flags, also a tag sequence
    ("Jag ❤️ dig", "Jag dig"),  # heart with the emoji selector
    ("Bra ✅ 🎉🎉 klart", "Bra klart"),
    ("Rad ett 😀\n😀 rad två", "Rad ett\nrad två"),
    ("Svara 1️⃣ eller 2️⃣", "Svara 1 eller 2"),  # keycaps keep their digit
    ("© 2026 Tala™", "© 2026 Tala™"),  # text symbols without the emoji selector stay
    ("a  b", "a  b"),  # spacing that no emoji left behind is not touched
])
def test_strip_emoji(text, expected):
    assert strip_emoji(text) == expected


@pytest.mark.parametrize("text", [ARABIC, PERSIAN, TIGRINYA, CYRILLIC, SOMALI, SWEDISH])
def test_strip_emoji_leaves_every_script_alone(text):
    assert strip_emoji(text) == text
    assert segments(text).encoding == ("GSM-7" if text in (SOMALI, SWEDISH) else "UCS-2")


@pytest.mark.parametrize("text", [ARABIC, PERSIAN, TIGRINYA])
def test_strip_emoji_in_other_scripts_removes_only_the_emoji(text):
    words = text.split(" ")
    with_emoji = " ".join(words[:2]) + " 🙂 " + " ".join(words[2:]) + " 🌟"
    assert strip_emoji(with_emoji) == text
    assert segments(strip_emoji(with_emoji)).encoding == "UCS-2"


def test_a_zwj_inside_a_word_is_not_an_emoji_joiner():
    text = "ه\u200dا"  # a joiner between two Arabic letters
    assert strip_emoji(text) == text


# --- fit_gsm7 -------------------------------------------------------------------------------


def test_fit_gsm7_replaces_typographic_quotes():
    text = "“Hur mår du?” frågade hon. ‘Bra’, sa han, „ja“."
    assert not is_gsm7(text)
    fitted = fit_gsm7(text)
    assert fitted == "\"Hur mår du?\" frågade hon. 'Bra', sa han, \"ja\"."
    assert is_gsm7(fitted)


def test_fit_gsm7_replaces_dashes_ellipsis_and_no_break_spaces():
    text = "Skala 1–5 — eller… vet\u00a0inte 😀"
    assert fit_gsm7(text) == "Skala 1-5 - eller... vet inte"
    assert segments(fit_gsm7(text)).encoding == "GSM-7"


def test_fit_gsm7_composes_decomposed_letters():
    text = "Ja\u0308ttebra, sa\u030a klart"  # ä and å as base letter + combining mark
    assert not is_gsm7(text)
    assert fit_gsm7(text) == "Jättebra, så klart"


@pytest.mark.parametrize("text", [
    "Ça va? Ça va, ça va bien.", "¿Qué tal? Está bien.", "Tamam, teşekkürler",
])
def test_fit_gsm7_never_drops_letters(text):
    assert fit_gsm7(text) == text
    assert segments(fit_gsm7(text)).encoding == "UCS-2"


def test_fit_gsm7_leaves_plain_gsm7_text_alone():
    text = "Hej! Vill du svara på några frågor? Svara 1-5. {paus} [stopp] 20 €"
    assert fit_gsm7(text) == text


# --- split_message --------------------------------------------------------------------------


def test_a_message_that_fits_is_returned_as_it_is():
    assert split_message(SWEDISH) == [SWEDISH]
    assert split_message("a" * 459, max_segments=3) == ["a" * 459]
    assert split_message("ж" * 70, max_segments=1) == ["ж" * 70]


def test_split_at_a_sentence_end_rather_than_a_later_space():
    first = "Hur har du det hemma med de vuxna du bor med och med dina syskon om du har några."
    second = "Berätta gärna mer om det som känns svårt eller bra, du bestämmer själv hur mycket."
    assert len(first) + 1 + len(second) > 160
    assert split_message(first + " " + second, max_segments=1) == [first, second]


def test_split_at_a_paragraph_break_rather_than_a_later_sentence_end():
    para = "Tack för att du svarade!"
    second = "Nu kommer några frågor om skolan. " * 3 + "Svara med en siffra från 1 till 5."
    parts = split_message(para + "\n" + second, max_segments=1)
    assert parts[0] == para
    assert parts[1].startswith("Nu kommer")
    assert all(segments(p).count == 1 for p in parts)


@pytest.mark.parametrize("sentence, end", [
    ("هل تشعر بالأمان في البيت مع الكبار الذين تعيش معهم كل يوم؟", "؟"),
    ("ኣብ ገዛ ምስቶም ምሳኻ ዝነብሩ ዓበይቲ ከመይ ኣለኻ ኣብ ቤት ትምህርቲ ድማ ከመይ ኣለኻ።", "።"),
])
def test_split_at_arabic_and_geez_sentence_ends(sentence, end):
    assert 40 < segments(sentence).units <= 67
    parts = split_message((sentence + " ") * 3, max_segments=1)
    assert parts == [sentence] * 3
    assert all(p.endswith(end) for p in parts)


def test_split_keeps_a_message_in_several_parts_within_three_segments():
    text = "\n".join([SWEDISH] * 12)
    parts = split_message(text)
    assert len(parts) == 3
    assert all(segments(p).count <= 3 for p in parts)
    assert "\n".join(parts) == text


def test_split_at_a_space_when_there_is_no_sentence_end():
    text = " ".join(["ord"] * 100)  # 399 characters, no punctuation
    parts = split_message(text, max_segments=1)
    assert all(segments(p).count == 1 for p in parts)
    assert all(p.split() == ["ord"] * len(p.split()) for p in parts)
    assert " ".join(parts) == text


def test_only_a_word_longer_than_a_message_is_cut():
    word = "x" * 400
    parts = split_message("Ett " + word + " slut", max_segments=1)
    assert parts[0] == "Ett"
    assert parts[1] == "x" * 160
    assert "".join(parts[1:-1]) + parts[-1].removesuffix(" slut") == word
    assert all(segments(p).count == 1 for p in parts)


def test_a_cut_word_keeps_each_letter_with_its_accent():
    word = "x" + "e\u0301" * 100  # é as e + combining acute: UCS-2, 201 units
    parts = split_message(word, max_segments=1)
    assert "".join(parts) == word
    assert all(segments(p).count == 1 for p in parts)
    assert not any(unicodedata.combining(p[0]) for p in parts)


def test_a_fitting_text_is_not_even_stripped():
    assert split_message(" Hej!\n") == [" Hej!\n"]


def test_split_rejects_zero_segments():
    with pytest.raises(ValueError):
        split_message("hej", max_segments=0)


WORDS = st.text(
    alphabet=st.sampled_from(list("abcdefghijklmnopqrstuvwxyzåäöÅÄÖé€[") + ["ж", "ሰ", "ك", "😀"]),
    min_size=1,
    max_size=12,
)
SENTENCES = st.builds(
    lambda words, end: " ".join(words) + end,
    st.lists(WORDS, min_size=1, max_size=15),
    st.sampled_from([".", "!", "?", "؟", "።", ",", ""]),
)
TEXTS = st.lists(
    st.tuples(SENTENCES, st.sampled_from([" ", " ", "\n", "\n\n", "  "])),
    min_size=1,
    max_size=25,
).map(lambda pairs: "".join(s + sep for s, sep in pairs).strip())


@settings(max_examples=300, deadline=None)
@given(text=TEXTS, max_segments=st.integers(min_value=1, max_value=4))
def test_split_never_exceeds_the_limit_nor_loses_a_word(text, max_segments):
    parts = split_message(text, max_segments)
    assert all(segments(p).count <= max_segments for p in parts)
    assert " ".join(parts).split() == text.split()
    if len(parts) > 1:
        assert all(p and p == p.strip() for p in parts)
    if segments(text).count <= max_segments:
        assert parts == [text]


@settings(max_examples=200, deadline=None)
@given(bodies=st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"))
                               | st.sampled_from("\n\r\t&<>\"'"), max_size=80), max_size=4))
def test_twiml_written_directly_is_what_twilios_library_writes(bodies):
    from twilio.twiml.messaging_response import MessagingResponse

    from bot.server import _twiml

    expected = MessagingResponse()
    for body in bodies:
        expected.message(body)
    assert _twiml(bodies).text == str(expected)


def test_twiml_drops_what_xml_does_not_allow():
    import xml.etree.ElementTree as ET

    from bot.server import _twiml

    text = _twiml(["mina svar: a\x00b\x1bc\ufffe"]).text
    assert ET.fromstring(text.encode()).find("Message").text == "mina svar: abc"
