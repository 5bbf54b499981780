"""How no child can be singled out: pooling small groups, and hiding small counts together
with the counts that would give them away (complementary suppression). The rules in words are
in admin_cli/report/__init__.py; the notes of every report say them to its reader."""

from __future__ import annotations

from typing import Hashable, Iterable, TypeVar

K = TypeVar("K", bound=Hashable)
OTHER = "\x00other"  # the pooled group of a breakdown: never a real name


def pool(sizes: dict[str, int], min_group: int, *, fill: bool) -> dict[str, str | None]:
    """Where each group is shown: under its own name, or OTHER when it has fewer than
    `min_group` children. When OTHER would hold 1 to min_group-1 children, `fill` adds the
    next smallest named group to it until it is big enough; without `fill`, OTHER is dropped
    (None: left out)."""
    named = {k for k, n in sizes.items() if n >= min_group}
    while True:
        pooled = sum(n for k, n in sizes.items() if k not in named)
        if pooled == 0 or pooled >= min_group:
            return {k: (k if k in named else OTHER) for k in sizes}
        if not fill or not named:
            return {k: (k if k in named else None) for k in sizes}
        named.remove(min(named, key=lambda k: (sizes[k], str(k))))


Line = tuple[list, Hashable | None]  # the parts, and the cell of their sum (None: always shown)


def hidden_cells(cells: dict[K, int], lines: Iterable[Line], min_group: int) -> set[K]:
    """Which counts a report must not show.

    First every count of 1 to min_group-1 (primary suppression). Then, in every line of
    counts that add up to a sum the reader sees (the levels of a row add up to its invited, the
    rows of a table to the total row, the answers of a question to those who answered), the
    hidden counts must be none, or at least two that hold at least `min_group` children
    together: otherwise the next smallest shown count above zero is hidden too (complementary
    suppression), or the sum itself when there is none. Repeated until every line holds, so
    no hidden count can be worked out as a sum minus the counts shown, nor narrowed down to a
    group of 1 to min_group-1."""
    lines = list(lines)
    hidden = {k for k, n in cells.items() if 0 < n < min_group}
    changed = True
    while changed:
        changed = False
        for parts, total in lines:
            if total is not None and total in hidden:
                continue  # the sum is not shown: this line gives nothing away
            hid = [k for k in parts if k in hidden]
            if not hid or (len(hid) >= 2 and sum(cells[k] for k in hid) >= min_group):
                continue
            shown = sorted((k for k in parts if k not in hidden and cells[k] > 0),
                           key=lambda k: (cells[k], str(k)))
            if shown:
                hidden.add(shown[0])
            elif total is not None:
                hidden.add(total)
            else:
                continue  # only zeros are left, and the sum is always shown: nothing to hide
            changed = True
    return hidden


def table_lines(rows: list, levels: tuple, total_row: Hashable) -> list[Line]:
    """The lines of a table whose rows each add up to a shown sum (their invited or started),
    and whose columns add up to `total_row`'s: cells are keyed (row, level)."""
    out: list[Line] = [([(r, lv) for lv in levels], None) for r in [total_row, *rows]]
    out += [([(r, lv) for r in rows], (total_row, lv)) for lv in levels]
    return out


def percent(count: int | None, of: int | None, min_group: int) -> int | None:
    """A share in whole percent from exact counts, only for a group of at least `min_group`
    and a count that is shown."""
    if count is None or of is None or of < min_group:
        return None
    return round(100 * count / of)
