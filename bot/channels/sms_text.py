"""What a text costs as SMS, and how to keep it cheap without losing a word.

Every SMS segment is billed, so message length is a cost figure. A message whose characters
are all in the GSM 03.38 default alphabet (Swedish å ä ö é included) is sent as GSM-7: 160
septets in a single message, 153 per segment once it has to be concatenated (the user data
header takes the rest). One character outside that alphabet - an emoji, a typographic quote,
any letter of Arabic, Persian, Tigrinya - turns the whole message into UCS-2: 70 UTF-16 code
units in a single message, 67 per concatenated segment.

This module is pure (no I/O):

- `segments` counts encoding, units and segments the way a handset or carrier splits the text
  (an escaped GSM-7 character or a UTF-16 surrogate pair is never split across segments).
- `strip_emoji` and `fit_gsm7` remove what needlessly makes a Latin-script message UCS-2,
  and never touch letters of any script.
- `split_message` cuts a long text into separate messages of at most a few segments each, at
  paragraph breaks first, then sentence ends, then spaces.

National language shift tables (3GPP TS 23.038, e.g. Turkish, Spanish, Portuguese) are not
used: they are not reliably supported end to end, so a text is either default-alphabet GSM-7
or UCS-2.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass
from typing import Callable, Literal

__all__ = [
    "GSM7_BASIC",
    "GSM7_EXTENDED",
    "GSM7_SINGLE",
    "GSM7_CONCAT",
    "UCS2_SINGLE",
    "UCS2_CONCAT",
    "Encoding",
    "Segments",
    "is_gsm7",
    "segments",
    "strip_emoji",
    "fit_gsm7",
    "split_message",
]

# --- The GSM 03.38 default alphabet (3GPP TS 23.038, section 6.2.1) ----------------------------

# The 128 positions of the basic table, row by row (0x00-0x7F). Position 0x1B is the escape to
# the extension table, not a character, and is written here as "\x1b" only to keep the rows
# aligned; it is removed below. Note 0x09 is the CAPITAL Ç (a lowercase ç is not in the set),
# and 0x24 is the currency sign ¤, while $ sits at 0x02.
_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(_BASIC_TABLE) == 128

GSM7_BASIC: frozenset[str] = frozenset(_BASIC_TABLE) - {"\x1b"}
"""The 127 characters of the GSM 03.38 basic table: one septet each."""

GSM7_EXTENDED: frozenset[str] = frozenset("\f^{}\\[~]|€")
"""The extension table reached through the escape septet: two septets each."""

_GSM7_ALL = GSM7_BASIC | GSM7_EXTENDED

GSM7_SINGLE = 160
"""Septets in a GSM-7 message that fits in one segment."""
GSM7_CONCAT = 153
"""Septets per segment of a concatenated GSM-7 message."""
UCS2_SINGLE = 70
"""UTF-16 code units in a UCS-2 message that fits in one segment."""
UCS2_CONCAT = 67
"""UTF-16 code units per segment of a concatenated UCS-2 message."""

Encoding = Literal["GSM-7", "UCS-2"]


def is_gsm7(text: str) -> bool:
    """True when every character of `text` is in the GSM-7 basic or extension table."""
    return _GSM7_ALL.issuperset(text)


# --- Segments -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segments:
    """How a text goes out as SMS.

    `units` is septets for GSM-7 (an extension character counts 2) and UTF-16 code units for
    UCS-2 (a character outside the Basic Multilingual Plane, like most emoji, counts 2).
    `count` is the number of billed segments; the empty text is 0 segments (nothing is sent).
    """

    encoding: Encoding
    units: int
    count: int


def _septets(c: str) -> int:
    return 2 if c in GSM7_EXTENDED else 1


def _utf16_units(c: str) -> int:
    return 2 if ord(c) > 0xFFFF else 1


def _count(costs: list[int], single: int, concat: int) -> int:
    """Segments for characters of these costs: one if all fit in `single` units, else packed
    into `concat`-unit segments without ever splitting one character across two."""
    total = sum(costs)
    if total == 0:
        return 0
    if total <= single:
        return 1
    count, used = 1, 0
    for cost in costs:
        if used + cost > concat:
            count += 1
            used = 0
        used += cost
    return count


def segments(text: str) -> Segments:
    """Encoding, length in units and number of segments of `text` sent as one SMS.

    >>> segments("Hur mår du?")
    Segments(encoding='GSM-7', units=11, count=1)
    >>> segments("ሰላም")
    Segments(encoding='UCS-2', units=3, count=1)
    """
    if is_gsm7(text):
        units = len(text) + sum(text.count(c) for c in GSM7_EXTENDED)
        if units <= GSM7_SINGLE:  # most replies: no need to look at each character
            return Segments("GSM-7", units, 1 if units else 0)
        costs = [_septets(c) for c in text]
        return Segments("GSM-7", units, _count(costs, GSM7_SINGLE, GSM7_CONCAT))
    costs = [_utf16_units(c) for c in text]
    return Segments("UCS-2", sum(costs), _count(costs, UCS2_SINGLE, UCS2_CONCAT))


# --- Emoji ----------------------------------------------------------------------------------

# After Unicode's Extended_Pictographic property (emoji-data.txt). These are pictographs
# whatever follows them.
_PICTOGRAPHS = (
    "\u231a-\u231b\u2328\u2388\u23cf\u23e9-\u23f3\u23f8-\u23fa"
    "\u2600-\u2605\u2607-\u2612\u2614-\u2685\u2690-\u2705\u2708-\u2712\u2714\u2716\u271d"
    "\u2721\u2728\u2733-\u2734\u2744\u2747\u274c\u274e\u2753-\u2755\u2757\u2763-\u2767"
    "\u2795-\u2797\u27a1\u27b0\u27bf"
    "\u2b05-\u2b07\u2b1b-\u2b1c\u2b50\u2b55"
    # Mahjong and playing cards .. Symbols and Pictographs Extended-A: includes the regional
    # indicators (flags) and the skin-tone modifiers.
    "\U0001f000-\U0001faff"
    "\U0001fc00-\U0001fffd"
)
# Extended_Pictographic characters that are ordinary text symbols unless followed by the
# emoji presentation selector U+FE0F: © ® ‼ ⁉ ™ ℹ arrows, squares, ... "©" stays, "©️" goes.
_TEXT_SYMBOLS = (
    "\u00a9\u00ae\u203c\u2049\u2122\u2139\u2194-\u2199\u21a9-\u21aa\u24c2"
    "\u25aa-\u25ab\u25b6\u25c0\u25fb-\u25fe\u2934-\u2935\u3030\u303d\u3297\u3299"
)
# What may trail an emoji: presentation selectors, the keycap mark, tags (subdivision flags).
_TRAIL = "\ufe0e\ufe0f\u20e3\U000e0020-\U000e007f"
_ZWJ = "\u200d"

_ELEMENT = f"(?:[{_PICTOGRAPHS}]|[{_TEXT_SYMBOLS}]\ufe0f)[{_TRAIL}]*"
# A ZWJ sequence (family, profession, ...), with a stray joiner on either side taken along.
_CLUSTER = f"{_ZWJ}?{_ELEMENT}(?:{_ZWJ}{_ELEMENT})*{_ZWJ}?"
# Emoji separated only by spaces go together, with the spaces around them.
_EMOJI_RUN = re.compile(f"([ \t]*)(?:{_CLUSTER})(?:[ \t]*(?:{_CLUSTER}))*([ \t]*)")
# Punctuation that closes what comes before it, so no space goes before it.
_CLOSING = frozenset(
    ".,!?;:)]}\u00bb\u201d\u2019\u2026"  # » ” ’ …
    "\u061f\u060c\u061b\u06d4"  # Arabic ؟ ، ؛ and Urdu ۔
    "\u1362\u1363\u1364\u1367"  # Ge'ez ። ፣ ፤ ፧
)
# Left behind on their own, e.g. by the keycap "1️⃣" (1 + U+FE0F + U+20E3), which becomes "1".
_LEFTOVERS = re.compile(f"[{_TRAIL}\U000e0001]")


def _drop_run(m: re.Match[str]) -> str:
    text, start, end = m.string, m.start(), m.end()
    at_line_start = start == 0 or text[start - 1] in "\r\n"
    at_line_end = end == len(text) or text[end] in "\r\n"
    if at_line_start or at_line_end:
        return ""
    if text[end] in _CLOSING:  # "Hej då 👋!" -> "Hej då!"
        return ""
    # Between two words: one space where there was space, nothing where there was none.
    return " " if m.group(1) or m.group(2) else ""


def strip_emoji(text: str) -> str:
    """Remove emoji and pictographs from `text`, with their skin tones, joiners and
    presentation selectors, and the double space each leaves between words.

    Letters of every script, zero-width joiners and non-joiners inside words (Persian, Arabic),
    and spacing elsewhere are left as they are. A keycap emoji keeps its digit ("1️⃣" -> "1").
    Text symbols like © and ™ are kept unless written with the emoji selector U+FE0F.
    """
    return _LEFTOVERS.sub("", _EMOJI_RUN.sub(_drop_run, text))


# --- Fitting Latin-script text into GSM-7 ----------------------------------------------------

_TYPOGRAPHY = str.maketrans({
    "\u201c": '"',  # “
    "\u201d": '"',  # ”
    "\u201e": '"',  # „
    "\u201f": '"',  # ‟
    "\u2018": "'",  # ‘
    "\u2019": "'",  # ’
    "\u201a": "'",  # ‚
    "\u201b": "'",  # ‛
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2013": "-",  # en dash
    "\u2014": "-",  # em dash
    "\u2015": "-",  # horizontal bar
    "\u2026": "...",  # …
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space
    "\u2009": " ",  # thin space
})


def fit_gsm7(text: str) -> str:
    """Make a message in a Latin-script language GSM-7 where only typography stands in the way.

    Composes decomposed letters (a + combining ring -> å, as text copied from some editors
    arrives), replaces typographic quotes, dashes, the ellipsis and no-break spaces with their
    plain equivalents, and strips emoji. Everything else is left unchanged: a text that still
    has a letter outside GSM-7 (á, ç, ğ, ...) simply goes out as UCS-2; no letter is dropped.
    """
    return strip_emoji(unicodedata.normalize("NFC", text).translate(_TYPOGRAPHY))


# --- Splitting a long text into several messages ----------------------------------------------

# A sentence ends at . ! ? (also the Arabic ؟, the Urdu ۔, the Ge'ez ። and ፧), possibly
# followed by closing quotes or brackets, before white space.
_SENTENCE_END = re.compile("[.!?\u061f\u06d4\u1362\u1367]+[\"')\\]\u201d\u2019\u00bb]*(?=\\s)")


def _last_fitting(text: str, pos: int, cands: list[int],
                  fits: Callable[[str], bool]) -> int | None:
    """The furthest break in `cands` (sorted) after `pos` with text[pos:break] fitting."""
    lo, hi = bisect_right(cands, pos), len(cands)
    best: int | None = None
    while lo < hi:  # the count only grows as the piece grows
        mid = (lo + hi) // 2
        if fits(text[pos:cands[mid]].strip()):
            best, lo = cands[mid], mid + 1
        else:
            hi = mid
    return best


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def split_message(text: str, max_segments: int = 3, max_chars: int | None = None) -> list[str]:
    """Split `text` into separate messages of at most `max_segments` segments each (or, with
    `max_chars`, of at most that many characters: WhatsApp counts no segments).

    A text that already fits is returned as it is, `[text]`. Otherwise each message takes as
    much as fits, ending at a paragraph break (a newline) if one fits, else at the end of a
    sentence, else at a space; the white space at the break is dropped and each message is
    stripped, so the words of the messages, in order, are the words of `text`. A word longer
    than a whole message is the only thing ever cut, as late as possible.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")

    def fits(piece: str) -> bool:
        return len(piece) <= max_chars if max_chars else segments(piece).count <= max_segments

    if fits(text):
        return [text]

    levels = [
        [i for i, c in enumerate(text) if c == "\n"],
        [m.end() for m in _SENTENCE_END.finditer(text)],
        [i for i, c in enumerate(text) if c.isspace()],
    ]
    parts: list[str] = []
    pos = _skip_space(text, 0)
    while pos < len(text):
        rest = text[pos:].strip()
        if fits(rest):
            parts.append(rest)
            break
        end = next(
            (b for cands in levels if (b := _last_fitting(text, pos, cands, fits))),
            None,
        )
        if end is None:  # one word longer than a message: cut it
            end = _last_fitting(text, pos, list(range(pos + 1, len(text))), fits)
            assert end is not None  # one character always fits one segment
            while end > pos + 1 and unicodedata.combining(text[end]):
                end -= 1  # keep a letter with its accents
        parts.append(text[pos:end].strip())
        pos = _skip_space(text, end)
    return parts
