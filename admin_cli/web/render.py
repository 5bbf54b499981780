"""Staff pages from the autoescaping Jinja2 templates in admin_cli/templates/staff/, in the
staff language: every value is text, so nothing a child typed can become markup or script.

Rendering runs in the staff API's thread pool (a summary draws its charts with matplotlib),
with the request's language carried along.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from admin_cli.access import ALLOWED, role_title
from admin_cli.api import StaffApi
from admin_cli.i18n import N_, _, staff_lang
from admin_cli.web.session import LOGIN_COOKIE, PREFIX, STAFF, Staff, csrf_for

# The menu: path, title, the permission it needs (admin_cli.access).
NAV = ((PREFIX + "/", N_("Larm"), "alerts"),
       (PREFIX + "/invite", N_("Bjud in ett barn"), "invite"),
       (PREFIX + "/reports", N_("Rapporter"), "report"),
       (PREFIX + "/campaigns", N_("Enkäter"), "campaigns"))


def may(staff: Staff | None, action: str) -> bool:
    """Whether the signed-in user's role allows `action` (what the menu and links show; the
    operation itself checks again, with the case and unit)."""
    return staff is not None and action in ALLOWED.get(staff.role, set())


def _html(template: str, context: dict[str, Any]) -> str:
    from admin_cli.templating import environment

    return environment().get_template("staff/" + template).render(**context)


def context_of(request: web.Request, title: str, **values: Any) -> dict[str, Any]:
    staff: Staff | None = request.get(STAFF)
    lang = staff_lang()
    nav = [{"href": href, "title": _(text), "current": request.path == href
            or (href != PREFIX + "/" and request.path.startswith(href))}
           for href, text, action in NAV if may(staff, action)]
    csrf = staff.csrf if staff else csrf_for(request.cookies.get(LOGIN_COOKIE, ""))
    return {"title": title, "staff": staff, "csrf": csrf, "lang": lang, "nav": nav,
            "role": role_title(staff.role) if staff else "", "path": request.path_qs,
            "may": lambda action: may(staff, action), "prefix": PREFIX,
            "other_lang": "en" if lang == "sv" else "sv", **values}


async def page(api: StaffApi, request: web.Request, template: str, title: str,
               status: int = 200, **values: Any) -> web.Response:
    context = context_of(request, title, **values)
    body = await api.run(_html, template, context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")


async def error_page(api: StaffApi, request: web.Request, status: int,
                     message: str | None) -> web.Response:
    """A refusal or a missing page, said in words, with the way back."""
    titles = {403: _("Det går inte"), 404: _("Sidan finns inte"),
              429: _("Vänta en stund"), 409: _("Redan gjort")}
    return await page(api, request, "error.html", titles.get(status, _("Något gick fel")),
                      status=status, message=message or "")


async def operation(api: StaffApi, request: web.Request, name: str, /,
                    **params: Any) -> Any:
    """Run staff operation `name` (admin_cli/ops) as the signed-in user: the same checks,
    refusals and audit entries as the CLI and the API. Raises ops.OpError."""
    from admin_cli import ops

    staff: Staff = request[STAFF]
    given = {k: v for k, v in params.items() if v is not None}
    return await api.run(ops.run, api.app, staff.name, name, given)
