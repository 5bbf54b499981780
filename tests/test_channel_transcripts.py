"""Golden transcripts per channel (issue 14): one conversation played on each channel through
its real wire (the matrix's children: the console as `tala demo` shows it, TwiML from the
running server, Telegram messages and their buttons from the fake Bot API, Rasa's `/webhook`
responses and buttons), compared with tests/golden/channel-CHANNEL.txt. What a child sees on
each channel, and how the channels differ, reads as a diff when a text or a layout changes.
After an intended change: TALA_UPDATE_GOLDEN=1 pytest tests/test_channel_transcripts.py
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone

import pytest

from tests.test_matrix import (CHANNELS, Child, RasaChild, TelegramChild,  # noqa: F401
                               WebChild, WhatsAppChild, world)
from tests.test_transcripts import GOLDEN

# A fixed clock, so a date a message names (a pause's "until") is the same every day.
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=timezone.utc)  # a Monday morning in Stockholm
# The same conversation everywhere: nonsense, an answer, back and change, the language by
# name and back, "my answers", pause and resume, a button (where there are buttons), and stop.
SCRIPT = ["bra typ", "7", "tillbaka", "6", "english", "svenska", "mina svar", "paus",
          "hej igen", "BUTTON", "sluta", "ja"]

# What the child does to open the invitation (the matrix's `start`), as the transcript shows it.
OPENS = {"console": "(tala demo --code <CODE>)", "sms": "Hej", "whatsapp": "Hej",
         "web": "(opens the link from the SMS)", "telegram": "/start <CODE>",
         "rasa": "Hej! Jag har en kod från socialtjänsten: <CODE>"}


def _buttons(child: Child, since: int) -> list[str]:
    """The titles of the buttons on the messages the child was just shown; buttons left on
    older messages are not counted again."""
    if isinstance(child, WhatsAppChild):
        return child.titles() if any(m["content_sid"] in child.w.twilio.contents
                                     for m in child._mine()[since:]) else []
    if isinstance(child, WebChild):
        return child.titles() if child.asked else []
    if isinstance(child, TelegramChild):
        return [b["text"] for m in child.chat.mine()[since:] if m["reply_markup"]
                for row in m["reply_markup"]["inline_keyboard"] for b in row]
    if isinstance(child, RasaChild):
        return [b["title"] for r in child.result["responses"] for b in r.get("buttons") or []]
    return []


def _first_title(child: Child) -> str:
    if isinstance(child, TelegramChild):
        return child._keyboard()["reply_markup"]["inline_keyboard"][0][0]["text"]
    return child.titles()[0]


def _count(child: Child) -> int:
    if isinstance(child, WhatsAppChild):
        return len(child._mine())
    return len(child.chat.mine()) if isinstance(child, TelegramChild) else 0


def transcript(world, channel: str) -> str:  # noqa: F811 - the fixture's value
    world.svc.clock = lambda: NOW
    child = world.child(channel)
    code = child.invited.code
    lines = [f"# {channel}: followup-12-18, started by the child"]

    def shown(messages: list[str], since: int) -> None:
        for message in messages:
            for line in (message.replace(code, "<CODE>") if code else message).splitlines() \
                    or [""]:
                lines.append(f"  tala | {line}".rstrip())
        buttons = _buttons(child, since)
        if buttons:
            lines.append(f"       [buttons: {' | '.join(buttons)}]")

    since = _count(child)
    started = child.start()
    for first in child.inbox()[:1]:  # sent first: the invitation (WhatsApp: its template)
        first = re.sub(r"/c/[A-Z2-9]{22}", "/c/<TOKEN>", first.replace(code, "<CODE>") if code
                       else first)
        lines.append("  tala (sent first) | " + " ".join(first.split()))
    lines.append(f"child | {OPENS[channel]}")
    shown(started, since)
    for step in SCRIPT:
        since = _count(child)
        if step == "BUTTON":
            pressable = child.buttons()
            if not pressable:
                continue  # console and SMS: typed answers only
            lines.append(f"child | (presses the first button: {_first_title(child)})")
            shown(child.press(pressable[0]), since)
            continue
        lines.append(f"child | {step}")
        shown(child.say(step), since)
    state = child.state
    lines.append(f"# status: {state.status}, language: {state.lang}, "
                 f"answers: {len(state.answers)}, changed: {len(state.superseded)}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("channel", CHANNELS)
def test_golden_transcript_per_channel(world, channel):  # noqa: F811
    got = transcript(world, channel)
    path = GOLDEN / f"channel-{channel}.txt"
    if os.environ.get("TALA_UPDATE_GOLDEN"):
        path.write_text(got, encoding="utf-8")
    assert path.exists(), f"no golden file yet: run TALA_UPDATE_GOLDEN=1 pytest {__file__}"
    assert got == path.read_text(encoding="utf-8")
