"""Text laid out for print, in any script: the fonts, text cut into runs by font and
direction, wrapped lines, and blocks stacked top down. The campaign poster (admin_cli/poster.py)
is drawn with it.

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
libfribidi0): without it, text in an Arabic script raises PosterError; text without is laid
out by Pillow's basic engine. PosterError's messages are for staff (admin_cli/i18n.py).
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

from fontTools.ttLib import TTFont
from PIL import ImageDraw, ImageFont, features

from admin_cli.i18n import _

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
INK = "#1a1a1a"  # the text's colour unless told otherwise
NBSP = "\u00a0"
STRONG = ("L", "R", "AL")


class PosterError(RuntimeError):
    """The poster cannot be drawn on this machine (a font or the text layout is missing)."""


# ------------------------------------------------------------------ fonts

@dataclass(frozen=True)
class Face:
    regular: Path
    bold: Path | None
    cmap: frozenset[int]

    def has(self, ch: str) -> bool:
        return ord(ch) in self.cmap


@lru_cache(maxsize=1)
def installed_faces() -> tuple[Face, ...]:
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
            faces.append(Face(found[regular], found.get(bold) if bold else None, cmap))
    return tuple(faces)


def font_for(ch: str, *, bold: bool = False) -> Path:
    """The font file the poster draws the letter `ch` with: the first of FONT_FILES that is
    installed and has it. Raises PosterError when none has it."""
    for face in installed_faces():
        if face.has(ch):
            return face.bold if bold and face.bold else face.regular
    name = unicodedata.name(ch, f"U+{ord(ch):04X}")
    raise PosterError(_("Inget typsnitt har tecknet {ch} ({name}): installera Debianpaketet "
                        "{packages}.").format(ch=repr(ch), name=name, packages=FONT_PACKAGES))


def has_raqm() -> bool:
    return bool(features.check_feature("raqm"))


@lru_cache(maxsize=512)
def load_font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    engine = ImageFont.Layout.RAQM if has_raqm() else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(path), size, layout_engine=engine)


# ------------------------------------------------------------------ styled text and lines

@dataclass(frozen=True)
class Text:
    """Text with a bold flag per character (the values put into a sentence are bold)."""

    text: str
    bold: tuple[bool, ...]

    @classmethod
    def plain(cls, text: str, bold: bool = False) -> "Text":
        return cls(text, (bold,) * len(text))

    def __getitem__(self, key: slice) -> "Text":
        return Text(self.text[key], self.bold[key])


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def fill_in(template: str, values: dict[str, str], *, bold: bool = False) -> Text:
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
    return Text("".join(text), tuple(mask))


@dataclass
class Run:
    text: str
    font: ImageFont.FreeTypeFont
    direction: str  # "ltr" | "rtl"
    width: float


@dataclass
class Line:
    runs: list[Run]  # in visual order, left to right
    lang: str
    ascent: float
    descent: float

    @property
    def width(self) -> float:
        return sum(r.width for r in self.runs)


def char_dir(ch: str) -> str | None:
    cls = unicodedata.bidirectional(ch)
    return "rtl" if cls in ("R", "AL") else "ltr" if cls == "L" else None


def directions(text: str, rtl: bool) -> list[str | None]:
    """Each character's strong direction, or None for a neutral one. European digits count
    as left to right after a Latin letter (bidi rule W7: SKOLA8 stays one word)."""
    out: list[str | None] = []
    last = "rtl" if rtl else "ltr"
    for ch in text:
        d = char_dir(ch)
        if d:
            last = d
        elif unicodedata.bidirectional(ch) == "EN" and last == "ltr" and out and out[-1]:
            d = "ltr"
        out.append(d)
    return out


class Typesetter:
    """Cuts text into runs by font and direction, measures, wraps and draws it."""

    def __init__(self) -> None:
        self.faces = installed_faces()
        if not self.faces:
            raise PosterError(_("Inget typsnitt för affischen: installera Debianpaketet "
                                "{packages} (letade i {dirs}).").format(
                packages=FONT_PACKAGES, dirs=", ".join(map(str, FONT_DIRS))))
        self.raqm = has_raqm()

    def _face_for(self, ch: str, lang: str) -> int:
        for i, face in enumerate(self.faces):
            if face.has(ch):
                return i
        name = unicodedata.name(ch, f"U+{ord(ch):04X}")
        raise PosterError(_("Inget typsnitt har tecknet {ch} ({name}) i texten på '{lang}': "
                            "installera Debianpaketet {packages}.").format(
            ch=repr(ch), name=name, lang=lang, packages=FONT_PACKAGES))

    def _assign(self, text: str, dirs: list[str | None], rtl: bool, lang: str) -> list[int]:
        """A font per character: a letter takes the first font that has it (digits after a
        Latin letter, as in SKOLA8, the letter's); anything else (spaces, punctuation) the
        font of the letters around it, if it has it."""
        faces, out = self.faces, [-1] * len(text)
        for i, ch in enumerate(text):
            cls = unicodedata.bidirectional(ch)
            if cls in STRONG:
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

    def line(self, text: Text, rtl: bool, size: int, lang: str) -> Line:
        s = text.text
        if not self.raqm and any(char_dir(ch) == "rtl" for ch in s):
            raise PosterError(_("Pillow kan inte sätta text som går från höger till vänster "
                                "här (ingen raqm): installera Debianpaketet libfribidi0 "
                                "(Pillows hjul läser FriBiDi från systemet), eller libraqm0."))
        dirs = directions(s, rtl)
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
        for chunk, __, ___ in pieces:
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
            font = load_font(f.bold if bold and f.bold else f.regular, size)
            asc, desc = font.getmetrics()
            ascent, descent = max(ascent, asc), max(descent, desc)
            runs.append(Run(chunk, font, d or para, self._measure(chunk, font, d or para,
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
        return Line([r for r, _ in order], lang, ascent, descent)

    def wrap(self, text: Text, rtl: bool, size: int, lang: str, width: float) -> list[Line]:
        """Greedy wrapping at spaces (no-break spaces hold); a word wider than `width` gets
        a line of its own."""
        lines = []
        for part in split_lines(text):
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

    def draw(self, draw: ImageDraw.ImageDraw, line: Line, x: float, baseline: float,
             fill: str) -> None:
        for run in line.runs:
            if self.raqm:
                draw.text((x, baseline), run.text, font=run.font, fill=fill, anchor="ls",
                          direction=run.direction, language=line.lang)
            else:
                draw.text((x, baseline), run.text, font=run.font, fill=fill, anchor="ls")
            x += run.width


def split_lines(text: Text) -> list[Text]:
    out, start = [], 0
    for i, ch in enumerate(text.text + "\n"):
        if ch == "\n":
            out.append(text[start:i])
            start = i + 1
    return out


# ------------------------------------------------------------------ blocks laid out top down

Draw = Callable[[ImageDraw.ImageDraw, float, float], None]  # (draw, left x, top y)


@dataclass
class Block:
    height: float
    paint: Draw


@dataclass
class Para:
    """Wrapped lines, aligned in a box `width` wide (right-aligned when right to left)."""

    ts: Typesetter
    lines: list[Line]
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

    def block(self) -> Block:
        return Block(self.height, self.paint)


def make_para(ts: Typesetter, text: Text, lang: str, rtl: bool, size: int, width: float, *,
          fill: str = INK, align: str | None = None) -> Para:
    lines = ts.wrap(text, rtl, size, lang, width)
    return Para(ts, lines, width, size, fill, align or ("right" if rtl else "left"))


def fit_para(ts: Typesetter, text: Text, lang: str, rtl: bool, size: int, width: float,
              *, max_lines: int, fill: str = INK, align: str = "center") -> Para:
    """The largest size up to `size` at which the text fits in `max_lines` lines."""
    while True:
        para = make_para(ts, text, lang, rtl, size, width, fill=fill, align=align)
        if size <= 12 or (len(para.lines) <= max_lines and para.widest <= width):
            return para
        size = int(size * 0.94)


def gap(height: float) -> Block:
    return Block(height, lambda draw, x, y: None)


def stack(blocks: Sequence[Block]) -> Block:
    def paint(draw: ImageDraw.ImageDraw, x: float, y: float) -> None:
        for b in blocks:
            b.paint(draw, x, y)
            y += b.height
    return Block(sum(b.height for b in blocks), paint)
