"""Refusals that staff read: why bot/ would not do what a caseworker asked, and what to type
instead, in the staff language.

bot/ may not import admin_cli (imports point admin_cli -> bot), so it cannot translate into the
staff language itself. It raises a `Refusal` instead: a Swedish template marked with
`staff_text` (so `tala locales update` extracts it into the ``tala-staff`` domain, see
babel-staff.cfg) and the values that fill it in. admin_cli translates the template and fills it
in where it shows the refusal (``admin_cli.i18n.refusal_text``). Anything else that reads one,
a log or a test, gets the Swedish text from ``str()``.
"""

from __future__ import annotations

from typing import Any


def staff_text(template: str) -> str:
    """`template`, unchanged: marks a Swedish text that staff read, so it is extracted into the
    ``tala-staff`` domain (not the children's ``tala``), to be translated where it is shown."""
    return template


class Refusal(ValueError):
    """Something staff asked for that cannot be done. `template` is the Swedish text (a
    ``staff_text`` msgid) with named placeholders, `params` their values: kept apart so that
    admin_cli can translate the template before it fills it in. ``str()`` is the Swedish text."""

    def __init__(self, template: str, /, **params: Any):
        super().__init__(template)
        self.template = template
        self.params = params

    def __str__(self) -> str:
        return self.template.format(**self.params)
