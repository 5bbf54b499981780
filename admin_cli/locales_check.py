"""`tala locales check`: what every translation of a child-facing text must keep.

- The agreed terms (locales/<lang>/glossary.yaml): when a Swedish text contains a glossary term
  (socialtjänsten, BRIS, an answer word such as "hoppa över", a scale word), its translation
  contains that language's agreed term, so a child meets one word for one thing everywhere.
- Numbers (112, BRIS 116 111, Självmordslinjen 90101, "från 1 till 5") exactly as in Swedish:
  a child dials them or types them back.
- Placeholders: the same {names} as the Swedish text, or tala cannot fill them in.

Untranslated and fuzzy entries are not looked at: the child sees Swedish for those.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import yaml
from babel.messages.pofile import read_po

from admin_cli.i18n import _, ngettext
from admin_cli.locales import CHILD, LOCALES

GLOSSARY = "glossary.yaml"
_PLACEHOLDER = re.compile(r"\{(\w*)\}")
# A number as it is written in the texts, digit groups included: "116 111", "90101", "10".
_NUMBER = re.compile(r"(?<![\d\w])\d+(?: \d{3})*(?![\d\w])")


class GlossaryError(ValueError):
    """A glossary file that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class Problem:
    lang: str
    msgid: str
    term: str  # the glossary term, the number or the placeholder at fault
    detail: str

    def __str__(self) -> str:
        if not self.msgid:
            return f"{self.lang}: {self.detail}"
        flat = self.msgid.replace("\n", "\\n")
        short = flat if len(flat) <= 70 else flat[:67] + "..."
        return f"{self.lang}: \"{short}\": {self.detail}"


def load_glossary(path: Path) -> dict[str, tuple[str, ...]]:
    """Swedish term -> the forms of the agreed term that count (one of them must appear).
    A value is a string or a list of strings (stems are fine: "sosiaalipalvelu" accepts
    "sosiaalipalveluista")."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise GlossaryError(_("{path}: inte giltig YAML ({error})").format(path=path, error=e)
                            ) from e
    terms = data.get("terms") if isinstance(data, dict) else None
    if not isinstance(terms, dict):
        raise GlossaryError(_("{path}: här ska finnas en tabell 'terms:' med svensk term: "
                              "överenskommen term").format(path=path))
    out = {}
    for term, target in terms.items():
        forms = [target] if isinstance(target, (str, int)) else target
        if not isinstance(forms, list) or not forms or not all(
                isinstance(f, (str, int)) and str(f).strip() for f in forms):
            raise GlossaryError(_("{path}: termen \"{term}\" saknar en överenskommen term (en "
                                  "text eller en lista med texter)").format(path=path, term=term))
        out[str(term)] = tuple(str(f) for f in forms)
    return out


def _contains(text: str, term: str) -> bool:
    """`term` as a whole word (or words) in `text`, ignoring case."""
    return re.search(rf"(?<!\w){re.escape(term)}(?!\w)", text, re.IGNORECASE) is not None


def _script(ch: str) -> str:
    return unicodedata.name(ch, "?").split()[0]  # LATIN, ARABIC, ETHIOPIC, CYRILLIC, ...


def _starts_word(text: str, form: str) -> bool:
    """`form` at the start of a word in `text`, ignoring case: a stem ("ohit") matches the
    forms a sentence needs ("ohita", "ohittaa"), never the inside of another word. A letter of
    another script may come right before it: Tigrinya writes "to BRIS" as "ንBRIS"."""
    for m in re.finditer(re.escape(form), text, re.IGNORECASE):
        before = text[m.start() - 1] if m.start() else " "
        if not before.isalnum() or _script(before) != _script(form[0]):
            return True
    return False


def _forms(msgid: str | tuple, msgstr: str | tuple) -> list[tuple[str, str]]:
    """(Swedish, translation) pairs of an entry; a plural's every form against its plural
    msgid (the singular for form 0)."""
    if isinstance(msgid, str):
        return [(msgid, msgstr)] if msgstr else []
    return [(msgid[0] if i == 0 else msgid[1], s) for i, s in enumerate(msgstr) if s]


def check_entry(lang: str, msgid: str, msgstr: str,
                glossary: dict[str, tuple[str, ...]]) -> list[Problem]:
    problems = []
    for term, forms in glossary.items():
        if _contains(msgid, term) and not any(_starts_word(msgstr, f) for f in forms):
            problems.append(Problem(lang, msgid, term, _(
                "ordlistans term \"{term}\" heter \"{target}\" på {lang}, men översättningen "
                "saknar den").format(term=term, target=forms[0], lang=lang)))
    for number in dict.fromkeys(_NUMBER.findall(msgid)):
        # Digits only around it: "و112" (Arabic "and 112") and "1ን" (Tigrinya) keep the number.
        if not re.search(rf"(?<!\d){re.escape(number)}(?!\d)", msgstr):
            problems.append(Problem(lang, msgid, number, _(
                "{number} ska stå som i den svenska texten").format(number=number)))
    want, got = set(_PLACEHOLDER.findall(msgid)), set(_PLACEHOLDER.findall(msgstr))
    if want != got:
        detail = ", ".join(
            [_("{name} saknas").format(name=f"{{{p}}}") for p in sorted(want - got)]
            + [_("{name} finns inte i den svenska texten").format(name=f"{{{p}}}")
               for p in sorted(got - want)])
        problems.append(Problem(lang, msgid, ", ".join(sorted(want ^ got)),
                                _("platshållarna stämmer inte: {detail}").format(detail=detail)))
    return problems


def check(locales_dir: Path = LOCALES) -> list[Problem]:
    """Every problem in every language's child-facing catalog, in catalog order."""
    problems = []
    for po in CHILD.catalogs(locales_dir):
        lang = po.parent.parent.name
        path = locales_dir / lang / GLOSSARY
        if not path.exists():
            problems.append(Problem(lang, "", GLOSSARY, _(
                "ordlista saknas: {path}").format(path=path)))
        glossary = load_glossary(path) if path.exists() else {}
        with po.open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        for m in catalog:
            if not m.id or m.fuzzy:
                continue
            for msgid, msgstr in _forms(m.id, m.string):
                problems += check_entry(lang, msgid, msgstr, glossary)
    return problems


def report(locales_dir: Path = LOCALES) -> tuple[int, list[str]]:
    """`tala locales check`: the lines to print and the exit code (0 clean, 1 problems)."""
    try:
        problems = check(locales_dir)
    except GlossaryError as e:
        return 1, [str(e)]
    langs = len(CHILD.catalogs(locales_dir))
    if not problems:
        return 0, [ngettext("Alla översättningar följer ordlistan, numren och platshållarna "
                            "({n} språk).",
                            "Alla översättningar följer ordlistorna, numren och platshållarna "
                            "({n} språk).", langs).format(n=langs)]
    n = len(problems)
    return 1, [str(p) for p in problems] + [
        ngettext("{n} fel i översättningarna.", "{n} fel i översättningarna.", n).format(n=n)]
