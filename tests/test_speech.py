"""Read-aloud (bot/speech.py): questions as OGG/Opus voice messages made offline by espeak-ng.

Tests marked `needs_engines` run the real espeak-ng and opusenc (apt packages espeak-ng and
opus-tools) and are skipped without them; the others use an empty PATH or small fake programs
and always run, so "no engine", "no voice" and "synthesis failed" are checked everywhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from bot import speech as speech_mod
from bot.speech import Speech, spoken_text
from flows.engine import Prompt, Say

needs_engines = pytest.mark.skipif(
    not Speech(Path(tempfile.gettempdir())).available(),
    reason="espeak-ng and opusenc (apt: espeak-ng opus-tools) are not installed",
)

CAT = shutil.which("cat") or "/bin/cat"
SHORT = "Hej."
LONG = ("Hur har du det där du bor just nu? 1: Jättedåligt. 2: Ganska dåligt. 3: Mittemellan. "
        "4: Ganska bra. 5: Jättebra. Svara med en siffra.")


# --------------------------------------------------------------------------- reading OGG


def ogg_pages(data: bytes) -> list[tuple[int, bytes]]:
    """(granule position, body) of every page; fails on anything that is not a clean OGG."""
    pages, i = [], 0
    while i < len(data):
        assert data[i:i + 4] == b"OggS", f"no page at byte {i}"
        nseg = data[i + 26]
        body_len = sum(data[i + 27:i + 27 + nseg])
        granule = int.from_bytes(data[i + 6:i + 14], "little", signed=True)
        start = i + 27 + nseg
        pages.append((granule, data[start:start + body_len]))
        i = start + body_len
    return pages


def duration_s(data: bytes) -> float:
    """Playback length: the last page's granule position (48 kHz samples) less the pre-skip."""
    pages = ogg_pages(data)
    head = pages[0][1]
    assert head.startswith(b"OpusHead")
    pre_skip = int.from_bytes(head[10:12], "little")
    return (pages[-1][0] - pre_skip) / 48000


def audio_payload(data: bytes) -> bytes:
    """The encoded audio alone: every page after OpusHead and OpusTags, headers left out."""
    return b"".join(body for _, body in ogg_pages(data)[2:])


# --------------------------------------------------------------------------- fakes


def fake_program(bindir: Path, name: str, script: str) -> None:
    path = bindir / name
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(0o755)


FAKE_VOICES = r"""case "$*" in
  *--voices*)
    printf 'Pty Language       Age/Gender VoiceName          File                 Other Languages\n'
    printf ' 5  sv              --/M      Swedish            gmq/sv\n'
    printf ' 1  ar              --/M      arabic-mbrola-1    mb/mb-ar1\n'
    exit 0;;
  *--version*) echo 'eSpeak NG text-to-speech: 9.9  Data at: /nowhere'; exit 0;;
esac
"""


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding only what the test puts there."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    return bindir


@pytest.fixture
def count_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every subprocess.run argv, in order."""
    calls: list[list[str]] = []
    real = subprocess.run

    def run(cmd, *args, **kwargs):
        calls.append([str(c) for c in cmd])
        return real(cmd, *args, **kwargs)

    monkeypatch.setattr(speech_mod.subprocess, "run", run)
    return calls


def syntheses(calls: list[list[str]]) -> list[list[str]]:
    return [c for c in calls if "--stdin" in c]


# --------------------------------------------------------------------------- with real engines


@needs_engines
def test_speak_returns_ogg_opus_voice(tmp_path: Path) -> None:
    audio = Speech(tmp_path).speak(LONG, "sv", "q:1:home:sv")
    assert audio is not None
    assert audio.startswith(b"OggS")
    assert b"OpusHead" in audio
    head = ogg_pages(audio)[0][1]
    assert head[9] == 1  # mono
    assert 3 < duration_s(audio) < 60
    bitrate_kbps = len(audio) * 8 / duration_s(audio) / 1000
    assert 12 < bitrate_kbps < 40


@needs_engines
def test_duration_grows_with_the_text(tmp_path: Path) -> None:
    sp = Speech(tmp_path)
    short, long = sp.speak(SHORT, "sv", "short"), sp.speak(LONG, "sv", "long")
    assert short is not None and long is not None
    assert 0.2 < duration_s(short) < 3
    assert duration_s(long) > 3 * duration_s(short)


@needs_engines
def test_swedish_and_english_voices_differ(tmp_path: Path) -> None:
    sp = Speech(tmp_path)
    sv1 = sp.speak(LONG, "sv", "a:sv")
    sv2 = sp.speak(LONG, "sv", "b:sv")  # another key: synthesised again, the same audio
    en = sp.speak(LONG, "en", "a:en")
    assert sv1 and sv2 and en
    assert audio_payload(sv1) == audio_payload(sv2)
    assert audio_payload(sv1) != audio_payload(en)


@needs_engines
def test_same_key_is_synthesised_once(tmp_path: Path, count_runs: list[list[str]]) -> None:
    sp = Speech(tmp_path)
    first = sp.speak(LONG, "sv", "q:1:home:sv")
    assert first is not None and len(syntheses(count_runs)) == 1
    [cached] = tmp_path.glob("*.ogg")
    mtime = cached.stat().st_mtime_ns

    count_runs.clear()
    assert sp.speak(LONG, "sv", "q:1:home:sv") == first
    assert count_runs == []  # not even a probe

    # Another process (a new Speech on the same directory) finds it on disk too.
    assert Speech(tmp_path).speak(LONG, "sv", "q:1:home:sv") == first
    assert syntheses(count_runs) == []
    assert cached.stat().st_mtime_ns == mtime
    assert list(tmp_path.glob("*.ogg")) == [cached]

    # An edited question under the same key is spoken anew.
    assert sp.speak(LONG + " Tack!", "sv", "q:1:home:sv") != first
    assert len(syntheses(count_runs)) == 1


@needs_engines
def test_cache_write_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache" / "speech"  # created on first write
    assert Speech(cache).speak(SHORT, "sv", "k") is not None
    assert [p.suffix for p in cache.iterdir()] == [".ogg"]
    assert not list(cache.glob("*.tmp")) and not list(cache.glob(".*"))

    # A failed move leaves no temporary file behind, and the child still gets the audio.
    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(speech_mod.os, "replace", fail)
    audio = Speech(cache).speak(LONG, "sv", "other")
    assert audio is not None and audio.startswith(b"OggS")
    assert len(list(cache.iterdir())) == 1


@needs_engines
@pytest.mark.parametrize("lang", ["sv", "en", "fi", "ar", "fa", "uk"])
def test_tala_languages_with_a_voice(tmp_path: Path, lang: str) -> None:
    sp = Speech(tmp_path)
    assert sp.voice_for(lang) is not None and sp.can_speak(lang)
    text = {"ar": "كيف حالك اليوم؟", "fa": "امروز حالت چطور است؟",
            "uk": "Як ти сьогодні?", "fi": "Mitä kuuluu?"}.get(lang, "Hur mår du?")
    audio = sp.speak(text, lang, f"q:1:mood:{lang}")
    assert audio is not None and audio.startswith(b"OggS") and duration_s(audio) > 0.3


@needs_engines
@pytest.mark.parametrize("lang", ["ti", "so"])
def test_language_without_a_voice(tmp_path: Path, lang: str) -> None:
    listed = subprocess.run(["espeak-ng", f"--voices={lang}"], capture_output=True, text=True,
                            check=True).stdout.splitlines()[1:]
    if any(line.split()[1] == lang and not line.split()[4].startswith("mb/")
           for line in listed if len(line.split()) >= 5):
        pytest.skip(f"this espeak-ng has a {lang} voice")
    sp = Speech(tmp_path)
    assert sp.voice_for(lang) is None
    assert not sp.can_speak(lang)
    assert sp.why_not(lang) == speech_mod.NO_VOICE  # the chat tells the child, in its language
    assert sp.speak("ሰላም", lang, f"q:1:mood:{lang}") is None
    assert not list(tmp_path.iterdir())


@needs_engines
def test_text_never_reaches_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    text = f'Hej "$(touch {marker})" `touch {marker}`; touch {marker} --help -v en'
    assert Speech(tmp_path / "c").speak(text, "sv", "k") is not None
    assert not marker.exists()


# --------------------------------------------------------------------------- without engines


def test_no_espeak_on_path(tmp_path: Path, fake_bin: Path, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.speech")
    sp = Speech(tmp_path / "cache")
    assert not sp.available()
    assert sp.voice_for("sv") is None
    assert not sp.can_speak("sv")
    assert sp.why_not("sv") == sp.why_not("so") == speech_mod.NO_ENGINE
    assert sp.speak("Hur mår du?", "sv", "q:1:mood:sv") is None
    assert not (tmp_path / "cache").exists()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_espeak_without_an_opus_encoder(tmp_path: Path, fake_bin: Path) -> None:
    fake_program(fake_bin, "espeak-ng", FAKE_VOICES)
    sp = Speech(tmp_path)
    assert not sp.available()
    assert sp.why_not("sv") == speech_mod.NO_ENGINE  # espeak-ng alone cannot make a voice
    assert sp.speak("Hur mår du?", "sv", "k") is None


def test_ffmpeg_with_libopus_is_the_fallback(tmp_path: Path, fake_bin: Path) -> None:
    fake_program(fake_bin, "espeak-ng", FAKE_VOICES)
    fake_program(fake_bin, "ffmpeg", "echo ' A....D libvorbis  libvorbis'\n")
    assert not Speech(tmp_path).available()  # an ffmpeg built without libopus does not do
    fake_program(fake_bin, "ffmpeg", "echo ' A....D libopus     libopus Opus'\n")
    assert Speech(tmp_path).available()


def test_voice_lookup_ignores_mbrola_and_missing_voices(tmp_path: Path, fake_bin: Path) -> None:
    fake_program(fake_bin, "espeak-ng", FAKE_VOICES)
    fake_program(fake_bin, "opusenc", "exit 1\n")
    sp = Speech(tmp_path)
    assert sp.available()
    assert sp.voice_for("sv") == "sv"
    assert sp.voice_for("ar") is None  # only an MBROLA voice, which needs mbrola installed
    assert sp.voice_for("ti") is None
    assert sp.why_not("sv") is None and sp.can_speak("sv")
    assert sp.why_not("ti") == sp.why_not("so") == sp.why_not("ar") == speech_mod.NO_VOICE
    assert sp.speak("ሰላም", "ti", "k") is None
    assert not list(tmp_path.glob("*.ogg"))


def test_failed_synthesis_logs_no_text(tmp_path: Path, fake_bin: Path, caplog) -> None:
    seen = tmp_path / "seen"
    seen.mkdir()
    fake_program(fake_bin, "espeak-ng", FAKE_VOICES + (
        f'printf "%s\\n" "$@" > {seen}/argv\n{CAT} > {seen}/stdin\necho "oops: $*" >&2\nexit 3\n'))
    fake_program(fake_bin, "opusenc", "exit 1\n")
    caplog.set_level(logging.DEBUG, logger="bot.speech")
    secret = "Mamma slår mig inte, säger Kim"
    assert Speech(tmp_path / "c").speak(secret, "sv", "q:1:home:sv") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "exited 3" in warnings[0].getMessage()
    assert "q:1:home:sv" in warnings[0].getMessage()
    assert "Kim" not in caplog.text and "Mamma" not in caplog.text
    # The text went in on stdin, never as an argument.
    assert (seen / "stdin").read_text(encoding="utf-8") == secret + "."
    assert "Kim" not in (seen / "argv").read_text(encoding="utf-8")
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())


def test_hung_engine_times_out(tmp_path: Path, fake_bin: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake_program(fake_bin, "espeak-ng", FAKE_VOICES + f"exec {shutil.which('sleep')} 30\n")
    fake_program(fake_bin, "opusenc", "exit 1\n")
    monkeypatch.setattr(speech_mod, "TIMEOUT_S", 0.5)
    assert Speech(tmp_path).speak("Hej", "sv", "k") is None


# --------------------------------------------------------------------------- what is read


def test_spoken_text_reads_question_numbered_choices_then_hint() -> None:
    p = Prompt("home", "Hur har du det där du bor?",
               (("1", "Jättedåligt"), ("2", "Ganska dåligt"), ("3", "Bra!")),
               "Svara med en siffra.")
    assert spoken_text(p) == ("Hur har du det där du bor? 1: Jättedåligt. 2: Ganska dåligt. "
                              "3: Bra! Svara med en siffra.")
    assert spoken_text(Say(prompt=p)) == spoken_text(p)
    assert spoken_text(Say("Tack för att du svarade")) == "Tack för att du svarade."


def test_spoken_text_strips_direction_marks_and_emoji() -> None:
    marks = "\u200e\u200f\u2066\u2067\u2068\u2069"
    # As the engine lays out Arabic: choice lines led by a right-to-left mark, numbers in the
    # hint isolated.
    p = Prompt("mood", "كيف حالك اليوم؟ 😊👍🏽\u2068",
               (("1", "\u200fسيئ جدا"), ("2", "\u200e\u200fجيد")),
               "\u200fأجب برقم من \u20681\u2069 إلى \u20682\u2069.", rtl=True)
    text = spoken_text(p)
    assert not any(ch in text for ch in marks)
    assert "😊" not in text and "👍" not in text and "\U0001F3FD" not in text
    assert text == "كيف حالك اليوم؟ 1: سيئ جدا. 2: جيد. أجب برقم من 1 إلى 2."
    assert spoken_text(Say("Bra jobbat! 🎉\u200d\ufe0f")) == "Bra jobbat!"
    assert spoken_text(Prompt("k", "Keycap 1\ufe0f\u20e3 ok")) == "Keycap 1 ok."


def test_spoken_text_turns_lines_into_sentences() -> None:
    p = Prompt("q", "Hej!\nNu kommer några frågor\n\n  Hur mår du?  ", (), "Svara ja eller nej")
    assert spoken_text(p) == "Hej! Nu kommer några frågor. Hur mår du? Svara ja eller nej."
    assert os.linesep not in spoken_text(p)
