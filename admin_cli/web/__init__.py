"""The staff pages at /staff/, served by `tala serve` beside the staff API and on it: every
page runs the same staff operations (admin_cli/ops) as the CLI and the API, as the user its
session cookie proves, so the roles, the refusals and the audit log are the same everywhere.

    /staff/                    open alerts, most urgent first; acknowledge one with a note
    /staff/cases/CASE          a child's summary, a reply to the child, printing on A4
    /staff/invite              invite a child (SMS, or a Telegram link and QR code)
    /staff/reports             participation, indicators and answers per unit (anonymised)
    /staff/campaigns           anonymous surveys and their posters
    /staff/login               sign in with a personal token or the identity provider

Semantic HTML first, the same in a phone's browser as at a desk, usable with the keyboard and
a screen reader; one small script (staff.js) where it helps, and nothing fetched from
elsewhere. session.py says how sessions, CSRF and the Content-Security-Policy work.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from aiohttp import web

from admin_cli.api import StaffApi
from admin_cli.web.session import PREFIX, Guard

STATIC = Path(__file__).resolve().parent.parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
                ".png": "image/png"}
# The page modules: each has routes(api, guard) -> a list of aiohttp route definitions.
PAGES = ("login", "alerts", "cases", "invite", "manage", "surveys")


def _static() -> dict[str, tuple[bytes, str]]:
    return {p.name: (p.read_bytes(), STATIC_TYPES[p.suffix]) for p in STATIC.iterdir()
            if p.suffix in STATIC_TYPES}


def add_staff_pages(web_app: web.Application, api: StaffApi) -> None:
    """The pages and their guard, on the app `tala serve` runs (after add_staff_api)."""
    guard = Guard(api)
    api.pages = (PREFIX, guard.middleware)  # run by the API's middleware (add_staff_api)
    files = _static()

    async def static(request: web.Request) -> web.Response:
        found = files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1],
                            charset="utf-8" if found[1].startswith("text/") else None)

    async def home(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(PREFIX + "/")

    web_app.router.add_get(PREFIX, home)
    web_app.router.add_get(PREFIX + "/static/{name}", static)
    for name in PAGES:
        module = importlib.import_module(f"admin_cli.web.{name}")
        web_app.router.add_routes(module.routes(api, guard))
