"""Office hours: when a unit's staff read their alerts, and so whether an urgent one must go to
the on-call service (socialjour) instead, and what the child can honestly be told.

A unit's hours are written as staff say them: "mon-fri 08:00-17:00", "mon-thu 8-16:30",
"mon,wed,fri 09:00-15:00", or "always" for a unit staffed round the clock. Swedish public
holidays, and the eves that offices close for (julafton, nyårsafton, midsommarafton), are
outside office hours whatever the days say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from bot.refusal import Refusal, staff_text

DEFAULT_HOURS = "mon-fri 08:00-17:00"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SV_DAYS = {"mån": 0, "tis": 1, "ons": 2, "tor": 3, "fre": 4, "lör": 5, "sön": 6}
_TIME = r"(\d{1,2})(?:[:.](\d{2}))?"
_HOURS = re.compile(rf"^\s*(?P<days>[a-zåäö,\-\s]+?)\s+{_TIME}\s*-\s*{_TIME}\s*$")


class HoursError(Refusal):
    """Office hours that cannot be read; the message gives an example."""


def _day(word: str) -> int:
    word = word.strip()[:3]
    if word in DAYS:
        return DAYS.index(word)
    if word in _SV_DAYS:
        return _SV_DAYS[word]
    raise HoursError(staff_text("'{word}' är inte en veckodag: skriv mon, tue, wed, thu, fri, "
                                "sat, sun (eller mån, tis, ons, tor, fre, lör, sön)."),
                     word=word)


def _days(text: str) -> frozenset[int]:
    out: set[int] = set()
    for part in text.replace(" ", "").split(","):
        if "-" in part:
            first, last = (_day(p) for p in part.split("-", 1))
            out.update(range(first, last + 1) if first <= last else
                       [*range(first, 7), *range(0, last + 1)])
        elif part:
            out.add(_day(part))
    return frozenset(out)


@dataclass(frozen=True)
class OfficeHours:
    days: frozenset[int]  # 0 = Monday
    opens: time
    closes: time
    always: bool = False

    @classmethod
    def parse(cls, text: str | None) -> "OfficeHours":
        text = (text or DEFAULT_HOURS).strip().lower()
        if text in ("always", "24/7", "dygnet runt"):
            return cls(frozenset(range(7)), time(0), time(0), always=True)
        m = _HOURS.match(text)
        if not m:
            raise HoursError(staff_text("'{hours}' går inte att läsa som kontorstider: skriv "
                                        "till exempel \"mon-fri 08:00-17:00\" eller "
                                        "\"always\"."), hours=text)
        h1, m1, h2, m2 = (int(g) if g else 0 for g in m.groups()[1:])
        if not (0 <= h1 <= 23 and 0 <= h2 <= 24 and m1 < 60 and m2 < 60):
            raise HoursError(staff_text("'{hours}': timmar är 0–24 och minuter 0–59."),
                             hours=text)
        opens, closes = time(h1, m1), (time(h2 % 24, m2) if h2 < 24 else time(23, 59, 59))
        if closes <= opens:
            raise HoursError(staff_text("'{hours}': kontoret måste stänga efter att det "
                                        "öppnar."), hours=text)
        return cls(_days(m.group("days")), opens, closes)

    def __str__(self) -> str:
        if self.always:
            return "always"
        days = sorted(self.days)
        if days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
            spelled = f"{DAYS[days[0]]}-{DAYS[days[-1]]}"
        else:
            spelled = ",".join(DAYS[d] for d in days)
        return f"{spelled} {self.opens:%H:%M}-{self.closes:%H:%M}"

    def open_at(self, at: datetime, tz: str) -> bool:
        if self.always:
            return True
        local = at.astimezone(ZoneInfo(tz))
        return (local.weekday() in self.days and local.date() not in days_off(local.year)
                and self.opens <= local.time() < self.closes)


def _easter(year: int) -> date:
    """Easter Sunday (the Gregorian computus, Anonymous/Meeus)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    L = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * L) // 451
    month, day = divmod(h + L - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _saturday_from(year: int, month: int, day: int) -> date:
    """The first Saturday on or after that day."""
    d = date(year, month, day)
    return d + timedelta(days=(5 - d.weekday()) % 7)


@lru_cache(maxsize=8)
def days_off(year: int) -> frozenset[date]:
    """Swedish public holidays that fall on weekdays matter here, and the eves offices close
    for; all of them are listed (a weekend one changes nothing)."""
    easter = _easter(year)
    midsummer = _saturday_from(year, 6, 20)  # midsommardagen
    all_saints = _saturday_from(year, 10, 31)  # alla helgons dag
    return frozenset({
        date(year, 1, 1), date(year, 1, 6),  # nyårsdagen, trettondedag jul
        easter - timedelta(days=2), easter, easter + timedelta(days=1),  # långfredag...
        date(year, 5, 1), easter + timedelta(days=39),  # första maj, Kristi himmelsfärd
        easter + timedelta(days=49),  # pingstdagen
        date(year, 6, 6), midsummer - timedelta(days=1), midsummer,  # nationaldagen, midsommar
        all_saints, date(year, 12, 24), date(year, 12, 25), date(year, 12, 26),
        date(year, 12, 31),
    })
