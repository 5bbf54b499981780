"""The translators' pipeline, for both gettext domains: extract every string (child-facing
ones from code and questionnaires into locales/tala.pot, staff-facing ones into
locales/tala-staff.pot), then merge the template into every language's catalog of that domain.
Uses Babel's own front end, so it is exactly what `pybabel extract` / `pybabel update` would do
with the options below.

Unchanged sources give byte-identical files: messages are never wrapped (`--no-wrap`),
translator comments are whole sentences that Babel wraps at a fixed width (see
flows/babel_extract.py), entries are sorted by file, locations name the file without a line
number (so an edit that only moves a text does not touch eight catalogs), and a template whose
only change would be its POT-Creation-Date is left as it is, so the catalogs keep theirs too.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import locales
from flows.i18n import DOMAIN, SOURCE_LANG

ROOT = Path(__file__).resolve().parent.parent
LOCALES = Path(locales.__file__).parent
POT = LOCALES / f"{DOMAIN}.pot"


@dataclass(frozen=True)
class Domain:
    """One gettext domain: where its strings are found and what marks them."""
    name: str
    config: str  # the extraction config at the project root
    keywords: tuple[str, ...]

    def pot(self, locales_dir: Path = LOCALES) -> Path:
        return locales_dir / f"{self.name}.pot"

    def catalogs(self, locales_dir: Path = LOCALES) -> list[Path]:
        return sorted(locales_dir.glob(f"*/LC_MESSAGES/{self.name}.po"))


# The poster's child-facing texts are marked `child_text` (admin_cli/ is otherwise staff-facing).
CHILD = Domain(DOMAIN, "babel.cfg", ("N_", "child_text"))
# bot/'s refusals are marked `staff_text` (bot/refusal.py; babel-staff.cfg takes only those there).
STAFF = Domain("tala-staff", "babel-staff.cfg", ("_", "N_", "ngettext:1,2", "staff_text"))
DOMAINS = (CHILD, STAFF)

_CREATED = re.compile(rb'^"POT-Creation-Date: [^"]*"\n', re.MULTILINE)


@contextmanager
def _in_root() -> Iterator[None]:
    # Run from the project root so the catalogs name files by relative path.
    before = os.getcwd()
    os.chdir(ROOT)
    try:
        yield
    finally:
        os.chdir(before)


def extract(pot: Path = POT, domain: Domain = CHILD) -> Path:
    """Write the domain's template. When nothing but the creation date would change, the
    template already there is kept as it is."""
    pot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / pot.name
        keywords = [arg for k in domain.keywords for arg in ("-k", k)]
        with _in_root():
            CommandLineInterface().run([
                "pybabel", "-q", "extract", "-F", domain.config, "--no-default-keywords",
                *keywords, "-c", "Translators:", "--sort-by-file", "--no-wrap",
                "--add-location", "file",
                "--project", "tala", "--copyright-holder", "tala contributors",
                "--msgid-bugs-address", "", "-o", str(fresh), "."])
        new = fresh.read_bytes()
        if not (pot.exists() and _CREATED.sub(b"", pot.read_bytes()) == _CREATED.sub(b"", new)):
            pot.write_bytes(new)
    return pot


def update(pot: Path = POT, locales_dir: Path = LOCALES, domain: Domain = CHILD) -> list[Path]:
    """Extract, then merge the template into every catalog of the domain. Returns the catalogs
    (each is rewritten by Babel, and comes out byte for byte the same when nothing changed)."""
    extract(pot, domain)
    catalogs = domain.catalogs(locales_dir)
    if catalogs:
        CommandLineInterface().run([
            "pybabel", "-q", "update", "-D", domain.name, "-i", str(pot), "-d", str(locales_dir),
            "--no-wrap", "--ignore-obsolete"])
    return catalogs


def update_all(locales_dir: Path = LOCALES) -> list[Path]:
    """`tala locales update`: both domains, child-facing and staff-facing."""
    return [po for d in DOMAINS for po in update(d.pot(locales_dir), locales_dir, d)]


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
