"""Whole calendar periods in local time: the quarters of the group report and the months of
the indicators. A report counts an invitation in the period it was sent, so two reports always
differ by whole periods, never by a day with one child in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import case

from admin_cli.i18n import _


def quarter_of(d: date) -> tuple[int, int]:
    return d.year, (d.month - 1) // 3 + 1


def quarter_start(y: int, q: int) -> date:
    return date(y, 3 * (q - 1) + 1, 1)


def next_quarter(y: int, q: int) -> tuple[int, int]:
    return (y, q + 1) if q < 4 else (y + 1, 1)


def quarter_end(y: int, q: int) -> date:
    return date.fromordinal(quarter_start(*next_quarter(y, q)).toordinal() - 1)


def next_month(y: int, m: int) -> tuple[int, int]:
    return (y, m + 1) if m < 12 else (y + 1, 1)


def month_end(y: int, m: int) -> date:
    ny, nm = next_month(y, m)
    return date.fromordinal(date(ny, nm, 1).toordinal() - 1)


@dataclass(frozen=True)
class Period:
    """Consecutive whole periods: (year, quarter) or (year, month) each, and the UTC instants
    where each begins, plus where the last ends."""

    parts: tuple[tuple[int, int], ...]
    bounds: tuple[datetime, ...]

    def index(self, col: Any) -> Any:
        """SQL: which of the parts a timestamp column falls in (0, 1, ...)."""
        return case(*[(col < self.bounds[i + 1], i) for i in range(len(self.parts))])

    def year(self, col: Any) -> Any:
        """SQL: the year of the part a timestamp column falls in."""
        return case(*[(col < self.bounds[i + 1], y) for i, (y, _m) in enumerate(self.parts)])

    def within(self, col: Any) -> list[Any]:
        return [col >= self.bounds[0], col < self.bounds[-1]]


def _local_midnight(d: date, tz: str) -> datetime:
    return datetime.combine(d, time(0), ZoneInfo(tz)).astimezone(timezone.utc)


def quarters(first: tuple[int, int], last: tuple[int, int], tz: str) -> Period:
    parts = [first]
    while parts[-1] < last:
        parts.append(next_quarter(*parts[-1]))
    edges = [*parts, next_quarter(*parts[-1])]
    return Period(tuple(parts), tuple(_local_midnight(quarter_start(*e), tz) for e in edges))


def months(first: tuple[int, int], last: tuple[int, int], tz: str) -> Period:
    parts = [first]
    while parts[-1] < last:
        parts.append(next_month(*parts[-1]))
    edges = [*parts, next_month(*parts[-1])]
    return Period(tuple(parts), tuple(_local_midnight(date(y, m, 1), tz) for y, m in edges))


def quarter_label(y: int, q: int) -> str:
    return _("{year} kv{quarter}").format(year=y, quarter=q)


def month_label(y: int, m: int) -> str:
    return f"{y}-{m:02d}"
