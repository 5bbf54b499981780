"""The anonymous surveys (campaigns) on the staff pages: the list with each survey's keyword,
dates and state, its poster as PDF and PNG, its report, closing it, and starting a new one -
the same operations as `tala campaign ...`, as the signed-in manager or administrator."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from aiohttp import web

from admin_cli.api import StaffApi
from admin_cli.i18n import N_, _
from admin_cli.ops import OpError
from admin_cli.web.manage import document_response, safe_filename, unit_names
from admin_cli.web.render import error_page, operation, page
from admin_cli.web.session import PREFIX, STAFF, see_other

if TYPE_CHECKING:
    from bot.app import App

FIELDS = ("name", "keyword", "opens", "closes", "questionnaire", "unit")
REQUIRED = {"name": N_("Namn"), "keyword": N_("Nyckelord"), "opens": N_("Första dagen"),
            "closes": N_("Sista dagen")}
DEFAULT_QUESTIONNAIRE = "school-survey"


def choices(app: App, admin: bool) -> dict[str, Any]:
    """What the create form offers: the questionnaires, the languages (each by its own name)
    and, for an administrator, the units."""
    cats = app.runtime.catalogs
    return {"questionnaires": sorted(app.questionnaires),
            "languages": [{"code": lang, "name": cats.own_name(lang)}
                          for lang in cats.languages],
            "units": unit_names(app) if admin else []}


def state(c: dict, today: date) -> str:
    """Open, closed, not open yet, or over, in words."""
    if c["closed"]:
        return _("Stängd")
    if today > date.fromisoformat(c["closes"]):
        return _("Slut (sista dagen har varit)")
    if today < date.fromisoformat(c["opens"]):
        return _("Öppnar {day}").format(day=c["opens"])
    return _("Öppen")


class Surveys:
    def __init__(self, api: StaffApi):
        self.api = api

    def _today(self) -> date:
        from zoneinfo import ZoneInfo

        app = self.api.app  # the day as the keyword's answer counts it (bot/campaigns.py)
        return app.service.clock().astimezone(ZoneInfo(app.policy.timezone)).date()

    async def list(self, request: web.Request, *, error: str | None = None,
                   status: int = 200, typed: dict[str, Any] | None = None,
                   invalid: tuple[str, ...] = (), close_error: str | None = None,
                   ) -> web.Response:
        staff = request[STAFF]
        try:
            found = await operation(self.api, request, "campaign_list")
        except OpError as e:
            return await error_page(self.api, request, e.status, e.message)
        today = self._today()
        shown = [{**c, "state": state(c, today)} for c in found]
        offered = await self.api.run(choices, self.api.app, staff.role == "admin")
        done = None
        q = request.query
        if q.get("created"):
            done = _("Enkäten {name} är skapad. Skriv ut affischen och sätt upp den där "
                     "eleverna ser den.").format(name=q["created"])
            left = await self._untranslated(request, q["created"])
            if left:
                done += " " + _("Inte med på affischen (inte översatt än): {langs}.").format(
                    langs=", ".join(left))
        elif q.get("closed"):
            done = _("Enkäten {name} är stängd. Den som skickar nyckelordet får veta att "
                     "enkäten är slut.").format(name=q["closed"])
        typed = typed or {**dict.fromkeys(FIELDS, ""), "questionnaire": DEFAULT_QUESTIONNAIRE,
                          "lang": ["sv"]}
        return await page(self.api, request, "campaigns.html", _("Enkäter"), status=status,
                          campaigns=shown, done=done, error=error, close_error=close_error,
                          typed=typed, invalid=invalid, **offered)

    async def _untranslated(self, request: web.Request, name: str) -> list[str]:
        try:
            return await operation(self.api, request, "campaign_untranslated", name=name)
        except OpError:
            return []

    async def create(self, request: web.Request) -> web.Response:
        form = await request.post()
        typed: dict[str, Any] = {k: str(form.get(k) or "").strip() for k in FIELDS}
        typed["lang"] = [str(v) for v in form.getall("lang", [])]
        missing = [k for k in REQUIRED if not typed[k]]
        if missing:
            return await self.list(request, status=400, typed=typed, invalid=tuple(missing),
                                   error=_("Fyll i: {fields}.").format(
                                       fields=", ".join(_(REQUIRED[k]) for k in missing)))
        try:
            await operation(self.api, request, "campaign_create", **{
                "name": typed["name"], "keyword": typed["keyword"], "opens": typed["opens"],
                "closes": typed["closes"],
                "questionnaire": typed["questionnaire"] or DEFAULT_QUESTIONNAIRE,
                "unit": typed["unit"] or None, "lang": typed["lang"] or None})
        except OpError as e:
            return await self.list(request, status=e.status, typed=typed, error=e.message)
        from urllib.parse import quote

        return see_other(f"{PREFIX}/campaigns?created={quote(typed['name'])}#list")

    async def close(self, request: web.Request) -> web.Response:
        from urllib.parse import quote

        name = request.match_info["name"]
        try:
            await operation(self.api, request, "campaign_close", name=name)
        except OpError as e:
            if e.status == 404:
                return await error_page(self.api, request, e.status, e.message)
            return await self.list(request, status=e.status, close_error=e.message)
        return see_other(f"{PREFIX}/campaigns?closed={quote(name)}#list")

    async def poster(self, request: web.Request) -> web.Response:
        name, kind = request.match_info["name"], request.match_info["kind"]
        try:
            doc = await operation(self.api, request, "campaign_poster", name=name,
                                  format=kind)
        except OpError as e:
            return await error_page(self.api, request, e.status, e.message)
        return document_response(doc, safe_filename("affisch", name) + "." + kind, "inline")


def routes(api: StaffApi, guard: object) -> list[web.RouteDef]:
    surveys = Surveys(api)
    return [web.get(PREFIX + "/campaigns", surveys.list),
            web.post(PREFIX + "/campaigns", surveys.create),
            web.post(PREFIX + "/campaigns/{name}/close", surveys.close),
            web.get(PREFIX + "/campaigns/{name}/poster.{kind:pdf|png}", surveys.poster)]
