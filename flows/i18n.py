"""Catalogs: every sentence a child sees comes from here.

Swedish is the source language, so a msgid *is* the Swedish text and a missing or fuzzy
translation falls back to Swedish for that one string, never to an empty message. The `.po`
files are read with Babel when the app is built (or, loaded with `lazy=True`, each the first
time its language is used): there is no compiled file that could go stale.
"""

from __future__ import annotations

import copy
import re
import threading
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from babel import Locale
from babel.messages.pofile import read_po

import locales

SOURCE_LANG = "sv"
DOMAIN = "tala"
LOCALES_DIR = Path(locales.__file__).parent


def N_(msgid: str) -> str:
    """Marks a string for extraction (`pybabel extract -k N_`) without translating it here."""
    return msgid


# Letters children's keyboards write either way: Arabic and Persian yeh and kaf, alef maqsura,
# teh marbuta; the Ukrainian apostrophe typed as a modifier letter.
_FOLD = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "\u02bc": " ", "\u2019": " "})


def normalise(text: str) -> str:
    """Lower case, no diacritics, no punctuation, single spaces: what a child's input and every
    word it is compared with are reduced to ("Japp!" -> "japp", "Hoppa  över" -> "hoppa over").
    Letters without a decomposition (Arabic, Tigrinya, ...) are kept, with the variants in
    _FOLD made one."""
    text = unicodedata.normalize("NFKD", text.casefold()).translate(_FOLD)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat == "Mn":
            continue
        out.append(ch if cat[0] in "LN" else " ")
    return " ".join("".join(out).split())


def review_state(header_comment: str) -> str:
    """A catalog's review state, from a `# Review-State: draft|reviewed` line in its header
    comment (Babel drops unknown MIME headers, but keeps the header comment on update)."""
    m = re.search(r"^#\s*Review-State:\s*(\w+)", header_comment or "", re.MULTILINE)
    return m.group(1).lower() if m else "unknown"


@dataclass
class Catalog:
    lang: str
    messages: dict[str, str] = field(default_factory=dict)
    review_state: str = "source"

    def gettext(self, msgid: str) -> str:
        return self.messages.get(msgid) or msgid


def read_catalog(lang: str, po: Path) -> Catalog:
    """One language's catalog from its .po file: translated, non-fuzzy entries only."""
    with po.open("rb") as fh:
        cat = read_po(fh, locale=lang, domain=DOMAIN)
    msgs = {m.id: m.string for m in cat if m.id and isinstance(m.id, str)
            and isinstance(m.string, str) and m.string and not m.fuzzy}
    return Catalog(lang, msgs, review_state(cat.header_comment))


class LazyCatalogs(Mapping[str, Catalog]):
    """`Catalogs.by_lang` for `Catalogs.load(lazy=True)`: every language in the folder (its keys
    and order known at once), each .po read the first time that language is asked for, then
    kept. A command that reads one Swedish summary then parses no .po at all."""

    def __init__(self, files: dict[str, Path | None]):
        self._files = files
        self._read: dict[str, Catalog] = {}
        self._lock = threading.Lock()

    def __getitem__(self, lang: str) -> Catalog:
        cat = self._read.get(lang)
        if cat is None:
            po = self._files[lang]  # KeyError: a language tala does not have
            with self._lock:
                cat = self._read.get(lang)
                if cat is None:
                    cat = Catalog(lang) if po is None else read_catalog(lang, po)
                    self._read[lang] = cat
        return cat

    def __contains__(self, lang: object) -> bool:
        return lang in self._files

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)

    def __deepcopy__(self, memo: dict) -> "LazyCatalogs":
        new = LazyCatalogs(dict(self._files))
        new._read = copy.deepcopy(self._read, memo)
        return new


@dataclass
class Catalogs:
    """All languages tala can speak, loaded once. Lookups are plain dict reads."""

    by_lang: Mapping[str, Catalog]
    _words: dict[tuple[str, str], set[str]] = field(default_factory=dict, repr=False)
    # What babel says of a language (its names, its direction) does not change while tala
    # runs, and asking it again was 2 % of a message's CPU (the engine looks for a language's
    # name in every answer).
    _names: dict[str, set[str]] = field(default_factory=dict, repr=False)
    _rtl: dict[str, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR, *, lazy: bool = False) -> "Catalogs":
        """Every language in `directory`. With `lazy`, each .po is read (and a broken one
        found) when its language is first used; `read_all` reads the rest at once."""
        # The language menu's order: Swedish, English (widely read), then the rest by code.
        found = sorted(Path(directory).glob(f"*/LC_MESSAGES/{DOMAIN}.po"),
                       key=lambda p: (p.parent.parent.name != "en", p.parent.parent.name))
        files: dict[str, Path | None] = {SOURCE_LANG: None}
        files.update((po.parent.parent.name, po) for po in found)
        if lazy:
            return cls(LazyCatalogs(files))
        return cls({lang: Catalog(lang) if po is None else read_catalog(lang, po)
                    for lang, po in files.items()})

    def read_all(self) -> None:
        """Read every language's catalog now (a server does, so a broken .po stops it at
        start rather than in a child's conversation)."""
        for lang in self.by_lang:
            self.by_lang[lang]

    @property
    def languages(self) -> list[str]:
        return list(self.by_lang)

    def has(self, lang: str) -> bool:
        return lang in self.by_lang

    def gettext(self, lang: str, msgid: str) -> str:
        cat = self.by_lang.get(lang) or self.by_lang[SOURCE_LANG]
        return cat.gettext(msgid)

    def words(self, lang: str, msgid: str) -> set[str]:
        """A comma-separated word list from the catalog, normalised; the Swedish source words
        are always accepted too, so a child who mixes languages is still understood. Worked
        out once per language and list: it is read on every message."""
        key = (lang, msgid)
        if key not in self._words:
            found: set[str] = set()
            for text in {self.gettext(lang, msgid), msgid}:
                found.update(normalise(w) for w in text.split(",") if normalise(w))
            self._words[key] = found
        return self._words[key]

    def own_name(self, lang: str) -> str:
        """The language's name in itself ("svenska", "English", "العربية")."""
        name = Locale.parse(lang).get_display_name(lang) or lang
        return name[:1].upper() + name[1:] if lang != SOURCE_LANG else name

    def names_for(self, lang: str) -> set[str]:
        """Every way a child may name a language: its own name and its Swedish and English
        names. Not its code: "ar", "so" or "fi" are too easily an everyday word."""
        if lang not in self._names:
            loc = Locale.parse(lang)
            names = {loc.get_display_name(lang), loc.get_display_name("sv"),
                     loc.get_display_name("en"), loc.get_language_name(lang)}
            self._names[lang] = {normalise(n) for n in names if n}
        return self._names[lang]

    def rtl(self, lang: str) -> bool:
        if lang not in self._rtl:
            self._rtl[lang] = Locale.parse(lang).text_direction == "rtl"
        return self._rtl[lang]
