"""Tests of the fake Twilio API, driven by the real twilio-python client over HTTP.

If these pass, a test that sends SMS through `FakeTwilio` sees what Twilio would see and gets
back what Twilio would answer, errors included.
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client
from twilio.rest.api.v2010.account.message import MessageInstance

from tests.fakes.twilio_api import FakeTwilio, num_segments

TO = "+46701234567"
FROM = "+46700000000"
SERVICE = "MG" + "a" * 32
CALLBACK = "https://tala.example/twilio/status"
SM_SID = re.compile(r"^SM[0-9a-f]{32}$")


@pytest.fixture
def fake():
    with FakeTwilio() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _client_env_reaches_localhost(monkeypatch):
    # See the module docstring of tests.fakes.twilio_api: these would route requests elsewhere.
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, ",".join(filter(None, [os.environ.get(name), "127.0.0.1"])))


def client_for(fake: FakeTwilio, sid: str | None = None, token: str | None = None) -> Client:
    client = Client(sid or fake.account_sid, token or fake.auth_token)
    client.api.base_url = fake.base_url
    return client


@pytest.fixture
def client(fake):
    return client_for(fake)


def without_at(records):
    return [{k: v for k, v in r.items() if k != "at"} for r in records]


def test_create_is_recorded_and_answered_as_a_queued_message(fake, client):
    before = time.monotonic()
    msg = client.messages.create(to=TO, from_=FROM, body="Hej", status_callback=CALLBACK)
    after = time.monotonic()

    assert isinstance(msg, MessageInstance)
    assert SM_SID.match(msg.sid)
    assert (msg.status, msg.to, msg.from_, msg.body) == ("queued", TO, FROM, "Hej")
    assert msg.account_sid == fake.account_sid
    assert msg.messaging_service_sid is None
    assert msg.num_segments == "1"
    assert isinstance(msg.date_created, datetime)
    assert msg.uri == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{msg.sid}.json"
    assert without_at(fake.messages) == [
        {
            "to": TO,
            "from": FROM,
            "messaging_service_sid": None,
            "body": "Hej",
            "content_sid": None,
            "content_variables": None,
            "status_callback": CALLBACK,
            "sid": msg.sid,
            "status_code": 201,
        }
    ]
    assert before <= fake.messages[0]["at"] <= after
    assert fake.unhandled == []


def test_a_whatsapp_template_is_filled_in_and_an_unknown_one_refused(fake, client):
    template = "HX" + "ab" * 16
    fake.templates[template] = "Hej! {{1}} undrar hur du har det."
    msg = client.messages.create(to="whatsapp:" + TO, from_="whatsapp:" + FROM,
                                 content_sid=template,
                                 content_variables='{"1": "Socialtjänsten i Nacka"}')
    assert msg.body == "Hej! Socialtjänsten i Nacka undrar hur du har det."
    [sent] = fake.messages
    assert (sent["to"], sent["content_sid"], sent["body"]) == (
        "whatsapp:" + TO, template, "Hej! Socialtjänsten i Nacka undrar hur du har det.")
    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to="whatsapp:" + TO, from_="whatsapp:" + FROM,
                               content_sid="HX" + "00" * 16)
    assert (refused.value.status, refused.value.code) == (400, 21655)


def test_messaging_service_sid_instead_of_from(fake, client):
    msg = client.messages.create(to=TO, messaging_service_sid=SERVICE, body="Hej")

    assert SM_SID.match(msg.sid)
    assert (msg.messaging_service_sid, msg.from_) == (SERVICE, None)
    assert msg.status == "accepted"  # Twilio's first status when it still picks the sender
    [record] = fake.messages
    assert (record["from"], record["messaging_service_sid"]) == (None, SERVICE)
    assert record["status_code"] == 201


@pytest.mark.parametrize(
    "sid, token",
    [(None, "wrong-token"), ("AC" + "1" * 32, None)],
    ids=["wrong token", "other account"],
)
def test_wrong_auth_is_401_and_recorded(fake, sid, token):
    client = client_for(fake, sid, token)

    with pytest.raises(TwilioRestException) as err:
        client.messages.create(to=TO, from_=FROM, body="Hej")

    assert (err.value.status, err.value.code) == (401, 20003)
    assert [(r["to"], r["body"], r["status_code"], r["sid"]) for r in fake.messages] == [
        (TO, "Hej", 401, None)
    ]


@pytest.mark.parametrize("code", [21610, 21211])
def test_fail_for_raises_twilios_error_for_that_number_only(fake, client, code):
    fake.fail_for(TO, code)

    with pytest.raises(TwilioRestException) as err:
        client.messages.create(to=TO, from_=FROM, body="Hej")
    other = client.messages.create(to="+46709999999", from_=FROM, body="Hej")

    assert (err.value.code, err.value.status) == (code, 400)
    assert err.value.uri.endswith("/Messages.json")
    failed, sent = fake.messages
    assert (failed["to"], failed["status_code"], failed["sid"]) == (TO, 400, None)
    assert (sent["status_code"], sent["sid"]) == (201, other.sid)


@pytest.mark.parametrize("status", [500, 503])
def test_fail_for_a_5xx_answers_that_status(fake, client, status):
    fake.fail_for(TO, status)

    with pytest.raises(TwilioRestException) as err:
        client.messages.create(to=TO, from_=FROM, body="Hej")

    assert (err.value.status, err.value.code) == (status, 20000 + status)
    assert [(r["status_code"], r["sid"]) for r in fake.messages] == [(status, None)]


def test_fail_for_rejects_a_code_it_cannot_answer(fake):
    with pytest.raises(ValueError, match="21610"):
        fake.fail_for(TO, 30007)


def test_fail_next_fails_twice_then_succeeds_and_twilio_does_not_retry(fake, client):
    fake.fail_next(2, status=503)
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(client.messages.create(to=TO, from_=FROM, body="Hej").status)
        except TwilioRestException as e:
            outcomes.append(e.status)
        # One call, one request: twilio-python has no retry of its own (the requests adapter
        # it mounts retries nothing by default, and only for https://).
        assert len(fake.messages) == len(outcomes)

    assert outcomes == [503, 503, "queued"]
    assert [r["status_code"] for r in fake.messages] == [503, 503, 201]


def test_concurrent_creates_from_8_threads_are_each_recorded_once(fake):
    threads, per_thread = 8, 5
    start = threading.Barrier(threads)

    def send(t: int) -> list[str]:
        client = client_for(fake)
        start.wait()
        return [
            client.messages.create(to=TO, from_=FROM, body=f"{t}-{i}").sid
            for i in range(per_thread)
        ]

    with ThreadPoolExecutor(threads) as pool:
        sids = [sid for batch in pool.map(send, range(threads)) for sid in batch]

    records = fake.messages
    expected = sorted(f"{t}-{i}" for t in range(threads) for i in range(per_thread))
    assert sorted(r["body"] for r in records) == expected
    assert sorted(r["sid"] for r in records) == sorted(sids)
    assert len(set(sids)) == threads * per_thread


def test_wait_for_returns_messages_sent_from_another_thread(fake, client):
    sender = threading.Timer(0.1, lambda: client.messages.create(to=TO, from_=FROM, body="Hej"))
    sender.start()
    try:
        [sent] = fake.wait_for(1, timeout=5)
    finally:
        sender.join()
    assert sent["body"] == "Hej"


def test_wait_for_times_out_with_assertion_error(fake, client):
    fake.fail_for(TO, 21610)
    with pytest.raises(TwilioRestException):
        client.messages.create(to=TO, from_=FROM, body="Hej")

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"expected 1 sent message\(s\) within 0.2s, got 0"):
        fake.wait_for(1, timeout=0.2)
    assert time.monotonic() - started >= 0.2


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"from_": FROM}, 21602),
        ({"body": "Hej"}, 21603),
        ({"from_": FROM, "body": "x" * 1601}, 21617),
    ],
    ids=["no body", "no sender", "body too long"],
)
def test_missing_or_bad_parameters_get_twilios_validation_errors(fake, client, kwargs, code):
    with pytest.raises(TwilioRestException) as err:
        client.messages.create(to=TO, **kwargs)
    assert (err.value.status, err.value.code) == (400, code)
    assert [r["status_code"] for r in fake.messages] == [400]


def test_an_unfaked_endpoint_fails_loudly_and_is_listed(fake, client):
    sid = "SM" + "0" * 32
    with pytest.raises(TwilioRestException) as err:
        client.messages(sid).fetch()

    assert (err.value.status, err.value.code) == (404, 20404)
    assert "FakeTwilio does not serve GET" in err.value.msg
    assert fake.unhandled == [
        ("GET", f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}.json")
    ]
    assert fake.messages == []


def test_reset_forgets_records_and_rules(fake, client):
    fake.fail_for(TO, 21610)
    fake.fail_next(5)
    with pytest.raises(TwilioRestException):
        client.messages.create(to=TO, from_=FROM, body="Hej")

    fake.reset()

    assert fake.messages == []
    msg = client.messages.create(to=TO, from_=FROM, body="Hej")
    assert msg.status == "queued"


def test_start_stop_and_base_url():
    fake = FakeTwilio(account_sid="AC" + "f" * 32, auth_token="s3cret").start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.base_url)
        msg = client_for(fake).messages.create(to=TO, from_=FROM, body="Hej")
        assert msg.account_sid == "AC" + "f" * 32
    finally:
        fake.stop()
    fake.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="not running"):
        fake.base_url  # noqa: B018 - the property raises


def test_stopped_fake_does_not_answer_on_a_kept_alive_connection(fake, client):
    client.messages.create(to=TO, from_=FROM, body="Hej")  # leaves a pooled connection open

    fake.stop()

    with pytest.raises(requests.ConnectionError):
        client.messages.create(to=TO, from_=FROM, body="Hej")
    assert len(fake.messages) == 1


def test_twilio_region_env_would_take_requests_away_from_the_fake(fake, monkeypatch):
    # Why the autouse fixture unsets TWILIO_REGION: twilio rewrites the host, even of an IP.
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    client = Client(fake.account_sid, fake.auth_token, environment={})
    assert client.get_hostname(fake.base_url + "/x").startswith("http://127.ie1.0.1:")


@pytest.mark.parametrize(
    "body, segments",
    [
        ("å" * 160, 1),  # Swedish letters are in GSM-7
        ("å" * 161, 2),
        ("€" * 80, 1),  # extension characters cost two septets
        ("€" * 81, 2),
        ("ş" * 70, 1),  # outside GSM-7: UCS-2, 70 per message, 67 per part
        ("ş" * 71, 2),
        ("ş" * 135, 3),
        ("🙂" * 35, 1),  # two UTF-16 code units each
    ],
)
def test_num_segments_is_counted_like_twilio(fake, client, body, segments):
    assert num_segments(body) == segments
    assert client.messages.create(to=TO, from_=FROM, body=body).num_segments == str(segments)


def test_listing_messages_to_a_number_finds_what_was_created(fake, client):
    client.messages.create(to="+46701110001", from_="+46700000000", body="första")
    client.messages.create(to="+46701110002", from_="+46700000000", body="annan")
    client.messages.create(to="+46701110001", from_="+46700000000", body="andra")
    found = client.messages.list(to="+46701110001", limit=10)
    assert [m.body for m in found] == ["andra", "första"]  # newest first
    assert all(m.date_created is not None for m in found)


def test_a_request_cut_off_before_its_body_is_not_acted_on(fake, client):
    # urllib3 writes a request's headers and its body apart: a sender killed in between leaves
    # Twilio headers with a Content-Length and no body. Twilio never acts on that; nor may the
    # fake (it would record a failed try that no sender ever made).
    import socket
    from urllib.parse import urlsplit
    host = urlsplit(fake.base_url)
    with socket.create_connection((host.hostname, host.port), timeout=5) as s:
        s.sendall(f"POST /2010-04-01/Accounts/{fake.account_sid}/Messages.json HTTP/1.1\r\n"
                  f"Host: {host.netloc}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  "Content-Length: 80\r\n\r\nTo=%2B467".encode())
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1024) == b""  # hung up on, no answer
    client.messages.create(to=TO, from_=FROM, body="after")
    assert [m["body"] for m in fake.messages] == ["after"]
