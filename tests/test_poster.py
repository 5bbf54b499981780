"""The A4 poster of an anonymous survey: the files it writes, what it says, that the QR code
opens the Telegram link, and that Arabic, Persian, Tigrinya and Ukrainian are drawn for real
(letters joined, right to left, no empty boxes)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont, PdfParser

from admin_cli import poster, typeset
from flows.i18n import Catalogs

LINK = "https://t.me/tala_test_bot?start=AB12CD34EF56"
NUMBER = "+46 70 123 45 67"
NBSP = "\u00a0"

# Stand-in translations, so the other languages' boxes are drawn whatever the real catalogs
# hold today (the poster leaves out a language with none of its sentences translated).
DRAFTS = {
    "en": ["What do you think? Tell us!", "Text the word {keyword} to {number}",
           "or scan the code for Telegram", "Scan the code for Telegram",
           "You are anonymous: nobody can see what you answer, and your number is not saved.",
           "You can answer from {opens} to {closes}."],
    "ar": ["ما رأيك؟ أخبرنا!", "أرسل كلمة {keyword} إلى {number}",
           "أو امسح الرمز للإجابة عبر Telegram", "امسح الرمز للإجابة عبر Telegram",
           "أنت مجهول الهوية: لا أحد يستطيع أن يرى ما تجيب به أنت، ورقمك لا يُحفظ.",
           "يمكنك الإجابة من {opens} حتى {closes}."],
    "ti": ["እንታይ ትሓስብ? ንገረና!", "ነታ ቃል {keyword} ናብ {number} ስደድ",
           "ወይ ን Telegram ነቲ ኮድ ስካን ግበር", "ን Telegram ነቲ ኮድ ስካን ግበር",
           "ስምካ ኣይፍለጥን እዩ፡ ዋላ ሓደ ሰብ እንታይ ከም ዝመለስካ ክርኢ ኣይክእልን።",
           "ካብ {opens} ክሳብ {closes} ክትምልስ ትኽእል ኢኻ።"],
    "uk": ["Що ти думаєш? Розкажи нам!", "Надішли слово {keyword} на номер {number}",
           "або скануй код для Telegram", "Скануй код для Telegram",
           "Ти анонімний: ніхто не бачить, що саме ти відповідаєш, і твій номер не зберігається.",
           "Ти можеш відповісти з {opens} до {closes}."],
    "fa": ["نظرت چیست؟ به ما بگو!", "کلمه {keyword} را به {number} بفرست",
           "یا کد را برای تلگرام اسکن کن", "کد را برای تلگرام اسکن کن",
           "تو ناشناس هستی: هیچ‌کس نمی‌تواند ببیند تو چه جوابی می‌دهی.",
           "می‌توانی از {opens} تا {closes} جواب بدهی."],
}
FIVE = ["sv", "en", "ar", "ti", "uk"]


def fake_campaign(langs: list[str] | None = None, keyword: str = "skola8") -> SimpleNamespace:
    """The Campaign fields the poster reads, without a database."""
    return SimpleNamespace(id=1, name="ak8-hosten-2026", questionnaire_id="followup-12-18",
                           keyword=keyword, code="AB12CD34EF56", unit="Skolan",
                           opens=date(2026, 3, 2), closes=date(2026, 3, 20),
                           langs=langs or list(FIVE), created_by="test", closed_at=None,
                           flagged=0)


@pytest.fixture(scope="module")
def drafted() -> Catalogs:
    cats = copy.deepcopy(Catalogs.load())
    for lang, texts in DRAFTS.items():
        cats.by_lang[lang].messages.update(zip(poster.POSTER_MSGIDS, texts, strict=True))
    return cats


@pytest.fixture()
def drawn(monkeypatch) -> list[tuple[float, float, str, str, int]]:
    """Every run of text the poster draws: (x, baseline, text, direction, font size)."""
    seen: list[tuple[float, float, str, str, int]] = []
    real = typeset.Typesetter.draw

    def record(self, draw, line, x, baseline, fill):
        at = x
        for run in line.runs:
            seen.append((at, baseline, run.text, run.direction, run.font.size))
            at += run.width
        real(self, draw, line, x, baseline, fill)

    monkeypatch.setattr(typeset.Typesetter, "draw", record)
    return seen


def text_of(runs: list[tuple[float, float, str, str, int]]) -> str:
    return " ".join(" ".join(r[2] for r in runs).split())  # no-break spaces are spaces too


@pytest.fixture(scope="module")
def posters(tmp_path_factory, drafted) -> dict[str, Path]:
    if FONTS_MISSING:
        pytest.skip(f"fonts for every script: {FONTS_MISSING}")
    out = tmp_path_factory.mktemp("poster")
    files = {}
    for name, number, link in (("both", NUMBER, LINK), ("telegram", None, LINK)):
        for suffix in (".png", ".pdf"):
            files[name + suffix] = poster.make_poster(
                fake_campaign(), sms_number=number, telegram_link=link, catalogs=drafted,
                out=out / f"{name}{suffix}")
    return files


def decode_qr(path: Path) -> list[str]:
    run = subprocess.run(["zbarimg", "--quiet", "--raw", str(path)], capture_output=True,
                         text=True, timeout=60)
    return [line for line in run.stdout.splitlines() if line]


needs_zbar = pytest.mark.skipif(shutil.which("zbarimg") is None,
                                reason="zbarimg (Debian: zbar-tools) is not installed")


def _fonts_missing() -> str | None:
    """Why this machine cannot draw every script of the poster (None when it can)."""
    try:
        for ch in "AسፐП":  # Latin, Arabic, Ethiopic, Cyrillic
            typeset.font_for(ch)
    except typeset.PosterError as e:
        return str(e)
    return None


FONTS_MISSING = _fonts_missing()
needs_fonts = pytest.mark.skipif(FONTS_MISSING is not None,
                                 reason=f"fonts for every script: {FONTS_MISSING}")


# ------------------------------------------------------------------ the files

def test_png_is_an_a4_page_at_300_dpi(posters):
    path = posters["both.png"]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == (2480, 3508)
        assert im.size[1] / im.size[0] == pytest.approx(297 / 210, rel=0.002)
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.5)
        # Not a blank page: dark ink and the yellow keyword bubble are there.
        colours = {c for _, c in im.getcolors(maxcolors=1 << 20)}
        assert (26, 26, 26) in colours and (255, 226, 122) in colours


def test_pdf_is_one_a4_page(posters):
    path = posters["both.pdf"]
    assert path.read_bytes().startswith(b"%PDF")
    pdf = PdfParser.PdfParser(str(path))
    try:
        assert len(pdf.pages) == 1
        page = pdf.read_indirect(pdf.pages[0])
        x0, y0, x1, y1 = (float(v) for v in page[b"MediaBox"])
        assert x1 - x0 == pytest.approx(595, abs=1)
        assert y1 - y0 == pytest.approx(842, abs=1)
    finally:
        pdf.close()


@pytest.mark.parametrize("name", ["both.png", "telegram.png"])
@needs_zbar
def test_qr_code_opens_the_telegram_link(posters, name):
    assert decode_qr(posters[name]) == [LINK]


@needs_zbar
@pytest.mark.skipif(shutil.which("pdftoppm") is None,
                    reason="pdftoppm (Debian: poppler-utils) is not installed")
def test_qr_code_in_the_pdf_opens_the_link(posters, tmp_path):
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(posters["both.pdf"]),
                    str(tmp_path / "page")], check=True, timeout=60)
    assert decode_qr(tmp_path / "page.png") == [LINK]


@pytest.mark.parametrize("name", ["poster.jpg", "poster.svg", "poster"])
def test_other_suffixes_are_refused(tmp_path, drafted, name):
    with pytest.raises(ValueError, match=r"\.pdf eller \.png"):
        poster.make_poster(fake_campaign(), sms_number=NUMBER, telegram_link=LINK,
                           catalogs=drafted, out=tmp_path / name)
    assert not (tmp_path / name).exists()


def test_a_poster_needs_a_number_or_a_link(tmp_path, drafted):
    with pytest.raises(ValueError, match="sms-nummer eller en Telegramlänk"):
        poster.make_poster(fake_campaign(), sms_number=None, telegram_link=None,
                           catalogs=drafted, out=tmp_path / "p.png")


# ------------------------------------------------------------------ what it says

@needs_fonts
def test_sms_and_telegram_in_every_language(tmp_path, drafted, drawn):
    poster.make_poster(fake_campaign(), sms_number=NUMBER, telegram_link=LINK,
                       catalogs=drafted, out=tmp_path / "p.png")
    text = text_of(drawn)
    for expected in ("Vad tycker du? Berätta för oss!", "Skicka ordet", "SKOLA8",
                     "till 070-123 45 67", "eller skanna koden för Telegram",
                     "t.me/tala_test_bot?start=AB12CD34EF56",
                     "Du är anonym: ingen kan se vad just du svarar, och ditt nummer raderas "
                     "när du är klar.",
                     "Du kan svara från 2 mars till 20 mars 2026.",
                     "English", "Text the word", "March 20, 2026", "العربية", "ትግርኛ",
                     "Українська", "Надішли слово", "20 березня 2026 р.",
                     "ak8-hosten-2026"):
        assert expected in text, expected
    assert "р.." not in text
    # The keyword is drawn far larger than anything else: capitals over 2 cm tall.
    biggest = max(drawn, key=lambda r: r[4])
    assert biggest[2] == "SKOLA8" and biggest[4] >= 340
    assert sorted(r[4] for r in drawn)[-2] < 0.5 * biggest[4]


@needs_fonts
def test_telegram_only_has_no_sms_line_but_the_qr_code(tmp_path, drafted, drawn,
                                                       monkeypatch):
    qr_links = []
    real = poster.qr_matrix
    monkeypatch.setattr(poster, "qr_matrix", lambda link: qr_links.append(link) or real(link))
    poster.make_poster(fake_campaign(), sms_number=None, telegram_link=LINK, catalogs=drafted,
                       out=tmp_path / "p.png")
    text = text_of(drawn)
    assert "Skicka ordet" not in text and "skicka ordet" not in text.lower()
    assert "Text the word" not in text and "070" not in text
    assert "Skanna koden för Telegram" in text and "eller skanna" not in text
    assert qr_links == [LINK]


@needs_fonts
def test_sms_only_has_no_qr_code(tmp_path, drafted, drawn, monkeypatch):
    monkeypatch.setattr(poster, "qr_matrix", lambda link: pytest.fail("no link, no QR"))
    poster.make_poster(fake_campaign(), sms_number="0701234567", telegram_link=None,
                       catalogs=drafted, out=tmp_path / "p.png")
    text = text_of(drawn)
    assert "till 070-123 45 67" in text and "Telegram" not in text


@needs_fonts
def test_untranslated_languages_are_left_out(tmp_path, drafted, drawn):
    cats = copy.deepcopy(drafted)
    for msgid in poster.POSTER_MSGIDS:
        cats.by_lang["uk"].messages.pop(msgid, None)
    assert poster.untranslated(FIVE + ["xx"], cats) == ["uk", "xx"]
    poster.make_poster(fake_campaign(FIVE + ["xx"]), sms_number=NUMBER, telegram_link=LINK,
                       catalogs=cats, out=tmp_path / "p.png")
    text = text_of(drawn)
    assert "Українська" not in text and "English" in text


@needs_fonts
def test_a_translation_that_loses_a_placeholder_falls_back_to_swedish(tmp_path, drafted,
                                                                      drawn):
    cats = copy.deepcopy(drafted)
    cats.by_lang["en"].messages[poster.SEND_KEYWORD] = "Text the word {keyword}"
    poster.make_poster(fake_campaign(["sv", "en"]), sms_number=NUMBER, telegram_link=LINK,
                       catalogs=cats, out=tmp_path / "p.png")
    assert "Text the word" not in text_of(drawn)
    assert text_of(drawn).count("070-123 45 67") == 2  # the Swedish hero and the English box


@needs_fonts
def test_many_languages_still_fit_on_one_page(tmp_path, drafted):
    langs = ["sv", "en", "ar", "fa", "fi", "so", "ti", "uk"]
    cats = copy.deepcopy(drafted)
    for lang in ("fi", "so"):  # long stand-ins: the English, marked
        cats.by_lang[lang].messages.update(
            {m: f"[{lang}] " + cats.gettext("en", m) for m in poster.POSTER_MSGIDS})
    out = poster.make_poster(fake_campaign(langs, keyword="elevenkaten2026"),
                             sms_number=NUMBER, telegram_link=LINK, catalogs=cats,
                             out=tmp_path / "p.png")
    with Image.open(out) as im:
        assert im.size == (2480, 3508)


@pytest.mark.parametrize("given, shown", [
    ("+46 70 123 45 67", "070-123 45 67"),
    ("+46701234567", "070-123 45 67"),
    ("0701234567", "070-123 45 67"),
    ("+4681234567", "08-123 45 67"),
    ("+44 7700 900123", "+44 7700 900123"),
    ("72150", "72150"),
])
def test_sms_number_as_swedes_write_it(given, shown):
    assert poster.format_sms_number(given) == shown


# ------------------------------------------------------------------ scripts drawn for real

def test_arabic_letters_are_joined():
    """Shaped, "مرحبا" is narrower than its letters drawn one by one in their isolated
    forms: with no shaping (no raqm) the two are the same width."""
    font = ImageFont.truetype(str(typeset.font_for("م")), 100,
                              layout_engine=ImageFont.Layout.RAQM)
    word = "مرحبا"
    joined = font.getlength(word, direction="rtl", language="ar")
    isolated = sum(font.getlength(ch, direction="rtl", language="ar") for ch in word)
    assert joined < 0.9 * isolated


def test_the_poster_shapes_arabic_and_persian_right_to_left():
    ts = typeset.Typesetter()
    assert ts.raqm, "Pillow has no raqm: Arabic would not be joined"
    for lang, word in (("ar", "مرحبا"), ("fa", "سلام")):
        line = ts.line(typeset.Text.plain(word), True, 100, lang)
        assert [r.direction for r in line.runs] == ["rtl"]
        isolated = sum(line.runs[0].font.getlength(ch) for ch in word)
        assert line.width < 0.95 * isolated, lang


def test_latin_keyword_and_number_keep_their_place_in_an_arabic_sentence():
    ts = typeset.Typesetter()
    text = typeset.fill_in("أرسل كلمة {keyword} إلى {number}",
                           {"keyword": "SKOLA8", "number": "070-123 45 67"})
    runs = ts.line(text, True, 60, "ar").runs  # left to right on the page
    texts = [r.text.replace(NBSP, " ").strip() for r in runs]
    # Read right to left: أرسل كلمة, SKOLA8, إلى, then the number (itself left to right).
    assert texts[0] == "070-123 45 67"
    assert "SKOLA8" in texts and texts.index("SKOLA8") < texts.index("أرسل كلمة")
    assert texts[-1] == "أرسل كلمة"
    # The number's groups are not reordered by the right-to-left run they sit in: drawn as
    # laid out, it looks exactly as it does drawn left to right.
    number = runs[0]
    assert NBSP in number.text

    def ink(direction: str) -> Image.Image:
        im = Image.new("L", (int(number.width) + 40, 120), 0)
        ImageDraw.Draw(im).text((20, 90), number.text, font=number.font, fill=255,
                                anchor="ls", direction=direction, language="ar")
        return im
    assert ImageChops.difference(ink(number.direction), ink("ltr")).getbbox() is None


@needs_fonts
@pytest.mark.parametrize("lang, word", [("ti", "ሰላም"), ("uk", "Привіт"), ("ar", "سلام"),
                                        ("fa", "پژوهش")])
def test_every_script_has_real_glyphs(lang, word):
    """Each letter has a font that holds it, and the letters draw differently: missing
    glyphs would all be the same empty box."""
    masks = []
    for ch in dict.fromkeys(word):
        font = ImageFont.truetype(str(typeset.font_for(ch)), 80)
        im = Image.new("L", (160, 160), 0)
        ImageDraw.Draw(im).text((20, 20), ch, font=font, fill=255)
        assert im.getbbox() is not None, ch
        masks.append(im)
    for a, b in zip(masks, masks[1:], strict=False):
        assert ImageChops.difference(a, b).getbbox() is not None


def test_a_character_no_font_has_is_a_clear_error(tmp_path, drafted):
    cats = copy.deepcopy(drafted)
    cats.by_lang["en"].messages[poster.HEADING] = "What do you think? \ue000"
    with pytest.raises(poster.PosterError, match="Inget typsnitt har tecknet.*fonts-noto-core"):
        poster.make_poster(fake_campaign(["sv", "en"]), sms_number=NUMBER, telegram_link=LINK,
                           catalogs=cats, out=tmp_path / "p.png")


def test_no_fonts_at_all_is_a_clear_error(tmp_path, drafted, monkeypatch):
    monkeypatch.setattr(typeset, "FONT_DIRS", (tmp_path / "no-fonts",))
    typeset.installed_faces.cache_clear()
    try:
        with pytest.raises(poster.PosterError, match="installera Debianpaketet"):
            poster.make_poster(fake_campaign(), sms_number=NUMBER, telegram_link=LINK,
                               catalogs=drafted, out=tmp_path / "p.png")
    finally:
        monkeypatch.undo()
        typeset.installed_faces.cache_clear()
