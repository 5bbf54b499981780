"""Questionnaires: the typed model, the YAML loader and the checks it makes.

A questionnaire is data (see FORMAT.md). Loading validates everything the engine relies on, so
the engine itself never meets a dangling target, a loop or a condition that cannot hold. Every
problem is reported with the file, the question id and what is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

SPEC_VERSIONS = {1}
END = "end"
QUESTION_TYPES = ("info", "yes_no", "scale", "choice", "multi_choice", "free_text")
DOMAINS = ("home", "school", "friends", "health", "safety", "caseworker", "help", "feedback",
           "general")
LEVELS = ("urgent", "concern")
CONDITION_KEYS = ("equals", "any_of", "at_most", "at_least")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_QID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")

BUILTIN_DIR = Path(__file__).parent / "questionnaires"


class QuestionnaireError(ValueError):
    """A questionnaire file is wrong. The message names the file, the question and the fault."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class Option:
    id: str
    text: str
    exclusive: bool = False


@dataclass(frozen=True)
class Condition:
    equals: str | int | None = None
    any_of: tuple[str, ...] = ()
    at_most: int | None = None
    at_least: int | None = None

    def matches(self, value: Any) -> bool:
        """True when an answer value (yes/no str, option id, list of ids, int) meets this."""
        if value is None:
            return False
        chosen = set(value) if isinstance(value, list) else {value}
        if self.equals is not None and self.equals not in chosen:
            return False
        if self.any_of and not (chosen & set(self.any_of)):
            return False
        if self.at_most is not None and not (isinstance(value, int) and value <= self.at_most):
            return False
        if self.at_least is not None and not (isinstance(value, int) and value >= self.at_least):
            return False
        return True


@dataclass(frozen=True)
class Branch:
    when: Condition
    next: str


@dataclass(frozen=True)
class SafeguardingRule:
    when: Condition
    level: str
    topic: str


@dataclass(frozen=True)
class Scale:
    min: int
    max: int
    labels: dict[int, str]


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    text: str
    domain: str = "general"
    followup: bool = False
    options: tuple[Option, ...] = ()
    scale: Scale | None = None
    branches: tuple[Branch, ...] = ()
    next: str | None = None
    safeguarding: tuple[SafeguardingRule, ...] = ()
    line: int = 0

    @property
    def answerable(self) -> bool:
        return self.type != "info"

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options if o.id == option_id), None)


@dataclass(frozen=True)
class Questionnaire:
    id: str
    version: int
    title: str
    min_age: int
    max_age: int
    questions: tuple[Question, ...]
    source: str = ""
    _by_id: dict[str, Question] = field(default_factory=dict, compare=False, repr=False)
    _default_next: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_id.update({q.id: q for q in self.questions})
        self._default_next.update(_default_successors(self.questions))

    @property
    def first(self) -> Question:
        return self.questions[0]

    def question(self, qid: str) -> Question:
        return self._by_id[qid]

    def has(self, qid: str) -> bool:
        return qid in self._by_id

    def next_after(self, q: Question, value: Any) -> str:
        """The id of the question after `q` given its answer value (None when skipped), or END."""
        for b in q.branches:
            if b.when.matches(value):
                return b.next
        return self.default_next(q)

    def default_next(self, q: Question) -> str:
        return q.next or self._default_next[q.id]

    def edges(self, q: Question) -> list[str]:
        return [b.next for b in q.branches] + [self.default_next(q)]

    @property
    def main_questions(self) -> list[Question]:
        return [q for q in self.questions if q.answerable and not q.followup]


def _default_successors(questions: tuple[Question, ...]) -> dict[str, str]:
    """The list successor of each question: the next main question, or the next follow-up in
    the same block when the question is itself a follow-up."""
    out: dict[str, str] = {}
    for i, q in enumerate(questions):
        nxt = END
        for later in questions[i + 1:]:
            if later.followup and not q.followup:
                continue
            if later.followup and q.followup:
                nxt = later.id
                break
            nxt = later.id
            break
        out[q.id] = nxt
    return out


# --------------------------------------------------------------------------- loading


class _Problems:
    def __init__(self, source: str):
        self.source = source
        self.items: list[str] = []

    def add(self, where: str | None, what: str) -> None:
        place = f"{self.source}: question '{where}'" if where else self.source
        self.items.append(f"{place}: {what}")


_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """yaml.safe_load, by libyaml's parser where PyYAML has it (the same data, eight times
    faster: loading every questionnaire is a good part of a short command's time). A file it
    cannot parse is parsed again by PyYAML's own parser, whose error shows the line itself."""
    try:
        return yaml.load(text, Loader=_FAST_LOADER)
    except yaml.YAMLError:
        if _FAST_LOADER is yaml.SafeLoader:
            raise
        return yaml.safe_load(text)


def load_file(path: str | Path) -> Questionnaire:
    path = Path(path)
    try:
        data = safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise QuestionnaireError([f"{path.name}: not valid YAML: {e}"]) from None
    return parse(data, source=path.name)


def load_dir(directory: str | Path = BUILTIN_DIR) -> dict[str, Questionnaire]:
    """Load and check every questionnaire in a folder; all problems are reported together."""
    found: dict[str, Questionnaire] = {}
    problems: list[str] = []
    for path in sorted(Path(directory).glob("*.yaml")):
        try:
            q = load_file(path)
        except QuestionnaireError as e:
            problems.extend(e.problems)
            continue
        if q.id in found:
            problems.append(f"{path.name}: questionnaire id '{q.id}' is already used by "
                            f"{found[q.id].source}")
        found[q.id] = q
    if problems:
        raise QuestionnaireError(problems)
    return found


def parse(data: Any, source: str = "<questionnaire>") -> Questionnaire:
    p = _Problems(source)
    if not isinstance(data, dict):
        raise QuestionnaireError([f"{source}: expected a mapping with spec_version, id, version, "
                                  "title, age and questions"])
    spec = data.get("spec_version")
    if spec not in SPEC_VERSIONS:
        raise QuestionnaireError([f"{source}: spec_version {spec!r} is not one this tala knows "
                                  f"({', '.join(map(str, sorted(SPEC_VERSIONS)))})"])
    qid = data.get("id")
    if not isinstance(qid, str) or not _QID.match(qid):
        p.add(None, "'id' must be a short name like followup-6-11")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        p.add(None, "'version' must be a whole number, 1 or more")
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        p.add(None, "'title' is missing")
    age = data.get("age")
    min_age = max_age = 0
    if (not isinstance(age, dict) or not isinstance(age.get("min"), int)
            or not isinstance(age.get("max"), int) or age["min"] > age["max"]):
        p.add(None, "'age' must be like {min: 6, max: 11}")
    else:
        min_age, max_age = age["min"], age["max"]
    raw_questions = data.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        p.add(None, "'questions' must be a non-empty list")
        raise QuestionnaireError(p.items)

    questions: list[Question] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_questions):
        q = _parse_question(raw, i, p)
        if q is None:
            continue
        if q.id in seen:
            p.add(q.id, "the id is used twice; every question needs its own id")
            continue
        seen.add(q.id)
        questions.append(q)
    if p.items:
        raise QuestionnaireError(p.items)

    by_id = {q.id: q for q in questions}
    for q in questions:
        for target in [b.next for b in q.branches] + ([q.next] if q.next else []):
            if target != END and target not in by_id:
                p.add(q.id, f"leads to '{target}', which is not a question in this file "
                            "(a dangling target)")
    if questions[0].followup:
        p.add(questions[0].id, "the first question cannot be a follow-up")
    if p.items:
        raise QuestionnaireError(p.items)

    qn = Questionnaire(id=qid, version=version, title=title, min_age=min_age, max_age=max_age,
                       questions=tuple(questions), source=source)
    _check_graph(qn, p)
    if p.items:
        raise QuestionnaireError(p.items)
    return qn


def _parse_condition(raw: Any, q: dict, where: str, p: _Problems, what: str) -> Condition | None:
    qtype = q.get("type")
    if not isinstance(raw, dict) or not raw:
        p.add(where, f"{what}: 'when' must be a mapping such as {{at_most: 2}}")
        return None
    unknown = set(raw) - set(CONDITION_KEYS)
    if unknown:
        p.add(where, f"{what}: unknown condition {sorted(unknown)} "
                     f"(known: {', '.join(CONDITION_KEYS)})")
        return None
    option_ids = {o.get("id") for o in q.get("options") or [] if isinstance(o, dict)}
    scale = q.get("scale") or {}
    lo, hi = scale.get("min"), scale.get("max")
    cond = Condition(equals=raw.get("equals"), any_of=tuple(raw.get("any_of") or ()),
                     at_most=raw.get("at_most"), at_least=raw.get("at_least"))
    if isinstance(cond.equals, bool):
        p.add(where, f"{what}: write equals: \"yes\" or \"no\" in quotes (YAML reads a bare "
                     "yes as true)")
        return None
    if qtype == "yes_no":
        if cond.any_of or cond.at_most is not None or cond.at_least is not None:
            p.add(where, f"{what}: a yes/no question only takes equals: \"yes\" or \"no\"")
        elif cond.equals not in ("yes", "no"):
            p.add(where, f"{what}: equals must be \"yes\" or \"no\", not {cond.equals!r}")
    elif qtype in ("choice", "multi_choice"):
        if cond.at_most is not None or cond.at_least is not None:
            p.add(where, f"{what}: at_most/at_least only fit a scale")
        for oid in ([cond.equals] if cond.equals is not None else []) + list(cond.any_of):
            if oid not in option_ids:
                p.add(where, f"{what}: '{oid}' is not one of this question's options "
                             f"({', '.join(sorted(map(str, option_ids)))}), so it can never "
                             "match")
    elif qtype == "scale":
        if cond.any_of:
            p.add(where, f"{what}: any_of only fits choices")
        for key in ("equals", "at_most", "at_least"):
            v = getattr(cond, key)
            if v is None:
                continue
            if not isinstance(v, int) or (isinstance(lo, int) and isinstance(hi, int)
                                          and not lo <= v <= hi):
                p.add(where, f"{what}: {key}: {v!r} is outside the scale {lo}-{hi}, so it can "
                             "never match")
    else:
        p.add(where, f"{what}: a question of type {qtype} has no answer to test")
    return cond


def _parse_question(raw: Any, index: int, p: _Problems) -> Question | None:
    if not isinstance(raw, dict):
        p.add(f"#{index + 1}", "each question must be a mapping with id, type and text")
        return None
    qid = raw.get("id")
    where = qid if isinstance(qid, str) else f"#{index + 1}"
    before = len(p.items)
    if not isinstance(qid, str) or not _ID.match(qid):
        p.add(where, "'id' must be lower case letters, digits and _ (like home_feel)")
    qtype = raw.get("type")
    if qtype not in QUESTION_TYPES:
        p.add(where, f"unknown type {qtype!r} (known: {', '.join(QUESTION_TYPES)})")
        return None
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        p.add(where, "'text' is missing")
    domain = raw.get("domain", "general")
    if domain not in DOMAINS:
        p.add(where, f"unknown domain {domain!r} (known: {', '.join(DOMAINS)})")
    known = {"id", "type", "text", "domain", "followup", "options", "scale", "branches", "next",
             "safeguarding"}
    extra = set(raw) - known
    if extra:
        p.add(where, f"unknown key(s) {sorted(extra)}")

    options: list[Option] = []
    if qtype in ("choice", "multi_choice"):
        raw_opts = raw.get("options")
        if not isinstance(raw_opts, list) or len(raw_opts) < 2:
            p.add(where, "a choice needs at least two options")
        else:
            seen: set[str] = set()
            for o in raw_opts:
                if (not isinstance(o, dict) or not isinstance(o.get("id"), str)
                        or not _ID.match(o["id"]) or not isinstance(o.get("text"), str)):
                    p.add(where, f"option {o!r} needs an id (like not_sure) and a text")
                    continue
                if o["id"] in seen:
                    p.add(where, f"option id '{o['id']}' is used twice")
                seen.add(o["id"])
                if o.get("exclusive") and qtype != "multi_choice":
                    p.add(where, "exclusive only fits a multi_choice option")
                options.append(Option(o["id"], o["text"], bool(o.get("exclusive"))))
    elif raw.get("options"):
        p.add(where, f"a {qtype} question takes no options")

    scale = None
    if qtype == "scale":
        s = raw.get("scale")
        if (not isinstance(s, dict) or not isinstance(s.get("min"), int)
                or not isinstance(s.get("max"), int) or s["min"] >= s["max"]):
            p.add(where, "a scale needs scale: {min: 1, max: 5, labels: {...}}")
        else:
            labels = s.get("labels") or {}
            if not isinstance(labels, dict) or any(
                    not isinstance(k, int) or not isinstance(v, str) for k, v in labels.items()):
                p.add(where, "scale labels must map numbers to words, like 1: \"Jättedåligt\"")
                labels = {}
            if s["min"] not in labels or s["max"] not in labels:
                p.add(where, f"the scale ends need words: labels for {s['min']} and {s['max']}")
            outside = [k for k in labels if not s["min"] <= k <= s["max"]]
            if outside:
                p.add(where, f"scale labels {outside} are outside {s['min']}-{s['max']}")
            scale = Scale(s["min"], s["max"], dict(sorted(labels.items())))

    branches: list[Branch] = []
    for j, b in enumerate(raw.get("branches") or []):
        what = f"branch {j + 1}"
        if qtype == "info":
            p.add(where, "an info question has no answer, so it cannot branch")
            break
        if not isinstance(b, dict) or not isinstance(b.get("next"), str):
            p.add(where, f"{what}: needs when and next")
            continue
        cond = _parse_condition(b.get("when"), raw, where, p, what)
        if cond:
            branches.append(Branch(cond, b["next"]))

    rules: list[SafeguardingRule] = []
    for j, r in enumerate(raw.get("safeguarding") or []):
        what = f"safeguarding rule {j + 1}"
        if qtype in ("info", "free_text"):
            p.add(where, f"{what}: only answers with fixed values take rules (free text is "
                         "always read for signs of harm)")
            break
        if not isinstance(r, dict):
            p.add(where, f"{what}: needs when, level and topic")
            continue
        if r.get("level") not in LEVELS:
            p.add(where, f"{what}: level must be one of {', '.join(LEVELS)}")
        if not isinstance(r.get("topic"), str) or not r["topic"]:
            p.add(where, f"{what}: needs a topic (a short English id like unsafe_home)")
        cond = _parse_condition(r.get("when"), raw, where, p, what)
        if cond:
            rules.append(SafeguardingRule(cond, r.get("level", ""), r.get("topic", "")))

    nxt = raw.get("next")
    if nxt is not None and not isinstance(nxt, str):
        p.add(where, "'next' must be a question id or end")
    if len(p.items) > before:
        return None
    return Question(id=qid, type=qtype, text=text.strip(), domain=domain,
                    followup=bool(raw.get("followup")), options=tuple(options), scale=scale,
                    branches=tuple(branches), next=nxt, safeguarding=tuple(rules),
                    line=index + 1)


def _check_graph(qn: Questionnaire, p: _Problems) -> None:
    """Every question reachable from the first; no path that comes back to itself."""
    reached: set[str] = set()
    todo = [qn.first.id]
    while todo:
        cur = todo.pop()
        if cur == END or cur in reached:
            continue
        reached.add(cur)
        todo.extend(qn.edges(qn.question(cur)))
    for q in qn.questions:
        if q.id not in reached:
            why = ("a follow-up needs a branch that leads to it" if q.followup
                   else "no question leads to it")
            p.add(q.id, f"cannot be reached: {why}")

    # Iterative DFS with colours; a grey node met again closes a loop.
    colour: dict[str, int] = {}
    for start in (q.id for q in qn.questions):
        if colour.get(start):
            continue
        stack: list[tuple[str, Iterable[str]]] = [(start, iter(qn.edges(qn.question(start))))]
        path = [start]
        colour[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
                path.pop()
                continue
            if nxt == END:
                continue
            if colour.get(nxt) == 1:
                loop = path[path.index(nxt):] + [nxt]
                p.add(nxt, "is part of a loop: " + " -> ".join(loop))
                return
            if not colour.get(nxt):
                colour[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(qn.edges(qn.question(nxt)))))


def pick_for_age(questionnaires: dict[str, Questionnaire], age: int,
                 prefix: str = "followup-") -> Questionnaire | None:
    """The follow-up questionnaire written for this age, if any."""
    for q in questionnaires.values():
        if q.id.startswith(prefix) and q.min_age <= age <= q.max_age:
            return q
    return None
