"""The safeguarding lexicon and its matcher: every text a child writes is read for signs of
harm (flows/safeguarding.yaml says what, and how a text is normalised first).

Built for what children really type, and for speed (it runs on every message):

- the text: NFKC, case folded, invisible and format characters removed (zero-width, soft
  hyphen, bidi marks), "@"/"$" inside words read as "a"/"s", look-alike letters of another
  script folded (Unicode's confusables, from confusable-homoglyphs: a mostly Latin word's
  Cyrillic and Greek letters made Latin, a mostly Cyrillic word's Latin letters Cyrillic),
  then flows.i18n.normalise (accents, punctuation);
- each word: digits inside a word read as letters ("d1e"), runs of one letter collapsed
  ("dööö", "villl"), the language's colloquial variants ("mej" -> "mig"), a typo of one
  letter for words of 6 letters or more, fillers dropped ("vill bara dö");
- the phrases, normalised the same way at load, compiled into one regular expression (a
  trie) that ignores the spaces between a phrase's words ("jagvilldö", "själv-mord") and needs
  a phrase to end where a word ends and start where one starts (or inside a word that is no
  word of the lexicon: "jagvilldö");
- context: not after a negation word ("ingen slår mig") or before one ("slår mig inte"), a
  one-word phrase not just after a media word ("en film om självmord"), no phrase just
  before a game ("slog mig i schack").

A word's canonical form is cached, so a message costs a handful of dictionary look-ups and
one regex search.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from flows.i18n import normalise
from flows.model import safe_load

DEFAULT_PATH = Path(__file__).with_name("safeguarding.yaml")
SEP = "\x00"  # between words in the matched string: never in a normalised text
FUZZY_MIN = 6  # words this long match at one typo (edit distance 1)
GLUED_MIN = 6  # a phrase may start inside a word this long that is no word of the lexicon
MEDIA_WINDOW = 3
GAME_WINDOW = 2
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b"})
_RUNS = re.compile(r"(.)\1+")
_SYMBOL_LETTERS = re.compile(r"(?<=\w)[@$](?=\w)|(?<=\w)[@$]|[@$](?=\w)")
_SCRIPT_RANGES = (("latin", 0x41, 0x5A), ("latin", 0x61, 0x7A), ("latin", 0xC0, 0x24F),
                  ("cyrillic", 0x400, 0x52F), ("greek", 0x370, 0x3FF),
                  ("greek", 0x1F00, 0x1FFF))


def _script(ch: str) -> str:
    o = ord(ch)
    for name, lo, hi in _SCRIPT_RANGES:
        if lo <= o <= hi:
            return name
    return "other"


@functools.lru_cache(maxsize=1)
def _confusable_tables() -> tuple[dict[int, str], dict[int, str]]:
    """(to Latin, Latin to Cyrillic) from Unicode's confusables data. Only letters that look
    like one Latin letter are folded; the tables are built once per process."""
    from confusable_homoglyphs.confusables import confusables_data

    to_latin: dict[int, str] = {}
    to_cyrillic: dict[int, str] = {}
    for ch, homoglyphs in confusables_data.items():
        if len(ch) != 1:
            continue
        script = _script(ch)
        for h in homoglyphs:
            c = h["c"]
            if len(c) == 1 and c.isascii() and c.isalpha():
                if script in ("cyrillic", "greek") or (script == "other" and ch.isalpha()):
                    to_latin.setdefault(ord(ch), c.lower())
                if script == "cyrillic" and ch.islower() and c.islower():
                    to_cyrillic.setdefault(ord(c), ch)
                break
    return to_latin, to_cyrillic


def _fold_confusables(text: str) -> str:
    if text.isascii():
        return text
    to_latin, to_cyrillic = _confusable_tables()
    out = []
    for word in text.split():
        if word.isascii():
            out.append(word)
            continue
        latin = cyrillic = greek = other = 0
        for ch in word:
            s = _script(ch)
            if s == "latin":
                latin += 1
            elif s == "cyrillic":
                cyrillic += 1
            elif s == "greek":
                greek += 1
            elif ch.isalpha():
                other += 1
        if cyrillic and latin and cyrillic > latin + greek:  # a Cyrillic word, Latin look-alikes
            word = word.translate(to_cyrillic)
        elif (latin or greek or cyrillic) and (latin + greek + cyrillic + other) > cyrillic:
            word = word.translate(to_latin)  # Latin with look-alikes, or Greek (tala has none)
        out.append(word)
    return " ".join(out)


def prepare(text: str) -> list[str]:
    """A text as the words it is matched by, before each word's canonical form."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if not text.isascii():
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
        text = _fold_confusables(text)
    if "@" in text or "$" in text:
        text = _SYMBOL_LETTERS.sub(lambda m: "a" if m.group() == "@" else "s", text)
    return normalise(text).split()


def _shape(word: str) -> str:
    """Digits inside a word read as letters, runs of one letter made one."""
    if not word.isdigit() and any(c.isdigit() for c in word):
        word = word.translate(_LEET)
    return _RUNS.sub(r"\1", word)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


def _within_one(a: str, b: str) -> bool:
    """Damerau edit distance <= 1."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [i for i in range(la) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1
                                  and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]])
    if la > lb:
        a, b = b, a
    return any(b[:i] + b[i + 1:] == a for i in range(len(b)))


def _trie_pattern(words: list[str]) -> str:
    """One regex for all squashed phrases: common prefixes shared, so a search tries only
    the branches that the next letter allows; a separator may follow any letter, and a
    letter may repeat across one ("want to" is "wanto" once runs are collapsed)."""
    trie: dict = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def emit(node: dict) -> str:
        ends = "" in node
        branches = [f"{re.escape(ch)}(?:{SEP}?{re.escape(ch)})*{SEP}?" + emit(child)
                    for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if ends:  # a phrase ends here, a longer one may go on (greedy: the longest first)
            return f"(?:{body})?"
        return body

    return emit(trie)


@dataclass(frozen=True)
class Language:
    lang: str
    review: str
    phrases: int


@dataclass(frozen=True)
class SafetyLexicon:
    """Phrases that may mean a child is telling about harm, in any language. Every text a child
    writes is checked against all of them, whatever language the session is in."""

    phrases: tuple[tuple[str, str, str], ...]  # (normalised phrase, level, topic)
    languages: tuple[Language, ...] = ()
    topics: tuple[tuple[str, str], ...] = ()  # (topic, level), in order
    _by_squashed: dict = field(default_factory=dict, repr=False, compare=False)
    _pattern: re.Pattern | None = field(default=None, repr=False, compare=False)
    _vocab: frozenset = field(default=frozenset(), repr=False, compare=False)
    _variants: dict = field(default_factory=dict, repr=False, compare=False)
    _fillers: frozenset = field(default=frozenset(), repr=False, compare=False)
    _near: dict = field(default_factory=dict, repr=False, compare=False)
    _not_before: frozenset = field(default=frozenset(), repr=False, compare=False)
    _not_after: frozenset = field(default=frozenset(), repr=False, compare=False)
    _media: frozenset = field(default=frozenset(), repr=False, compare=False)
    _games: frozenset = field(default=frozenset(), repr=False, compare=False)
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, path: Path | None = None) -> "SafetyLexicon":
        data = safe_load((path or DEFAULT_PATH).read_text(encoding="utf-8"))
        topics = tuple((t["id"], t["level"]) for t in data["topics"])
        rank = {topic: i for i, (topic, _) in enumerate(topics)}
        level = dict(topics)
        variants: dict[str, tuple[str, ...]] = {}
        fillers: set[str] = set()
        not_before: set[str] = set()
        not_after: set[str] = set()
        media: set[str] = set()
        games: set[str] = set()
        raw: list[tuple[str, str]] = []
        languages = []
        for lang, block in data["languages"].items():
            for k, v in (block.get("variants") or {}).items():
                for key in prepare(str(k)):
                    to = tuple(_shape(w) for w in prepare(str(v)))
                    variants.setdefault(key, to)
                    # stretched ("mejjj") too, unless that makes it another word ("oo": "o")
                    if len(_shape(key)) >= 3:
                        variants.setdefault(_shape(key), to)
            for name, target in (("fillers", fillers), ("not_before", not_before),
                                 ("not_after", not_after), ("media", media),
                                 ("games", games)):
                for w in block.get(name) or []:
                    target.update(_shape(x) for x in prepare(str(w)))
            n = 0
            for topic, phrases in block["phrases"].items():
                if topic not in rank:
                    raise ValueError(f"safeguarding.yaml: {lang}: unknown topic {topic!r}")
                for ph in phrases:
                    raw.append((str(ph), topic))
                    n += 1
            languages.append(Language(lang, str(block.get("review", "draft")), n))

        def canon_plain(word: str) -> tuple[str, ...]:
            w = _shape(word)
            return variants.get(word) or variants.get(w, (w,))

        by_squashed: dict[str, str] = {}
        vocab: set[str] = set()
        phrases = []
        for ph, topic in raw:
            words = [c for w in prepare(ph) for c in canon_plain(w) if c not in fillers]
            if not words:
                continue
            vocab.update(words)
            squashed = _RUNS.sub(r"\1", "".join(words))
            old = by_squashed.get(squashed)
            if old is None or rank[topic] < rank[old]:
                by_squashed[squashed] = topic
            phrases.append((" ".join(words), level[topic], topic))
        near: dict[str, set[str]] = {}
        for w in vocab:
            if len(w) >= FUZZY_MIN:
                for k in _deletions(w) | {w}:
                    near.setdefault(k, set()).add(w)
        pattern = re.compile(_trie_pattern(sorted(by_squashed)) + f"(?={SEP}|\\Z)")
        return cls(tuple(phrases), tuple(languages), topics, by_squashed, pattern,
                   frozenset(vocab), variants, frozenset(fillers),
                   {k: tuple(sorted(v)) for k, v in near.items()}, frozenset(not_before),
                   frozenset(not_after), frozenset(media), frozenset(games))

    # ----------------------------------------------------------------------------- matching

    def _canon(self, word: str) -> tuple[str, ...]:
        got = self._cache.get(word)
        if got is not None:
            return got
        w = _shape(word)
        if w in self._fillers:
            got = ()
        elif w in self._vocab:
            got = (w,)
        elif word in self._variants or w in self._variants:
            got = self._variants.get(word) or self._variants[w]
        elif len(w) >= FUZZY_MIN:
            got = (self._nearest(w),)
        else:
            got = (w,)
        if len(self._cache) > 50_000:
            self._cache.clear()
        self._cache[word] = got
        return got

    def _nearest(self, w: str) -> str:
        """The lexicon's word one typo away from w, if there is one; else w."""
        for k in (w, *_deletions(w)):
            for cand in self._near.get(k, ()):
                if _within_one(w, cand):
                    return cand
        return w

    def words(self, text: str) -> list[str]:
        """A text as the canonical words the phrases are matched against."""
        return [c for w in prepare(text) for c in self._canon(w)]

    def matches(self, text: str) -> list[tuple[str, str]]:
        """Every (topic, matched phrase) in a text that counts, in order of where it starts."""
        words = self.words(text)
        if not words or self._pattern is None:
            return []
        starts: dict[int, int] = {}
        owner: list[int] = []  # the word each offset of `joined` belongs to
        pos = 0
        for i, w in enumerate(words):
            starts[pos] = i
            owner.extend([i] * (len(w) + 1))
            pos += len(w) + 1
        joined = SEP.join(words)
        found = []
        at = 0
        while True:
            m = self._pattern.search(joined, at)
            if m is None:
                break
            at = m.start() + 1
            first = starts.get(m.start())
            if first is None:  # inside a word: only a word glued from others ("jagvilldö")
                inside = words[owner[m.start()]]
                if len(inside) < GLUED_MIN or inside in self._vocab:
                    continue
                first = owner[m.start()]
            else:
                if first and words[first - 1] in self._not_before:
                    continue
            last = owner[m.end() - 1]
            if last + 1 < len(words) and words[last + 1] in self._not_after:
                continue
            if any(w in self._games for w in words[last + 1:last + 1 + GAME_WINDOW]):
                continue
            phrase = _RUNS.sub(r"\1", m.group().replace(SEP, ""))
            if (first == last and SEP not in m.group()
                    and any(w in self._media for w in words[max(0, first - MEDIA_WINDOW):first])):
                continue
            found.append((self._by_squashed[phrase], m.group().replace(SEP, " ")))
        return found

    def scan(self, text: str) -> tuple[str, str] | None:
        """(level, topic) of the first topic (in the file's order) that the text matches."""
        hits = self.matches(text)
        if not hits:
            return None
        rank = {topic: i for i, (topic, _) in enumerate(self.topics)}
        topic = min((t for t, _ in hits), key=lambda t: rank.get(t, len(rank)))
        return dict(self.topics)[topic], topic


# ------------------------------------------------------------------------------- evaluation

CORPUS_DIR = Path(__file__).resolve().parent.parent / "tests" / "safety_corpus"
TARGETS = {"sv": 0.95, "en": 0.95}  # recall; every other language 0.85
OTHER_TARGET = 0.85
MAX_FALSE_ALARMS = 0.05


class LazyLexicon:
    """The lexicon, read and compiled the first time a text is scanned (about 0.2 s): a command
    that never reads a child's text, such as `tala summary`, does not pay for it. A server
    loads it before its first message (App.build_all)."""

    def __init__(self, path: Path | None = None):
        self._path = path
        self._lexicon: SafetyLexicon | None = None
        self._lock = threading.Lock()

    def get(self) -> SafetyLexicon:
        if self._lexicon is None:
            with self._lock:
                if self._lexicon is None:
                    self._lexicon = SafetyLexicon.load(self._path)
        return self._lexicon

    def scan(self, text: str) -> tuple[str, str] | None:
        return self.get().scan(text)


@dataclass
class Score:
    """How a lexicon does on one language of a corpus."""

    lang: str
    harm: int = 0
    found: int = 0  # harm sentences that raised an alert
    right_topic: int = 0  # ... and named the sentence's topic
    harmless: int = 0
    false_alarms: int = 0
    by_topic: dict[str, list[int]] = field(default_factory=dict)  # topic: [found, harm]
    missed: list[str] = field(default_factory=list)
    alarmed: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.found / self.harm if self.harm else 1.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.harmless if self.harmless else 0.0

    @property
    def target(self) -> float:
        return TARGETS.get(self.lang, OTHER_TARGET)

    @property
    def ok(self) -> bool:
        return self.recall >= self.target and self.false_alarm_rate <= MAX_FALSE_ALARMS


def evaluate(lexicon: SafetyLexicon, corpus: Path) -> list[Score]:
    """Recall and false alarms per language (and recall per topic) on a corpus file of
    tests/safety_corpus/ (`lang: {harm: [[sentence, topic]], harmless: [sentence]}`)."""
    data = safe_load(corpus.read_text(encoding="utf-8"))
    scores = []
    for lang, cases in data.items():
        sc = Score(lang)
        for item in cases.get("harm") or []:
            # [sentence, topic]; a sentence with ", " in it unquoted reads as several items
            text, topic = ", ".join(str(x) for x in item[:-1]), item[-1]
            hit = lexicon.scan(text)
            sc.harm += 1
            tally = sc.by_topic.setdefault(topic, [0, 0])
            tally[1] += 1
            if hit:
                sc.found += 1
                tally[0] += 1
                sc.right_topic += hit[1] == topic
            else:
                sc.missed.append(text)
        for text in cases.get("harmless") or []:
            sc.harmless += 1
            if lexicon.scan(text):
                sc.false_alarms += 1
                sc.alarmed.append(text)
        scores.append(sc)
    return scores
