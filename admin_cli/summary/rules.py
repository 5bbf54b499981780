"""The rules a summary reads a child's answers by, and the small words and dates it uses:
when an answer counts as changed, how a date, a time and the child's language are named.

Everything here is pure: no SQL, no Redis, no App beyond the time zone it names.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timezone
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date

from admin_cli.i18n import _, staff_lang
from admin_cli.labels import CHANGE_WORDS, title
from storage.sql import as_utc

CHANGE_THRESHOLD = Fraction(1, 5)
"""When an answer on a scale counts as changed: the difference between two sessions must be at
least one fifth (20 %) of the scale's range, rounded up to whole steps. That is 1 step on a 1-5
scale and 2 steps on a 0-10 scale. A smaller difference is called "unchanged" ("ingen tydlig
förändring"): a child's answer moves a little from day to day, and one step on a 0-10 scale is
not something to act on. On every tala scale a higher number is better, so a rise is "better"
and a fall "worse". This is our own rule of thumb for reading one child's answers, not a
validated clinical cut-off."""

FALLBACK_TZ = "Europe/Stockholm"


class SummaryError(LookupError):
    pass


class CompareError(SummaryError):
    """--compare named something that is not a session of this case; the message says what to
    type instead."""


def threshold_steps(lo: int, hi: int) -> int:
    """How many steps an answer must move on the scale lo-hi to count as a change."""
    return max(1, math.ceil(CHANGE_THRESHOLD * (hi - lo)))


def change_word(before: float, after: float, lo: int, hi: int) -> str:
    """"better", "worse" or "unchanged" (see CHANGE_THRESHOLD)."""
    diff = after - before
    if abs(diff) < threshold_steps(lo, hi):
        return "unchanged"
    return "better" if diff > 0 else "worse"


def change_phrase(change: dict) -> str:
    """The change in the staff language with the two answers it compares: "sämre (4 → 2)"."""
    b, a = change["before"]["value"], change["after"]["value"]
    return f"{title(CHANGE_WORDS, change['word'])} ({b:g} → {a:g})"


def threshold_rule_sv() -> str:
    """The threshold in one sentence (Swedish, or English for English staff)."""
    return _("En förändring räknas först när svaret har flyttat minst {pct} % av skalan: "
             "{steps_5} steg på skalan 1–5, {steps_10} steg på 0–10. Mindre skillnader kallas "
             "”ingen tydlig förändring”. Högre siffra är bättre.").format(
        pct=int(CHANGE_THRESHOLD * 100), steps_5=threshold_steps(1, 5),
        steps_10=threshold_steps(0, 10))


def zone(name: str | None) -> ZoneInfo:
    """The installation's time zone; Stockholm when TALA_TIMEZONE names none that exists (a
    wrong setting must not hide a child's answers)."""
    try:
        return ZoneInfo(name or FALLBACK_TZ)
    except Exception:
        return ZoneInfo(FALLBACK_TZ)


def local(dt: datetime | str | None, tz: ZoneInfo) -> datetime | None:
    """A stored time (naive means UTC) in the local time zone."""
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt)
    dt = as_utc(dt)
    if dt is not None and dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(tz) if dt else None


def local_day(dt: datetime | str | None, tz: ZoneInfo) -> date | None:
    found = local(dt, tz)
    return found.date() if found else None


def sv_date(day: str | date | None, short: bool = False) -> str:
    """2 mars 2026 (2 sep. 2026 with short=True) in the staff language; '' for None."""
    if not day:
        return ""
    if isinstance(day, str):
        day = date.fromisoformat(day[:10])
    return format_date(day, "d MMM y" if short else "d MMMM y", locale=staff_lang())


def clock_time(dt: datetime) -> str:
    """kl. 16.05 (at 16:05 in English)."""
    return _("kl. {time}").format(time=f"{dt:%H.%M}" if staff_lang() == "sv" else f"{dt:%H:%M}")


def date_and_time(iso: str | None, tz: ZoneInfo) -> str:
    """2 mars 2026 kl. 16.05, in the local time zone; '' for None."""
    found = local(iso, tz)
    return f"{sv_date(found.date())} {clock_time(found)}" if found else ""


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def language_note(lang: str, translation: str) -> str:
    """The language the child answered in, for the caseworker, in the staff language."""
    from babel import Locale

    from babel.core import UnknownLocaleError

    try:
        name = Locale.parse(lang).get_display_name(staff_lang()) or lang
    except (UnknownLocaleError, ValueError, TypeError):
        name = lang
    if translation == "source":
        return _("språk: {name}").format(name=name)
    if translation == "reviewed":
        return _("språk: {name} (granskad översättning)").format(name=name)
    return _("språk: {name} (översättningen är ett utkast, inte granskad)").format(name=name)
