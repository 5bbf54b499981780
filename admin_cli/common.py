"""What every `tala` command shares: the consoles, a clear failure, the app built from the
settings, and the check of who may do what. Typer and Rich only at import (admin_cli/main.py
says why)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import typer
from rich.console import Console

from admin_cli.i18n import _, refusal_text

if TYPE_CHECKING:
    from bot.app import App

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[red]{message}[/red]")
    raise typer.Exit(code)


@contextmanager
def built(migrate: bool | None = None) -> Iterator[App]:
    from bot.app import create_app
    from bot.settings import Settings, SettingsError, SetupNeeded
    from flows.model import QuestionnaireError

    settings = Settings()
    try:
        the_app = create_app(settings, migrate=migrate)
    except SettingsError as e:
        fail(_("Inställningarna fungerar inte ihop: {problem}").format(problem=e))
    try:
        yield the_app
    except SettingsError as e:  # a channel's sender is made when first used
        fail(_("Inställningarna fungerar inte ihop: {problem}").format(problem=e))
    except SetupNeeded as e:
        fail(refusal_text(e))
    except QuestionnaireError as e:  # loaded when first used, so here and not at create_app
        fail(_("Frågeformulären är trasiga; rätta dem först:\n{problems}").format(problems=e))
    finally:
        the_app.close()


def call(operation: str, /, **params: Any) -> Any:
    """Staff operation `operation` (admin_cli/ops): sent to the staff API after `tala login`, else
    run here on the local data directory. Its data, or its Document; a refusal is printed and
    ends the command with the operation's exit code."""
    from admin_cli import ops
    from admin_cli.client import ClientError, remote

    try:
        server = remote()
        if server is not None:
            return server.call(ops.registry()[operation], params)
    except ClientError as e:
        fail(e.message, e.code)
    with built() as a:
        try:
            return ops.run(a, a.settings.user, operation, params)
        except ops.OpError as e:
            fail(e.message, e.code)


def allowed(a: App, action: str, **scope):
    """The acting user if they may do this; otherwise a clear message and exit 3."""
    from admin_cli.access import AccessError, require

    try:
        return require(a, a.settings.user, action, **scope)
    except AccessError as e:
        fail(str(e), code=3)
