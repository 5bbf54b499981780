"""What a child can do, on each channel (issue 14): every feature a child uses, tried on every
channel, each pair its own test (`test_back[telegram]`). The README's table "What a child can
do, on each channel" lists the same cells; a cell that stops working fails here.

All six channels are configured at once in one app, as a municipality would run them: SMS,
WhatsApp, the web chat and Telegram through tala's real HTTP server (signed Twilio webhooks,
SMS's and WhatsApp's on the same path, the web chat's page calls with its cookie, Telegram
Updates, the local fakes of both APIs), the console as
`tala demo --code` plays it (the invitation's code, `service.open`, each line to
`service.handle`, shown through the console channel), and Rasa
as rasa-sdk's own ActionExecutor runs `action_tala_step` for a `/webhook` call: the same JSON
in and out, in this process (the HTTP server and its token are tests/test_rasa.py's). What a
cell checks is what the child is shown, in that channel's own form: the terminal's text,
TwiML, the web chat's messages and buttons, Telegram messages and their buttons, Rasa
responses and slots.

Every test starts from its own app on the embedded Redis and SQLite (the production pair is
tried by the channels' own tests).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import xml.etree.ElementTree as ET

import pytest
import requests
from rich.console import Console

from bot.channels.console import ConsoleChannel
from bot.channels.rasa import build_executor
from bot.server import build_web_app
from bot.service import ReplyError
from flows import engine
from flows import messages as M
from tests.conftest import _build, sms_env, telegram_env, wait_written, whatsapp_env
from tests.fakes.server import RunningServer
from tests.test_rasa import webhook_payload as rasa_payload
from tests.test_sms import Phone
from tests.test_telegram import Chat

CHANNELS = ["console", "sms", "whatsapp", "web", "telegram", "rasa"]
TYPED = ("console", "sms")  # no buttons: choices numbered in the text
# What a button for (question, key) sends, where there are buttons (Rasa's: the key itself).
BUTTONS = {"telegram": "a|{0}|{1}", "whatsapp": "{0}|{1}", "web": "{0}|{1}"}
# WhatsApp shows at most ten: a 0-10 scale is numbered and typed there.
SCALE_BUTTONS = ("telegram", "web")
AGE = 14  # followup-12-18 everywhere: no read-aloud button, so no speech engines needed
RASA_TOKEN = "matrix-rasa-secret-5Tq8vW2xL9aZ"
CASEWORKER_SAYS = "Hej! Vi ses på torsdag klockan 10."


def _flat(text: str) -> str:
    return " ".join(text.split())


class World:
    """One app with every channel configured, its server running, and the fakes."""

    def __init__(self, app, twilio, tg, server):
        self.app, self.twilio, self.tg, self.server = app, twilio, tg, server
        self.svc = app.service
        self.rasa = build_executor(app.service)
        self.n = 0

    def sv(self, msgid: str, lang: str = "sv", **kw) -> str:
        text = self.app.runtime.catalogs.gettext(lang, msgid)
        return text.format(**kw) if kw else text

    def question(self, qid: str, lang: str = "sv") -> str:
        qn = self.app.questionnaires["followup-12-18"]
        return self.app.runtime.catalogs.gettext(lang, qn.question(qid).text)

    def child(self, channel: str) -> "Child":
        self.n += 1
        kind = {"console": ConsoleChild, "sms": SmsChild, "whatsapp": WhatsAppChild,
                "web": WebChild, "telegram": TelegramChild, "rasa": RasaChild}[channel]
        return kind(self, f"M-{channel}-{self.n}")


class Child:
    """A child on one channel. `start` opens the invitation; `say` is a typed message; both
    return what the child was shown, one string per message as that channel shows them."""

    channel = ""
    address: str | None = None  # the number, chat id or Rasa conversation; none on the console

    def __init__(self, world: World, case: str):
        self.w, self.case = world, case
        contact = self.address if self.channel in ("sms", "whatsapp", "web") else None
        self.invited = world.svc.invite(case, AGE, channel=self.channel, contact=contact,
                                        actor="anna")
        self.sid = self.invited.session_id

    @property
    def state(self) -> engine.State:
        return self.w.svc.state(self.sid)

    def start(self) -> list[str]:
        raise NotImplementedError

    def say(self, text: str) -> list[str]:
        raise NotImplementedError

    def buttons(self) -> list[str]:
        """What the newest buttons the child was shown send (none where the channel has
        none)."""
        return []

    def press(self, button: str) -> list[str]:
        raise NotImplementedError

    def inbox(self) -> list[str]:
        """Messages tala sent this child first (not as a reply to a message of theirs)."""
        return []


class ConsoleChild(Child):
    channel = "console"

    def __init__(self, world: World, case: str):
        super().__init__(world, case)
        self.out = io.StringIO()
        # What `tala demo` shows, without colours and without wrapping lines.
        self.console = ConsoleChannel(world.svc, Console(file=self.out, width=500,
                                                         color_system=None, soft_wrap=True),
                                      io.StringIO(), interactive=False)

    def _shown(self, reply) -> list[str]:
        shown = []
        for say in reply.says:
            self.out.seek(0)
            self.out.truncate()
            self.console.show([say])
            shown.append(self.out.getvalue().strip("\n"))
        return shown

    def start(self) -> list[str]:
        sid = self.w.svc.session_for_code(self.invited.code)  # as `tala demo --code` does
        assert sid == self.sid
        return self._shown(self.w.svc.open(sid))

    def say(self, text: str) -> list[str]:
        return self._shown(self.w.svc.handle(self.sid, text))


class SmsChild(Child):
    channel = "sms"

    def __init__(self, world: World, case: str):
        world.n += 1
        self.address = f"+467011{world.n:05d}"
        super().__init__(world, case)
        self.phone = Phone(world.server, world.twilio.auth_token, self.address)

    def start(self) -> list[str]:
        self.w.svc.send_queued("sms", block_ms=0)
        [invitation] = self.inbox()
        assert "bestämmer själv" in invitation, invitation
        return self.say("Hej")

    def say(self, text: str) -> list[str]:
        twiml = self.phone.text(text)
        return ["".join(m.itertext()) for m in ET.fromstring(twiml).iter("Message")]

    def inbox(self) -> list[str]:
        return [m["body"] for m in self.w.twilio.messages if m["to"] == self.address]


class WhatsAppChild(SmsChild):
    """WhatsApp through Twilio: the same signed webhook as SMS, from "whatsapp:+46...", the
    invitation a template (its text the fake's), replies in TwiML, and a reply that ends with
    a question WhatsApp shows buttons for through the send queue, the buttons a template made
    with the Content API (the fake's `contents`). A press is what WhatsApp posts: the button's
    title as Body and its id as ButtonPayload (ListId for a list)."""

    channel = "whatsapp"

    def __init__(self, world: World, case: str):
        world.n += 1
        self.address = f"+467022{world.n:05d}"
        Child.__init__(self, world, case)
        self.phone = Phone(world.server, world.twilio.auth_token, "whatsapp:" + self.address)

    def start(self) -> list[str]:
        self.w.svc.send_queued("whatsapp", block_ms=0)
        [invitation] = self.inbox()
        assert "bestämmer själv" in invitation and "Socialtjänsten" in invitation, invitation
        return self.say("Hej")

    def _mine(self) -> list[dict]:
        return [m for m in self.w.twilio.messages if m["to"] == "whatsapp:" + self.address]

    def say(self, text: str, **extra: str) -> list[str]:
        before = len(self._mine())
        twiml = self.phone.text(text, **extra)
        shown = ["".join(m.itertext()) for m in ET.fromstring(twiml).iter("Message")]
        self.w.svc.send_queued("whatsapp", block_ms=0)  # what went by the queue: the buttons
        return shown + [m["body"] for m in self._mine()[before:]]

    def _buttons(self) -> tuple[str, list[tuple[str, str]]]:
        """The newest buttons sent: ("ButtonPayload" or "ListId", [(id, title)])."""
        contents = self.w.twilio.contents
        shown = next((contents[m["content_sid"]] for m in reversed(self._mine())
                      if m["content_sid"] in contents), None)
        types = shown["types"] if shown else {}
        if "twilio/quick-reply" in types:
            return "ButtonPayload", [(a["id"], a["title"])
                                     for a in types["twilio/quick-reply"]["actions"]]
        if "twilio/list-picker" in types:
            return "ListId", [(i["id"], i["item"]) for i in types["twilio/list-picker"]["items"]]
        return "", []

    def buttons(self) -> list[str]:
        return [i for i, _ in self._buttons()[1]]

    def titles(self) -> list[str]:
        return [t for _, t in self._buttons()[1]]

    def press(self, button: str) -> list[str]:
        field, shown = self._buttons()
        [title] = [t for i, t in shown if i == button]
        return self.say(title, **{field: button})

    def inbox(self) -> list[str]:
        return [m["body"] for m in self._mine()]


class WebChild(SmsChild):
    """The web chat: the SMS's link opened in a phone's browser (its cookie), and the page's
    JSON calls as chat.js makes them (the page itself in Chromium: test_webchat_browser.py).
    What a message shows is its text and hint; a question's buttons send its id and a key."""

    channel = "web"

    def __init__(self, world: World, case: str):
        world.n += 1
        self.address = f"+467033{world.n:05d}"
        Child.__init__(self, world, case)
        self.http = requests.Session()
        self.page = ""
        self.shown_buttons: list[tuple[str, str, str]] = []  # (question, key, label)
        self.n = 0

    def _post(self, path: str, payload: dict) -> list[str]:
        self.n += 1
        self.asked = False  # whether this reply asked a question (with its buttons)
        r = self.http.post(self.page + path, json={"id": f"m{self.n:08d}", **payload},
                           timeout=10)
        assert r.status_code == 200, r.text
        shown = []
        for m in r.json()["messages"]:
            shown.append("\n".join(x for x in (m["text"], m.get("hint")) if x))
            if m.get("question"):
                self.asked = True
                scale = range(m["scale"][0], m["scale"][1] + 1) if m.get("scale") else []
                self.shown_buttons = [(m["question"], c["key"], c["label"])
                                      for c in m["choices"]] or \
                    [(m["question"], str(n), str(n)) for n in scale]
        return shown

    def start(self) -> list[str]:
        self.w.svc.send_queued("sms", block_ms=0)
        [invitation] = self.inbox()
        assert "bestämmer själv" in invitation, invitation
        token = re.search(r"/c/([A-Z2-9]{22})", invitation).group(1)
        self.page = f"{self.w.server.url}/c/{token}"
        assert self.http.get(self.page, timeout=10).status_code == 200
        return self._post("/open", {})

    def say(self, text: str) -> list[str]:
        return self._post("/say", {"text": text})

    def buttons(self) -> list[str]:
        return [f"{q}|{k}" for q, k, _ in self.shown_buttons]

    def titles(self) -> list[str]:
        return [label for _, _, label in self.shown_buttons]

    def press(self, button: str) -> list[str]:
        assert button in self.buttons(), (button, self.buttons())
        question, _, answer = button.partition("|")
        return self._post("/say", {"question": question, "answer": answer})


class TelegramChild(Child):
    channel = "telegram"

    def __init__(self, world: World, case: str):
        super().__init__(world, case)
        world.n += 1
        self.address = str(7_400_000 + world.n)
        self.chat = Chat(world.server, world.tg, int(self.address))
        self.replied: set[int] = set()  # message ids sent as replies to the child's updates

    def _after(self, act) -> list[str]:
        before = len(self.chat.mine())
        act()
        new = self.chat.mine()[before:]
        self.replied |= {m["message_id"] for m in new}
        return [m["text"] for m in new]

    def start(self) -> list[str]:
        return self._after(lambda: self.chat.type(f"/start {self.invited.code}"))

    def say(self, text: str) -> list[str]:
        return self._after(lambda: self.chat.type(text))

    def _keyboard(self) -> dict | None:
        """The newest message with buttons: a keyboard stays on screen under later texts."""
        return next((m for m in reversed(self.chat.mine()) if m["reply_markup"]), None)

    def buttons(self) -> list[str]:
        shown = self._keyboard()
        rows = shown["reply_markup"]["inline_keyboard"] if shown else []
        return [b["callback_data"] for row in rows for b in row]

    def press(self, button: str) -> list[str]:
        shown = self._keyboard()
        assert shown and button in self.buttons(), (button, self.buttons())
        return self._after(lambda: self.chat.press(button, message_id=shown["message_id"]))

    def inbox(self) -> list[str]:
        return [m["text"] for m in self.chat.mine() if m["message_id"] not in self.replied]


class RasaChild(Child):
    """A conversation in the municipality's Rasa assistant, handed to tala: each message is
    the `/webhook` call Rasa makes for `action_tala_step`, run by rasa-sdk's executor."""

    channel = "rasa"

    def __init__(self, world: World, case: str):
        super().__init__(world, case)
        self.address = f"rasa-conversation-{case}"
        self.n = 0
        self.result: dict = {}
        self.shown_buttons: list[dict] = []  # the newest buttons shown, as the chat keeps them

    def start(self) -> list[str]:
        return self.say(f"Hej! Jag har en kod från socialtjänsten: {self.invited.code}")

    def say(self, text: str) -> list[str]:
        self.n += 1
        call = rasa_payload(self.address, text, self.n)
        call["tracker"]["slots"]["tala_active"] = self.n > 1
        result = asyncio.run(self.w.rasa.run(call))
        self.result = json.loads(json.dumps(result.model_dump()))  # as /webhook answers it
        with_buttons = [r["buttons"] for r in self.result["responses"] if r.get("buttons")]
        if with_buttons:
            self.shown_buttons = with_buttons[-1]
        return [r["text"] for r in self.result["responses"]]

    def slot(self, name: str):
        [value] = [e["value"] for e in self.result["events"]
                   if e.get("event") == "slot" and e.get("name") == name]
        return value

    def buttons(self) -> list[str]:
        return [b["payload"] for b in self.shown_buttons]

    def titles(self) -> list[str]:
        return [b["title"] for b in self.shown_buttons]

    def press(self, button: str) -> list[str]:
        assert button in self.buttons(), (button, self.buttons())
        return self.say(button)  # Rasa sends a button's payload as the child's message


@pytest.fixture
def world(tmp_path, embedded_redis_url, fake, tg, monkeypatch):
    """Every channel configured at once: SMS and Telegram (against the fakes), Rasa's token,
    and the console, which needs nothing; the server running without its worker."""
    sms_env(monkeypatch, fake)
    whatsapp_env(monkeypatch, fake)
    telegram_env(monkeypatch, tg)
    monkeypatch.setenv("TALA_RASA_TOKEN", RASA_TOKEN)
    app = _build(tmp_path, "embedded", "sqlite", embedded_redis_url)
    try:
        assert set(app.service.outbound) == {"sms", "whatsapp", "telegram"}
        with RunningServer(build_web_app(app, worker=False)) as server:
            yield World(app, fake, tg, server)
        assert tg.unhandled == [], tg.unhandled
    finally:
        app.close()


def _started(world: World, channel: str) -> Child:
    child = world.child(channel)
    child.start()
    return child


def _asks(world: World, shown: list[str], qid: str, lang: str = "sv") -> None:
    """What was shown ends by asking question `qid`: its text is there, and no other
    question's after it (an SMS may put a long reply's last sentences, the question's hint,
    in a text of their own)."""
    said = _all(shown)
    asked = said.rfind(_flat(world.question(qid, lang)))
    assert asked >= 0, (qid, shown)
    qn = world.app.questionnaires["followup-12-18"]
    later = [q.id for q in qn.questions if q.id != qid and q.type != "info"
             and said.rfind(_flat(world.question(q.id, lang))) > asked]
    assert not later, (qid, later, shown)


def _all(shown: list[str]) -> str:
    return _flat("\n".join(shown))


# --------------------------------------------------------------------------- the cells


@pytest.mark.parametrize("channel", CHANNELS)
def test_start(world, channel):
    """Opening the invitation: the introduction and the first question, on this channel."""
    child = world.child(channel)
    assert child.state.status == engine.INVITED
    shown = child.start()
    assert "Hej! Vi på socialtjänsten vill veta hur du har det" in _all(shown)
    _asks(world, shown, "home_feel")
    state = child.state
    assert state.status == engine.ACTIVE and state.channel == channel
    assert state.contact == child.address  # the number, chat or conversation: learnt here
    if channel in SCALE_BUTTONS:
        assert BUTTONS[channel].format("home_feel", 7) in child.buttons()  # 0-10 as buttons
    elif channel == "whatsapp":
        assert child.buttons() == [] and "10" in _all(shown)  # eleven: typed
    if channel == "rasa":
        assert child.slot("tala_active") is True and child.slot("tala_session") == child.sid


@pytest.mark.parametrize("channel", CHANNELS)
def test_text_answer(world, channel):
    child = _started(world, channel)
    shown = child.say("7")
    assert child.state.answers["home_feel"]["value"] == 7
    _asks(world, shown, "trusted_adult")
    assert world.sv(M.NOT_UNDERSTOOD) not in _all(shown)


@pytest.mark.parametrize("channel", CHANNELS)
def test_button_answer(world, channel):
    """Telegram, the web chat and Rasa answer by buttons. The console, SMS and WhatsApp have
    none: there the choices are numbered in the text and the child types the number."""
    child = _started(world, channel)
    shown = child.say("7")  # now at trusted_adult, yes or no
    if channel in TYPED:
        assert "1. Ja" in shown[-1] and "2. Nej" in shown[-1], shown
        shown = child.say("1")
    else:
        yes = BUTTONS.get(channel, "{1}").format("trusted_adult", 1)
        assert yes in child.buttons(), child.buttons()
        if channel in ("rasa", "web", "whatsapp"):
            assert child.titles() == ["Ja", "Nej"]
        shown = child.press(yes)
    assert child.state.answers["trusted_adult"]["value"] == "yes"
    _asks(world, shown, "adults_listen")
    if channel == "telegram":
        assert world.tg.edits[-1]["reply_markup"] is None  # the answered question's buttons go
        assert world.tg.callback_answers[-1]["text"] is None  # the press is answered, quietly


@pytest.mark.parametrize("channel", CHANNELS)
def test_back(world, channel):
    child = _started(world, channel)
    child.say("7")
    shown = child.say("tillbaka")
    assert world.sv(M.GOING_BACK) in _all(shown)
    assert world.sv(M.YOU_ANSWERED, answer="7") in _all(shown)
    _asks(world, shown, "home_feel")  # the previous question again
    assert child.state.current == "home_feel"
    if channel in SCALE_BUTTONS:
        assert BUTTONS[channel].format("home_feel", 7) in child.buttons()  # its buttons again
    child.say("9")  # answered again: the new answer counts, and the questions go on
    assert child.state.answers["home_feel"]["value"] == 9
    assert child.state.current == "trusted_adult"


@pytest.mark.parametrize("channel", CHANNELS)
def test_skip(world, channel):
    child = _started(world, channel)
    shown = child.say("hoppa över")
    assert world.sv(M.SKIPPED) in _all(shown)
    _asks(world, shown, "trusted_adult")
    answer = child.state.answers["home_feel"]
    assert answer["skipped"] is True and answer["value"] is None


@pytest.mark.parametrize("channel", CHANNELS)
def test_pause_and_resume(world, channel):
    child = _started(world, channel)
    child.say("7")
    shown = child.say("paus")
    assert _all(shown) == _flat(world.sv(M.PAUSED))
    assert child.state.status == engine.PAUSED
    if channel == "rasa":
        assert child.slot("tala_active") is True  # the next message still comes to tala
    shown = child.say("hej")  # any text wakes it; it is no answer
    assert world.sv(M.WELCOME_BACK) in _all(shown)
    _asks(world, shown, "trusted_adult")  # the same question
    state = child.state
    assert state.status == engine.ACTIVE and set(state.answers) == {"home_feel"}


@pytest.mark.parametrize("channel", CHANNELS)
def test_pause_then_the_questions_button(world, channel):
    """Paused, the child comes back by answering the question still on the screen: a
    Telegram or Rasa button, or (console, SMS) its number typed. That wakes the session like
    any text, and the question comes back."""
    child = _started(world, channel)
    child.say("7")  # at trusted_adult: yes or no
    child.say("paus")
    assert child.state.status == engine.PAUSED
    yes = BUTTONS.get(channel, "{1}").format("trusted_adult", 1)
    # The question's buttons are still on the screen, above the pause message.
    shown = child.say(yes) if channel in TYPED else child.press(yes)
    if channel == "telegram":
        assert world.tg.callback_answers[-1]["text"] != world.sv(M.ALREADY_ANSWERED)
    assert world.sv(M.WELCOME_BACK) in _all(shown)
    assert child.state.status == engine.ACTIVE
    assert child.state.answers.get("trusted_adult", {}).get("value") in (None, "yes")
    if "trusted_adult" not in child.state.answers:
        _asks(world, shown, "trusted_adult")  # woken only: the same question again


def _english_number(world: World) -> str:
    return str(world.app.runtime.catalogs.languages.index("en") + 1)


def _language_menu_shown(world: World, child: Child, shown: list[str]) -> None:
    """The language menu, each language by its own name: numbered text where the channel has
    no buttons, buttons (with the number as what they send) where it has."""
    catalogs = world.app.runtime.catalogs
    assert world.sv(M.LANGUAGE_MENU) in shown[-1]
    names = [catalogs.own_name(lang) for lang in catalogs.languages]
    numbers = [str(n) for n in range(1, len(names) + 1)]
    if child.channel in TYPED:
        assert child.buttons() == []
        assert all(f"{n}. {name}" in shown[-1] for n, name in enumerate(names, 1)), shown
    elif child.channel in BUTTONS:
        assert child.buttons() == [BUTTONS[child.channel].format("_language", n)
                                   for n in numbers]
    else:
        assert child.buttons() == numbers and child.titles() == names


@pytest.mark.parametrize("channel", CHANNELS)
def test_language_by_menu(world, channel):
    """"språk", then the language's number, typed."""
    child = _started(world, channel)
    _language_menu_shown(world, child, child.say("språk"))
    shown = child.say(_english_number(world))
    assert child.state.lang == "en"
    assert _flat(world.sv(M.LANGUAGE_SET, "en")) in _all(shown)
    _asks(world, shown, "home_feel", "en")
    assert world.question("home_feel", "en") != world.question("home_feel")


@pytest.mark.parametrize("channel", CHANNELS)
def test_language_by_buttons(world, channel):
    """Telegram's, the web chat's and Rasa's language buttons. The console, SMS and WhatsApp
    have no buttons: their menu is numbered text, each language by its own name, the number typed
    (test_language_by_menu); that menu is what is checked here."""
    child = _started(world, channel)
    shown = child.say("språk")
    _language_menu_shown(world, child, shown)
    if channel in TYPED:
        return
    english = BUTTONS.get(channel, "{1}").format("_language", _english_number(world))
    shown = child.press(english)
    assert child.state.lang == "en"
    assert _flat(world.sv(M.LANGUAGE_SET, "en")) in _all(shown)
    _asks(world, shown, "home_feel", "en")
    if channel == "telegram":
        assert world.tg.callback_answers[-1]["text"] is None


@pytest.mark.parametrize("channel", CHANNELS)
def test_my_answers_during(world, channel):
    child = _started(world, channel)
    child.say("7")
    shown = child.say("mina svar")
    said = _all(shown)
    assert world.sv(M.MY_ANSWERS) in said
    assert _flat(f"- {world.question('home_feel')} 7") in said
    _asks(world, shown, "trusted_adult")  # and the question it stood at, again
    assert set(child.state.answers) == {"home_feel"}


def _stopped(world: World, child: Child) -> None:
    child.say("sluta")
    child.say("ja")
    assert child.state.status == engine.STOPPED
    wait_written(world.app, child.sid)  # by the server's SQL threads


@pytest.mark.parametrize("channel", CHANNELS)
def test_my_answers_after_the_end(world, channel):
    child = _started(world, channel)
    child.say("7")
    _stopped(world, child)
    shown = child.say("mina svar")
    said = _all(shown)
    assert world.sv(M.MY_ANSWERS) in said and _flat(f"- {world.question('home_feel')} 7") in said
    assert world.app.db.alerts_for(world.app.db.child(child.case).id) == []  # no message


@pytest.mark.parametrize("channel", CHANNELS)
def test_stop(world, channel):
    child = _started(world, channel)
    child.say("7")
    shown = child.say("sluta")
    assert _all(shown) == _flat(world.sv(M.CONFIRM_STOP))
    assert child.state.status == engine.ACTIVE  # not before the child says yes
    shown = child.say("ja")
    assert _all(shown) == _flat(world.sv(M.STOPPED) + " " + world.sv(M.HELP_NOW))
    assert child.state.status == engine.STOPPED
    if channel == "rasa":  # the assistant takes over again
        assert child.slot("tala_active") is False and child.slot("tala_session") is None
    wait_written(world.app, child.sid)
    [(row, answers)] = world.app.db.sessions_for(world.app.db.child(child.case).id)
    assert (row.status, row.channel) == ("stopped", channel)
    assert [a.question_id for a in answers] == ["home_feel"]  # what was said is kept


@pytest.mark.parametrize("channel", CHANNELS)
def test_help(world, channel):
    child = _started(world, channel)
    shown = child.say("hjälp")
    said = _all(shown)
    assert _flat(world.sv(M.HELP)) in said and "tillbaka = ändra förra svaret" in said
    assert _flat(world.sv(M.HELP_NOW)) in said and "116 111" in said
    _asks(world, shown, "home_feel")  # and the question again
    assert child.state.answers == {} and child.state.current == "home_feel"


@pytest.mark.parametrize("channel", CHANNELS)
def test_caseworker_reply(world, channel):
    """`tala reply CASE "text"` reaches the child on the channel they answered on. The
    console and Rasa cannot be sent to first: the caseworker is told so, and nothing is
    queued."""
    child = _started(world, channel)
    child.say("7")
    before = child.inbox()
    if channel in ("console", "rasa"):
        with pytest.raises(ReplyError, match="det finns ingenstans att skicka ett svar"):
            world.svc.reply(child.case, CASEWORKER_SAYS, "anna")
        assert world.app.queue.in_line() == 0
        return
    job = world.svc.reply(child.case, CASEWORKER_SAYS, "anna")
    sent_on = "sms" if channel == "web" else channel  # the page only answers: by SMS
    assert world.app.queue.job(job)["channel"] == sent_on
    world.svc.send_queued(sent_on, block_ms=0)
    assert child.inbox() == [*before, CASEWORKER_SAYS]
    assert world.app.queue.job(job)["status"] == "sent"
    other = "telegram" if sent_on == "sms" else "sms"
    assert world.svc.send_queued(other, block_ms=0) == 0  # and nothing on the other channel


@pytest.mark.parametrize("channel", CHANNELS)
def test_text_after_the_end(world, channel):
    """A text after the questions is kept for the caseworker, as an alert they are told of,
    and the child is told honestly that it will be read."""
    child = _started(world, channel)
    child.say("7")
    _stopped(world, child)
    shown = child.say("Kan du ringa mig?")
    assert _all(shown) == _flat(world.sv(M.AFTER_END_MESSAGE))
    assert "får läsa det du skrev" in _all(shown)
    assert child.state.status == engine.STOPPED
    if channel == "rasa":
        assert child.slot("tala_active") is False
    [alert] = world.app.db.alerts_for(world.app.db.child(child.case).id)
    assert (alert.level, alert.question_id, alert.session_id) == ("message", "_after_end",
                                                                  child.sid)
    assert world.app.crypto.decrypt(alert.text_enc, child.sid) == "Kan du ringa mig?"


@pytest.mark.parametrize("channel", CHANNELS)
def test_harm_after_the_end(world, channel):
    """"jag vill dö" after the questions: an urgent alert at once, and where to get help now
    (112, BRIS 116 111, Självmordslinjen 90101)."""
    child = _started(world, channel)
    child.say("7")
    _stopped(world, child)
    shown = child.say("jag vill dö")
    said = _all(shown)
    assert "112" in said and "116 111" in said and "90101" in said
    assert "får läsa det du skrev" not in said  # the help text, not the thank-you
    [alert] = world.app.db.alerts_for(world.app.db.child(child.case).id)
    assert (alert.level, alert.question_id, alert.topic) == ("urgent", "_after_end",
                                                             "self_harm")
