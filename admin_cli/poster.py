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
marked with child_text (flows.i18n.N_) for `tala locales update`, and goes through the
catalogs: a missing translation is Swedish for that sentence. A language with none of the
poster's sentences translated is left out (logged), rather than shown as Swedish under its own name;
`untranslated(langs, catalogs)` tells which languages those are.

The drawing itself (fonts for every script, right-to-left text, wrapping, blocks stacked top
down) is admin_cli/typeset.py. The messages a poster can fail with are for staff and go
through admin_cli/i18n.py; the poster's own sentences are for pupils and go through the
child-facing catalogs (the `tala` domain).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable, Protocol, Sequence

import phonenumbers
import qrcode
from babel import Locale
from babel.dates import format_date, format_skeleton
from PIL import Image, ImageDraw

from admin_cli.i18n import _
from admin_cli.typeset import (
    INK,
    Block,
    PosterError,
    Text,
    Typesetter,
    fields,
    fill_in,
    fit_para,
    gap,
    make_para,
    stack,
)
from flows.i18n import SOURCE_LANG, Catalogs
from flows.i18n import N_ as child_text  # the child-facing domain (tala), not tala-staff

__all__ = ["POSTER_MSGIDS", "CampaignLike", "PosterError", "format_sms_number", "make_poster",
           "untranslated"]
log = logging.getLogger(__name__)

# Translators: the heading of a poster on a classroom wall inviting pupils to an anonymous
# survey. Short and friendly.
HEADING = child_text("Vad tycker du? Berätta för oss!")
# Translators: poster. {keyword} is the word to text (like SKOLA8), {number} the phone number
# to text it to. Keep both.
SEND_KEYWORD = child_text("Skicka ordet {keyword} till {number}")
# Translators: poster, under the line above, next to a QR code that opens the survey in
# Telegram.
OR_SCAN = child_text("eller skanna koden för Telegram")
# Translators: poster with no SMS number: the QR code is the only way in.
SCAN = child_text("Skanna koden för Telegram")
# Translators: poster. The survey is anonymous.
ANONYMOUS = child_text("Du är anonym: ingen kan se vad just du svarar, och ditt nummer raderas "
                       "när du är klar.")
# Translators: poster. {opens} and {closes} are dates ("3 mars", "21 mars 2026"); both days
# are included.
OPEN_DATES = child_text("Du kan svara från {opens} till {closes}.")

POSTER_MSGIDS = (HEADING, SEND_KEYWORD, OR_SCAN, SCAN, ANONYMOUS, OPEN_DATES)

DPI = 300
A4_PX = (2480, 3508)  # 210 x 297 mm at 300 dpi
MARGIN = 140

MUTED, WHITE = "#555555", "#ffffff"  # INK, the text's colour, is typeset's
ACCENT = "#0a5c99"
BUBBLE = "#ffe27a"
CELL = "#f1f4f8"
# Okabe-Ito colours (told apart with colour blindness), one per language box.
LANG_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


class CampaignLike(Protocol):
    name: str
    keyword: str
    opens: date
    closes: date
    langs: list


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
    heading: Text
    send: Text | None
    scan: Text | None
    anonymous: Text
    dates: Text


def _says(catalogs: Catalogs, lang: str, campaign: CampaignLike, number: str | None,
          has_link: bool) -> _Says:
    values = {"keyword": campaign.keyword.upper(), "number": number or "",
              **_dates(lang, campaign.opens, campaign.closes)}

    def say(msgid: str, *, bold: bool = False) -> Text:
        text = catalogs.gettext(lang, msgid)
        try:
            if fields(text) == fields(msgid):
                return fill_in(text, values, bold=bold)
        except (KeyError, IndexError, ValueError):
            pass
        # A translation that lost {number} would send nobody anywhere: Swedish instead.
        log.warning("poster: the %s translation of %r has other placeholders than the "
                    "Swedish; using the Swedish", lang, msgid)
        return fill_in(msgid, values, bold=bold)

    return _Says(lang, catalogs.rtl(lang), say(HEADING, bold=True),
                 say(SEND_KEYWORD) if number else None,
                 (say(OR_SCAN if number else SCAN)) if has_link else None,
                 say(ANONYMOUS), say(OPEN_DATES))


# ------------------------------------------------------------------ the parts of the poster

def qr_matrix(link: str) -> list[list[bool]]:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    qr.add_data(link)
    qr.make(fit=True)
    return qr.get_matrix()  # with the 4-module quiet zone


def _qr_block(matrix: list[list[bool]], target: float) -> Block:
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
    return Block(n * module, paint)


def _centered(block: Block, block_width: float, width: float) -> Block:
    return Block(block.height,
                  lambda draw, x, y: block.paint(draw, x + (width - block_width) / 2, y))


def _keyword_bubble(ts: Typesetter, keyword: str, width: float, scale: float) -> Block:
    """The keyword in very large letters in a text-message bubble."""
    height, pad, tail = 560 * scale, 70 * scale, 90 * scale
    size = int(470 * scale)
    text = Text.plain(keyword, bold=True)
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
        cap = ts.line(Text.plain("H", bold=True), False, size, SOURCE_LANG)
        _, top, _, bottom = cap.runs[0].font.getbbox("H", anchor="ls")
        baseline = y + height / 2 - (top + bottom) / 2
        ts.draw(draw, line, x0 + (bubble_w - line.width) / 2, baseline, INK)
    return Block(height + tail, paint)


def _hero(ts: Typesetter, sv: _Says, keyword: str, number: str | None,
          matrix: list[list[bool]] | None, link: str | None, width: float,
          scale: float) -> list[Block]:
    """The Swedish part at the top, large: a list of blocks with room between them."""
    parts: list[Block] = []
    # One line if it stays large; two otherwise.
    heading = fit_para(ts, sv.heading, sv.lang, False, int(150 * scale), width, max_lines=1,
                        fill=ACCENT)
    if heading.size < 110 * scale:
        heading = fit_para(ts, sv.heading, sv.lang, False, int(150 * scale), width,
                            max_lines=2, fill=ACCENT)
    parts.append(heading.block())
    if sv.send is not None:
        # "Skicka ordet", the keyword in its bubble, "till 070-123 45 67", from the msgid.
        before, after = SEND_KEYWORD.split("{keyword}", 1)
        lead = fit_para(ts, fill_in(before.strip(), {"number": number or ""}), sv.lang,
                         False, int(125 * scale), width, max_lines=1)
        tail_text = _bold_all(fill_in(after.strip(), {"number": number or ""}))
        tail = fit_para(ts, tail_text, sv.lang, False, int(190 * scale), width, max_lines=1)
        parts.append(stack([lead.block(), gap(25 * scale),
                             _keyword_bubble(ts, keyword, width, scale),
                             gap(20 * scale), tail.block()]))
    if matrix is not None and sv.scan is not None:
        shown = re.sub(r"^https?://", "", link or "")
        if sv.send is not None:  # the QR beside its sentence
            qr, between = _qr_block(matrix, 640 * scale), 50 * scale
            text_w = width - qr.height - between
            scan = fit_para(ts, sv.scan, sv.lang, False, int(105 * scale), text_w,
                             max_lines=3, align="left")
            url = fit_para(ts, Text.plain(shown), sv.lang, False, int(50 * scale), text_w,
                            max_lines=2, fill=MUTED, align="left")
            text = stack([scan.block(), gap(30 * scale), url.block()])
            # QR and sentence side by side, the pair in the middle of the page.
            left = (width - qr.height - between - max(scan.widest, url.widest)) / 2

            def paint(draw: ImageDraw.ImageDraw, x: float, y: float, qr: Block = qr,
                      text: Block = text, left: float = left, between: float = between
                      ) -> None:
                qr.paint(draw, x + left, y)
                text.paint(draw, x + left + qr.height + between,
                           y + (qr.height - text.height) / 2)
            parts.append(Block(qr.height, paint))
        else:  # the QR is the only way in: large, in the middle
            qr = _qr_block(matrix, 1150 * scale)
            scan = fit_para(ts, sv.scan, sv.lang, False, int(150 * scale), width, max_lines=2)
            url = fit_para(ts, Text.plain(shown), sv.lang, False, int(55 * scale), width,
                            max_lines=2, fill=MUTED)
            parts.append(stack([scan.block(), gap(20 * scale),
                                 _centered(qr, qr.height, width), url.block()]))
    anon = make_para(ts, sv.anonymous, sv.lang, False, int(68 * scale), width, align="center")
    dates = make_para(ts, _bold_all(sv.dates), sv.lang, False, int(68 * scale), width,
                  align="center")
    parts.append(stack([anon.block(), gap(22 * scale), dates.block()]))
    return parts


def _bold_all(text: Text) -> Text:
    return Text(text.text, (True,) * len(text.text))


def _cell(ts: Typesetter, says: _Says, name: str, colour: str, width: float,
          size: int) -> tuple[float, Callable[[ImageDraw.ImageDraw, float, float, float], None]]:
    """One language's box: its name, then its sentences. Its height, and how to paint it as
    tall as the tallest box of its row."""
    pad, bar = int(0.75 * size), max(8, size // 4)
    inner = width - 2 * pad - bar
    rtl = says.rtl
    paras = [make_para(ts, Text.plain(name, bold=True), says.lang, rtl, int(0.8 * size), inner,
                   fill=colour),
             make_para(ts, says.heading, says.lang, rtl, int(1.1 * size), inner)]
    paras += [make_para(ts, t, says.lang, rtl, size, inner)
              for t in (says.send, says.scan, says.anonymous, says.dates) if t is not None]
    content = stack([b for p in paras for b in (p.block(), gap(0.3 * size))][:-1])
    height = content.height + 2 * pad

    def paint(draw: ImageDraw.ImageDraw, x: float, y: float, row_height: float) -> None:
        draw.rounded_rectangle((x, y, x + width, y + row_height), radius=int(0.6 * size),
                               fill=CELL)
        bx = x + width - bar if rtl else x
        draw.rounded_rectangle((bx, y, bx + bar, y + row_height), radius=bar // 2,
                               fill=colour)
        content.paint(draw, x + pad + (0 if rtl else bar), y + pad)
    return height, paint


def _grid(ts: Typesetter, cells: list[tuple[_Says, str]], width: float, size: int,
          cols: int = 2) -> Block:
    """The other languages' boxes, `cols` to a row (one when there is only one)."""
    if not cells:
        return gap(0)
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
            for c, (__, paint_cell) in enumerate(row):
                paint_cell(draw, left + c * (cell_w + gutter), y, h)
            y += h + gutter
    return Block(sum(heights) + gutter * (len(rows) - 1), paint)


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
        raise ValueError(_("En affisch skrivs som .pdf eller .png, inte {suffix} ({out}).")
                         .format(suffix=repr(out.suffix) if out.suffix else _("utan ändelse"),
                                 out=out))
    if not sms_number and not telegram_link:
        raise ValueError(_("En affisch behöver ett sms-nummer eller en Telegramlänk (eller "
                           "båda): annars finns det inget sätt att svara."))
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

    ts = Typesetter()
    matrix = qr_matrix(telegram_link) if telegram_link else None
    width, height = A4_PX
    inner_w, inner_h = width - 2 * MARGIN, height - 2 * MARGIN - 60  # 60: the footer line
    hero_gap, grid_gap = 70, 90

    # The Swedish part as large as it can be while the other languages' boxes keep a
    # readable size; with many languages both shrink, and three boxes share a row.
    heroes: dict[float, tuple[list[Block], float]] = {}
    grids: dict[tuple[int, int], Block] = {}
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
        grid = grids.get((cols, size), gap(0))
        used = hero_h + (grid_gap + grid.height if cells else 0)
        if used <= inner_h:
            chosen = (hero, grid, scale, inner_h - used)
            break
    if chosen is None:
        raise ValueError(_("{n} språk får inte plats på en A4-affisch: gör en affisch för "
                           "några av dem och en till för resten.").format(n=len(langs)))
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
    footer = ts.line(Text.plain(campaign.name), False, 34, SOURCE_LANG)
    ts.draw(draw, footer, width - MARGIN - footer.width, height - MARGIN / 2, MUTED)

    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".pdf":
        image.save(out, "PDF", resolution=DPI, quality=95, subsampling=0,
                   title=campaign.name)
    else:
        image.save(out, "PNG", dpi=(DPI, DPI), optimize=True)
    return out
