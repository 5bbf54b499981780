"""What staff read, in their language: the gettext domain ``tala-staff``.

Swedish is the source language here too, so a msgid *is* the Swedish text, and Swedish needs
no catalog at all. English comes from ``locales/en/LC_MESSAGES/tala-staff.po``, read with Babel
the first time it is used (no compiled file that could go stale). A msgid without an English
translation is shown in Swedish, never as an empty line.

The language is, in this order: the one a staff API request asked for (``use_lang``), then
``TALA_LANG``, then the locale (``LC_ALL``, ``LC_MESSAGES``, ``LANG``: ``en_GB.UTF-8`` means
English), then Swedish. Only ``sv`` and ``en`` exist; anything else means Swedish.

Mark a string with ``_("...")`` where it is shown, or ``N_("...")`` where it is defined before
anyone knows the language (a table of titles), then ``_()`` it where it is shown. bot/'s
refusals (``bot.refusal.Refusal``) carry a ``staff_text`` template and its values: show one with
``refusal_text``.
"""

from __future__ import annotations

import gettext as _gettext
import io
import os
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterator

from bot.refusal import Refusal

DOMAIN = "tala-staff"
SOURCE_LANG = "sv"
LANGS = ("sv", "en")
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"

_request_lang: ContextVar[str | None] = ContextVar("tala_staff_lang", default=None)
_lock = threading.Lock()
_loaded: dict[str, _gettext.NullTranslations] = {}


def pick(value: str | None) -> str | None:
    """``sv`` or ``en`` from a language tag, a locale name or an Accept-Language header
    ("en-GB,en;q=0.8" -> "en"); None when it names neither."""
    for part in (value or "").split(","):
        tag = part.split(";")[0].strip().replace("-", "_").split("_")[0].split(".")[0].lower()
        if tag in LANGS:
            return tag
    return None


def staff_lang() -> str:
    """The language staff read now (see the module's docstring for the order)."""
    asked = _request_lang.get()
    if asked:
        return asked
    chosen = pick(os.environ.get("TALA_LANG"))
    if chosen:
        return chosen
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var)
        if value:
            return pick(value) or SOURCE_LANG
    return SOURCE_LANG


@contextmanager
def use_lang(lang: str | None) -> Iterator[None]:
    """Within this block (one staff API request, say), texts are in `lang` when it is ``sv`` or
    ``en``; otherwise the usual order applies."""
    token = _request_lang.set(pick(lang))
    try:
        yield
    finally:
        _request_lang.reset(token)


def catalog_path(lang: str) -> Path:
    return LOCALES_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def _translations(lang: str) -> _gettext.NullTranslations:
    if lang == SOURCE_LANG:
        return _gettext.NullTranslations()
    with _lock:
        found = _loaded.get(lang)
        if found is None:
            found = _loaded[lang] = _read(lang)
        return found


def _read(lang: str) -> _gettext.NullTranslations:
    po = catalog_path(lang)
    if not po.exists():
        return _gettext.NullTranslations()
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as fh:
        cat = read_po(fh, locale=lang, domain=DOMAIN)
    buf = io.BytesIO()
    write_mo(buf, cat, use_fuzzy=False)  # fuzzy entries fall back to Swedish
    buf.seek(0)
    return _gettext.GNUTranslations(buf)


def reload() -> None:
    """Forget the catalogs read so far (tests, and `tala locales update`)."""
    with _lock:
        _loaded.clear()


def _(msgid: str) -> str:
    """`msgid` (Swedish) in the staff language."""
    return _translations(staff_lang()).gettext(msgid)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for `n`, in the staff language."""
    return _translations(staff_lang()).ngettext(singular, plural, n)


def N_(msgid: str) -> str:
    """Marks a string for extraction without translating it here; ``_()`` it where shown."""
    return msgid


def refusal_text(e: Exception) -> str:
    """What staff read for an error: a bot/ refusal's template in the staff language, filled in
    with its values; any other error as it says itself."""
    if isinstance(e, Refusal):
        return _(e.template).format(**e.params)
    return str(e)
