"""What tala sends a Telegram chat, always through the send queue: the replies to a child's
message as well as reminders, a caseworker's reply and staff alerts. One job is one reply:
its messages in order (text with its buttons, or a question read aloud), so two senders never
interleave one reply's messages, and a reply Telegram could not take now is tried again, not
lost.

A job's body (encrypted in the queue like every body) is JSON:

    {"messages": [{"text": "...", "markup": {"inline_keyboard": [...]}},
                  {"voice": {"text": "...", "lang": "sv", "key": "...", "name": "q.ogg"},
                   "text": "what to say if it cannot be read aloud"}]}

A body that is not (queued by an older tala) is sent as one plain text.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (TelegramBadRequest, TelegramForbiddenError, TelegramNetworkError,
                                TelegramRetryAfter, TelegramServerError)
from aiogram.types import BufferedInputFile, InlineKeyboardMarkup

from bot.render import render
from bot.settings import Settings
from bot.speech import Speech
from flows.engine import Say
from storage.queue import SendResult

CHANNEL = "telegram"
# A job not sent by then is left to the queue to try again (well under its lease).
SEND_TIMEOUT = 45


def make_bot(settings: Settings) -> Bot:
    if settings.telegram_api_base_url:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base_url))
        return Bot(settings.telegram_bot_token, session=session)
    return Bot(settings.telegram_bot_token)


def text_message(text: str, markup: InlineKeyboardMarkup | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"text": text}
    if markup is not None:
        message["markup"] = markup.model_dump(mode="json", exclude_none=True)
    return message


def voice_message(text: str, lang: str, key: str, name: str, instead: str) -> dict[str, Any]:
    """A question read aloud (synthesised, or taken from the cache, when it is sent); `instead`
    is said if that cannot be done then."""
    return {"voice": {"text": text, "lang": lang, "key": key, "name": name}, "text": instead}


def body(messages: list[dict[str, Any]]) -> str:
    return json.dumps({"messages": messages}, ensure_ascii=False)


def render_telegram(says: list[Say]) -> list[str]:
    """Outbound text (reminders, replies): one message, laid out as in the terminal."""
    text = "\n\n".join(render(s) for s in says if render(s))
    return [body([text_message(text)])] if text else []


def _messages(raw: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        return data["messages"]
    return [{"text": raw}]


class TelegramSender:
    """The send queue's way to Telegram. The queue calls `send` from a thread of its own; the
    messages go out on one event loop of the sender's, in a thread of its own, through one Bot
    and its connection pool, kept for the sender's life: a reply does not pay for a new TLS
    connection to Telegram."""

    channel = CHANNEL

    def __init__(self, settings: Settings):
        self.settings = settings
        self._speech: Speech | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._bot: Bot | None = None
        self._lock = threading.Lock()

    @property
    def speech(self) -> Speech:
        """Made on the first voice message (the same cache the channel reads)."""
        if self._speech is None:
            self._speech = Speech(self.settings.data_path / "speech")
        return self._speech

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="tala-telegram-send",
                                 daemon=True).start()
                self._loop = loop
            return self._loop

    def send(self, to: str, body: str) -> SendResult:
        job = asyncio.run_coroutine_threadsafe(self._send(to, _messages(body)),
                                               self._running_loop())
        try:
            return job.result(timeout=SEND_TIMEOUT)
        except concurrent.futures.TimeoutError:
            job.cancel()
            return SendResult(error="Telegram did not answer in time", permanent=False,
                              maybe_sent=True)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._bot is not None:
            asyncio.run_coroutine_threadsafe(self._bot.session.close(), loop).result(10)
            self._bot = None
        loop.call_soon_threadsafe(loop.stop)

    async def _send(self, to: str, messages: list[dict[str, Any]]) -> SendResult:
        if self._bot is None:
            self._bot = make_bot(self.settings)
        bot = self._bot
        sid = None
        try:
            for m in messages:
                sid = f"tg:{await self._one(bot, to, m)}"
            # Not the chat id: the sid is kept in clear (the job's hash), the chat only
            # encrypted.
            return SendResult(sid=sid or "tg:none")
        except TelegramForbiddenError:
            return SendResult(error="the child has blocked the bot", opted_out=True)
        except (TelegramRetryAfter, TelegramServerError, TelegramNetworkError) as e:
            # Tried again later, from its first message: one sent already may come twice (a
            # repeated message beats a lost one).
            return SendResult(error=type(e).__name__, permanent=False,
                              retry_after=float(getattr(e, "retry_after", 0) or 0))
        except TelegramBadRequest as e:
            return SendResult(error=f"Telegram: {e.message}"[:300])

    async def _one(self, bot: Bot, to: str, m: dict[str, Any]) -> int:
        voice = m.get("voice")
        if voice:
            audio = await asyncio.to_thread(self.speech.speak, voice["text"], voice["lang"],
                                            voice["key"])
            if audio:
                sent = await bot.send_voice(to, BufferedInputFile(audio, filename=voice["name"]))
                return sent.message_id
        markup = InlineKeyboardMarkup.model_validate(m["markup"]) if m.get("markup") else None
        sent = await bot.send_message(to, m["text"], reply_markup=markup)
        return sent.message_id

    def find_sent(self, to: str, body: str, since: datetime) -> str | None:
        # Telegram cannot list what a bot sent: a message a killed sender may have sent is
        # sent again (a rare repeated reminder beats a lost one).
        return None
