"""Telegram with aiogram 3: deep-link invitations, buttons, read-aloud, webhook or polling.

    /start CODE      binds this chat to the invitation (single use, expiring, guessing held off)
    text             an answer or a command, exactly as by SMS
    buttons          a choice's answer ("a|question|key"); several choices are ticked on the
                     keyboard itself ("m|question|mask") and sent with Klar ("d|question|mask");
                     "r|question" reads the question aloud as a voice message
    /readaloud       the question being asked, as a voice message
    /help /back /pause /language /answers /stop   the bot menu, in every language

Read-aloud: the button is offered only where it can work (younger children, a language
espeak-ng has a voice for, the engines installed). /readaloud, and a read-aloud button left
over from before, always answer: with the voice message, or with a plain message in the
child's language that says why not (no voice for Somali or Tigrinya yet, read-aloud off on
this server, no question being asked) and that a grown-up they trust can read to them.

A button is checked against the question being asked inside the same Redis transaction that
applies it, so a second press of an old button changes nothing; a repeated update (Telegram
retries a webhook) is applied once and not answered twice.

What a chat is sent (replies, voice messages, and what tala sends first) goes through the send
queue, sent by bot/channels/telegram_send.py; only a button's own small answer (the "toast")
and taking the buttons off an answered question are done here, as Telegram asks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiogram import Dispatcher, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (BotCommand, CallbackQuery, InlineKeyboardButton,
                           InlineKeyboardMarkup, Message, Update)

from bot.channels.telegram_send import CHANNEL, body, make_bot, text_message, voice_message
from bot.render import face, render
from bot.receive import (ANSWERED, CODE_UNKNOWN, DUPLICATE, GONE, NO_SESSION, STALE, TOO_MANY,
                         Received)
from bot.service import ConversationService
from bot.settings import Settings
from bot.speech import NO_VOICE, Speech, spoken_text
from flows import engine
from flows import messages as M
from flows.engine import Prompt
from flows.i18n import SOURCE_LANG

log = logging.getLogger("tala.telegram")
READ_ALOUD_FOR = ("followup-6-11",)  # younger children get the button on every question
MENU = [("help", "Hjälp"), ("back", "Ändra förra svaret"), ("pause", "Pausa"),
        ("language", "Byt språk"), ("answers", "Mina svar"), ("readaloud", "Läs upp frågan"),
        ("stop", "Sluta svara")]


CAMPAIGN_PREFIX = "c_"


def deep_link(settings: Settings, code: str) -> str:
    return f"https://t.me/{settings.telegram_bot_username}?start={code}"


def campaign_link(settings: Settings, code: str) -> str:
    """Everyone in a class opens the same link: it starts an anonymous session per chat."""
    return deep_link(settings, CAMPAIGN_PREFIX + code)


def keyboard(prompt: Prompt, catalogs, lang: str, read_aloud: bool,
             chosen: int = 0) -> InlineKeyboardMarkup | None:
    """Buttons for a prompt. A multiple choice carries what is ticked in its own buttons."""
    rows: list[list[InlineKeyboardButton]] = []
    qid = prompt.question_id
    if prompt.multi:
        for i, (_, label) in enumerate(prompt.choices):
            ticked = chosen & (1 << i)
            rows.append([InlineKeyboardButton(text=("✅ " if ticked else "") + label,
                                              callback_data=f"m|{qid}|{chosen ^ (1 << i)}")])
        if chosen:
            rows.append([InlineKeyboardButton(text=catalogs.gettext(lang, M.DONE_CHOOSING),
                                              callback_data=f"d|{qid}|{chosen}")])
    elif prompt.choices:
        for key, label in prompt.choices:
            smiley = face(prompt, key)
            rows.append([InlineKeyboardButton(text=f"{smiley} {label}" if smiley else label,
                                              callback_data=f"a|{qid}|{key}")])
    elif prompt.scale_range:
        low, high = prompt.scale_range
        keys = [str(n) for n in range(low, high + 1)]
        half = (len(keys) + 1) // 2
        for part in (keys[:half], keys[half:]):
            rows.append([InlineKeyboardButton(text=k, callback_data=f"a|{qid}|{k}")
                         for k in part])
    if read_aloud and qid != engine.LANGUAGE_PROMPT:
        rows.append([InlineKeyboardButton(text="🔊 " + catalogs.gettext(lang, M.READ_ALOUD),
                                          callback_data=f"r|{qid}")])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def _mask(value: str, choices: int) -> int | None:
    """The ticked choices a multiple-choice button carries (bit i: choice i), or None when the
    value is not one tala could have made for `choices` choices (Telegram lets a client send
    any 64 bytes, and int() of thousands of digits raises)."""
    if not value:
        return 0
    if len(value) > 20 or not value.isascii() or not value.isdigit():
        return None
    mask = int(value)
    return mask if mask < (1 << choices) else None


class TelegramChannel:
    def __init__(self, service: ConversationService, settings: Settings,
                 speech: Speech | None = None):
        self.service = service
        self.rt = service.rt
        self.settings = settings
        self.bot = make_bot(settings)
        self.speech = speech or Speech(settings.data_path / "speech")
        self.dp = Dispatcher()
        router = Router()
        router.message(F.text)(self.on_message)
        router.callback_query()(self.on_button)
        self.dp.include_router(router)

    # ------------------------------------------------------------------ wiring
    async def feed(self, update: dict[str, Any]) -> None:
        await self.dp.feed_update(self.bot, Update.model_validate(update, context={
            "bot": self.bot}))

    async def setup(self, webhook_url: str | None) -> None:
        """Register the bot menu, and the webhook (or, for polling, none)."""
        await self.bot.set_my_commands([BotCommand(command=c, description=d) for c, d in MENU])
        if webhook_url:
            await self.bot.set_webhook(webhook_url, secret_token=self.settings.
                                       telegram_webhook_secret,
                                       allowed_updates=["message", "callback_query"])
        else:
            await self.bot.delete_webhook()

    async def close(self) -> None:
        await self.bot.session.close()

    # ------------------------------------------------------------------ the child writes
    async def on_message(self, message: Message, event_update: Update) -> None:
        chat = str(message.chat.id)
        text = message.text or ""
        mid = f"u{event_update.update_id}"
        if text.startswith("/readaloud"):
            await self._read_aloud_command(chat, mid)
            return
        if text.startswith("/start"):
            code = text[len("/start"):].strip()
            survey = code[len(CAMPAIGN_PREFIX):] if code.lower().startswith(CAMPAIGN_PREFIX) \
                else None
            got = await self._receive(chat, text, mid, start=True,
                                      codes=[code] if code and not survey else (),
                                      survey=survey)
        else:
            got = await self._receive(chat, text, mid)
        await self._answer(chat, got, mid)

    async def on_button(self, query: CallbackQuery) -> None:
        chat = str(query.message.chat.id) if query.message else str(query.from_user.id)
        kind, _, rest = (query.data or "").partition("|")
        qid, _, value = rest.partition("|")
        svc = self.service
        mid = f"c{query.id}"
        if kind in ("r", "m", "d"):  # these need the question being asked: read it first
            state = await asyncio.to_thread(svc.asking, CHANNEL, chat)
            if state is None:
                await query.answer(self._sv(M.NEEDS_INVITATION))
                return
            if kind == "r":
                if state.current != qid:  # an old question's button (or forged data)
                    await query.answer(svc.text_for(state, M.ALREADY_ANSWERED))
                    return
                await query.answer()
                await self._voice(chat, state, mid)
                return
            # The question being asked, for a tick (m) or "done" (d) on it; None for an old one.
            prompt = svc.prompt(state) if state.current == qid else None
            mask = _mask(value, len(prompt.choices)) if prompt else 0
            if mask is None:  # not data tala made: forged or garbled; nothing changes
                await query.answer()
                return
            if prompt is None and kind == "m":
                await query.answer(svc.text_for(state, M.ALREADY_ANSWERED))
                return
            if kind == "m":  # tick or untick one choice: only the keyboard changes
                markup = keyboard(prompt, self.rt.catalogs, state.lang,
                                  self._reads_aloud(state), chosen=mask)
                await query.answer()
                await self.bot.edit_message_reply_markup(
                    chat_id=chat, message_id=query.message.message_id, reply_markup=markup)
                return
            value = " ".join(k for i, (k, _) in enumerate(prompt.choices) if mask & (1 << i)) \
                if prompt else ""
        got = await self._receive(chat, value, mid, answers=qid)
        if got.outcome == STALE:
            await query.answer(svc.text_for(got.state, M.ALREADY_ANSWERED))
            return
        if got.outcome == DUPLICATE:  # Telegram sent this press again: its answer, once
            await query.answer()
            await self._send(chat, got, mid)
            return
        if got.outcome != ANSWERED:
            await query.answer(self._sv(M.NEEDS_INVITATION))
            return
        await query.answer()
        if query.message:
            # The answered question keeps its text but loses its buttons.
            try:
                await self.bot.edit_message_reply_markup(chat_id=chat,
                                                         message_id=query.message.message_id,
                                                         reply_markup=None)
            except TelegramBadRequest:
                pass  # too old to edit: harmless
        await self._send(chat, got, mid)

    async def _receive(self, chat: str, text: str, message_id: str, **how) -> Received:
        return await asyncio.to_thread(self.service.receive, CHANNEL, chat, text, message_id,
                                       **how)

    # ------------------------------------------------------------------ tala answers
    # Every message goes through the send queue (bot/channels/telegram_send.py), as one job
    # named by the update it answers: a retried update queues nothing twice.
    async def _queue(self, chat: str, messages: list[dict], mid: str, state=None) -> None:
        if messages:
            await asyncio.to_thread(self.service.send_to, CHANNEL, chat, body(messages), mid,
                                    state)

    async def _answer(self, chat: str, got: Received, mid: str) -> None:
        """A message's reply; where nothing was said, what the chat needs to hear."""
        if got.outcome in (ANSWERED, DUPLICATE):
            # A repeated update queues its answer again under the same job id: sent once,
            # also when the first time stopped before its answer was queued.
            await self._send(chat, got, mid)
        elif got.outcome in (NO_SESSION, GONE, CODE_UNKNOWN, TOO_MANY):
            msgid = {CODE_UNKNOWN: M.CODE_UNKNOWN, TOO_MANY: M.CODE_TOO_MANY}.get(
                got.outcome, M.NEEDS_INVITATION)
            await self._queue(chat, [text_message(self._sv(msgid))], mid)

    async def _send(self, chat: str, got: Received, mid: str) -> None:
        state = got.state
        lang = state.lang if state else SOURCE_LANG
        aloud = self._reads_aloud(state) if state else False
        messages = []
        for say in got.says:
            if say.prompt is None:
                messages.append(text_message(say.text))
                continue
            p = say.prompt
            markup = keyboard(p, self.rt.catalogs, lang, aloud)
            text = p.text + (f"\n\n{p.hint}" if p.hint else "")
            if p.multi or not markup or not p.choices:
                text = render(say)  # numbered, so typing works as well as the buttons
            messages.append(text_message(text, markup))
        await self._queue(chat, messages, mid, state)

    def _reads_aloud(self, state) -> bool:
        return (state.questionnaire_id in READ_ALOUD_FOR
                and self.speech.can_speak(state.lang))

    async def _read_aloud_command(self, chat: str, mid: str) -> None:
        """/readaloud: always answered, with the question as a voice message or a message that
        says why not. Reading changes nothing in the session."""
        svc = self.service
        state = await asyncio.to_thread(svc.asking, CHANNEL, chat)
        instead = svc.read_aloud_instead(state)
        if instead:
            await self._queue(chat, [text_message(svc.text_for(state, instead))], mid, state)
        else:
            await self._voice(chat, state, mid)

    async def _voice(self, chat: str, state, mid: str) -> None:
        """The question being asked as a voice message; where there is no voice for the
        child's language or no engine (or synthesis fails when it is sent), a message in the
        child's language that says so instead (never silence)."""
        svc = self.service
        why = await asyncio.to_thread(self.speech.why_not, state.lang)  # may probe espeak-ng
        if why is not None:
            msgid = M.READ_ALOUD_NO_VOICE if why == NO_VOICE else M.READ_ALOUD_OFF
            await self._queue(chat, [text_message(svc.text_for(state, msgid))], mid, state)
            return
        qid = state.current
        key = f"{state.questionnaire_id}:{state.questionnaire_version}:{qid}:{state.lang}"
        await self._queue(chat, [voice_message(spoken_text(svc.prompt(state)), state.lang, key,
                                               f"{qid}.ogg",
                                               svc.text_for(state, M.READ_ALOUD_OFF))],
                          mid, state)

    def _sv(self, msgid: str) -> str:
        return self.rt.catalogs.gettext(SOURCE_LANG, msgid)
