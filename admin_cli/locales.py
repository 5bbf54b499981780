"""The translators' pipeline: extract every child-facing string (code and questionnaires) into
locales/tala.pot, then merge it into every language's tala.po. Uses Babel's own front end, so
it is exactly what `pybabel extract` / `pybabel update` would do."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dataclasses import dataclass

from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import locales
from flows.i18n import DOMAIN, SOURCE_LANG

ROOT = Path(__file__).resolve().parent.parent
LOCALES = Path(locales.__file__).parent
POT = LOCALES / f"{DOMAIN}.pot"


@contextmanager
def _in_root() -> Iterator[None]:
    # Run from the project root so the catalogs name files by relative path.
    before = os.getcwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(before)


def extract(pot: Path = POT) -> Path:
    with _in_root():
        CommandLineInterface().run([
            "pybabel", "-q", "extract", "-F", "babel.cfg", "--no-default-keywords", "-k", "N_",
            "-c", "Translators:", "--sort-by-file", "--no-wrap", "--project", "tala",
            "--copyright-holder", "tala contributors", "--msgid-bugs-address", "",
            "-o", str(pot), "."])
    return pot


def update(pot: Path = POT, locales_dir: Path = LOCALES) -> list[Path]:
    """Extract, then update every catalog. Returns the catalogs touched."""
    extract(pot)
    catalogs = sorted(locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    if catalogs:
        CommandLineInterface().run([
            "pybabel", "-q", "update", "-D", DOMAIN, "-i", str(pot), "-d", str(locales_dir),
            "--no-wrap", "--ignore-obsolete"])
    return catalogs


@dataclass(frozen=True)
class LanguageStatus:
    lang: str
    name: str
    translated: int
    total: int
    fuzzy: int
    review_state: str
    longest_sms: int  # segments of the dearest way through the longest questionnaire
    safety_review: str = "none"  # the safeguarding phrases' review state (flows/safeguarding.yaml)
    safety_phrases: int = 0

    @property
    def share(self) -> float:
        return self.translated / self.total if self.total else 1.0


def status(locales_dir: Path = LOCALES, pot: Path = POT) -> list[LanguageStatus]:
    """Per language: how much is translated (against the template), what is fuzzy, whether a
    translator has reviewed it, what the longest questionnaire costs by SMS in it, and the
    review state of its safeguarding phrases."""
    from admin_cli.cost import cost
    from flows.engine import Runtime, SafetyLexicon
    from flows.i18n import Catalogs, review_state
    from flows.model import load_dir

    with pot.open("rb") as fh:
        wanted = {m.id for m in read_po(fh) if m.id}
    catalogs = Catalogs.load(locales_dir)
    lexicon = SafetyLexicon.load()
    rt = Runtime(catalogs, lexicon)
    safety = {lang.lang: lang for lang in lexicon.languages}
    questionnaires = list(load_dir().values())
    out = []
    for lang in catalogs.languages:
        if lang == SOURCE_LANG:
            translated, fuzzy, review = len(wanted), 0, "source"
        else:
            with (locales_dir / lang / "LC_MESSAGES" / f"{DOMAIN}.po").open("rb") as fh:
                cat = read_po(fh, locale=lang)
            done = {m.id for m in cat if m.id in wanted and m.string and not m.fuzzy}
            translated = len(done)
            fuzzy = sum(1 for m in cat if m.id and m.fuzzy)
            review = review_state(cat.header_comment)
        longest = max(cost(rt, qn, lang).longest.segments for qn in questionnaires)
        phrases = safety.get(lang)
        out.append(LanguageStatus(lang, catalogs.own_name(lang), translated, len(wanted),
                                  fuzzy, review, longest,
                                  phrases.review if phrases else "none",
                                  phrases.phrases if phrases else 0))
    return out


def compile_all(locales_dir: Path = LOCALES) -> list[Path]:
    """Binary .mo files next to each .po, for other gettext tools. tala itself reads the .po
    files when it starts, so what it shows can never be older than the catalog."""
    made = []
    for po in sorted(locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po")):
        with po.open("rb") as fh:
            cat = read_po(fh, locale=po.parent.parent.name)
        mo = po.with_suffix(".mo")
        with mo.open("wb") as fh:
            write_mo(fh, cat, use_fuzzy=False)
        made.append(mo)
    return made
