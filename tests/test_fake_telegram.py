"""Tests of the fake Telegram Bot API, driven by the real aiogram Bot over HTTP.

If these pass, a test that runs tala's Telegram channel against `FakeTelegram` sees what the
Bot API would see and gets back what it would answer, errors included.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from pydantic import BaseModel

from tests.fakes.telegram_api import FakeTelegram

CHAT = 4242
T = TypeVar("T")
KEYBOARD = InlineKeyboardMarkup(
    inline_keyboard=[
        [InlineKeyboardButton(text="Ja", callback_data="q1:yes")],
        [InlineKeyboardButton(text="Nej", callback_data="q1:no")],
    ]
)
KEYBOARD_JSON = {
    "inline_keyboard": [
        [{"text": "Ja", "callback_data": "q1:yes"}],
        [{"text": "Nej", "callback_data": "q1:no"}],
    ]
}


@pytest.fixture
def fake():
    with FakeTelegram() as fake:
        yield fake
    assert fake.unhandled == [], f"calls the fake does not serve: {fake.unhandled}"


def bot_for(fake: FakeTelegram, token: str | None = None) -> Bot:
    # The one way to point aiogram at another Bot API server.
    session = AiohttpSession(api=TelegramAPIServer.from_base(fake.api_base_url))
    return Bot(token or fake.token, session=session)


def run(
    fake: FakeTelegram, scenario: Callable[[Bot], Awaitable[T]], token: str | None = None
) -> T:
    """Run `scenario(bot)` in a fresh event loop with a real aiogram Bot on the fake."""

    async def main() -> T:
        bot = bot_for(fake, token)
        try:
            return await scenario(bot)
        finally:
            # bot.session.close() always sleeps 250 ms to let TLS connections wind down; over
            # plain HTTP there is nothing to wait for, and 250 ms a call adds up.
            await (await bot.session.create_session()).close()

    return asyncio.run(main())


def raw_call(fake: FakeTelegram, method: str, *, json_body: Any = None, query: str = ""):
    """A Bot API call without aiogram: (HTTP status, decoded JSON answer)."""
    url = f"{fake.api_base_url}/bot{fake.token}/{method}" + (f"?{query}" if query else "")
    data = headers = None
    if json_body is not None:
        data, headers = json.dumps(json_body).encode(), {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers or {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def extras(obj: Any, where: str = "update") -> list[str]:
    """Fields aiogram did not recognise (its models allow extras), anywhere in `obj`."""
    if isinstance(obj, list):
        return [e for i, item in enumerate(obj) for e in extras(item, f"{where}[{i}]")]
    if not isinstance(obj, BaseModel):
        return []
    found = [f"{where}.{k}" for k in obj.model_extra or {}]
    for name in type(obj).model_fields:
        found += extras(getattr(obj, name), f"{where}.{name}")
    return found


# -- the basics -----------------------------------------------------------------------------


def test_get_me_answers_the_bot_from_the_token(fake):
    me = run(fake, lambda bot: bot.get_me())

    assert (me.id, me.is_bot, me.username) == (123456, True, "tala_test_bot")
    [call] = fake.calls
    assert (call["method"], call["params"], call["error_code"]) == ("getMe", {}, None)


def test_send_message_with_inline_keyboard_is_recorded_and_answered_as_a_message(fake):
    before = time.monotonic()
    first, second = run(
        fake,
        lambda bot: _in_order(
            bot.send_message(CHAT, "Hur mår du?", reply_markup=KEYBOARD, parse_mode="HTML"),
            bot.send_message(CHAT, "Andra"),
        ),
    )

    assert isinstance(first, Message)
    assert (first.message_id, second.message_id) == (1, 2)
    assert (first.chat.id, first.chat.type, first.text) == (CHAT, "private", "Hur mår du?")
    assert first.from_user.id == 123456 and first.from_user.is_bot
    assert first.reply_markup.model_dump() == KEYBOARD.model_dump()
    assert abs(first.date.timestamp() - time.time()) < 5
    assert [{k: v for k, v in s.items() if k != "at"} for s in fake.sent] == [
        {"chat_id": CHAT, "text": "Hur mår du?", "parse_mode": "HTML",
         "reply_markup": KEYBOARD_JSON, "message_id": 1},
        {"chat_id": CHAT, "text": "Andra", "parse_mode": None, "reply_markup": None,
         "message_id": 2},
    ]
    assert before <= fake.sent[0]["at"] <= fake.sent[1]["at"] <= time.monotonic()
    assert fake.message(CHAT, 1)["reply_markup"] == KEYBOARD_JSON


async def _in_order(*calls: Awaitable[Any]) -> list[Any]:
    return [await c for c in calls]


def test_free_text_that_looks_like_json_stays_text(fake):
    # Everything reaches the fake as a string; "1" and "true" are answers, not numbers.
    run(fake, lambda bot: _in_order(bot.send_message(CHAT, "1"), bot.send_message(CHAT, "true")))

    assert [(s["chat_id"], s["text"]) for s in fake.sent] == [(CHAT, "1"), (CHAT, "true")]


def test_answer_callback_query_is_recorded(fake):
    update = fake.callback_update(CHAT, "q1:yes", message_id=7)
    query_id = update["callback_query"]["id"]

    assert run(fake, lambda bot: bot.answer_callback_query(query_id, text="Tack!")) is True
    assert [{k: v for k, v in a.items() if k != "at"} for a in fake.callback_answers] == [
        {"callback_query_id": query_id, "text": "Tack!", "show_alert": False}
    ]


def test_answering_an_unknown_callback_query_is_telegrams_bad_request(fake):
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        run(fake, lambda bot: bot.answer_callback_query("123", text="Tack!"))
    assert fake.callback_answers == []
    assert [c["error_code"] for c in fake.calls] == [400]


def test_send_voice_records_the_uploaded_bytes_and_filename(fake):
    # Bytes that would break a careless multipart parser: NUL, CRLF, a fake delimiter.
    audio = b"OggS\x00\x02" + bytes(range(256)) + b"\r\n--notaboundary\r\n\r\n" + b"\xff" * 70_000
    sent = run(
        fake,
        lambda bot: bot.send_voice(
            CHAT, BufferedInputFile(audio, filename="fråga 1.ogg"), caption="Lyssna", duration=3
        ),
    )

    assert sent.voice.mime_type == "audio/ogg"
    assert (sent.voice.duration, sent.voice.file_size, sent.caption) == (3, len(audio), "Lyssna")
    assert sent.voice.file_id and sent.voice.file_unique_id
    [voice] = fake.voices
    assert voice["content"] == audio
    assert (voice["filename"], voice["caption"]) == ("fråga 1.ogg", "Lyssna")
    assert voice["chat_id"] == CHAT
    assert (voice["file_id"], voice["message_id"]) == (sent.voice.file_id, sent.message_id)
    [call] = fake.calls
    assert call["params"]["voice"].startswith("attach://")  # aiogram's random part name


def test_send_voice_again_by_file_id_uploads_nothing(fake):
    async def scenario(bot: Bot):
        first = await bot.send_voice(CHAT, BufferedInputFile(b"OggS-1", filename="q.ogg"))
        again = await bot.send_voice(CHAT + 1, first.voice.file_id)
        return first, again

    first, again = run(fake, scenario)

    assert again.voice.model_dump() == first.voice.model_dump()
    assert [(v["chat_id"], v["content"], v["file_id"]) for v in fake.voices] == [
        (CHAT, b"OggS-1", first.voice.file_id),
        (CHAT + 1, None, first.voice.file_id),
    ]
    with pytest.raises(TelegramBadRequest, match="wrong file identifier"):
        run(fake, lambda bot: bot.send_voice(CHAT, "AwACAgQAAxkBAAInvented"))


def test_set_webhook_records_url_secret_and_allowed_updates(fake):
    url = "https://tala.example.org/telegram/webhook"

    async def scenario(bot: Bot):
        ok = await bot.set_webhook(
            url, secret_token="s3cret_T-1", allowed_updates=["message", "callback_query"]
        )
        info = await bot.get_webhook_info()
        return ok, info

    ok, info = run(fake, scenario)

    assert ok is True
    webhook = fake.webhook
    assert (webhook["url"], webhook["secret_token"]) == (url, "s3cret_T-1")
    assert webhook["allowed_updates"] == ["message", "callback_query"]
    assert (info.url, info.pending_update_count) == (url, 0)
    assert info.allowed_updates == ["message", "callback_query"]

    assert run(fake, lambda bot: bot.delete_webhook()) is True
    assert fake.webhook is None


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://tala.example.org/hook", "An HTTPS URL must be provided"),
        ("https://tala.example.org:8080/hook", "only on ports 80, 88, 443 or 8443"),
    ],
)
def test_a_webhook_telegram_would_refuse_is_refused(fake, url, reason):
    with pytest.raises(TelegramBadRequest, match=reason):
        run(fake, lambda bot: bot.set_webhook(url))
    assert fake.webhook is None


def test_set_my_commands_is_recorded_and_bad_commands_refused(fake):
    commands = [BotCommand(command="start", description="Börja"),
                BotCommand(command="stop", description="Sluta")]

    assert run(fake, lambda bot: bot.set_my_commands(commands, language_code="sv")) is True
    [call] = fake.calls_to("setMyCommands")
    assert call["params"] == {
        "commands": [{"command": "start", "description": "Börja"},
                     {"command": "stop", "description": "Sluta"}],
        "language_code": "sv",
    }
    bad = [BotCommand(command="hjälp", description="Hjälp")]  # commands are ASCII only
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        run(fake, lambda bot: bot.set_my_commands(bad))


# -- errors ---------------------------------------------------------------------------------


def test_wrong_token_raises_unauthorized_and_is_recorded(fake):
    with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
        run(fake, lambda bot: bot.get_me(), token="654321:WRONG-token")

    assert [(c["method"], c["error_code"]) for c in fake.calls] == [("getMe", 401)]


def test_fail_next_429_raises_retry_after_then_succeeds(fake):
    fake.fail_next("sendMessage", 1, error_code=429, retry_after=1)

    async def scenario(bot: Bot):
        with pytest.raises(TelegramRetryAfter) as err:
            await bot.send_message(CHAT, "Hej")
        return err.value, await bot.send_message(CHAT, "Hej")

    error, message = run(fake, scenario)

    assert error.retry_after == 1
    # aiogram rewrites the description, keeping Telegram's at the end.
    assert error.message.endswith("Original description: Too Many Requests: retry after 1")
    assert message.message_id == 1  # the failed call took no message id
    assert [c["error_code"] for c in fake.calls] == [429, None]
    assert len(fake.sent) == 1  # aiogram does not retry by itself


@pytest.mark.parametrize(
    "code, error_type",
    [
        (400, TelegramBadRequest),
        (403, TelegramForbiddenError),
        (500, TelegramServerError),
        (502, TelegramServerError),
    ],
)
def test_fail_next_answers_telegrams_error_shape(fake, code, error_type):
    fake.fail_next("getMe", 2, error_code=code)

    for _ in range(2):
        with pytest.raises(error_type):
            run(fake, lambda bot: bot.get_me())
    assert run(fake, lambda bot: bot.get_me()).username == "tala_test_bot"
    assert [c["error_code"] for c in fake.calls] == [code, code, None]


def test_fail_next_body_is_exactly_telegrams(fake):
    fake.fail_next("getMe", error_code=429, retry_after=7)

    assert raw_call(fake, "getMe") == (429, {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 7",
        "parameters": {"retry_after": 7},
    })


def test_fail_for_a_chat_that_blocked_the_bot(fake):
    fake.fail_for(CHAT)

    async def scenario(bot: Bot):
        with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
            await bot.send_message(CHAT, "Hej")
        return await bot.send_message(CHAT + 1, "Hej")

    assert run(fake, scenario).chat.id == CHAT + 1
    assert [s["chat_id"] for s in fake.sent] == [CHAT + 1]


def test_fail_next_refuses_a_method_it_does_not_serve(fake):
    with pytest.raises(ValueError, match="sendPhoto"):
        fake.fail_next("sendPhoto")


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"text": ""}, "message text is empty"),
        ({"text": "x" * 4097}, "message is too long"),
        ({"text": "Hej", "reply_markup": InlineKeyboardMarkup(inline_keyboard=[[
            InlineKeyboardButton(text="Ja", callback_data="x" * 65)]])}, "BUTTON_DATA_INVALID"),
        ({"text": "Hej", "reply_markup": InlineKeyboardMarkup(inline_keyboard=[[
            InlineKeyboardButton(text="Ja")]])}, "Text buttons are unallowed"),
    ],
    ids=["empty text", "text too long", "callback data over 64 bytes", "button without action"],
)
def test_send_message_telegram_would_refuse_is_refused(fake, kwargs, reason):
    with pytest.raises(TelegramBadRequest, match=reason):
        run(fake, lambda bot: bot.send_message(CHAT, **kwargs))
    assert fake.sent == []


def test_an_unfaked_method_fails_loudly_and_is_listed(fake):
    with pytest.raises(TelegramNotFound, match="FakeTelegram does not serve POST"):
        run(fake, lambda bot: bot.get_chat(CHAT))

    assert fake.unhandled == [("POST", f"/bot{fake.token}/getChat")]
    assert fake.calls == []
    fake.reset()  # so the fixture's own check passes


# -- editing --------------------------------------------------------------------------------


def test_edits_change_the_message_and_an_unchanged_edit_is_refused(fake):
    async def scenario(bot: Bot):
        sent = await bot.send_message(CHAT, "Hur mår du?", reply_markup=KEYBOARD)
        removed = await bot.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id)
        with pytest.raises(TelegramBadRequest, match="message is not modified"):
            await bot.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id)
        edited = await bot.edit_message_text("Du valde: Ja", chat_id=CHAT,
                                             message_id=sent.message_id)
        with pytest.raises(TelegramBadRequest, match="message to edit not found"):
            await bot.edit_message_text("x", chat_id=CHAT, message_id=99)
        return sent, removed, edited

    sent, removed, edited = run(fake, scenario)

    assert removed.reply_markup is None and removed.edit_date is not None
    assert (edited.message_id, edited.text) == (sent.message_id, "Du valde: Ja")
    assert fake.message(CHAT, sent.message_id)["text"] == "Du valde: Ja"
    assert [(e["method"], e["text"], e["reply_markup"]) for e in fake.edits] == [
        ("editMessageReplyMarkup", None, None),
        ("editMessageText", "Du valde: Ja", None),
    ]


def test_a_users_message_cannot_be_edited(fake):
    update = fake.message_update(CHAT, "hej")
    message_id = update["message"]["message_id"]

    with pytest.raises(TelegramBadRequest, match="message can't be edited"):
        run(fake, lambda bot: bot.edit_message_text("x", chat_id=CHAT, message_id=message_id))


# -- polling --------------------------------------------------------------------------------


def test_get_updates_long_poll_returns_as_soon_as_an_update_is_pushed(fake):
    pushed: list[dict] = []
    pusher = threading.Timer(0.2, lambda: pushed.append(
        fake.push_update(fake.message_update(CHAT, "hej"))))

    async def scenario(bot: Bot):
        pusher.start()
        started = time.monotonic()
        updates = await bot.get_updates(timeout=30)
        return updates, time.monotonic() - started

    try:
        updates, waited = run(fake, scenario)
    finally:
        pusher.join()

    assert 0.15 <= waited < fake.long_poll_cap
    assert [u.update_id for u in updates] == [pushed[0]["update_id"]]
    assert updates[0].message.text == "hej"


def test_get_updates_waits_at_most_the_cap_when_nothing_comes():
    with FakeTelegram(long_poll_cap=0.3) as fake:
        async def scenario(bot: Bot):
            started = time.monotonic()
            return await bot.get_updates(timeout=30), time.monotonic() - started

        updates, waited = run(fake, scenario)

    assert updates == []
    assert 0.25 <= waited < 2


def test_get_updates_honours_offset_and_limit_and_forgets_confirmed_updates(fake):
    ids = [fake.push_update(fake.message_update(CHAT, f"m{i}"))["update_id"] for i in range(4)]

    async def scenario(bot: Bot):
        everything = await bot.get_updates()
        first = await bot.get_updates(limit=1)
        after_confirming_two = await bot.get_updates(offset=ids[2])
        pending = fake.pending_updates
        last = await bot.get_updates(offset=-1)
        none_left = await bot.get_updates(offset=ids[3] + 1)
        return everything, first, after_confirming_two, pending, last, none_left

    everything, first, after_two, pending, last, none_left = run(fake, scenario)

    assert [u.update_id for u in everything] == ids  # unconfirmed: still delivered
    assert [u.update_id for u in first] == ids[:1]
    assert [u.update_id for u in after_two] == ids[2:]  # update_id >= offset, as Telegram
    assert [u["update_id"] for u in pending] == ids[2:]
    assert [u.update_id for u in last] == ids[3:]
    assert none_left == [] and fake.pending_updates == []


def test_get_updates_delivers_only_allowed_update_types(fake):
    message = fake.push_update(fake.message_update(CHAT, "hej"))
    fake.push_update(fake.callback_update(CHAT, "q1:yes", message_id=1))
    later = fake.push_update(fake.message_update(CHAT, "igen"))

    updates = run(fake, lambda bot: bot.get_updates(allowed_updates=["message"]))

    assert [u.update_id for u in updates] == [message["update_id"], later["update_id"]]


def test_push_update_refuses_an_id_older_than_the_last(fake):
    older = fake.message_update(CHAT, "först")
    newer = fake.message_update(CHAT, "sen")
    fake.push_update(newer)

    with pytest.raises(ValueError, match="push updates in the order they were built"):
        fake.push_update(older)


def test_get_updates_while_a_webhook_is_set_is_a_conflict(fake):
    async def scenario(bot: Bot):
        await bot.set_webhook("https://tala.example.org/telegram/webhook")
        await bot.get_updates()

    with pytest.raises(TelegramConflictError, match="webhook is active"):
        run(fake, scenario)


def test_a_second_poller_ends_the_first_with_a_conflict(fake):
    # Two bot processes on one token: Telegram ends the older getUpdates with 409.
    async def scenario(bot: Bot):
        first = asyncio.create_task(bot.get_updates(timeout=30))
        deadline = time.monotonic() + 10
        while fake.polls_started < 1:  # the first is waiting at the fake
            assert time.monotonic() < deadline, "the first getUpdates never arrived"
            await asyncio.sleep(0.01)
        second = await bot.get_updates(timeout=30)
        with pytest.raises(TelegramConflictError, match="terminated by other getUpdates"):
            await first
        return second

    assert run(fake, scenario) == []


def test_a_real_dispatcher_polls_the_fake_end_to_end(fake):
    dp = Dispatcher()
    handled = asyncio.Event()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer("Hur mår du?", reply_markup=KEYBOARD)

    @dp.callback_query(F.data.startswith("q1:"))
    async def answered(query: CallbackQuery) -> None:
        await query.answer("Tack!")
        await query.message.edit_text(f"Du valde: {query.data}")
        handled.set()

    async def main() -> None:
        bot = bot_for(fake)
        polling = asyncio.create_task(
            dp.start_polling(bot, polling_timeout=10, handle_signals=False)
        )
        try:
            fake.push_update(fake.message_update(CHAT, "/start"))
            [reply] = await asyncio.to_thread(fake.wait_for, "sendMessage", 1)
            message_id = reply["result"]["message_id"]
            fake.push_update(fake.callback_update(CHAT, "q1:yes", message_id))
            # Not fake.wait_for: it returns when the fake has answered, and stopping the
            # polling then would close the session under the handler still reading it.
            await asyncio.wait_for(handled.wait(), 10)
        finally:
            await dp.stop_polling()
            await polling

    asyncio.run(main())

    assert [(s["chat_id"], s["text"], s["reply_markup"]) for s in fake.sent] == [
        (CHAT, "Hur mår du?", KEYBOARD_JSON)
    ]
    assert [a["text"] for a in fake.callback_answers] == ["Tack!"]
    assert fake.message(CHAT, 2)["text"] == "Du valde: q1:yes"
    assert "reply_markup" not in fake.message(CHAT, 2)  # an edit without markup drops it
    polls = fake.calls_to("getUpdates")
    # aiogram asks only for the update types it has handlers for.
    assert sorted(polls[0]["params"]["allowed_updates"]) == ["callback_query", "message"]


# -- concurrency ----------------------------------------------------------------------------


def test_concurrent_sends_from_8_tasks_are_each_recorded_once(fake):
    tasks, per_task = 8, 5

    async def sender(bot: Bot, t: int) -> list[int]:
        return [(await bot.send_message(CHAT, f"{t}-{i}")).message_id for i in range(per_task)]

    async def scenario(bot: Bot) -> list[int]:
        batches = await asyncio.gather(*(sender(bot, t) for t in range(tasks)))
        return [m for batch in batches for m in batch]

    message_ids = run(fake, scenario)

    expected = sorted(f"{t}-{i}" for t in range(tasks) for i in range(per_task))
    assert sorted(s["text"] for s in fake.sent) == expected
    assert sorted(message_ids) == list(range(1, tasks * per_task + 1))  # one chat, one counter
    assert sorted(s["message_id"] for s in fake.sent) == sorted(message_ids)


def test_wait_for_returns_calls_made_from_another_thread(fake):
    sender = threading.Timer(0.1, lambda: run(fake, lambda bot: bot.send_message(CHAT, "Hej")))
    sender.start()
    try:
        [call] = fake.wait_for("sendMessage", 1, timeout=10)
    finally:
        sender.join()
    assert call["params"]["text"] == "Hej"


def test_wait_for_times_out_with_assertion_error(fake):
    fake.fail_next("sendMessage", error_code=500)
    with pytest.raises(TelegramServerError):
        run(fake, lambda bot: bot.send_message(CHAT, "Hej"))

    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"expected 1 successful sendMessage call\(s\)"):
        fake.wait_for("sendMessage", 1, timeout=0.2)
    assert time.monotonic() - started >= 0.2


# -- building updates -----------------------------------------------------------------------


def test_message_update_is_a_bot_api_update_aiogram_accepts(fake):
    raw = fake.message_update(CHAT, "/start abc", first_name="Alva", language_code="sv")

    update = Update.model_validate(raw)

    assert extras(update) == []  # every field is one aiogram knows: the Bot API's shape
    message = update.message
    assert (message.chat.id, message.chat.type, message.text) == (CHAT, "private", "/start abc")
    assert (message.from_user.id, message.from_user.is_bot) == (CHAT, False)
    assert (message.from_user.first_name, message.from_user.language_code) == ("Alva", "sv")
    [entity] = message.entities
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 6)
    assert "entities" not in fake.message_update(CHAT, "bara text")["message"]


def test_callback_update_carries_the_message_the_bot_sent(fake):
    sent = run(fake, lambda bot: bot.send_message(CHAT, "Hur mår du?", reply_markup=KEYBOARD))

    raw = fake.callback_update(CHAT, "q1:no", sent.message_id, user_id=CHAT)
    update = Update.model_validate(raw)

    assert extras(update) == []
    query = update.callback_query
    assert isinstance(query.id, str) and query.chat_instance
    assert (query.data, query.from_user.id) == ("q1:no", CHAT)
    assert query.message.message_id == sent.message_id
    assert query.message.from_user.id == 123456
    assert query.message.text == "Hur mår du?"
    assert query.message.reply_markup.model_dump() == KEYBOARD.model_dump()


def test_update_ids_increase_and_message_ids_are_shared_in_the_chat(fake):
    first = fake.message_update(CHAT, "hej")
    sent = run(fake, lambda bot: bot.send_message(CHAT, "Hej!"))
    second = fake.message_update(CHAT, "igen")
    other_chat = fake.message_update(CHAT + 1, "hej")

    assert first["update_id"] < second["update_id"] < other_chat["update_id"]
    assert (first["message"]["message_id"], sent.message_id) == (1, 2)
    assert second["message"]["message_id"] == 3
    assert other_chat["message"]["message_id"] == 1


# -- the wire, without aiogram --------------------------------------------------------------


def test_json_bodies_query_strings_and_any_case_method_names_are_accepted(fake):
    by_json = raw_call(fake, "sendMessage", json_body={
        "chat_id": CHAT, "text": "Hej", "reply_markup": KEYBOARD_JSON})
    by_query = raw_call(fake, "sendmessage", query="chat_id=4242&text=123")

    assert by_json[0] == by_query[0] == 200
    assert by_json[1]["result"]["reply_markup"] == KEYBOARD_JSON
    assert [(s["chat_id"], s["text"]) for s in fake.sent] == [(CHAT, "Hej"), (CHAT, "123")]


def test_responses_are_what_aiogram_would_decode(fake):
    status, body = raw_call(fake, "getMe")

    assert status == 200 and body["ok"] is True
    assert body["result"] == {
        "id": 123456, "is_bot": True, "first_name": "Tala (test)", "username": "tala_test_bot",
        "can_join_groups": True, "can_read_all_group_messages": False,
        "supports_inline_queries": False,
    }


# -- lifecycle ------------------------------------------------------------------------------


def test_reset_forgets_records_rules_and_updates(fake):
    fake.fail_next("getMe", 5, error_code=500)
    fake.push_update(fake.message_update(CHAT, "hej"))
    with pytest.raises(TelegramAPIError):
        run(fake, lambda bot: bot.get_me())

    fake.reset()

    assert (fake.calls, fake.pending_updates, fake.webhook) == ([], [], None)
    assert run(fake, lambda bot: bot.get_me()).username == "tala_test_bot"


def test_start_stop_and_api_base_url():
    fake = FakeTelegram(token="987:abc_DEF-1", username="other_bot").start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", fake.api_base_url)
        me = run(fake, lambda bot: bot.get_me())
        assert (me.id, me.username) == (987, "other_bot")
    finally:
        fake.stop()
    fake.stop()  # twice is fine
    with pytest.raises(RuntimeError, match="not running"):
        fake.api_base_url  # noqa: B018 - the property raises


def test_a_malformed_token_is_refused_up_front():
    with pytest.raises(ValueError, match="bot token"):
        FakeTelegram(token="no-colon")
