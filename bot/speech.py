"""Read-aloud: a question as a voice message, synthesised offline with espeak-ng.

Younger children (6-11) need the questions read aloud. On Telegram a "read aloud" button sends
the question as a voice message, which Telegram wants as OGG/Opus (`audio/ogg`). This module
turns text into those bytes with two local programs and nothing from the network:

    espeak-ng (text -> WAV)  ->  opusenc from opus-tools, or ffmpeg with libopus (WAV -> OGG/Opus)

    speech = Speech(data_dir / "speech")
    if speech.can_speak(lang):
        audio = speech.speak(spoken_text(say), lang, f"{qn.id}:{qn.version}:{q.id}:{lang}")

- Every result is cached on disk under a hash of (key, text, voice, settings, engine version),
  so one question in one language and questionnaire version is synthesised once, by whichever
  process gets there first. Files are written to a temporary name and moved into place with
  `os.replace`, so no process ever reads half a file.
- A missing engine, or a language espeak-ng has no voice for (Somali, Tigrinya), is not an
  error: `speak` returns None. `why_not(lang)` tells the two apart (NO_ENGINE, NO_VOICE), so
  the caller can offer no read-aloud button where it cannot work and tell a child who asks, in
  the child's own language, why there is no voice.
- The programs run with an argument list (no shell), the text goes in on standard input, and
  every run has a timeout. Logs never carry the spoken text.
- `speak` blocks while it synthesises (well under a second for a question): call it from a
  thread (`asyncio.to_thread`) in async code.
- Only questionnaire text belongs here, never a child's own words: the cache is plain audio.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path
from typing import Union

from flows.engine import Prompt, Say

log = logging.getLogger(__name__)

# tala's language code -> espeak-ng voices to try, best first. A language whose voices are all
# missing from `espeak-ng --voices` cannot be spoken (Somali and Tigrinya in espeak-ng 1.51).
VOICES: dict[str, tuple[str, ...]] = {
    "sv": ("sv",),
    "en": ("en-gb", "en"),  # Swedish schools teach British English
    "fi": ("fi",),
    "ar": ("ar",),
    "fa": ("fa",),
    "so": ("so",),
    "ti": ("ti",),
    "uk": ("uk",),
}

# Why a language cannot be read aloud here (`Speech.why_not`).
NO_ENGINE = "engine"  # espeak-ng or an Opus encoder is not installed: nothing is spoken
NO_VOICE = "voice"  # espeak-ng has no voice for the language (Somali, Tigrinya)

RATE = 140  # words per minute; espeak-ng's default of 175 is fast for a 6-year-old
BITRATE_KBPS = 24  # plenty for one voice in Opus; Telegram's own voice notes are about this
MAX_CHARS = 5000  # a question is a few hundred characters; refuse anything absurd
TIMEOUT_S = 30.0  # per subprocess run
PROBE_TIMEOUT_S = 10.0  # `--voices`, `--version`, `-encoders`
FORMAT = 1  # bump when the pipeline changes in a way the settings below do not show

_DIRECTION_MARKS = frozenset(
    "\u200e\u200f"  # LRM, RLM
    "\u061c"  # Arabic letter mark
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings and overrides
    "\u2066\u2067\u2068\u2069"  # isolates (LRI, RLI, FSI, PDI)
)
# Parts of emoji that are not symbols themselves: zero width joiner, variation selectors,
# the keycap mark (1️⃣ becomes 1).
_EMOJI_GLUE = frozenset("\u200d\ufe0e\ufe0f\u20e3")
_END_PUNCT = ".!?…:;؟۔。"


def _drop(ch: str) -> bool:
    if ch in _DIRECTION_MARKS or ch in _EMOJI_GLUE:
        return True
    cp = ord(ch)
    if 0x1F3FB <= cp <= 0x1F3FF or 0xE0000 <= cp <= 0xE007F:  # skin tones, emoji tags
        return True
    cat = unicodedata.category(ch)
    # So: emoji, pictographs, dingbats, smileys. Cc: control characters (a newline or tab is
    # whitespace and handled by the caller). Co/Cs: private use and lone surrogates.
    return cat in ("So", "Co", "Cs") or (cat == "Cc" and ch not in "\n\t")


def _strip(text: str) -> str:
    kept = "".join(ch for ch in unicodedata.normalize("NFC", text) if not _drop(ch))
    return re.sub(r"[^\S\n]+", " ", kept).strip()


def clean(text: str) -> str:
    """`text` without what espeak-ng would read oddly or not at all: direction marks, emoji.
    Lines become sentences (a line without closing punctuation gets a full stop, so the voice
    pauses there) and whitespace is collapsed."""
    sentences = []
    for line in _strip(text).splitlines():
        line = line.strip()
        if line:
            sentences.append(line if line[-1] in _END_PUNCT else line + ".")
    return " ".join(sentences)


def spoken_text(say_or_prompt: Union[Say, Prompt]) -> str:
    """What to read aloud: the question, then the choices as "1: Jättedåligt. 2: ...", then
    the hint. A `Say` with only text reads that text."""
    if isinstance(say_or_prompt, Say):
        parts = [say_or_prompt.text] if say_or_prompt.text else []
        if say_or_prompt.prompt is not None:
            parts.append(spoken_text(say_or_prompt.prompt))
        return clean("\n".join(parts))
    p = say_or_prompt
    parts = [p.text]
    parts += [f"{_strip(key)}: {clean(label)}" for key, label in p.choices]
    if p.hint:
        parts.append(p.hint)
    return clean("\n".join(parts))


class Speech:
    """Text to OGG/Opus voice messages with espeak-ng, cached in `cache_dir`."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = Path(cache_dir)
        # Probes of a program, keyed by its resolved path so a changed PATH is seen.
        self._voices: dict[str, frozenset[str]] = {}
        self._versions: dict[str, str] = {}
        self._ffmpeg_opus: dict[str, bool] = {}

    # ------------------------------------------------------------------ what is there

    @staticmethod
    def _espeak() -> str | None:
        return shutil.which("espeak-ng")

    def _encoder(self) -> tuple[str, str] | None:
        """("opusenc" or "ffmpeg", its path), opusenc preferred."""
        opusenc = shutil.which("opusenc")
        if opusenc:
            return "opusenc", opusenc
        ffmpeg = shutil.which("ffmpeg")
        if ffmpeg and self._has_libopus(ffmpeg):
            return "ffmpeg", ffmpeg
        return None

    def _has_libopus(self, ffmpeg: str) -> bool:
        if ffmpeg not in self._ffmpeg_opus:
            out = _probe([ffmpeg, "-hide_banner", "-encoders"])
            self._ffmpeg_opus[ffmpeg] = out is not None and re.search(
                r"^\s*A\S*\s+libopus\b", out, re.M) is not None
        return self._ffmpeg_opus[ffmpeg]

    def available(self) -> bool:
        """espeak-ng and an Opus encoder are installed."""
        return self._espeak() is not None and self._encoder() is not None

    def _installed_voices(self, espeak: str) -> frozenset[str]:
        if espeak not in self._voices:
            out = _probe([espeak, "--voices"])
            names = set()
            for line in (out or "").splitlines()[1:]:
                cols = line.split()
                # Pty Language Age/Gender VoiceName File ...; MBROLA voices (mb/...) need the
                # separate mbrola program and its databases, so they do not count.
                if len(cols) >= 5 and not cols[4].startswith("mb/"):
                    names.add(cols[1])
            self._voices[espeak] = frozenset(names)
        return self._voices[espeak]

    def _version(self, espeak: str) -> str:
        if espeak not in self._versions:
            out = _probe([espeak, "--version"]) or ""
            m = re.search(r"\d+(?:\.\d+)+", out)
            self._versions[espeak] = m.group(0) if m else "unknown"
        return self._versions[espeak]

    def voice_for(self, lang: str) -> str | None:
        """The espeak-ng voice for a tala language code, or None when espeak-ng is missing or
        has no voice for the language."""
        espeak = self._espeak()
        if espeak is None:
            return None
        installed = self._installed_voices(espeak)
        base = lang.lower().replace("_", "-")
        for voice in VOICES.get(base, (base,)):
            if voice in installed:
                return voice
        return None

    def why_not(self, lang: str) -> str | None:
        """Why `lang` cannot be read aloud on this machine: NO_ENGINE when espeak-ng or an
        Opus encoder is missing, NO_VOICE when espeak-ng has no voice for `lang`; None when it
        can be (synthesis may still fail: `speak` then returns None)."""
        if not self.available():
            return NO_ENGINE
        if self.voice_for(lang) is None:
            return NO_VOICE
        return None

    def can_speak(self, lang: str) -> bool:
        return self.why_not(lang) is None

    # ------------------------------------------------------------------ speaking

    def cache_path(self, key: str, text: str, voice: str, settings: dict) -> Path:
        blob = json.dumps([key, text, voice, settings], ensure_ascii=False, sort_keys=True)
        digest = hashlib.sha256(blob.encode("utf-8")).hexdigest()
        return self.cache_dir / f"{digest}.ogg"

    def speak(self, text: str, lang: str, key: str) -> bytes | None:
        """`text` spoken in `lang` as OGG/Opus bytes (mono, 48 kHz, ~24 kbit/s), or None when
        the engines are missing, espeak-ng has no voice for `lang`, or synthesis failed.
        `key` names what is spoken, e.g. "followup-6-11:3:home_mood:sv"."""
        espeak, encoder = self._espeak(), self._encoder()
        if espeak is None or encoder is None:
            log.debug("read-aloud unavailable: espeak-ng=%s encoder=%s", espeak, encoder)
            return None
        voice = self.voice_for(lang)
        if voice is None:
            log.debug("read-aloud: espeak-ng has no voice for %s", lang)
            return None
        text = clean(text)
        if not text:
            return None
        if len(text) > MAX_CHARS:
            log.warning("read-aloud refused: %d characters for %s", len(text), key)
            return None
        settings = {"format": FORMAT, "rate": RATE, "bitrate": BITRATE_KBPS,
                    "encoder": encoder[0], "espeak": self._version(espeak)}
        path = self.cache_path(key, text, voice, settings)
        try:
            cached = path.read_bytes()
            if cached.startswith(b"OggS"):
                return cached
        except OSError:
            pass
        wav = _run([espeak, "-v", voice, "-s", str(RATE), "--stdin", "--stdout"],
                   text.encode("utf-8"), "espeak-ng", key, voice)
        if not wav:
            return None
        serial = int(path.stem[:8], 16) & 0x7FFFFFFF  # deterministic output for equal input
        if encoder[0] == "opusenc":
            cmd = [encoder[1], "--quiet", "--ignorelength", "--downmix-mono", "--speech",
                   "--bitrate", str(BITRATE_KBPS), "--serial", str(serial), "-", "-"]
        else:
            cmd = [encoder[1], "-nostdin", "-hide_banner", "-loglevel", "error",
                   "-f", "wav", "-i", "pipe:0", "-ac", "1", "-ar", "48000",
                   "-c:a", "libopus", "-b:a", f"{BITRATE_KBPS}k", "-application", "voip",
                   "-map_metadata", "-1", "-fflags", "+bitexact", "-f", "ogg", "pipe:1"]
        ogg = _run(cmd, wav, encoder[0], key, voice)
        if not ogg or not ogg.startswith(b"OggS"):
            if ogg:
                log.warning("read-aloud: %s wrote no OGG for %s", encoder[0], key)
            return None
        self._store(path, ogg)
        return ogg

    def _store(self, path: Path, data: bytes) -> None:
        """Write atomically: a temporary file in the same directory, then os.replace."""
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".speech-", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            # Not fatal: the child still gets the audio, it is just made again next time.
            log.warning("read-aloud: could not cache %s: %s", path.name, exc.strerror)
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def _probe(cmd: list[str]) -> str | None:
    """Standard output of a quick informational run, or None."""
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=PROBE_TIMEOUT_S, check=False,
                             stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("read-aloud probe %s failed: %s", os.path.basename(cmd[0]), exc)
        return None
    if res.returncode != 0:
        log.debug("read-aloud probe %s exited %d", os.path.basename(cmd[0]), res.returncode)
        return None
    return res.stdout.decode("utf-8", "replace")


def _run(cmd: list[str], data: bytes, what: str, key: str, voice: str) -> bytes | None:
    """Run one step of the pipeline with `data` on stdin; its stdout, or None (logged without
    the text: neither the input nor the program's messages are logged)."""
    try:
        res = subprocess.run(cmd, input=data, capture_output=True, timeout=TIMEOUT_S,
                             check=False)
    except subprocess.TimeoutExpired:
        log.warning("read-aloud: %s timed out for %s (voice %s)", what, key, voice)
        return None
    except OSError as exc:
        log.warning("read-aloud: %s could not start for %s: %s", what, key, exc.strerror)
        return None
    if res.returncode != 0:
        log.warning("read-aloud: %s exited %d for %s (voice %s)", what, res.returncode, key,
                    voice)
        return None
    return res.stdout
