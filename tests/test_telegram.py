"""Telegram end to end: real Update JSON posted to tala's server over HTTP, a local fake Bot API
that records what tala sends, and real Redis and SQL underneath."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
import requests

from admin_cli import summary
from bot.channels import telegram as telegram_mod
from bot.channels import telegram_send
from bot.channels.telegram import deep_link
from bot.server import APP_KEY, build_web_app
from bot.speech import Speech
from flows import messages as M
from tests.conftest import APP_BACKENDS, _build, telegram_env, wait_written
from tests.conftest import TELEGRAM_SECRET as SECRET
from tests.fakes.server import RunningServer
from tests.fakes.telegram_api import FakeTelegram
from tests.test_queue import QueueClock

CHAT = 777001
ENGINES = Speech(Path(tempfile.gettempdir())).available()
needs_engines = pytest.mark.skipif(
    not ENGINES, reason="espeak-ng and opusenc (apt: espeak-ng opus-tools) are not installed")


@pytest.fixture
def tg():
    with FakeTelegram() as fake:
        yield fake
    assert fake.unhandled == [], fake.unhandled


@pytest.fixture(params=APP_BACKENDS, ids=lambda p: f"{p[0]}-redis+{p[1]}")
def tg_app(request, tmp_path, embedded_redis_url, tg, monkeypatch):
    telegram_env(monkeypatch, tg)
    app = _build(tmp_path, *request.param, embedded_redis_url)
    yield app
    app.close()


@pytest.fixture
def server(tg_app):
    with RunningServer(build_web_app(tg_app, worker=False)) as running:
        yield running


class Chat:
    """A child's Telegram chat: what they type or press becomes an Update posted to tala.
    tala's replies go through the send queue; the servers here run without their worker, so
    after each update the chat has the queue's Telegram sender send what is queued, as the
    worker would (to the fake Bot API), and the replies are there to read."""

    def __init__(self, server, fake: FakeTelegram, chat_id: int = CHAT):
        self.server, self.fake, self.chat_id = server, fake, chat_id

    def post(self, update: dict, secret: str | None = SECRET) -> requests.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        answer = requests.post(self.server.url + "/telegram/webhook", json=update,
                               headers=headers, timeout=30)
        drain(self.server)
        return answer

    def type(self, text: str) -> dict:
        update = self.fake.message_update(self.chat_id, text)
        assert self.post(update).status_code == 200
        return update

    def press(self, data: str, message_id: int | None = None) -> dict:
        update = self.fake.callback_update(self.chat_id, data, message_id or self.last_id())
        assert self.post(update).status_code == 200
        return update

    def mine(self) -> list[dict]:
        return [m for m in self.fake.sent if str(m["chat_id"]) == str(self.chat_id)]

    def last(self) -> dict:
        return self.mine()[-1]

    def last_id(self) -> int:
        return self.last()["message_id"]

    def buttons(self) -> list[str]:
        markup = self.last()["reply_markup"] or {"inline_keyboard": []}
        return [b["callback_data"] for row in markup["inline_keyboard"] for b in row]


def drain(server) -> int:
    """Send what the send queue holds for Telegram now (the worker's job, done here)."""
    return server.web_app[APP_KEY].service.send_queued("telegram", block_ms=0)


def _invite(app, case="T-1", age=9, lang="sv"):
    return app.service.invite(case, age, lang=lang, channel="telegram", actor="anna")


def test_setup_registers_the_webhook_with_its_secret_and_the_bot_menu(tg_app, tg, server):
    assert tg.webhook["url"] == "https://tala.example.org/telegram/webhook"
    assert tg.webhook["secret_token"] == SECRET
    [menu] = tg.calls_to("setMyCommands")
    names = [c["command"] for c in menu["params"]["commands"]]
    assert {"help", "pause", "back", "language", "answers", "stop"} <= set(names)


def test_an_answer_telegram_cannot_take_now_is_sent_later_and_never_twice(tg_app, tg, server):
    """A child's answer is queued, not sent from the webhook: when Telegram refuses it for a
    moment (502), the update is still taken (200, so Telegram does not resend it), and the
    queue's Telegram sender sends the answer on its next try; a repeated update (Telegram
    retrying its webhook) is neither applied nor answered twice."""
    clock = QueueClock()  # the queue's backoff passes on its clock, not in real time
    tg_app.queue.now, tg_app.queue.sleep = clock.now, clock.sleep
    inv = _invite(tg_app)
    chat = Chat(server, tg)
    chat.type(f"/start {inv.code}")
    before = len(chat.mine())
    tg.fail_next("sendMessage", 1, error_code=502)
    update = chat.type("3")  # drains the queue: the first try fails, the next one sends
    assert [c["error_code"] for c in tg.calls_to("sendMessage")][-2:] == [502, None]
    assert clock.slept > 0  # it waited for its retry, on the queue's clock
    [answer] = chat.mine()[before:]
    assert "Finns det en vuxen som du kan prata med" in answer["text"]  # the next question
    assert answer["reply_markup"]["inline_keyboard"]  # with its buttons
    assert tg_app.service.state(inv.session_id).answers["home_feel"]["value"] == 3

    assert chat.post(update).status_code == 200  # the same update again
    assert len(chat.mine()) == before + 1 and tg_app.queue.in_line("telegram") == 0


def test_a_whole_followup_6_11_by_buttons_and_typing(tg_app, tg, server):
    inv = _invite(tg_app)
    link = deep_link(tg_app.settings, inv.code)
    assert link == f"https://t.me/{tg.username}?start={inv.code}" and len(inv.code) == 16
    chat = Chat(server, tg)
    chat.type(f"/start {inv.code}")
    assert "Hur har du det där du bor?" in chat.last()["text"]
    assert "a|home_feel|4" in chat.buttons()
    assert any(b.startswith("r|") for b in chat.buttons()) == Speech(
        tg_app.settings.data_path / "speech").can_speak("sv")

    chat.press("a|home_feel|2")  # a button
    assert tg.callback_answers[-1]["text"] is None
    assert tg.edits[-1]["reply_markup"] is None  # the answered question loses its buttons
    # home_hard: several choices, ticked on the keyboard and sent with "Klar".
    chat.press("m|home_hard|1")
    ticked = tg.edits[-1]["reply_markup"]["inline_keyboard"]
    assert ticked[0][0]["text"].startswith("✅")
    assert ["d|home_hard|1"] == [b["callback_data"] for row in ticked for b in row
                                 if b["callback_data"].startswith("d|")]
    chat.press("m|home_hard|5")
    chat.press("d|home_hard|5")
    chat.type("Det är bråk hemma")  # home_more: typed
    chat.type("ja")  # home_adult: typed, not a button
    for data in ["a|school_feel|5", "a|friends_have|1", "a|free_time|4", "a|body_feel|4",
                 "a|mood_feel|4", "a|safe_home|1", "a|hurt_by_adult|2", "a|safe_school|1",
                 "a|very_sad|2", "a|caseworker_talk|5"]:
        chat.press(data)
        assert tg.callback_answers[-1]["text"] is None, data
    chat.type("2 3")  # help_wanted typed as numbers
    chat.type("Mer tid med kompisar")
    assert "116 111" in chat.last()["text"]
    state = tg_app.service.state(inv.session_id)
    assert state.status == "completed"
    chat.type("/readaloud")  # nothing left to read: still answered
    assert chat.last()["text"] == "Du har redan svarat på alla frågor. Tack!"
    wait_written(tg_app, inv.session_id)  # by the server's SQL threads, after the last reply

    [session] = summary.build(tg_app, "T-1", "anna")["sessions"]
    got = {a["question_id"]: a for a in session["answers"]}
    assert session["channel"] == "telegram"
    assert got["home_feel"]["value"] == 2 and got["home_hard"]["value"] == ["arguing", "lonely"]
    assert got["home_more"]["text"] == "Det är bråk hemma"
    assert got["help_wanted"]["value"] == ["school_friends", "feelings"]
    assert got["caseworker_talk"]["value"] == 5 and len(got) == len(state.answers)


def test_forged_button_data_is_answered_and_changes_nothing(tg_app, tg, server):
    """Telegram lets a client send any callback data: a tick mask of 5,000 digits (int()
    refuses it, and that was a 500 that Telegram retries), letters, a choice that does not
    exist. Each gets an empty answer; the session and the keyboard stay as they were."""
    inv = _invite(tg_app)
    chat = Chat(server, tg)
    chat.type(f"/start {inv.code}")
    chat.press("a|home_feel|2")  # now at home_hard, several choices
    before, edits = tg_app.service.state(inv.session_id), len(tg.edits)
    for data in ["d|home_hard|" + "5" * 5000, "m|home_hard|" + "9" * 40, "m|home_hard|x",
                 "d|home_hard|-1", "m|home_hard|" + str(1 << 40), "d|home_hard|١"]:
        chat.press(data[:5100])
        assert tg.callback_answers[-1]["text"] is None, data[:30]
        assert tg_app.service.state(inv.session_id) == before, data[:30]
    assert len(tg.edits) == edits
    chat.press("d|home_hard|5")  # the real buttons still work
    assert tg_app.service.state(inv.session_id).answers["home_hard"]["value"] == [
        "arguing", "lonely"]


@needs_engines
def test_read_aloud_sends_the_question_as_a_voice_message(tg_app, tg, server):
    inv = _invite(tg_app)
    chat = Chat(server, tg)
    chat.type(f"/start {inv.code}")
    assert "r|home_feel" in chat.buttons()
    chat.press("r|home_feel")
    [voice] = tg.voices
    assert voice["content"][:4] == b"OggS" and b"OpusHead" in voice["content"]
    assert tg_app.service.state(inv.session_id).answers == {}  # reading changes nothing
    chat.press("r|home_feel")  # the second time comes from the cache: same audio
    assert tg.voices[1]["content"] == voice["content"]
    sent = len(chat.mine())
    chat.type("/readaloud")  # typed: the same voice message, and no text
    assert len(tg.voices) == 3 and tg.voices[2]["content"] == voice["content"]
    assert len(chat.mine()) == sent


@needs_engines
@pytest.mark.parametrize("lang", ["so", "ti"])
def test_no_voice_with_the_real_espeak_ng_gets_no_button_and_an_honest_answer(
        tg_app, tg, server, lang):
    """espeak-ng (1.51 and later as packaged) has no Somali or Tigrinya voice."""
    if Speech(Path(tempfile.gettempdir())).can_speak(lang):
        pytest.skip(f"this espeak-ng has a {lang} voice")
    inv = _invite(tg_app, lang=lang)
    chat = Chat(server, tg)
    chat.type(f"/start {inv.code}")
    assert "a|home_feel|4" in chat.buttons()
    assert not any(b.startswith("r|") for b in chat.buttons())
    chat.type("/readaloud")
    assert chat.last()["text"] == _said(tg_app, lang, M.READ_ALOUD_NO_VOICE)
    assert tg.voices == []


# --------------------------------------------------------------------------- read-aloud, faked
# Read-aloud as the server has it, without running espeak-ng: these run everywhere, so "every
# /readaloud is answered" is checked on machines without the engines too.

FAKE_OGG = b"OggS\x00\x02" + b"\x00" * 40 + b"OpusHead fake voice"


class FakeSpeech(Speech):
    """Speaks the languages in `voices` (by default every tala language espeak-ng 1.51 has a
    voice for: not Somali, not Tigrinya). engine=False: espeak-ng or opusenc is missing, so
    nothing can be spoken; fail=True: every synthesis fails."""

    def __init__(self, voices=("sv", "en", "fi", "ar", "fa", "uk"), engine: bool = True):
        super().__init__(Path(tempfile.gettempdir()) / "unused")
        self.voices, self.engine, self.fail = set(voices), engine, False
        self.spoken: list[tuple[str, str, str]] = []

    def available(self) -> bool:
        return self.engine

    def voice_for(self, lang: str) -> str | None:
        return lang if self.engine and lang in self.voices else None

    def speak(self, text: str, lang: str, key: str) -> bytes | None:
        self.spoken.append((text, lang, key))
        return None if self.fail or self.voice_for(lang) is None else FAKE_OGG


@pytest.fixture
def speech(monkeypatch):
    """The Speech the Telegram channel and its sender build is this fake (set before the
    server starts)."""
    fake = FakeSpeech()
    monkeypatch.setattr(telegram_mod, "Speech", lambda cache_dir: fake)
    monkeypatch.setattr(telegram_send, "Speech", lambda cache_dir: fake)
    return fake


@pytest.fixture
def faked(tg_app, speech):
    with RunningServer(build_web_app(tg_app, worker=False)) as running:
        yield running


def _said(app, lang: str, msgid: str) -> str:
    return app.runtime.catalogs.gettext(lang, msgid)


def _read_buttons(chat: Chat) -> list[str]:
    return [b for b in chat.buttons() if b.startswith("r|")]


@pytest.mark.parametrize("lang", ["so", "ti"])
def test_readaloud_without_a_voice_for_the_language_says_so_in_it(tg_app, tg, speech, faked,
                                                                   lang):
    inv = _invite(tg_app, lang=lang)
    chat = Chat(faked, tg)
    chat.type(f"/start {inv.code}")
    assert "a|home_feel|4" in chat.buttons() and _read_buttons(chat) == []  # no dead button
    before = tg_app.service.state(inv.session_id)
    chat.type("/readaloud")
    text = chat.last()["text"]
    assert text == _said(tg_app, lang, M.READ_ALOUD_NO_VOICE)
    assert text != M.READ_ALOUD_NO_VOICE  # in the child's language, not Swedish
    assert chat.last()["reply_markup"] is None
    assert tg.voices == [] and speech.spoken == []
    assert tg_app.service.state(inv.session_id) == before  # asking changes nothing
    chat.type("4")  # the questions go on as before, still without the button
    assert "home_feel" in tg_app.service.state(inv.session_id).answers
    assert _read_buttons(chat) == []


def test_readaloud_in_swedish_sends_a_voice_and_the_button_is_there(tg_app, tg, speech, faked):
    inv = _invite(tg_app)
    chat = Chat(faked, tg)
    chat.type(f"/start {inv.code}")
    assert _read_buttons(chat) == ["r|home_feel"]
    sent = len(chat.mine())
    chat.type("/readaloud")
    chat.press("r|home_feel", message_id=chat.last_id())
    assert [v["content"] for v in tg.voices] == [FAKE_OGG, FAKE_OGG]
    assert len(chat.mine()) == sent  # a voice, and no text besides
    [(text, lang, key), _] = speech.spoken
    assert lang == "sv" and key.endswith(":home_feel:sv") and text.startswith("Hur har du det")


def test_readaloud_when_the_server_has_no_speech_at_all(tg_app, tg, speech, faked):
    speech.engine = False  # espeak-ng or opusenc not installed
    inv = _invite(tg_app)
    chat = Chat(faked, tg)
    chat.type(f"/start {inv.code}")
    assert _read_buttons(chat) == []
    chat.type("/readaloud")
    assert chat.last()["text"] == _said(tg_app, "sv", M.READ_ALOUD_OFF)
    assert tg.voices == [] and speech.spoken == []


def test_readaloud_when_synthesis_fails_says_so(tg_app, tg, speech, faked):
    inv = _invite(tg_app, lang="en")
    chat = Chat(faked, tg)
    chat.type(f"/start {inv.code}")
    assert _read_buttons(chat) == ["r|home_feel"]
    speech.fail = True
    chat.press("r|home_feel")
    assert tg.callback_answers[-1]["text"] is None
    assert chat.last()["text"] == _said(tg_app, "en", M.READ_ALOUD_OFF)
    assert "adult you trust" in chat.last()["text"]
    assert tg.voices == [] and len(speech.spoken) == 1


def test_readaloud_always_answers_without_a_question(tg_app, tg, speech, faked):
    nobody = Chat(faked, tg, chat_id=777009)
    nobody.type("/readaloud")  # no invitation
    assert nobody.last()["text"] == _said(tg_app, "sv", M.NEEDS_INVITATION)
    inv = _invite(tg_app, lang="so")
    chat = Chat(faked, tg)
    chat.type(f"/start {inv.code}")
    chat.type("/stop")
    chat.type(_said(tg_app, "so", M.WORDS_YES).split(",")[0])
    assert tg_app.service.state(inv.session_id).status == "stopped"
    chat.type("/readaloud")
    assert chat.last()["text"] == _said(tg_app, "so", M.READ_ALOUD_NOTHING)
    assert tg.voices == [] and speech.spoken == []


def test_a_read_aloud_button_from_before_a_change_to_somali(tg_app, tg, speech, faked):
    """The button was offered in Swedish; after a change to Somali, pressing it tells why
    there is no voice, and the question asked again in Somali has no button."""
    inv = _invite(tg_app)
    chat = Chat(faked, tg)
    chat.type(f"/start {inv.code}")
    old = chat.last_id()
    assert _read_buttons(chat) == ["r|home_feel"]
    chat.type(tg_app.runtime.catalogs.own_name("so"))  # the language's own name switches
    assert tg_app.service.state(inv.session_id).lang == "so"
    assert _read_buttons(chat) == [] and "a|home_feel|4" in chat.buttons()
    chat.press("r|home_feel", message_id=old)
    assert tg.callback_answers[-1]["text"] is None
    assert chat.last()["text"] == _said(tg_app, "so", M.READ_ALOUD_NO_VOICE)
    assert tg.voices == [] and speech.spoken == []


def test_a_read_aloud_button_of_an_answered_question(tg_app, tg, speech, faked):
    inv = _invite(tg_app)
    chat = Chat(faked, tg)
    chat.type(f"/start {inv.code}")
    first = chat.last_id()
    chat.press("a|home_feel|4")
    sent = len(chat.mine())
    chat.press("r|home_feel", message_id=first)
    assert tg.callback_answers[-1]["text"] == "Det har du redan svarat på."
    assert len(chat.mine()) == sent and tg.voices == []


def test_wrong_or_missing_secret_gets_403_and_changes_nothing(tg_app, tg, server):
    inv = _invite(tg_app)
    chat = Chat(server, tg)
    update = tg.message_update(CHAT, f"/start {inv.code}")
    assert chat.post(update, secret="wrong").status_code == 403
    assert chat.post(update, secret=None).status_code == 403
    assert tg.sent == []
    assert tg_app.service.session_for_code(inv.code) == inv.session_id  # code still unused


def test_a_repeated_update_and_a_double_press_change_nothing(tg_app, tg, server):
    inv = _invite(tg_app)
    chat = Chat(server, tg)
    chat.type(f"/start {inv.code}")
    question = chat.last_id()
    update = chat.type("4")
    before = tg_app.service.state(inv.session_id)
    sent = len(tg.sent)
    assert chat.post(update).status_code == 200  # Telegram retries the same update
    assert tg_app.service.state(inv.session_id) == before and len(tg.sent) == sent

    chat.press("a|home_adult|1")
    answered = tg_app.service.state(inv.session_id)
    chat.press("a|home_adult|2", message_id=chat.last_id() - 1)  # the old button again
    assert tg.callback_answers[-1]["text"] == "Det har du redan svarat på."
    assert tg_app.service.state(inv.session_id) == answered
    chat.press("a|home_feel|1", message_id=question)  # a button from further back
    assert tg_app.service.state(inv.session_id).answers["home_feel"]["value"] == 4


def test_used_and_guessed_codes(tg_app, tg, server):
    inv = _invite(tg_app)
    Chat(server, tg).type(f"/start {inv.code}")
    other = Chat(server, tg, chat_id=777002)
    other.type(f"/start {inv.code}")  # used already
    assert "hittar ingen inbjudan" in other.last()["text"]
    guesser = Chat(server, tg, chat_id=777003)
    for i in range(5):
        guesser.type(f"/start GUESS{i:011d}")
    fresh = _invite(tg_app, case="T-2")
    guesser.type(f"/start {fresh.code}")  # even a right one, once held off
    assert "provat många gånger" in guesser.last()["text"]
    assert tg_app.service.state(fresh.session_id).status == "invited"
    lost = Chat(server, tg, chat_id=777004)
    lost.type("hej")
    assert "Öppna länken" in lost.last()["text"]


def test_two_channels_never_mix_sessions(tg_app, tg, server):
    first = _invite(tg_app, case="T-1")
    second = _invite(tg_app, case="T-2")
    a, b = Chat(server, tg, 1), Chat(server, tg, 2)
    a.type(f"/start {first.code}")
    b.type(f"/start {second.code}")
    a.type("5")
    b.type("1")
    assert tg_app.service.state(first.session_id).answers["home_feel"]["value"] == 5
    assert tg_app.service.state(second.session_id).answers["home_feel"]["value"] == 1


def test_polling_mode_works_against_the_fake(tg_app, tg):
    inv = _invite(tg_app)
    # As `tala serve` runs it: polling, and the worker's sender sending the replies.
    with RunningServer(build_web_app(tg_app, worker=True, telegram_polling=True)):
        assert tg.webhook is None  # polling: no webhook
        tg.push_update(tg.message_update(CHAT, f"/start {inv.code}"))
        tg.wait_for("sendMessage", 3, timeout=20)
        deadline = time.monotonic() + 20
        tg.push_update(tg.message_update(CHAT, "3"))
        while time.monotonic() < deadline:
            state = tg_app.service.state(inv.session_id)
            if "home_feel" in state.answers:
                break
            time.sleep(0.1)
    assert state.answers["home_feel"]["value"] == 3


def test_erasing_a_telegram_child_takes_the_answers_queued_and_sent_to_the_chat(tg_app, tg,
                                                                                 server):
    from tests.test_staff import _everything

    inv = _invite(tg_app, case="T-ERASE")
    chat = Chat(server, tg, chat_id=CHAT + 7)
    chat.type(f"/start {inv.code}")
    chat.type("3")
    before = _everything(tg_app)
    assert f"chat:{inv.session_id}:" in before and str(CHAT + 7) in before  # the sent answers
    assert tg_app.service.erase("T-ERASE", "admin")
    after = _everything(tg_app)
    assert inv.session_id not in after and str(CHAT + 7) not in after


def test_erasing_one_child_leaves_a_brothers_session_on_the_same_chat(tg_app, tg, server):
    first = _invite(tg_app, case="T-SIB1")
    second = _invite(tg_app, case="T-SIB2")
    chat = Chat(server, tg, chat_id=CHAT + 8)
    chat.type(f"/start {first.code}")
    chat.type(f"/start {second.code}")  # the first waits; the chat answers for the second now
    assert tg_app.service.erase("T-SIB1", "admin")
    assert tg_app.service.session_for_contact("telegram", str(CHAT + 8)) == second.session_id
    chat.type("3")
    assert tg_app.service.state(second.session_id).answers["home_feel"]["value"] == 3
