"""The compact live state (storage/statecodec.py): whatever a conversation does to the state, it
reads back field for field; it is a fraction of the plain JSON; the JSON of earlier versions
still reads; and the sealed bytes open only for their own session."""

from __future__ import annotations

import json
import zlib
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings

from flows import engine
from storage import statecodec
from storage.crypto import SecretKeyError
from tests.conftest import T0, Talk
from tests.test_properties import QUESTIONNAIRES, RUNTIME, replies
from tests.test_sms import SCRIPT_12_18


@pytest.mark.parametrize("qid", ["followup-6-11", "followup-12-18"])
@settings(max_examples=60, deadline=None)
@given(texts=replies)
def test_any_conversation_reads_back_exactly_at_every_step(qid, texts):
    t = Talk(RUNTIME, QUESTIONNAIRES[qid])
    for text in texts:
        t.say(text)
        assert statecodec.decode(statecodec.encode(t.state), t.state.session_id) == t.state


def _whole_conversation():
    t = Talk(RUNTIME, QUESTIONNAIRES["followup-12-18"])
    for text in ["Hej", *SCRIPT_12_18[:-1]]:
        t.say(text)
    return t.state


def test_a_whole_conversation_is_a_sixth_of_its_json_and_reads_back():
    s = _whole_conversation()
    s.contact, s.case_ref, s.channel = "+46701234567", "K-17", "sms"
    packed = statecodec.encode(s)
    plain = json.dumps(s.to_dict(), separators=(",", ":"), ensure_ascii=False).encode()
    assert len(packed) < len(plain) / 6, (len(packed), len(plain))
    assert b"+46701234567" in packed and b"K-17" in packed  # not compressed with the answers
    assert statecodec.decode(packed, s.session_id) == s


def test_what_does_not_fit_the_compact_shape_is_kept_as_it_is():
    s = _whole_conversation()
    first = next(iter(s.answers))
    s.answers[first]["at"] = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1))
                                      ).isoformat()  # not UTC
    s.answers["odd"] = {"text": "hemligt", "extra": [1, 2]}  # not an answer's shape
    s.path.append("never-answered")
    s.superseded.append({"question_id": "x", "note": "other keys"})
    s.lang = "ar"  # the answers given in Swedish stay Swedish
    s.last_activity_at = "2026-12-06T10:00:00"  # no zone
    s.outbox = [{"kind": "alert", "at": T0.isoformat()}]
    s.started_at = (T0 - timedelta(days=3)).isoformat()  # before it was made
    back = statecodec.decode(statecodec.encode(s), s.session_id)
    assert back == s
    assert back.answers[first]["lang"] == "sv" and back.lang == "ar"


def test_the_json_of_earlier_versions_still_reads():
    s = _whole_conversation()
    assert statecodec.decode(json.dumps(s.to_dict()).encode(), s.session_id) == s
    # ... and the compact form without the preset dictionary.
    head, _, body = statecodec.encode(s)[1:].partition(b"\x00")
    unpacker = zlib.decompressobj(-15, zdict=statecodec._ZDICT_1)
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    plain = packer.compress(unpacker.decompress(body) + unpacker.flush()) + packer.flush()
    assert statecodec.decode(statecodec.PLAIN + head + b"\x00" + plain, s.session_id) == s
    assert len(plain) > len(body)  # the dictionary is worth it


def test_a_sealed_state_opens_only_as_its_own_session(sms_app, questionnaires):
    crypto = sms_app.crypto
    for sid in ("mine", "other"):
        sms_app.store.create(engine.new_state(sid, questionnaires["followup-6-11"], "sv", T0),
                             ttl=600)
    mine = sms_app.store.r.get(sms_app.store.state_key("mine"))
    assert mine[:1] == b"e"  # AES-GCM under its data key
    with pytest.raises(SecretKeyError):
        crypto.unseal(mine, "other")  # another child's key: no
    sms_app.store.r.set(sms_app.store.state_key("other"), mine)
    with pytest.raises(SecretKeyError):
        sms_app.store.get("other")  # copied under another session: does not open
    assert sms_app.store.get("mine").session_id == "mine"
