"""SMS and Telegram both configured in one `tala serve` (issue 13): every message leaves on its
own channel. Children invited by SMS (some in a bulk run) and by Telegram, the worker's two
senders running side by side: Twilio gets exactly the SMS invitations, each once, to the
right numbers; Telegram gets the Telegram messages and nothing addressed to a phone number;
and no Redis key name holds a number, a chat id or a text."""

from __future__ import annotations

import re
import time

import pytest

from bot.server import Background, build_web_app
from flows.engine import Say
from storage.queue import BULK
from tests.fakes.server import RunningServer
from tests.test_telegram import Chat

NUMBERS = [f"+4670111{i:04d}" for i in range(6)]
CHATS = [7100 + i for i in range(5)]
REMINDER = "Hej! Dina frågor väntar på dig."


@pytest.fixture
def both(both_app, fake, tg):
    """SMS and Telegram both switched on, and the server (without its worker: the test
    starts that when everything is queued)."""
    with RunningServer(build_web_app(both_app, worker=False)) as server:
        yield both_app, fake, tg, server


def _wait(done, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        time.sleep(0.05)


def test_sms_and_telegram_each_leave_only_on_their_own_channel(both):
    app, twilio, tg, server = both
    svc = app.service
    assert set(svc.outbound) == {"sms", "telegram"}

    # Telegram children open their invitation with its code; their chat is learnt then.
    tg_sids = []
    for i, chat_id in enumerate(CHATS):
        invited = svc.invite(f"T-{i}", 12, channel="telegram", actor="anna")
        Chat(server, tg, chat_id).type(f"/start {invited.code}")
        tg_sids.append(invited.session_id)
        assert svc.state(invited.session_id).contact == str(chat_id)
    answered_at_once = len(tg.calls_to("sendMessage"))

    # With nothing sending yet, queue it all: SMS invitations (two from a bulk run), one
    # caseworker's reply by SMS, and a reminder to each Telegram chat, mixed together.
    sms_sids = {}
    for i, number in enumerate(NUMBERS[:5]):
        invited = svc.invite(f"S-{i}", 12, channel="sms", contact=number, actor="anna",
                             lane=BULK if i >= 3 else "default")
        sms_sids[invited.session_id] = number
        sid = tg_sids[i]
        assert svc.deliver(svc.state(sid), [Say(REMINDER)], f"remind:{sid}:1",
                           kind="reminder") == 1
    svc.invite("S-5", 12, channel="sms", contact=NUMBERS[5], actor="anna")
    reply_job = svc.reply("S-5", "Tack, vi ses på torsdag.", "anna")
    assert app.queue.in_line("sms") == 7 and app.queue.in_line("telegram") == 5

    sms_sids[svc.session_for_contact("sms", NUMBERS[5])] = NUMBERS[5]
    jobs = ([f"invite:{sid}:0" for sid in sms_sids] + [reply_job]
            + [f"remind:{sid}:1:0" for sid in tg_sids[:5]])
    worker = Background(app, interval=3600)
    worker.start()
    try:
        # Done when every job is sent and recorded and no stream entry is left: from then on
        # nothing is left that could go out twice or astray.
        _wait(lambda: app.queue.in_line() == 0 and all(
            app.queue.job(j).get("recorded") == "1" for j in jobs), "all sent")
    finally:
        worker.stop()
    assert len(tg.calls_to("sendMessage")) == answered_at_once + 5

    # Twilio: each SMS invitation once, to its own number, and the reply; nothing else.
    invitations = [m for m in twilio.messages if "Socialtjänsten" in (m["body"] or "")]
    assert sorted(m["to"] for m in invitations) == sorted(NUMBERS)
    assert all(m["status_code"] == 201 for m in twilio.messages)
    assert [m["to"] for m in twilio.messages if m["body"] == "Tack, vi ses på torsdag."] == [
        NUMBERS[5]]
    assert len(twilio.messages) == len(NUMBERS) + 1
    assert app.queue.job(reply_job)["status"] == "sent"
    for sid in sms_sids:
        assert app.queue.job(f"invite:{sid}:0")["status"] == "sent"
        assert app.db.invitation(sid).delivery_status == "sent"

    # Telegram: the reminders, one to each chat, and nothing to a phone number.
    sent = tg.calls_to("sendMessage")
    chat_ids = [str(c["params"].get("chat_id")) for c in sent]
    assert not [c for c in chat_ids if c.startswith("+") or c.lstrip("+") in
                {n.lstrip("+") for n in NUMBERS}], chat_ids
    reminders = [c for c in sent if c["params"].get("text") == REMINDER]
    assert sorted(str(c["params"]["chat_id"]) for c in reminders) == sorted(map(str, CHATS))
    assert not [t for t in (c["params"].get("text") or "" for c in sent)
                if "Socialtjänsten" in t]

    # No key name holds a number, a chat id or a text.
    secret = re.compile("|".join([*(re.escape(n.lstrip("+")) for n in NUMBERS),
                                  *(rf"(?<![0-9A-Za-z]){c}(?![0-9A-Za-z])" for c in CHATS),
                                  "Tack", "Hej"]))
    names = [k.decode() for k in app.store.r.scan_iter(match="*")]
    assert names and not [k for k in names if secret.search(k)], names
