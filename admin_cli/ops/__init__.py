"""The staff use cases, each written once and run two ways: by the CLI on the local data
directory (as the operating-system user, or TALA_USER), and by the staff API in `tala serve`
(as the user the server authenticated). The CLI after `tala login` sends the same call to the
API instead, so both ways print the same.

An operation is a function `fn(app, actor, **params)` registered with its HTTP method and
path under /api/v1. Its parameters, their types and which are required are read from its
signature: the API checks requests against them and the OpenAPI document is made from them. It
returns JSON-ready data or a `Document` (a summary as HTML or PNG, a CSV report), and says no
with `OpError` (the message the CLI prints, its exit code, the HTTP status). Access is checked
inside each operation, by admin_cli.access, with the actor it is given.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any, Callable

from admin_cli.i18n import _

if TYPE_CHECKING:
    from bot.app import App

MODULES = ("cases", "alerts", "records", "people", "campaigns")


class OpError(Exception):
    """No: the message says why and what to do instead."""

    def __init__(self, message: str, code: int = 2, status: int = 400):
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


def not_found(message: str) -> OpError:
    return OpError(message, 2, 404)


@dataclass(frozen=True)
class Document:
    """A rendered result: the bytes and their media type."""

    content: bytes
    media_type: str


@dataclass(frozen=True)
class Param:
    name: str
    kind: type  # str, int, bool, date or list (of str)
    required: bool
    default: Any
    where: str  # path | query | body


@dataclass(frozen=True)
class Op:
    name: str
    method: str
    path: str  # under /api/v1, with {name} for path parameters
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    doc: str
    document: bool  # answers with a Document (its own media type), not JSON data


REGISTRY: dict[str, Op] = {}
MAX_INT = 2**31 - 1  # what every SQL column of tala's takes
MAX_TEXT = 2000  # longer than any name, note or reply; a CSV file has no such limit
_KINDS = {"bool": bool, "int": int, "date": date, "list": list, "str": str}


def _kind(annotation: str) -> type:
    """The parameter's type from its annotation as written ("int", "date | None")."""
    names = {part.strip() for part in annotation.split("|")} - {"None"}
    if len(names) == 1 and names <= set(_KINDS):
        return _KINDS[names.pop()]
    raise TypeError(f"unsupported parameter type {annotation!r}")


def op(method: str, path: str, name: str | None = None) -> Callable:
    """Register `fn(app, actor, *, ...)` as the operation `name` (default: its own name)."""

    def register(fn: Callable) -> Callable:
        signature = inspect.signature(fn)
        in_path = set(re.findall(r"{(\w+)}", path))
        params = []
        for p in list(signature.parameters.values())[2:]:
            required = p.default is inspect.Parameter.empty
            where = "path" if p.name in in_path else (
                "query" if method in ("GET", "DELETE") else "body")
            params.append(Param(p.name, _kind(str(p.annotation)), required,
                                None if required else p.default, where))
        key = name or fn.__name__
        REGISTRY[key] = Op(key, method, path, fn, tuple(params),
                           inspect.cleandoc(fn.__doc__ or ""),
                           str(signature.return_annotation) == "Document")
        return fn

    return register


def registry() -> dict[str, Op]:
    import importlib

    for module in MODULES:
        importlib.import_module(f"admin_cli.ops.{module}")
    return REGISTRY


def convert(param: Param, value: Any) -> Any:
    """A parameter's value from JSON or a query string, as its function takes it; OpError (400)
    when it cannot be."""
    if value is None:
        return None
    try:
        if param.kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes"):
                return True
            if str(value).lower() in ("0", "false", "no"):
                return False
            raise ValueError(value)
        if param.kind is int:
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError(value)
            number = int(value)
            if not -MAX_INT <= number <= MAX_INT:
                raise ValueError(value)
            return number
        if param.kind is date:
            return value if isinstance(value, date) else date.fromisoformat(str(value))
        if param.kind is list:
            items = value if isinstance(value, (list, tuple)) else str(value).split(",")
            if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in items):
                raise ValueError(value)
            return [str(v) for v in items]
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise ValueError(value)
        text = str(value)
        if len(text) > MAX_TEXT and param.name != "csv" or "\x00" in text:
            raise ValueError(value)
        return text
    except (ValueError, TypeError):
        what = {bool: _("true eller false"), int: _("ett heltal (inte för stort)"),
                date: _("ett datum ÅÅÅÅ-MM-DD"), list: _("en lista"),
                str: _("text (högst {n} tecken)").format(n=MAX_TEXT)}[param.kind]
        raise OpError(_("{name} ska vara {what}.").format(name=param.name, what=what),
                      2, 400) from None


def run(app: App, actor: str, name: str, params: dict[str, Any], /) -> Any:
    """Run operation `name` as `actor`; a refusal from admin_cli.access becomes OpError (exit
    3, HTTP 403)."""
    from admin_cli.access import AccessError

    operation = registry()[name]
    known = {p.name: p for p in operation.params}
    unknown = set(params) - set(known)
    if unknown:
        raise OpError(_("Okänd parameter: {names}.").format(names=", ".join(sorted(unknown))),
                      2, 400)
    missing = [p.name for p in operation.params if p.required and params.get(p.name) is None]
    if missing:
        raise OpError(_("Det saknas: {names}.").format(names=", ".join(missing)), 2, 400)
    args = {k: convert(known[k], v) for k, v in params.items() if v is not None}
    from sqlalchemy.exc import DataError

    try:
        return operation.fn(app, actor, **args)
    except AccessError as e:
        raise OpError(str(e), 3, 403) from None
    except DataError:  # PostgreSQL: a name longer than its column, say
        raise OpError(_("Ett värde är för långt (eller av fel slag) för databasen: ett namn "
                        "eller en enhet har högst 120 tecken, ett ärende eller en kampanj "
                        "högst 64.")) from None
