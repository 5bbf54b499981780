"""The one Jinja2 environment every staff-facing HTML comes from: the standalone summary and
report pages, the parts of them the staff pages embed, and the staff pages themselves.

Templates are found in admin_cli/templates and admin_cli/static, so a standalone page can
inline the same stylesheet (`{% include "summary.css" %}`) that the staff pages link to at
/staff/static/. Autoescaping is on for HTML (a child's words are data, never markup),
an undefined name is an error instead of an empty string, and `_` and `ngettext` speak the
staff language of the moment (admin_cli.i18n).
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from admin_cli.i18n import _, ngettext

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """Built once, on first use (never at import)."""
    env = Environment(loader=FileSystemLoader([TEMPLATES, STATIC]),
                      autoescape=select_autoescape(["html"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(_=_, ngettext=ngettext)
    # A value inside a path ("/staff/cases/{{ c | path_part }}"): "/" and "?" escaped too,
    # which Jinja's urlencode leaves as they are.
    env.filters["path_part"] = lambda value: quote(str(value), safe="")
    return env
