"""A Babel extractor for questionnaire YAML, so `pybabel extract` finds every child-facing
string in the questionnaires with a comment that tells the translator where it is used.

Registered in babel.cfg as `[extractors] tala_yaml = flows.babel_extract:extract`, beside
`tala_python = flows.babel_extract:extract_python`: Babel's own Python extractor, except that a
translator comment written over several source lines comes out as one sentence. Babel wraps
every comment line at 76 columns on its own, so a 95-column source line became a line and a
stub ("... when the unit's" / "on-call staff"); as one sentence it is wrapped evenly, and the
same source always gives the same comment.

`extract_python` takes one option of its own from a section of the config: `keywords` (a
space-separated list, as `-k` takes them) keeps only the strings marked by those keywords in the
files of that section, instead of every keyword the extraction runs with. babel-staff.cfg's
`[tala_python: bot/**.py]` has `keywords = staff_text`, so the staff domain takes bot's refusals
and none of its child-facing `N_` strings. (Babel itself would add a section's keywords to the
others; here they replace them.)
"""

from __future__ import annotations

from typing import IO, Any, Iterator

import yaml
from babel.messages.extract import extract_python as _babel_python

TYPE_NAMES = {"info": "information text", "yes_no": "yes/no question", "scale": "scale question",
              "choice": "question with one answer", "multi_choice": "question with several "
              "answers", "free_text": "question answered in own words"}


def _scalar(node: Any, key: str) -> Any:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    return None


def extract(fileobj: IO[bytes], keywords: Any, comment_tags: Any,
            options: dict) -> Iterator[tuple[int, str | None, str, list[str]]]:
    root = yaml.compose(fileobj.read().decode("utf-8"))
    if not isinstance(root, yaml.MappingNode):
        return
    qn_id = getattr(_scalar(root, "id"), "value", "?")
    age = _scalar(root, "age")
    ages = (f"ages {getattr(_scalar(age, 'min'), 'value', '?')}-"
            f"{getattr(_scalar(age, 'max'), 'value', '?')}")
    where = f"Questionnaire {qn_id} ({ages})"
    title = _scalar(root, "title")
    if isinstance(title, yaml.ScalarNode):
        yield title.start_mark.line + 1, None, title.value, [f"{where}: its title."]
    questions = _scalar(root, "questions")
    if not isinstance(questions, yaml.SequenceNode):
        return
    for q in questions.value:
        qid = getattr(_scalar(q, "id"), "value", "?")
        qtype = getattr(_scalar(q, "type"), "value", "?")
        domain = getattr(_scalar(q, "domain"), "value", "general")
        about = f"{where}, {qid}: {TYPE_NAMES.get(qtype, qtype)} about {domain}"
        text = _scalar(q, "text")
        if isinstance(text, yaml.ScalarNode):
            yield text.start_mark.line + 1, None, text.value.strip(), [f"{about}."]
        options = _scalar(q, "options")
        if isinstance(options, yaml.SequenceNode):
            for o in options.value:
                ot = _scalar(o, "text")
                oid = getattr(_scalar(o, "id"), "value", "?")
                if isinstance(ot, yaml.ScalarNode):
                    yield ot.start_mark.line + 1, None, ot.value, [
                        f"{about}. Answer option '{oid}'."]
        labels = _scalar(_scalar(q, "scale"), "labels")
        if isinstance(labels, yaml.MappingNode):
            for k, v in labels.value:
                yield v.start_mark.line + 1, None, v.value, [
                    f"{about}. What the number {k.value} on the scale means."]


def _named(option: Any) -> set[str]:
    # Babel 2.19 parses a section's `keywords` into a dict (name -> spec); older ones pass the
    # text as written ("staff_text _:1").
    if isinstance(option, str):
        return {word.split(":")[0] for word in option.split()}
    return set(option)


def extract_python(fileobj: IO[bytes], keywords: Any, comment_tags: Any,
                   options: dict) -> Iterator[tuple[int, Any, Any, list[str]]]:
    only = options.get("keywords")
    if only:
        wanted = _named(only)
        keywords = [k for k in keywords if k in wanted]
    for lineno, funcname, message, comments in _babel_python(fileobj, keywords, comment_tags,
                                                             options):
        joined = " ".join(c.strip() for c in comments if c.strip())
        yield lineno, funcname, message, [joined] if joined else []
