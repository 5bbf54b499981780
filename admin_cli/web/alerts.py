"""The start page: the open alerts for the user's cases, most urgent and newest first, with
the way to each case's summary and a form to acknowledge one with a note. The list says
nothing of what the child wrote: that is only on the child's page, which is audited."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from admin_cli.api import StaffApi
from admin_cli.i18n import _
from admin_cli.labels import LEVEL_TITLES, title
from admin_cli.ops import OpError
from admin_cli.web.render import may, operation, page
from admin_cli.web.session import PREFIX, STAFF, safe_next, see_other

URGENCY = {"urgent": 0, "concern": 1, "message": 2}
NOTE_MAX = 500  # what the alert keeps of a note


def ordered(alerts: list[dict]) -> list[dict]:
    """Most urgent first, and within a level the newest first."""
    return sorted(alerts, key=lambda a: (URGENCY.get(a["level"], 9),
                                         -datetime.fromisoformat(a["created_at"]).timestamp()))


class Alerts:
    def __init__(self, api: StaffApi):
        self.api = api

    async def start(self, request: web.Request, *, error: str | None = None,
                    status: int = 200) -> web.Response:
        staff = request[STAFF]
        if not may(staff, "alerts"):
            raise web.HTTPSeeOther(PREFIX + "/reports")
        data = await operation(self.api, request, "alerts")
        shown = [{**a, "level_title": title(LEVEL_TITLES, a["level"]),
                  "created": datetime.fromisoformat(a["created_at"])}
                 for a in ordered(data["alerts"])]
        acked = request.query.get("acked", "")
        done = _("Larm {id} är kvitterat.").format(id=acked) if acked.isdigit() else None
        return await page(self.api, request, "alerts.html", _("Larm"), status=status,
                          alerts=shown, done=done, error=error, note_max=NOTE_MAX,
                          read_answers=may(staff, "summary"))

    async def ack(self, request: web.Request) -> web.Response:
        try:
            alert_id = int(request.match_info["alert_id"])
        except ValueError:
            raise web.HTTPNotFound(reason=_("Det finns inget sådant larm.")) from None
        form = await request.post()
        note = str(form.get("note") or "").strip()[:NOTE_MAX] or None
        try:
            await operation(self.api, request, "ack", alert_id=alert_id, note=note)
        except OpError as e:
            return await self.start(request, error=e.message, status=e.status)
        back = form.get("back")  # the child's page sends its own address
        if isinstance(back, str) and safe_next(back) == back \
                and back.isprintable() and "#" not in back:
            return see_other(f"{back}{'&' if '?' in back else '?'}acked={alert_id}")
        return see_other(f"{PREFIX}/?acked={alert_id}#alerts")

    async def open_case(self, request: web.Request) -> web.Response:
        """The start page's "open a case" form (GET, so the address can be kept)."""
        from urllib.parse import quote

        case = request.query.get("case", "").strip()
        if not case:
            return await self.start(request, error=_("Skriv ärendets referens, till exempel "
                                                     "ABC-123."), status=400)
        return see_other(f"{PREFIX}/cases/{quote(case, safe='')}")


def routes(api: StaffApi, guard: object) -> list[web.RouteDef]:
    alerts = Alerts(api)
    return [web.get(PREFIX + "/", alerts.start),
            web.post(PREFIX + "/alerts/{alert_id}/ack", alerts.ack),
            web.get(PREFIX + "/cases", alerts.open_case)]
