"""Understanding what a child types: a number, a yes or a no, an option by its number or its
words, several options at once, a command ("hjälp", "/back"), a language's name. Pure functions
of the text and the session's language; flows/engine.py decides what to do with the result."""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Protocol

from flows import messages as M
from flows.i18n import Catalogs, normalise
from flows.model import Question


class Talk(Protocol):
    """The session's language, as the engine's _Talk gives it."""

    def _(self, msgid: str, **kw: Any) -> str: ...

    def words(self, msgid: str) -> set[str]: ...


@dataclass
class Parsed:
    ok: bool
    value: Any = None
    text: str | None = None
    error: str = ""


_NUMBER = re.compile(r"\d+")


@functools.lru_cache(maxsize=8192)
def label(text: str) -> str:
    """normalise() of a label, an answer text or a word list entry: these come from the
    questionnaires and catalogs, a bounded set, and each message compares the child's input
    with dozens of them. (Never used on what the child typed: that is not kept.)"""
    return normalise(text)


def is_option_text(t: Talk, q: Question, norm: str) -> bool:
    """The input is, word for word, one of this question's answer texts."""
    texts = [o.text for o in q.options] + (list(q.scale.labels.values()) if q.scale else [])
    return any(norm == label(x) or norm == label(t._(x)) for x in texts)


def digits(text: str) -> str:
    """Arabic-Indic, Persian and other digits as ASCII digits."""
    return "".join(str(unicodedata.digit(ch)) if ch.isdigit() else ch for ch in text)


def numbers(t: Talk, norm: str) -> list[int]:
    norm = digits(norm)
    found = [int(n) for n in _NUMBER.findall(norm)]
    if found:
        return found
    table: dict[str, int] = {}
    for lang_text in {t._(M.NUMBER_WORDS), M.NUMBER_WORDS}:
        for value, forms in enumerate(lang_text.split("|")):
            for w in forms.split(","):
                if label(w):
                    table.setdefault(label(w), value)
    return [table[w] for w in norm.split() if w in table]


def yes_no(t: Talk, norm: str) -> str | None:
    if not norm:
        return None
    yes, no = t.words(M.WORDS_YES), t.words(M.WORDS_NO)
    if norm in yes:
        return "yes"
    if norm in no:
        return "no"
    first = norm.split()[0]
    if first in yes:
        return "yes"
    if first in no:
        return "no"
    return None


def match_label(norm: str, labels: list[tuple[Any, str]]) -> Any:
    """The value whose label the input names: exactly, by an unambiguous beginning, or by
    words found in one label only."""
    exact = {v for v, lbl in labels if label(lbl) == norm}
    if len(exact) == 1:
        return exact.pop()
    if len(norm) >= 3:
        starts = {v for v, lbl in labels if label(lbl).startswith(norm)}
        if len(starts) == 1:
            return starts.pop()
    if len(norm) >= 4:
        # "nästan varje dag" for "Varje dag eller nästan varje dag": whole words, one option.
        inside = {v for v, lbl in labels if f" {norm} " in f" {label(lbl)} "}
        if len(inside) == 1:
            return inside.pop()
    return None


def parse(t: Talk, q: Question, text: str, norm: str) -> Parsed:
    if q.type == "free_text":
        return Parsed(bool(norm), text=text) if norm else Parsed(False, error=t._(M.HINT_FREE))
    if q.type == "yes_no":
        if norm in ("1", "2"):
            return Parsed(True, "yes" if norm == "1" else "no")
        yn = yes_no(t, norm)
        return Parsed(True, yn) if yn else Parsed(False, error=t._(M.HINT_YES_NO))
    if q.type == "scale":
        sc = q.scale
        labels = [(v, t._(lbl)) for v, lbl in sc.labels.items()]
        by_label = match_label(norm, labels + [(v, lbl) for v, lbl in sc.labels.items()])
        if by_label is not None:
            return Parsed(True, by_label)
        nums = numbers(t, norm)
        if len(nums) == 1:
            if sc.min <= nums[0] <= sc.max:
                return Parsed(True, nums[0])
            return Parsed(False, error=t._(M.OUT_OF_RANGE, low=sc.min, high=sc.max))
        return Parsed(False, error=t._(M.HINT_SCALE, low=sc.min, high=sc.max))
    # choice / multi_choice
    labels = [(o.id, t._(o.text)) for o in q.options] + [(o.id, o.text) for o in q.options]
    whole = match_label(norm, labels)
    if whole is not None:
        return Parsed(True, [whole] if q.type == "multi_choice" else whole)
    if q.type == "choice":
        nums = numbers(t, norm)
        if len(nums) == 1 and 1 <= nums[0] <= len(q.options):
            return Parsed(True, q.options[nums[0] - 1].id)
        if len(nums) == 1:
            return Parsed(False, error=t._(M.NO_SUCH_CHOICE, count=len(q.options)))
        return Parsed(False, error=t._(M.HINT_CHOICE))
    return _parse_multi(t, q, text, labels)


def _parse_multi(t: Talk, q: Question, raw: str, labels: list) -> Parsed:
    """Several answers: "1 3", "1, 3", "1 och 3", or option texts separated by commas."""
    joiners = t.words(M.WORDS_AND)
    chosen: list[str] = []
    for chunk in re.split(r"[,;/+&\n]", raw):
        norm = normalise(chunk)
        if not norm:
            continue
        oid = match_label(norm, labels)
        if oid is not None:
            chosen.append(oid)
            continue
        # Not one option's text: split on "och"/"and", then each part is a number or a text.
        parts, cur = [], []
        for word in norm.split():
            if word in joiners:
                parts.append(" ".join(cur))
                cur = []
            else:
                cur.append(word)
        parts.append(" ".join(cur))
        for part in filter(None, parts):
            oid = match_label(part, labels)
            if oid is not None:
                chosen.append(oid)
                continue
            words = part.split()
            nums = [n for w in words for n in numbers(t, w)]
            if not nums or len(nums) != len(words):
                return Parsed(False, error=t._(M.HINT_MULTI))
            for n in nums:
                if not 1 <= n <= len(q.options):
                    return Parsed(False, error=t._(M.NO_SUCH_CHOICE, count=len(q.options)))
                chosen.append(q.options[n - 1].id)
    chosen = list(dict.fromkeys(chosen))
    if not chosen:
        return Parsed(False, error=t._(M.HINT_MULTI))
    for oid in chosen:
        opt = q.option(oid)
        if opt.exclusive and len(chosen) > 1:
            return Parsed(False, error=t._(M.EXCLUSIVE_CHOICE, option=t._(opt.text)))
    return Parsed(True, chosen)


_COMMANDS = (("help", M.WORDS_HELP), ("back", M.WORDS_BACK), ("skip", M.WORDS_SKIP),
             ("pause", M.WORDS_PAUSE), ("stop", M.WORDS_STOP), ("answers", M.WORDS_ANSWERS),
             ("language", M.WORDS_LANGUAGE))


# Bot-menu commands (Telegram's /help, /back ...): the same in every language.
SLASH_COMMANDS = {"help": "help", "back": "back", "skip": "skip", "pause": "pause",
                  "stop": "stop", "language": "language", "answers": "answers"}


def command(t: Talk, norm: str, raw: str = "") -> str | None:
    if raw.startswith("/"):
        word = raw[1:].split(maxsplit=1)[0].split("@")[0].lower() if raw[1:].strip() else ""
        if word in SLASH_COMMANDS:
            return SLASH_COMMANDS[word]
    for name, msgid in _COMMANDS:
        if norm in t.words(msgid):
            return name
    return None


def language_named(catalogs: Catalogs, norm: str) -> str | None:
    if not norm or len(norm) < 2:
        return None
    for lang in catalogs.languages:
        if norm in catalogs.names_for(lang):
            return lang
    return None


def pick_language(catalogs: Catalogs, norm: str) -> str | None:
    langs = catalogs.languages
    number = digits(norm)
    if number.isdigit() and 1 <= int(number) <= len(langs):
        return langs[int(number) - 1]
    return language_named(catalogs, norm)
