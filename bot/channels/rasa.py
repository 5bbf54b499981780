"""Rasa: the action server (`tala rasa-actions`) with one action, `action_tala_step`.

A municipality's Rasa assistant hands the conversation to tala while the slot `tala_active` is
true: the action reads the latest user message from the tracker, binds the conversation to a
session by invitation code on first use, runs the same conversation service as every channel,
and returns the reply as responses with buttons, plus slot events. The few lines the Rasa
project needs are in the README ("Inside a Rasa assistant").
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import ActionExecutor, CollectingDispatcher

from bot.app import App
from bot.service import CodeError
from flows import engine
from flows import messages as M
from flows.engine import Say
from flows.i18n import SOURCE_LANG

ACTION_NAME = "action_tala_step"
CHANNEL = "rasa"
_CODE = re.compile(r"[A-Za-z0-9]{4,6}-?[A-Za-z0-9]{4,12}")


@dataclass
class Step:
    responses: list[dict[str, Any]]
    active: bool
    session: str | None


def responses(says: list[Say]) -> list[dict[str, Any]]:
    """Rasa responses: a question's text with its hint, and its choices as buttons whose
    payload is what the child would type."""
    out = []
    for say in says:
        if say.prompt is None:
            out.append({"text": say.text})
            continue
        p = say.prompt
        text = p.text + (f"\n{p.hint}" if p.hint else "")
        out.append({"text": text, "buttons": [{"title": label, "payload": key}
                                                for key, label in p.choices]})
    return out


class TalaStep(Action):
    def __init__(self, app: App):
        self.app = app

    def name(self) -> str:
        return ACTION_NAME

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                  domain: dict[str, Any]) -> list[dict[str, Any]]:
        latest = tracker.latest_message or {}
        step = await asyncio.to_thread(self.step, tracker.sender_id, latest.get("text") or "",
                                       latest.get("message_id"))
        for r in step.responses:
            dispatcher.utter_message(**r)
        return [SlotSet("tala_active", step.active), SlotSet("tala_session", step.session)]

    def step(self, sender: str, text: str, message_id: str | None) -> Step:
        svc = self.app.service
        sid = svc.session_for_contact(CHANNEL, sender)
        if sid is None:
            found = _CODE.search(text)
            try:
                sid = svc.claim_code(CHANNEL, sender, found.group(0) if found else text)
            except CodeError as e:
                msg = M.CODE_TOO_MANY if e.kind == "too_many" else M.CODE_UNKNOWN
                return Step([{"text": self._sv(msg)}], False, None)
            reply = svc.open(sid)
        else:
            try:
                reply = svc.handle(sid, text, message_id=message_id, channel=CHANNEL)
            except KeyError:
                return Step([{"text": self._sv(M.NEEDS_INVITATION)}], False, None)
        state = svc.state(sid)
        active = state is not None and state.status not in engine.FINISHED
        return Step(responses(reply.says), active, sid if active else None)

    def _sv(self, msgid: str) -> str:
        return self.app.runtime.catalogs.gettext(SOURCE_LANG, msgid)


def build_executor(app: App) -> ActionExecutor:
    executor = ActionExecutor()
    executor.register_action(TalaStep(app))
    return executor


def run(app: App, host: str, port: int) -> None:
    """rasa-sdk's own Sanic app, in this one process (the action holds tala's clients, which
    cannot be handed to forked workers)."""
    from rasa_sdk.endpoint import create_app

    server = create_app(build_executor(app))
    server.run(host=host, port=port, single_process=True, access_log=False)
