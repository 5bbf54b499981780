"""An A4 poster for an anonymous school survey (a campaign), for a classroom wall.

`make_poster(campaign, sms_number=..., telegram_link=..., catalogs=..., out=...)` draws the
poster with Pillow at 300 dpi (2480 x 3508 px) and saves it as a PNG, or as a one-page PDF of
that picture (Pillow's PDF writer: one 595 x 842 pt page holding the image, JPEG quality 95;
the text is pixels, not selectable text).

What it says, first in Swedish and large: a heading; "Skicka ordet" with the keyword in very
large letters in a text bubble and "till 070-123 45 67" under it (only when there is an SMS
number); a QR code of the Telegram link with "eller skanna koden för Telegram" (only when there
is a link); that the pupil is anonymous; the dates it is open. Then the same sentences in each
other language of the campaign, each language in its own box. Every sentence is a msgid below,
marked with N_ for `pybabel extract -k N_`, and goes through the catalogs: a missing
translation is Swedish for that sentence. A language with none of the poster's sentences
translated is left out (logged), rather than shown as Swedish under its own name;
`untranslated(langs, catalogs)` tells which languages those are.

Text is laid out by Pillow's raqm engine (HarfBuzz shapes, so Arabic and Persian letters
join; FriBiDi orders right-to-left text). No one font has every script, so a line is cut into
runs by the font that has the glyphs (Noto Sans for Latin and Cyrillic, Noto Sans Arabic,
Noto Sans Ethiopic for Tigrinya), each run is shaped on its own, and the runs are put in
visual order with the Unicode bidi rule L2 (the keyword or a Latin word inside an Arabic
sentence stays left-to-right in its place). Inserted values (keyword, number, dates) get
no-break spaces, so "070-123 45 67" is never wrapped or reordered in the middle.

Fonts are found by file name under /usr/share/fonts and /usr/local/share/fonts, tried in the
order of FONT_FILES. On Debian: fonts-noto-core has all of them (Noto Sans, Noto Sans Arabic,
Noto Sans Ethiopic, with bold); fonts-dejavu-core (Latin, Cyrillic, Arabic) and
fonts-sil-abyssinica (Ethiopic) are used instead when it is missing. A character that none of
the installed fonts has raises PosterError naming the character and the packages. Which
characters a font has is read with fontTools (installed with matplotlib).

Pillow's wheels bundle raqm and HarfBuzz but load FriBiDi from the system (Debian:
libfribidi0): without it, a poster with Arabic-script text raises PosterError; one without is
laid out by Pillow's basic engine.
"""

from __future__ import annotations

import logging
import re
import string
import unicodedata
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Callable, Protocol, Sequence

import phonenumbers
import qrcode
from babel import Locale
from babel.dates import format_date, format_skeleton
from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont, features

from flows.i18n import SOURCE_LANG, Catalogs, N_

log = logging.getLogger(__name__)

# Translators: the heading of a poster on a classroom wall inviting pupils to an anonymous
# survey. Short and friendly.
HEADING = N_("Vad tycker du? Berätta för oss!")
# Translators: poster. {keyword} is the word to text (like SKOLA8), {number} the phone number
# to text it to. Keep both.
SEND_KEYWORD = N_("Skicka ordet {keyword} till {number}")
# Translators: poster, under the line above, next to a QR code that opens the survey in
# Telegram.
OR_SCAN = N_("eller skanna koden för Telegram")
# Translators: poster with no SMS number: the QR code is the only way in.
SCAN = N_("Skanna koden för Telegram")
# Translators: poster. The survey is anonymous.
ANONYMOUS = N_("Du är anonym: ingen kan se vad just du svarar, och ditt nummer raderas när du "
               "är klar.")
# Translators: poster. {opens} and {closes} are dates ("3 mars", "21 mars 2026"); both days
# are included.
OPEN_DATES = N_("Du kan svara från {opens} till {closes}.")

POSTER_MSGIDS = (HEADING, SEND_KEYWORD, OR_SCAN, SCAN, ANONYMOUS, OPEN_DATES)

DPI = 300
A4_PX = (2480, 3508)  # 210 x 297 mm at 300 dpi
MARGIN = 140

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))
# (regular, bold) font files, tried in this order for each character.
FONT_FILES: tuple[tuple[str, str | None], ...] = (
    ("NotoSans-Regular.ttf", "NotoSans-Bold.ttf"),  # fonts-noto-core
    ("NotoSansArabic-Regular.ttf", "NotoSansArabic-Bold.ttf"),  # fonts-noto-core
    ("NotoSansEthiopic-Regular.ttf", "NotoSansEthiopic-Bold.ttf"),  # fonts-noto-core
    ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"),  # fonts-dejavu-core
    ("AbyssinicaSIL-Regular.ttf", None),  # fonts-sil-abyssinica
)
FONT_PACKAGES = "fonts-noto-core (or fonts-dejavu-core and fonts-sil-abyssinica)"

INK, MUTED, WHITE = "#1a1a1a", "#555555", "#ffffff"
ACCENT = "#0a5c99"
BUBBLE = "#ffe27a"
CELL = "#f1f4f8"
# Okabe-Ito colours (told apart with colour blindness), one per language box.
LANG_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")

NBSP = "\u00a0"
_STRONG = ("L", "R", "AL")


class PosterError(RuntimeError):
    """The poster cannot be drawn on this machine (a font or the text layout is missing)."""


class CampaignLike(Protocol):
    name: str
    keyword: str
    opens: date
    closes: date
    langs: list


# ------------------------------------------------------------------ fonts

@dataclass(frozen=True)
class _Face:
    regular: Path
    bold: Path | None
    cmap: frozenset[int]

    def has(self, ch: str) -> bool:
        return ord(ch) in self.cmap


@lru_cache(maxsize=1)
def _faces() -> tuple[_Face, ...]:
    """The fonts of FONT_FILES that are installed, in that order."""
    wanted = {name for pair in FONT_FILES for name in pair if name}
    found: dict[str, Path] = {}
    for root in FONT_DIRS:
        if root.is_dir():
            for path in sorted(root.rglob("*.[ot]tf")):
                if path.name in wanted and path.name not in found:
                    found[path.name] = path
    faces = []
    for regular, bold in FONT_FILES:
        if regular in found:
            with TTFont(found[regular], lazy=True) as ft:
                cmap = frozenset(ft.getBestCmap())
            faces.append(_Face(found[regular], found.get(bold) if bold else None, cmap))
    return tuple(faces)


def font_for(ch: str, *, bold: bool = False) -> Path:
    """The font file the poster draws the letter `ch` with: the first of FONT_FILES that is
    installed and has it. Raises PosterError when none has it."""
    for face in _faces():
        if face.has(ch):
            return face.bold if bold and face.bold else face.regular
    name = unicodedata.name(ch, f"U+{ord(ch):04X}")
    raise PosterError(f"No font has the character {ch!r} ({name}): install the Debian "
                      f"package {FONT_PACKAGES}.")


def _raqm() -> bool:
    return bool(features.check_feature("raqm"))


@lru_cache(maxsize=512)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    engine = ImageFont.Layout.RAQM if _raqm() else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(path), size, layout_engine=engine)


# ------------------------------------------------------------------ styled text and lines

@dataclass(frozen=True)
class _Text:
    """Text with a bold flag per character (the values put into a sentence are bold)."""

    text: str
    bold: tuple[bool, ...]

    @classmethod
    def plain(cls, text: str, bold: bool = False) -> "_Text":
        return cls(text, (bold,) * len(text))

    def __getitem__(self, key: slice) -> "_Text":
        return _Text(self.text[key], self.bold[key])


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _fill_in(template: str, values: dict[str, str], *, bold: bool = False) -> _Text:
    """`template.format(**values)`, with the values bold and their spaces no-break."""
    text: list[str] = []
    mask: list[bool] = []
    for literal, name, spec, conv in string.Formatter().parse(template):
        if literal[:1] == "." and text and text[-1].endswith("."):
            literal = literal[1:]  # "20 березня 2026 р." + "." -> one full stop
        text.append(literal)
        mask.extend([bold] * len(literal))
        if name is not None:
            if conv or name not in values:
                raise KeyError(name)
            value = format(values[name], spec or "").replace(" ", NBSP)
            text.append(value)
            mask.extend([True] * len(value))
    return _Text("".join(text), tuple(mask))


@dataclass
class _Run:
    text: str
    font: ImageFont.FreeTypeFont
    direction: str  # "ltr" | "rtl"
    width: float


@dataclass
class _Line:
    runs: list[_Run]  # in visual order, left to right
    lang: str
    ascent: float
    descent: float

    @property
    def width(self) -> float:
        return sum(r.width for r in self.runs)


def _char_dir(ch: str) -> str | None:
    cls = unicodedata.bidirectional(ch)
    return "rtl" if cls in ("R", "AL") else "ltr" if cls == "L" else None


def _directions(text: str, rtl: bool) -> list[str | None]:
    """Each character's strong direction, or None for a neutral one. European digits count
    as left to right after a Latin letter (bidi rule W7: SKOLA8 stays one word)."""
    out: list[str | None] = []
    last = "rtl" if rtl else "ltr"
    for ch in text:
        d = _char_dir(ch)
        if d:
            last = d
        elif unicodedata.bidirectional(ch) == "EN" and last == "ltr" and out and out[-1]:
            d = "ltr"
        out.append(d)
    return out


class _Typesetter:
    """Cuts text into runs by font and direction, measures, wraps and draws it."""

    def __init__(self) -> None:
        self.faces = _faces()
        if not self.faces:
            raise PosterError("No font for the poster: install the Debian package "
                              f"{FONT_PACKAGES} (looked in {', '.join(map(str, FONT_DIRS))}).")
        self.raqm = _raqm()

    def _face_for(self, ch: str, lang: str) -> int:
        for i, face in enumerate(self.faces):
            if face.has(ch):
                return i
        name = unicodedata.name(ch, f"U+{ord(ch):04X}")
        raise PosterError(f"No font has the character {ch!r} ({name}) in the '{lang}' text: "
                          f"install the Debian package {FONT_PACKAGES}.")

    def _assign(self, text: str, dirs: list[str | None], rtl: bool, lang: str) -> list[int]:
        """A font per character: a letter takes the first font that has it (digits after a
        Latin letter, as in SKOLA8, the letter's); anything else (spaces, punctuation) the
        font of the letters around it, if it has it."""
        faces, out = self.faces, [-1] * len(text)
        for i, ch in enumerate(text):
            cls = unicodedata.bidirectional(ch)
            if cls in _STRONG:
                out[i] = self._face_for(ch, lang)
            elif dirs[i] and i and out[i - 1] >= 0 and faces[out[i - 1]].has(ch):
                out[i] = out[i - 1]  # a digit that goes with the word before it
            elif cls == "NSM" and i and out[i - 1] >= 0 and faces[out[i - 1]].has(ch):
                out[i] = out[i - 1]
        want = "rtl" if rtl else "ltr"
        strong = [(i, out[i]) for i in range(len(text)) if out[i] >= 0]
        primary = next((f for i, f in strong if dirs[i] == want),
                       strong[0][1] if strong else 0)
        for i, ch in enumerate(text):
            if out[i] >= 0:
                continue
            prev = next((out[j] for j in range(i - 1, -1, -1) if dirs[j]), None)
            nxt = next((out[j] for j in range(i + 1, len(text)) if dirs[j]), None)
            tries = ([prev] if prev is not None and prev == nxt else []) + [primary, prev, nxt]
            pick = next((f for f in tries if f is not None and f >= 0 and faces[f].has(ch)),
                        None)
            out[i] = pick if pick is not None else self._face_for(ch, lang)
        return out

    def _measure(self, text: str, font: ImageFont.FreeTypeFont, direction: str,
                 lang: str) -> float:
        if self.raqm:
            return font.getlength(text, direction=direction, language=lang)
        return font.getlength(text)

    def line(self, text: _Text, rtl: bool, size: int, lang: str) -> _Line:
        s = text.text
        if not self.raqm and any(_char_dir(ch) == "rtl" for ch in s):
            raise PosterError("Pillow cannot lay out right-to-left text here (no raqm): "
                              "install the Debian package libfribidi0 (Pillow's wheels load "
                              "FriBiDi from the system), or libraqm0.")
        dirs = _directions(s, rtl)
        faces = self._assign(s, dirs, rtl, lang)
        # Runs of one font and one weight, in logical order.
        pieces: list[tuple[str, int, bool]] = []
        for ch, face, bold in zip(s, faces, text.bold, strict=True):
            if pieces and pieces[-1][1] == face and pieces[-1][2] == bold:
                pieces[-1] = (pieces[-1][0] + ch, face, bold)
            else:
                pieces.append((ch, face, bold))
        para = "rtl" if rtl else "ltr"
        run_dirs: list[str | None] = []
        at = 0
        for chunk, _, _ in pieces:
            found = {d for d in dirs[at:at + len(chunk)] if d}
            at += len(chunk)
            run_dirs.append(found.pop() if len(found) == 1 else para if found else None)
        for i, d in enumerate(run_dirs):  # a neutral run between two of one direction takes it
            if d is None:
                before = next((x for x in reversed(run_dirs[:i]) if x), None)
                after = next((x for x in run_dirs[i + 1:] if x), None)
                run_dirs[i] = before if before and before == after else para
        base = 1 if rtl else 0
        levels = [base if d == para else base + 1 for d in run_dirs]
        runs, ascent, descent = [], 0.0, 0.0
        for (chunk, face, bold), d in zip(pieces, run_dirs, strict=True):
            f = self.faces[face]
            font = _font(f.bold if bold and f.bold else f.regular, size)
            asc, desc = font.getmetrics()
            ascent, descent = max(ascent, asc), max(descent, desc)
            runs.append(_Run(chunk, font, d or para, self._measure(chunk, font, d or para,
                                                                   lang)))
        # Unicode bidi rule L2: from the highest level down to the lowest odd one, reverse
        # every stretch of runs at that level or higher.
        order = list(zip(runs, levels, strict=True))
        if order:
            odd = [lv for lv in levels if lv % 2]
            for level in range(max(levels), min(odd) - 1 if odd else max(levels) + 1, -1):
                i = 0
                while i < len(order):
                    if order[i][1] >= level:
                        j = i
                        while j < len(order) and order[j][1] >= level:
                            j += 1
                        order[i:j] = order[i:j][::-1]
                        i = j
                    else:
                        i += 1
        # Tall Arabic metrics leave too much room: keep the line spacing near the text's.
        ascent, descent = min(ascent, 1.12 * size), min(descent, 0.42 * size)
        return _Line([r for r, _ in order], lang, ascent, descent)

    def wrap(self, text: _Text, rtl: bool, size: int, lang: str, width: float) -> list[_Line]:
        """Greedy wrapping at spaces (no-break spaces hold); a word wider than `width` gets
        a line of its own."""
        lines = []
        for part in _split_lines(text):
            words = [(m.start(), m.end()) for m in re.finditer(r"[^ ]+", part.text)]
            if not words:
                continue
            start, end = words[0]
            for w_start, w_end in words[1:]:
                if self.line(part[start:w_end], rtl, size, lang).width <= width:
                    end = w_end
                else:
                    lines.append(self.line(part[start:end], rtl, size, lang))
                    start, end = w_start, w_end
            lines.append(self.line(part[start:end], rtl, size, lang))
        return lines

    def draw(self, draw: ImageDraw.ImageDraw, line: _Line, x: float, baseline: float,
             fill: str) -> None:
        for run in line.runs:
            if self.raqm:
                draw.text((x, baseline), run.text, font=run.font, fill=fill, anchor="ls",
                          direction=run.direction, language=line.lang)
            else:
                draw.text((x, baseline), run.text, font=run.font, fill=fill, anchor="ls")
            x += run.width


def _split_lines(text: _Text) -> list[_Text]:
    out, start = [], 0
    for i, ch in enumerate(text.text + "\n"):
        if ch == "\n":
            out.append(text[start:i])
            start = i + 1
    return out


# ------------------------------------------------------------------ blocks laid out top down

Draw = Callable[[ImageDraw.ImageDraw, float, float], None]  # (draw, left x, top y)


@dataclass
class _Block:
    height: float
    paint: Draw


@dataclass
class _Para:
    """Wrapped lines, aligned in a box `width` wide (right-aligned when right to left)."""

    ts: _Typesetter
    lines: list[_Line]
    width: float
    size: int
    fill: str
    align: str  # left | right | center
    leading: float = 1.02

    def _advance(self) -> float:
        return max((ln.ascent + ln.descent for ln in self.lines), default=0) * self.leading

    @property
    def height(self) -> float:
        if not self.lines:
            return 0
        first = self.lines[0]
        return self._advance() * (len(self.lines) - 1) + first.ascent + first.descent

    @property
    def widest(self) -> float:
        return max((ln.width for ln in self.lines), default=0)

    def paint(self, draw: ImageDraw.ImageDraw, x: float, y: float) -> None:
        baseline = y + (self.lines[0].ascent if self.lines else 0)
        for ln in self.lines:
            dx = {"left": 0, "right": self.width - ln.width,
                  "center": (self.width - ln.width) / 2}[self.align]
            self.ts.draw(draw, ln, x + dx, baseline, self.fill)
            baseline += self._advance()

    def block(self) -> _Block:
        return _Block(self.height, self.paint)


def _para(ts: _Typesetter, text: _Text, lang: str, rtl: bool, size: int, width: float, *,
          fill: str = INK, align: str | None = None) -> _Para:
    lines = ts.wrap(text, rtl, size, lang, width)
    return _Para(ts, lines, width, size, fill, align or ("right" if rtl else "left"))


def _fit_para(ts: _Typesetter, text: _Text, lang: str, rtl: bool, size: int, width: float,
              *, max_lines: int, fill: str = INK, align: str = "center") -> _Para:
    """The largest size up to `size` at which the text fits in `max_lines` lines."""
    while True:
        para = _para(ts, text, lang, rtl, size, width, fill=fill, align=align)
        if size <= 12 or (len(para.lines) <= max_lines and para.widest <= width):
            return para
        size = int(size * 0.94)


def _gap(height: float) -> _Block:
    return _Block(height, lambda draw, x, y: None)


def _stack(blocks: Sequence[_Block]) -> _Block:
    def paint(draw: ImageDraw.ImageDraw, x: float, y: float) -> None:
        for b in blocks:
            b.paint(draw, x, y)
            y += b.height
    return _Block(sum(b.height for b in blocks), paint)


# ------------------------------------------------------------------ what the poster says

def format_sms_number(number: str, region: str = "SE") -> str:
    """A number as people in Sweden write it: +46 70 123 45 67 -> 070-123 45 67; a foreign
    number in the international form; a short code or anything unparsable as given."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number.strip()
    if not phonenumbers.is_valid_number(parsed):
        return number.strip()
    if phonenumbers.region_code_for_number(parsed) == region:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _dates(lang: str, opens: date, closes: date) -> dict[str, str]:
    try:
        Locale.parse(lang)
    except (ValueError, LookupError):
        return {"opens": opens.isoformat(), "closes": closes.isoformat()}
    first = (format_skeleton("MMMMd", opens, locale=lang) if opens.year == closes.year
             else format_date(opens, "long", locale=lang))
    return {"opens": first, "closes": format_date(closes, "long", locale=lang)}


def untranslated(langs: Sequence[str], catalogs: Catalogs) -> list[str]:
    """The languages (other than Swedish) with none of the poster's sentences translated:
    the poster leaves them out."""
    return [lang for lang in langs if lang != SOURCE_LANG and (
        not catalogs.has(lang)
        or all(catalogs.gettext(lang, m) == m for m in POSTER_MSGIDS))]


@dataclass
class _Says:
    """One language's sentences, values filled in."""

    lang: str
    rtl: bool
    heading: _Text
    send: _Text | None
    scan: _Text | None
    anonymous: _Text
    dates: _Text


def _says(catalogs: Catalogs, lang: str, campaign: CampaignLike, number: str | None,
          has_link: bool) -> _Says:
    values = {"keyword": campaign.keyword.upper(), "number": number or "",
              **_dates(lang, campaign.opens, campaign.closes)}

    def say(msgid: str, *, bold: bool = False) -> _Text:
        text = catalogs.gettext(lang, msgid)
        try:
            if _fields(text) == _fields(msgid):
                return _fill_in(text, values, bold=bold)
        except (KeyError, IndexError, ValueError):
            pass
        # A translation that lost {number} would send nobody anywhere: Swedish instead.
        log.warning("poster: the %s translation of %r has other placeholders than the "
                    "Swedish; using the Swedish", lang, msgid)
        return _fill_in(msgid, values, bold=bold)

    return _Says(lang, catalogs.rtl(lang), say(HEADING, bold=True),
                 say(SEND_KEYWORD) if number else None,
                 (say(OR_SCAN if number else SCAN)) if has_link else None,
                 say(ANONYMOUS), say(OPEN_DATES))


# ------------------------------------------------------------------ the parts of the poster

def _qr_matrix(link: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(link)
    qr.make(fit=True)
    return qr.get_matrix()  # with the 4-module quiet zone


def _qr_block(matrix: list[list[bool]], target: float) -> _Block:
    n = len(matrix)
    module = max(3, int(target // n))

    def paint(draw: ImageDraw.ImageDraw, x: float, y: float) -> None:
        x, y = int(x), int(y)
        draw.rectangle((x, y, x + n * module - 1, y + n * module - 1), fill=WHITE)
        for r, row in enumerate(matrix):
            for c, dark in enumerate(row):
                if dark:
                    draw.rectangle((x + c * module, y + r * module, x + (c + 1) * module - 1,
                                    y + (r + 1) * module - 1), fill="#000000")
    return _Block(n * module, paint)


def _centered(block: _Block, block_width: float, width: float) -> _Block:
    return _Block(block.height,
                  lambda draw, x, y: block.paint(draw, x + (width - block_width) / 2, y))


def _keyword_bubble(ts: _Typesetter, keyword: str, width: float, scale: float) -> _Block:
    """The keyword in very large letters in a text-message bubble."""
    height, pad, tail = 560 * scale, 70 * scale, 90 * scale
    size = int(470 * scale)
    text = _Text.plain(keyword, bold=True)
    line = ts.line(text, False, size, SOURCE_LANG)
    while line.width > width - 2 * pad and size > 40:
        size = int(size * 0.95)
        line = ts.line(text, False, size, SOURCE_LANG)
    bubble_w = min(width, line.width + 2 * pad + 80 * scale)
    outline = max(6, int(12 * scale))

    def paint(draw: ImageDraw.ImageDraw, x: float, y: float) -> None:
        x0 = x + (width - bubble_w) / 2
        x1, y1 = x0 + bubble_w, y + height
        draw.rounded_rectangle((x0, y, x1, y1), radius=int(110 * scale), fill=BUBBLE,
                               outline=INK, width=outline)
        a, b, tip = x1 - 330 * scale, x1 - 170 * scale, (x1 - 110 * scale, y1 + tail)
        draw.polygon([(a, y1 - outline), (b, y1 - outline), tip], fill=BUBBLE)
        draw.line([(a, y1 - outline / 2), tip, (b, y1 - outline / 2)], fill=INK, width=outline,
                  joint="curve")
        # The keyword's capitals sit in the middle of the bubble.
        cap = ts.line(_Text.plain("H", bold=True), False, size, SOURCE_LANG)
        _, top, _, bottom = cap.runs[0].font.getbbox("H", anchor="ls")
        baseline = y + height / 2 - (top + bottom) / 2
        ts.draw(draw, line, x0 + (bubble_w - line.width) / 2, baseline, INK)
    return _Block(height + tail, paint)


def _hero(ts: _Typesetter, sv: _Says, keyword: str, number: str | None,
          matrix: list[list[bool]] | None, link: str | None, width: float,
          scale: float) -> list[_Block]:
    """The Swedish part at the top, large: a list of blocks with room between them."""
    parts: list[_Block] = []
    # One line if it stays large; two otherwise.
    heading = _fit_para(ts, sv.heading, sv.lang, False, int(150 * scale), width, max_lines=1,
                        fill=ACCENT)
    if heading.size < 110 * scale:
        heading = _fit_para(ts, sv.heading, sv.lang, False, int(150 * scale), width,
                            max_lines=2, fill=ACCENT)
    parts.append(heading.block())
    if sv.send is not None:
        # "Skicka ordet", the keyword in its bubble, "till 070-123 45 67", from the msgid.
        before, after = SEND_KEYWORD.split("{keyword}", 1)
        lead = _fit_para(ts, _fill_in(before.strip(), {"number": number or ""}), sv.lang,
                         False, int(125 * scale), width, max_lines=1)
        tail_text = _bold_all(_fill_in(after.strip(), {"number": number or ""}))
        tail = _fit_para(ts, tail_text, sv.lang, False, int(190 * scale), width, max_lines=1)
        parts.append(_stack([lead.block(), _gap(25 * scale),
                             _keyword_bubble(ts, keyword, width, scale),
                             _gap(20 * scale), tail.block()]))
    if matrix is not None and sv.scan is not None:
        shown = re.sub(r"^https?://", "", link or "")
        if sv.send is not None:  # the QR beside its sentence
            qr, between = _qr_block(matrix, 640 * scale), 50 * scale
            text_w = width - qr.height - between
            scan = _fit_para(ts, sv.scan, sv.lang, False, int(105 * scale), text_w,
                             max_lines=3, align="left")
            url = _fit_para(ts, _Text.plain(shown), sv.lang, False, int(50 * scale), text_w,
                            max_lines=2, fill=MUTED, align="left")
            text = _stack([scan.block(), _gap(30 * scale), url.block()])
            # QR and sentence side by side, the pair in the middle of the page.
            left = (width - qr.height - between - max(scan.widest, url.widest)) / 2

            def paint(draw: ImageDraw.ImageDraw, x: float, y: float, qr: _Block = qr,
                      text: _Block = text, left: float = left, between: float = between
                      ) -> None:
                qr.paint(draw, x + left, y)
                text.paint(draw, x + left + qr.height + between,
                           y + (qr.height - text.height) / 2)
            parts.append(_Block(qr.height, paint))
        else:  # the QR is the only way in: large, in the middle
            qr = _qr_block(matrix, 1150 * scale)
            scan = _fit_para(ts, sv.scan, sv.lang, False, int(150 * scale), width, max_lines=2)
            url = _fit_para(ts, _Text.plain(shown), sv.lang, False, int(55 * scale), width,
                            max_lines=2, fill=MUTED)
            parts.append(_stack([scan.block(), _gap(20 * scale),
                                 _centered(qr, qr.height, width), url.block()]))
    anon = _para(ts, sv.anonymous, sv.lang, False, int(68 * scale), width, align="center")
    dates = _para(ts, _bold_all(sv.dates), sv.lang, False, int(68 * scale), width,
                  align="center")
    parts.append(_stack([anon.block(), _gap(22 * scale), dates.block()]))
    return parts


def _bold_all(text: _Text) -> _Text:
    return _Text(text.text, (True,) * len(text.text))


def _cell(ts: _Typesetter, says: _Says, name: str, colour: str, width: float,
          size: int) -> tuple[float, Callable[[ImageDraw.ImageDraw, float, float, float], None]]:
    """One language's box: its name, then its sentences. Its height, and how to paint it as
    tall as the tallest box of its row."""
    pad, bar = int(0.75 * size), max(8, size // 4)
    inner = width - 2 * pad - bar
    rtl = says.rtl
    paras = [_para(ts, _Text.plain(name, bold=True), says.lang, rtl, int(0.8 * size), inner,
                   fill=colour),
             _para(ts, says.heading, says.lang, rtl, int(1.1 * size), inner)]
    paras += [_para(ts, t, says.lang, rtl, size, inner)
              for t in (says.send, says.scan, says.anonymous, says.dates) if t is not None]
    content = _stack([b for p in paras for b in (p.block(), _gap(0.3 * size))][:-1])
    height = content.height + 2 * pad

    def paint(draw: ImageDraw.ImageDraw, x: float, y: float, row_height: float) -> None:
        draw.rounded_rectangle((x, y, x + width, y + row_height), radius=int(0.6 * size),
                               fill=CELL)
        bx = x + width - bar if rtl else x
        draw.rounded_rectangle((bx, y, bx + bar, y + row_height), radius=bar // 2,
                               fill=colour)
        content.paint(draw, x + pad + (0 if rtl else bar), y + pad)
    return height, paint


def _grid(ts: _Typesetter, cells: list[tuple[_Says, str]], width: float, size: int,
          cols: int = 2) -> _Block:
    """The other languages' boxes, `cols` to a row (one when there is only one)."""
    if not cells:
        return _gap(0)
    gutter = 50
    cols = min(cols, len(cells))
    cell_w = (width - gutter * (cols - 1)) / cols
    built = [_cell(ts, says, name, LANG_COLOURS[i % len(LANG_COLOURS)], cell_w, size)
             for i, (says, name) in enumerate(cells)]
    rows = [built[i:i + cols] for i in range(0, len(built), cols)]
    heights = [max(h for h, _ in row) for row in rows]

    def paint(draw: ImageDraw.ImageDraw, x: float, y: float) -> None:
        for row, h in zip(rows, heights, strict=True):
            left = x + (cols - len(row)) * (cell_w + gutter) / 2  # a short last row centred
            for c, (_, paint_cell) in enumerate(row):
                paint_cell(draw, left + c * (cell_w + gutter), y, h)
            y += h + gutter
    return _Block(sum(heights) + gutter * (len(rows) - 1), paint)


# ------------------------------------------------------------------ the poster

def make_poster(campaign: CampaignLike, *, sms_number: str | None, telegram_link: str | None,
                catalogs: Catalogs, out: Path) -> Path:
    """Draws the campaign's A4 poster to `out`: a PDF if it ends with .pdf, a PNG if .png.

    `sms_number` is the number pupils text the keyword to (E.164 or Swedish national form;
    None when there is no SMS); `telegram_link` the campaign's Telegram link (None when there
    is no Telegram). Swedish comes first, then the campaign's other languages in its order.
    Raises ValueError for another suffix, when there is neither a number nor a link, or when
    the languages do not fit on one page; PosterError when a font or the text layout is
    missing on this machine."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".png"):
        raise ValueError(f"A poster is written as .pdf or .png, not {out.suffix or 'no suffix'!r}"
                         f" ({out}).")
    if not sms_number and not telegram_link:
        raise ValueError("A poster needs an SMS number or a Telegram link (or both): "
                         "there is no way to answer otherwise.")
    number = format_sms_number(sms_number) if sms_number else None
    langs = [SOURCE_LANG] + [lang for lang in dict.fromkeys(campaign.langs or [])
                             if lang != SOURCE_LANG]
    missing = set(untranslated(langs, catalogs))
    if missing:
        log.warning("poster %s: left out %s: none of the poster's sentences are translated",
                    campaign.name, ", ".join(sorted(missing)))
    langs = [lang for lang in langs if lang not in missing]
    says = [_says(catalogs, lang, campaign, number, bool(telegram_link)) for lang in langs]
    sv, others = says[0], says[1:]
    cells = [(s, catalogs.own_name(s.lang)) for s in others]

    ts = _Typesetter()
    matrix = _qr_matrix(telegram_link) if telegram_link else None
    width, height = A4_PX
    inner_w, inner_h = width - 2 * MARGIN, height - 2 * MARGIN - 60  # 60: the footer line
    hero_gap, grid_gap = 70, 90

    # The Swedish part as large as it can be while the other languages' boxes keep a
    # readable size; with many languages both shrink, and three boxes share a row.
    heroes: dict[float, tuple[list[_Block], float]] = {}
    grids: dict[tuple[int, int], _Block] = {}
    layouts = [(scale, cols, size) for min_size in (40, 34, 28)
               for scale in ((1.0, 0.9, 0.8, 0.7, 0.6) if cells else (1.3, 1.2, 1.1, 1.0))
               for cols in ((2, 3) if len(cells) > 4 else (2,))
               for size in range(64, min_size - 1, -2)]
    chosen = None
    for scale, cols, size in layouts:
        if scale not in heroes:
            hero = _hero(ts, sv, campaign.keyword.upper(), number, matrix, telegram_link,
                         inner_w, scale)
            heroes[scale] = hero, sum(b.height for b in hero) + hero_gap * scale * (
                len(hero) - 1)
        hero, hero_h = heroes[scale]
        if cells and (cols, size) not in grids:
            grids[cols, size] = _grid(ts, cells, inner_w, size, cols)
        grid = grids.get((cols, size), _gap(0))
        used = hero_h + (grid_gap + grid.height if cells else 0)
        if used <= inner_h:
            chosen = (hero, grid, scale, inner_h - used)
            break
    if chosen is None:
        raise ValueError(f"{len(langs)} languages do not fit on one A4 poster: make one poster "
                         "for some of them and another for the rest.")
    hero, grid, scale, spare = chosen

    image = Image.new("RGB", A4_PX, WHITE)
    draw = ImageDraw.Draw(image)
    # What is left over goes between the parts, so the page is filled evenly.
    gaps = len(hero) - 1 + (1 if cells else 0)
    extra = spare / (gaps + 2) if gaps else spare / 2
    y = MARGIN + extra
    for i, block in enumerate(hero):
        block.paint(draw, MARGIN, y)
        y += block.height + (hero_gap * scale + extra if i < len(hero) - 1 else 0)
    if cells:
        y += extra + grid_gap / 2
        draw.line((MARGIN, y - 2, width - MARGIN, y - 2), fill="#c8ced6", width=5)
        y += grid_gap / 2
        grid.paint(draw, MARGIN, y)
    footer = ts.line(_Text.plain(campaign.name), False, 34, SOURCE_LANG)
    ts.draw(draw, footer, width - MARGIN - footer.width, height - MARGIN / 2, MUTED)

    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".pdf":
        image.save(out, "PDF", resolution=DPI, quality=95, subsampling=0,
                   title=campaign.name)
    else:
        image.save(out, "PNG", dpi=(DPI, DPI), optimize=True)
    return out
