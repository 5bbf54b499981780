"""The translators' pipeline: extract every child-facing string (code and questionnaires) into
locales/tala.pot, then merge it into every language's tala.po. Uses Babel's own front end, so
it is exactly what `pybabel extract` / `pybabel update` would do."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from babel.messages.frontend import CommandLineInterface

import locales
from flows.i18n import DOMAIN

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
