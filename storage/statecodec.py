"""The live state as compact bytes: what is sealed into `tala:{SID}:state` on every message.

Redis holds every live session, so each byte counts (bench/wrk.py measures them at the start,
middle and end of a conversation). The state is written as JSON with one-letter names, with
fields at their defaults left out, an answer as a list instead of a dict of eight names, the
path as positions in the answers, and times as one number of their digits instead of ISO
text; the child's answers (and only they: see _CHILDS) are then compressed. A whole
followup-12-18 conversation is 4.6 KB of plain JSON and about 540 bytes so; decoded, it is
the same `State`, field for field.

    b"\x04" + JSON + b"\x00" + deflate(JSON of the answers)    this format (deflate with
                                                              the preset _ZDICT_1)
    b"\x03" ...                                               the same without a preset
    b"{" ...                                                  the plain JSON of versions
                                                              before it (both still read)

Anything that does not fit the compact shape (a time not in UTC, an answer with other keys)
is kept as it is, so nothing is ever lost in the translation."""

from __future__ import annotations

import json
import zlib
from dataclasses import fields
from typing import Any

from flows.engine import State

VERSION = b"\x04"  # with _ZDICT_1
PLAIN = b"\x03"  # without a dictionary (written by this format's first version; still read)

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
# The child's own answers, compressed (the rest is not): only the child, or whoever has the
# child's phone, can put words in them, and that phone can already read them back ("mina
# svar"), so the compressed length tells nobody anything they could not read (no compression
# oracle); the number, the case and the unit are not compressed with them.
_CHILDS = ("answers", "superseded", "path")


def _time_out(text: Any) -> Any:
    """A time in UTC as tala writes it (isoformat) as one number of its digits:
    2026-12-06T00:24:38.937898+00:00 is 20261206002438937898; anything else as it is."""
    t = text
    if type(t) is not str or len(t) not in (25, 32) or t[-6:] != "+00:00" or t[0] == "0" \
            or t[4] != "-" or t[7] != "-" or t[10] != "T" or t[13] != ":" or t[16] != ":" \
            or (len(t) == 32 and t[19] != "."):
        return text
    digits = t[0:4] + t[5:7] + t[8:10] + t[11:13] + t[14:16] + t[17:19] + \
        t[20:26 if len(t) == 32 else 20]
    return int(digits) if digits.isascii() and digits.isdigit() else text


def _time_in(value: Any) -> Any:
    if not _is_int(value):
        return value
    d = str(value)
    frac = f".{d[14:]}" if len(d) > 14 else ""
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}{frac}+00:00"


def _is_int(value: Any) -> bool:
    return type(value) is int


def _since(at: Any, base: int) -> Any:
    """An answer's time (as `_time_out` gives it) less the session's creation (its digits):
    ten digits instead of twenty in a conversation of minutes, exact either way."""
    return at - base if _is_int(at) else at


def _answer_out(qid: str, a: Any, lang: str, base: int, domain: str | None = None) -> Any:
    """[value, text, skipped, at, seq, domain (0: the one before's), lang (when not the
    state's)], or as it is."""
    if not isinstance(a, dict) or tuple(a) != _ANSWER_KEYS or a["question_id"] != qid:
        return a
    row = [a["value"], a["text"], 1 if a["skipped"] else 0, _since(_time_out(a["at"]), base),
           a["seq"], 0 if a["domain"] == domain and domain is not None else a["domain"]]
    if a["lang"] != lang:
        row.append(a["lang"])
    return row


def _answer_in(qid: str, row: Any, lang: str, base: int, before: str | None = None) -> Any:
    if not isinstance(row, list):
        return row
    value, text, skipped, at, seq, domain, *own = row
    domain = before if domain == 0 and not isinstance(domain, bool) else domain
    return {"question_id": qid, "domain": domain, "value": value, "text": text,
            "skipped": bool(skipped), "at": _time_in(at + base if _is_int(at) else at), "seq": seq,
            "lang": own[0] if own else lang}


def _earlier_out(a: Any, lang: str, base: int) -> Any:
    """A superseded answer: [question id, *its answer's row], or as it is."""
    row = _answer_out(a.get("question_id"), a, lang, base) if isinstance(a, dict) else a
    return [a["question_id"], *row] if isinstance(row, list) else a


def encode(state: State) -> bytes:
    d = state.to_dict()
    lang = d["lang"]
    created = _time_out(d["created_at"])
    base = created if _is_int(created) else 0
    d["created_at"] = created
    head: dict[str, Any] = {}
    body: dict[str, Any] = {}
    for name, value in d.items():
        if name == "session_id" or value == _DEFAULTS.get(name, object()):
            continue  # the session id is the key's; a default is not written
        if name in _TIMES and name != "created_at":
            value = _time_out(value)
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
        (body if name in _CHILDS else head)[_SHORT.get(name, name)] = value
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_ZDICT_1)
    return (VERSION + _json(head) + b"\x00" + packer.compress(_json(body)) + packer.flush())


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode(raw: bytes, sid: str) -> State:
    if raw[:1] in (VERSION, PLAIN):
        head, _, body = raw[1:].partition(b"\x00")
        unpacker = zlib.decompressobj(-15, zdict=_ZDICT_1) if raw[:1] == VERSION else \
            zlib.decompressobj(-15)
        packed = {**json.loads(head), **json.loads(unpacker.decompress(body) + unpacker.flush())}
    elif raw[:1] == b"{":
        return State.from_dict(json.loads(raw))  # the plain JSON of earlier versions
    else:
        raise ValueError("not a live state tala wrote")
    d = {_LONG.get(k, k): v for k, v in packed.items()}
    lang = d.get("lang", _DEFAULTS["lang"])
    created = d.get("created_at")
    base = created if _is_int(created) else 0
    for name in _TIMES:
        if name in d:
            d[name] = _time_in(d[name])
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
            d[name] = type(default)() if isinstance(default, (list, dict)) else default
    return State.from_dict({"session_id": sid, **d})


# The answers' dictionary: the question ids and option ids of the questionnaires as they were
# when it was made, and pieces of the rows, as deflate's preset dictionary. With it, the ids
# a state repeats from it cost a few bits each instead of their letters (a whole followup-12-18
# state: 200 bytes less). Never change it: states in Redis are written with it. A new one is
# a new version byte, and this one is kept to read the states written with it.
_ZDICT_1 = (
    '"home_feel":["home_hard":["arguing""not_listened_to""unfair_rules""miss_someone""lonely"'
    '"other""home_more":["trusted_adult":["adults_listen":["contact_important":["right_amount'
    '""too_little""too_much""not_relevant""contact_more":["school_feel":["school_hard":["scho'
    'olwork""school_adults""classmates""energy""school_more":["school_attend":["almost_always'
    '""sometimes_away""often_away""not_in_school""school_attend_more":["friends_have":["frien'
    'ds_more":["free_time":["free_time_more":["body_feel":["body_hard":["sleep""food""pain""n'
    'o_energy""mood_feel":["mood_hard":["sad""worried""angry""mood_more":["safe_home":["safe_'
    'home_more":["hurt_by_someone":["hurt_who":["adult_home""other_adult""peer""partner""rath'
    'er_not_say""hurt_more":["safe_outside":["safe_outside_what":["bullied""hurt""pressured""'
    'online""safe_outside_more":["self_harm":["self_harm_more":["not_live":["not_live_now":["'
    'caseworker_talk":["caseworker_more":["caseworker_heard":["caseworker_heard_more":["casew'
    'orker_reach":["easy""sometimes_hard""hard""not_tried""help_wanted":["home""contact_impor'
    'tant""school""friends_free_time""wellbeing""safety""future""nothing""help_other":["anyth'
    'ing_else":["home_adult":["learning""other_children""body_more":["hurt_by_adult":["safe_s'
    'chool":["safe_school_what":["mean""other_fear""safe_school_more":["very_sad":["very_sad_'
    'more":["very_sad_self_hurt":["school_friends""feelings""adults""noisy""school_learning":'
    '["school_adults":["classmates":["always""mostly""sometimes_not""almost_never""safe_schoo'
    'l_where":["classroom""corridors""schoolyard""toilets""changing_room""dining_hall""safe_w'
    'ay":["safe_way_what":["teased""threatened""traffic""dark_or_alone""bus_or_train""safe_on'
    'line":["safe_online_what":["mean_people""strangers""pictures_spread""upsetting_content""'
    'mean_online":["mean_online_what":["mean_words""left_out""pictures""bullied":["bullied_ho'
    'w":["hit""belongings""hurt_where":["way_to_school""where_i_live""elsewhere""sleep":["oft'
    'en""sometimes""rarely""mood":["dark_thoughts":["talk_to":["adult_school""friend""nobody"'
    '"free_time_fun":["free_time_company":["know_help":["school_health""bris""emergency""trus'
    'ted_adult""none""school_better":["calmer""more_help""adults_listen""no_one_left_out""adu'
    'lts_at_breaks""fun_breaks""school_better_other":["right_topics":["right_topics_more":["m'
    'eeting_helped":["meeting_helped_more":["easy_to_reach":["recommend_friend":[,null,0,,nul'
    'l,1,"home"]"school"]"friends"]"health"]"safety"]"caseworker"]"help"]"general"]"feedback"'
    '],0],"yes",null,0,"no",null,0,{"p":[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20'
    ',21,22,23,24],"a":{'
).encode()
