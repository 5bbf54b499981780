"""A child's words, safe to show to staff: a text a child typed can never act on a caseworker's
terminal or reorder what is around it.

Control characters (escape sequences that clear the screen, set the window title, write the
clipboard through OSC 52, ring the bell ...) and the Unicode bidi controls (overrides,
embeddings, isolates, marks) are shown as visible escapes such as `\\x1b` or `<U+202E>`; line
breaks and tabs stay. Rich markup is never interpreted in a child's text: it is put into
`rich.text.Text` objects, not markup strings. The HTML summary escapes as it always has.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 and C1 controls but newline and tab; DEL; the bidi controls (LRM, RLM, ALM, LRE..RLO,
# LRI..PDI); line and paragraph separators (they break lines where a terminal shows none).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                     "\u2066-\u2069\u2028\u2029]")


def _visible(m: re.Match) -> str:
    c = m.group(0)
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"<U+{ord(c):04X}>"


def shown(text: str) -> str:
    """`text` with every control and bidi character made visible."""
    return _UNSAFE.sub(_visible, text)


def shown_all(value: Any) -> Any:
    """The same for every string inside lists, tuples and dicts (keys too)."""
    if isinstance(value, str):
        return shown(value)
    if isinstance(value, dict):
        return {shown_all(k): shown_all(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(shown_all(v) for v in value)
    return value


def json_text(data: Any) -> str:
    """JSON for a terminal or a file: readable UTF-8, but every control and bidi character as
    a \\u escape, so the data is unchanged and nothing acts on the screen."""
    text = json.dumps(data, ensure_ascii=False, indent=2)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
