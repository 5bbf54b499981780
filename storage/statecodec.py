"""The live state as compact bytes: what is sealed into `tala:{SID}:state` on every message.

Redis holds every live session, so each byte counts (bench/wrk.py measures them at the start,
middle and end of a conversation). The state is written as JSON with one-letter names, with
fields at their defaults left out, an answer as a list instead of a dict of eight names, the
path as positions in the answers, and times as microseconds (from the session's creation, for
everything after it) instead of ISO text. About a third of the plain JSON; decoded, it is the
same `State`, field for field.

    b"\\x02" + JSON      this format
    b"{" ...            the plain JSON of versions before it (still read)

Anything that does not fit the compact shape (a time not in UTC, an answer with other keys)
is kept as it is, so nothing is ever lost in the translation."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timezone
from typing import Any

from flows.engine import State

VERSION = b"\x02"

# The short name of each field: never reuse or change one (states in Redis are written with
# them). A field missing here is written under its own name.
_SHORT = {
    "questionnaire_id": "q", "questionnaire_version": "v", "lang": "l", "status": "s",
    "current": "c", "path": "p", "answers": "a", "superseded": "x", "pending": "n",
    "misses": "m", "alerts": "w", "told": "t", "seq": "k", "created_at": "C",
    "started_at": "S", "last_activity_at": "L", "finished_at": "F", "reminded": "r",
    "channel": "h", "case_ref": "f", "contact": "o", "unit": "u", "campaign_id": "g",
    "trigger": "y", "hold": "d", "then": "e", "outbox": "b",
}
_LONG = {v: k for k, v in _SHORT.items()}
_TIMES = ("created_at", "started_at", "last_activity_at", "finished_at")
_DEFAULTS = {f.name: (f.default_factory() if callable(f.default_factory) else f.default)
             for f in fields(State)}
_ANSWER_KEYS = ("question_id", "domain", "value", "text", "skipped", "at", "seq", "lang")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _micros(text: Any) -> int | None:
    """An ISO time in UTC as microseconds since 1970, when it reads back exactly so."""
    if not isinstance(text, str):
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        return None
    if at.utcoffset() is None or at.utcoffset().total_seconds() != 0:
        return None
    micros = (at - _EPOCH) // _ONE_MICRO
    return micros if _iso(micros) == text else None


_ONE_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=timezone.utc) - _EPOCH


def _iso(micros: int) -> str:
    return (_EPOCH + micros * _ONE_MICRO).isoformat()


def _time_out(text: Any, base: int) -> Any:
    micros = _micros(text)
    return text if micros is None else micros - base


def _time_in(value: Any, base: int) -> Any:
    return _iso(value + base) if isinstance(value, int) and not isinstance(value, bool) \
        else value


def _answer_out(qid: str, a: Any, lang: str, base: int, domain: str | None = None) -> Any:
    """[value, text, skipped, at, seq, domain (0: the one before's), lang (when not the
    state's)], or as it is."""
    if not isinstance(a, dict) or tuple(a) != _ANSWER_KEYS or a["question_id"] != qid:
        return a
    row = [a["value"], a["text"], 1 if a["skipped"] else 0, _time_out(a["at"], base), a["seq"],
           0 if a["domain"] == domain and domain is not None else a["domain"]]
    if a["lang"] != lang:
        row.append(a["lang"])
    return row


def _answer_in(qid: str, row: Any, lang: str, base: int, before: str | None = None) -> Any:
    if not isinstance(row, list):
        return row
    value, text, skipped, at, seq, domain, *own = row
    domain = before if domain == 0 and not isinstance(domain, bool) else domain
    return {"question_id": qid, "domain": domain, "value": value, "text": text,
            "skipped": bool(skipped), "at": _time_in(at, base), "seq": seq,
            "lang": own[0] if own else lang}


def _earlier_out(a: Any, lang: str, base: int) -> Any:
    """A superseded answer: [question id, *its answer's row], or as it is."""
    row = _answer_out(a.get("question_id"), a, lang, base) if isinstance(a, dict) else a
    return [a["question_id"], *row] if isinstance(row, list) else a


def encode(state: State) -> bytes:
    d = state.to_dict()
    created = _micros(d["created_at"])
    base = created or 0
    lang = d["lang"]
    out: dict[str, Any] = {}
    for name, value in d.items():
        if name == "session_id" or value == _DEFAULTS.get(name, object()):
            continue  # the session id is the key's; a default is not written
        if name in _TIMES:
            value = created if name == "created_at" and created is not None else \
                value if name == "created_at" else _time_out(value, base)
        elif name == "answers":
            value, domain = {}, None
            for q, a in d["answers"].items():
                value[q] = _answer_out(q, a, lang, base, domain)
                domain = a.get("domain") if isinstance(a, dict) else None
        elif name == "superseded":
            value = [_earlier_out(a, lang, base) for a in value]
        elif name == "path":
            where = {q: i for i, q in enumerate(d["answers"])}
            value = [where.get(q, q) for q in value]
        out[_SHORT.get(name, name)] = value
    return VERSION + json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes, sid: str) -> State:
    if raw[:1] != VERSION:
        return State.from_dict(json.loads(raw))  # the plain JSON of earlier versions
    packed = json.loads(raw[1:])
    d = {_LONG.get(k, k): v for k, v in packed.items()}
    created = d.get("created_at", _DEFAULTS["created_at"])
    base = created if isinstance(created, int) else 0
    lang = d.get("lang", _DEFAULTS["lang"])
    for name in _TIMES:
        if name in d:
            d[name] = _iso(d[name]) if name == "created_at" and isinstance(d[name], int) else \
                d[name] if name == "created_at" else _time_in(d[name], base)
    if "answers" in d:
        answers, domain = {}, None
        for q, a in d["answers"].items():
            answers[q] = _answer_in(q, a, lang, base, domain)
            domain = answers[q].get("domain") if isinstance(answers[q], dict) else None
        d["answers"] = answers
    if "superseded" in d:
        d["superseded"] = [_answer_in(a[0], a[1:], lang, base) if isinstance(a, list) else a
                           for a in d["superseded"]]
    if "path" in d:
        order = list(d.get("answers", {}))
        d["path"] = [order[q] if isinstance(q, int) else q for q in d["path"]]
    for name, default in _DEFAULTS.items():
        if name not in d and name != "session_id":
            d[name] = _DEFAULTS[name] if not isinstance(default, (list, dict)) else \
                type(default)()
    return State.from_dict({"session_id": sid, **d})
