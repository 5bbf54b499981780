"""The console channel: the terminal is the child's phone.

Shows `Say` effects as plain text (bot/render.py: the layout an SMS gets too) and reads the
child's replies from standard input, line by line when it is not a terminal, so a conversation
can be scripted.
"""

from __future__ import annotations

from typing import Callable, Iterable, TextIO

from rich.console import Console
from rich.text import Text

from bot.service import ConversationService
from bot.render import render
from flows.engine import Say


class ConsoleChannel:
    def __init__(self, service: ConversationService, console: Console,
                 stdin: TextIO, interactive: bool):
        self.service = service
        self.console = console
        self.stdin = stdin
        self.interactive = interactive

    def show(self, says: Iterable[Say]) -> None:
        for say in says:
            self.console.print(Text(render(say), style="cyan"))
            self.console.print()

    def read(self) -> str | None:
        if self.interactive:
            try:
                return self.console.input("[bold]> [/bold]")
            except EOFError:
                self.console.print()  # end the prompt line
                return None
        line = self.stdin.readline()
        if not line:
            return None
        line = line.rstrip("\n")
        # Echo the scripted reply so the transcript reads as a conversation.
        self.console.print(Text(f"> {line}", style="bold"))
        return line

    def run(self, sid: str, on_message: Callable[[], None] | None = None) -> str | None:
        """Play the session until it finishes or input ends. Returns how it finished, or None
        when input ended first (the session then waits, paused where it was)."""
        reply = self.service.open(sid)
        self.show(reply.says)
        if reply.finished:
            return reply.finished
        while True:
            line = self.read()
            if line is None:
                return None
            # A terminal has no message ids to deduplicate: every line is a new message.
            reply = self.service.handle(sid, line)
            self.show(reply.says)
            if on_message:
                on_message()
            if reply.finished:
                return reply.finished
