"""SMS, WhatsApp, the web chat and Telegram all configured in one `tala serve` (issues 13,
21): every message leaves on its own channel. Children invited by SMS (some in a bulk run) and by
Telegram, the worker's senders running side by side: Twilio gets exactly the SMS
invitations, each once, to the right numbers; Telegram gets the Telegram messages and nothing
addressed to a phone number; and no Redis key name holds a number, a chat id or a text. With
the console beside them, five children on each channel (WhatsApp and the web chat too) play
their questionnaires to the end at the same time, each reply reaching its own child."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass

import pytest
import requests

from bot.render import render
from bot.server import Background, build_web_app
from flows import engine
from flows import messages as M
from flows.engine import Say
from storage.queue import BULK
from tests.conftest import WHATSAPP_TEMPLATE, WHATSAPP_TEMPLATE_TEXT, wait_written
from tests.fakes.server import RunningServer
from tests.test_sms import Phone
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
    assert set(svc.outbound) == {"sms", "whatsapp", "telegram"}

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


# --------------------------------------------------------------------------- every channel

SMS_CHILDREN = [f"+4670222{i:04d}" for i in range(5)]
WA_CHILDREN = [f"+4670333{i:04d}" for i in range(5)]
WEB_CHILDREN = [f"+4670444{i:04d}" for i in range(5)]
LINK = re.compile(r"https://\S+/c/([A-Z2-9]{22})")
TG_CHILDREN = [7200 + i for i in range(5)]
NEUTRAL = {"sv": "Det är bra", "en": "It is fine"}  # free text that raises no alert


def _flat(text: str) -> str:
    return " ".join(text.split())


def _neutral_answer(app, state, k: int) -> tuple[str, list[str]]:
    """A valid answer to the question `state` asks that raises no alert and, where there is
    one, takes no follow-up branch: what to type, and the Telegram buttons that give it (none
    for free text). `k` varies the scale value between children (a high one, never a worry)."""
    q = app.questionnaires[state.questionnaire_id].question(state.current)

    def plain(value) -> bool:
        return not any(rule.when.matches(value) for rule in (*q.safeguarding, *q.branches))

    def calm(value) -> bool:
        return not any(rule.when.matches(value) for rule in q.safeguarding)

    if q.type == "free_text":
        return NEUTRAL[state.lang], []
    if q.type == "scale":
        values = [v for v in range(q.scale.max, q.scale.min - 1, -1) if plain(v)]
        value = values[k % min(3, len(values))]
        return str(value), [f"a|{q.id}|{value}"]
    if q.type == "yes_no":
        value = next((v for v in ("yes", "no") if plain(v)), None) or next(
            v for v in ("yes", "no") if calm(v))
        words = app.runtime.catalogs.gettext(state.lang, M.WORDS_YES if value == "yes"
                                             else M.WORDS_NO)
        return words.split(",")[0].strip(), [f"a|{q.id}|{1 if value == 'yes' else 2}"]
    multi = q.type == "multi_choice"
    ids = [o.id for o in q.options]
    fits = [i for i, oid in enumerate(ids) if plain([oid] if multi else oid)] or [
        i for i, oid in enumerate(ids) if calm([oid] if multi else oid)]
    i = fits[0]
    if multi:
        return str(i + 1), [f"m|{q.id}|{1 << i}", f"d|{q.id}|{1 << i}"]
    return str(i + 1), [f"a|{q.id}|{i + 1}"]


def _asked(app, state) -> str:
    """What the child must have been shown last: the question now asked, or the closing text."""
    qn = app.questionnaires[state.questionnaire_id]
    text = qn.question(state.current).text if state.current else qn.questions[-1].text
    return _flat(app.runtime.catalogs.gettext(state.lang, text))


def _outbound(twilio, tg) -> Counter:
    """Everything the two fakes were sent so far, counted by where it went."""
    return Counter([("sms", m["to"]) for m in twilio.messages]
                   + [("telegram", str(c["params"]["chat_id"])) for c in tg.calls
                      if "chat_id" in c["params"]])


@dataclass
class _Child:
    channel: str
    k: int  # the child's place on its channel: picks its age, language and answers
    case: str
    sid: str
    lang: str
    code: str
    address: str | None  # its number or chat id; none on the console
    phone: Phone | None = None
    chat: Chat | None = None
    page: requests.Session | None = None  # the web chat's browser (its cookie)
    link: str = ""
    opened: bool = False
    sent: int = 0  # messages the child sent (for their ids)


def test_every_channel_at_once_plays_each_child_to_the_end(both):
    """Console, SMS, WhatsApp, the web chat and Telegram in one app and server, five children
    on each, their conversations taken a message at a time in turn so all 25 are live at once.
    Each finishes its questionnaire and is written to SQL; each reply reaches its own child
    and no other; Twilio gets only the SMS invitations (the web chat's with its link) and the
    WhatsApp templates, each once, and Telegram only the Telegram children's chats."""
    app, twilio, tg, server = both
    svc = app.service
    assert set(svc.outbound) == {"sms", "whatsapp", "telegram"}
    children = []  # interleaved: one child on each channel, 5 times
    for k in range(5):
        age, lang = (9, 14)[k % 2], ("sv", "en", "sv")[k % 3]  # both questionnaires and languages
        for channel in ("console", "sms", "whatsapp", "web", "telegram"):
            case = f"{channel[0].upper()}{channel[1]}-{k}"
            number = {"sms": SMS_CHILDREN, "whatsapp": WA_CHILDREN,
                      "web": WEB_CHILDREN}.get(channel, [None] * 5)[k]
            invited = svc.invite(case, age, lang=lang, channel=channel, contact=number,
                                 actor="anna")
            child = _Child(channel, k, case, invited.session_id, lang, invited.code, number)
            if channel in ("sms", "whatsapp"):
                child.phone = Phone(server, twilio.auth_token,
                                    ("whatsapp:" if channel == "whatsapp" else "") + number)
            elif channel == "telegram":
                child.address = str(TG_CHILDREN[k])
                child.chat = Chat(server, tg, TG_CHILDREN[k])
            elif channel == "web":
                child.page = requests.Session()
            children.append(child)
    invitations = {c.sid: c.address for c in children if c.channel in ("sms", "whatsapp", "web")}
    invitation_jobs = [f"invite:{c.sid}:sms:0" if c.channel == "web" else f"invite:{c.sid}:0"
                       for c in children if c.sid in invitations]
    pressed = set()  # the callback query ids of the Telegram children's button presses

    def play(child: _Child) -> str:
        """The child's next message (opening the conversation first); what it was shown."""
        state = svc.state(child.sid)
        typed, buttons = _neutral_answer(app, state, child.k) if child.opened else (None, [])
        child.opened = True
        if child.channel == "console":
            reply = svc.open(child.sid) if typed is None else svc.handle(
                child.sid, typed, channel="console")
            return "\n".join(render(s) for s in reply.says)
        if child.channel in ("sms", "whatsapp"):
            child.sent += 1
            mid = f"SMin-{child.case}-{child.sent:04d}"
            twiml = child.phone.text("Hej" if typed is None else typed, sid=mid)
            said = ["".join(m.itertext()) for m in ET.fromstring(twiml).iter("Message")]
            if not said and child.channel == "whatsapp":  # a question with buttons: queued
                def jobs() -> list[dict]:
                    found = [app.queue.job(f"chat:{child.sid}:{mid}:{i}") for i in range(4)]
                    return [j for j in found if j]

                _wait(lambda: jobs() and all(j.get("recorded") == "1" for j in jobs()),
                      f"{child.case}'s reply sent by the worker")
                sids = {j.get("sid") for j in jobs()}
                said = [m["body"] for m in twilio.messages if m["sid"] in sids]
            return "\n".join(said)
        if child.channel == "web":
            if typed is None:  # the link from the child's SMS, opened in its browser
                [sms] = [m["body"] for m in twilio.messages if m["to"] == child.address]
                child.link = f"{server.url}/c/{LINK.search(sms).group(1)}"
                assert child.page.get(child.link, timeout=10).status_code == 200
            said = {"text": typed} if typed is None or not buttons or \
                (state.seq + child.k) % 2 == 0 else {"question": state.current, "answer": typed}
            r = child.page.post(child.link + ("/open" if typed is None else "/say"),
                                json={"id": f"{child.case}-{state.seq:04d}-{len(typed or '')}",
                                      **said}, timeout=10)
            assert r.status_code == 200, r.text
            return "\n".join("\n".join(x for x in (m["text"], m.get("hint")) if x)
                             for m in r.json()["messages"])
        chat, before = child.chat, len(child.chat.mine())
        if typed is None:
            chat.type(f"/start {child.code}")
        elif buttons and (state.seq + child.k) % 2:  # buttons one time, typing the next
            assert buttons[0] in chat.buttons(), (buttons, chat.buttons())
            for data in buttons:
                pressed.add(chat.press(data)["callback_query"]["id"])
        else:
            chat.type(typed)
        return "\n".join(m["text"] for m in chat.mine()[before:])

    worker = Background(app, interval=3600)
    worker.start()
    try:
        _wait(lambda: all(app.queue.job(j).get("recorded") == "1" for j in invitation_jobs),
              "the SMS, WhatsApp and web chat invitations sent")
        live = list(children)
        while live:
            for child in list(live):
                before, sent_before = svc.state(child.sid), _outbound(twilio, tg)
                shown = play(child)
                state = svc.state(child.sid)
                where = (child.case, before.current, state.current)
                # It answered the question it was asked, and was shown the next one.
                if before.current is not None:
                    assert before.current in state.answers and state.current != before.current, \
                        where
                expected = _asked(app, state)
                assert state.alerts == [] and expected in _flat(shown), (where, expected, shown)
                # Whatever went out through a fake went to this child, and only on Telegram
                # (an SMS reply is the webhook's answer; a console one is the return value).
                sent = _outbound(twilio, tg) - sent_before
                own = {"telegram": {("telegram", child.address)},  # (WhatsApp's buttons:
                       "whatsapp": {("sms", f"whatsapp:{child.address}")}}.get(  # by the queue)
                    child.channel, set())
                assert set(sent) <= own and (child.channel != "telegram" or sent), (where, sent)
                if state.status != engine.ACTIVE:
                    assert state.status == engine.COMPLETED, where
                    live.remove(child)
        for child in children:
            wait_written(app, child.sid)  # by the server's SQL threads, after the last reply
    finally:
        worker.stop()

    for child in children:
        state = svc.state(child.sid)
        assert state.status == engine.COMPLETED and state.channel == child.channel
        assert state.contact == child.address
        row_child = app.db.child(child.case)
        [(row, answers)] = app.db.sessions_for(row_child.id)
        assert (row.status, row.channel, row.lang) == ("completed", child.channel,
                                                       child.lang), child.case
        assert {a.question_id for a in answers} == set(state.answers), child.case
        assert app.db.alerts_for(row_child.id) == [], child.case
    assert app.queue.in_line() == 0

    # Twilio: the SMS invitations, each once to its own number in its own language, and the
    # WhatsApp template to each WhatsApp child; nothing else (every reply went back as TwiML).
    firsts = [m for m in twilio.messages if not m["to"].startswith("whatsapp:")
              or m["content_sid"] == WHATSAPP_TEMPLATE]  # a WhatsApp child's others: buttons
    assert sorted(m["to"] for m in firsts) == sorted(
        SMS_CHILDREN + WEB_CHILDREN + ["whatsapp:" + n for n in WA_CHILDREN])
    assert all(m["content_sid"] in twilio.contents or m["content_sid"] is None
               for m in twilio.messages if m not in firsts)
    assert all(m["status_code"] == 201 for m in twilio.messages)
    invitation_texts = set()
    for sid, number in invitations.items():
        lang = svc.state(sid).lang
        text = app.runtime.catalogs.gettext(lang, M.INVITE_SMS).format(sender=svc.sender_name)
        if number in WA_CHILDREN:
            [sent] = [m for m in firsts if m["to"] == "whatsapp:" + number]
            assert sent["content_sid"] == WHATSAPP_TEMPLATE and \
                sent["body"] == WHATSAPP_TEMPLATE_TEXT.replace("{{1}}", svc.sender_name)
        elif number in WEB_CHILDREN:  # the link to its own page, which no other SMS holds
            [sent] = [m["body"] for m in twilio.messages if m["to"] == number]
            token = LINK.search(sent).group(1)
            assert svc.web_token(sid) == token and sum(
                token in (m["body"] or "") for m in twilio.messages) == 1
        else:
            assert [m["body"] for m in twilio.messages if m["to"] == number] == \
                svc.outbound["sms"].render([Say(text)]), number
        assert app.db.invitation(sid).delivery_status == "sent"
        invitation_texts.add(text)

    # Telegram: only the Telegram children's chats, never a number; every button press
    # answered was one of theirs.
    chat_ids = {str(c["params"]["chat_id"]) for c in tg.calls if "chat_id" in c["params"]}
    assert chat_ids == {str(c) for c in TG_CHILDREN}, chat_ids
    answered = {c["params"]["callback_query_id"] for c in tg.calls_to("answerCallbackQuery")}
    assert pressed and answered == pressed
    assert not [m for m in tg.sent if m["text"] in invitation_texts]


def test_a_caseworkers_reply_reaches_a_telegram_child_live_and_after_the_end(both):
    """`tala reply` goes back on the channel the child used: a Telegram chat is learnt only
    when the child opens the link, and is kept with the invitation once the session is
    written, so the reply still reaches it after the live session is gone."""
    app, twilio, tg, server = both
    svc = app.service
    invited = svc.invite("R-T", 12, channel="telegram", actor="anna")
    chat = Chat(server, tg, 7300)
    chat.type(f"/start {invited.code}")
    job = svc.reply("R-T", "Hej! Vi ses på torsdag.", "anna")
    assert app.queue.job(job)["channel"] == "telegram"
    svc.send_queued("telegram", block_ms=0)
    assert chat.last()["text"] == "Hej! Vi ses på torsdag."

    chat.type("sluta")
    chat.type("ja")  # stopped: the session is written to SQL, then Redis lets it go
    wait_written(app, invited.session_id)
    app.store.delete(invited.session_id)
    svc.reply("R-T", "Tack för att du svarade.", "anna")
    svc.send_queued("telegram", block_ms=0)
    assert chat.last()["text"] == "Tack för att du svarade."
    assert not twilio.messages  # nothing of it went by SMS
