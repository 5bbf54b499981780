"""A child's page: the summary of what the child said (the same as `tala summary --format
html`, inside the staff layout), the case's open alerts to acknowledge, a short reply to the
child on the channel the child used, and printing on A4. Reading it is a summary read: the
same access check and audit entry as the CLI and the API. Managers see none of it."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import web

from admin_cli.access import AccessError
from admin_cli.api import StaffApi
from admin_cli.i18n import _
from admin_cli.labels import LEVEL_TITLES, TOPIC_TITLES, title
from admin_cli.ops import OpError
from admin_cli.web.render import error_page, operation, page
from admin_cli.web.session import PREFIX, STAFF, see_other
from bot.contacts import MAX_REPLY

SENT = ("sent", "delivered")


def case_path(case: str) -> str:
    return f"{PREFIX}/cases/{quote(case, safe='')}"


def _dates(query: Any) -> tuple[date | None, date | None, str | None]:
    """The period from the page's since/until fields; a problem said in words."""
    found: list[date | None] = []
    for name in ("since", "until"):
        raw = (query.get(name) or "").strip()
        try:
            found.append(date.fromisoformat(raw) if raw else None)
        except ValueError:
            return None, None, _("Skriv datumet som ÅÅÅÅ-MM-DD, till exempel 2025-03-01.")
    return found[0], found[1], None


def summary_context(app: Any, actor: str, case: str, since: date | None,
                    until: date | None) -> dict[str, Any]:
    """In the pool: the access check and audited read (ops.cases.summary_data), then what
    summary_body.html is rendered with, the charts as data: images."""
    from admin_cli.ops.cases import summary_data
    from admin_cli.summary import html

    try:
        data = summary_data(app, actor, case, since, until, None)
    except AccessError as e:  # said as the operations say it
        raise OpError(str(e), 3, 403) from None
    context = html.context(app, data, charts_as_images=True)
    open_alerts = [{"id": a["id"], "level": a["level"],
                    "level_title": title(LEVEL_TITLES, a["level"]),
                    "topic": title(TOPIC_TITLES, a["topic"]) if a["topic"] else ""}
                   for a in data["alerts"] if a["acked_at"] is None]
    return {"summary": context, "open_alerts": open_alerts}


class Cases:
    def __init__(self, api: StaffApi):
        self.api = api

    async def show(self, request: web.Request, *, text: str = "", error: str | None = None,
                   status: int = 200) -> web.Response:
        staff = request[STAFF]
        case = request.match_info["case"]
        since, until, bad_date = _dates(request.query)
        try:
            found = await self.api.run(summary_context, self.api.app, staff.name, case,
                                       since, until)
        except OpError as e:
            if e.status in (403, 404):
                return await error_page(self.api, request, e.status, e.message)
            bad_date, found = e.message, await self.api.run(
                summary_context, self.api.app, staff.name, case, None, None)
        done = None
        replied = request.query.get("replied")
        if replied:
            done = (_("Ditt svar är skickat.") if replied in SENT else
                    _("Svaret till barnet i ärende {case} ligger i kö: det skickas så snart "
                      "det går.").format(case=case))
        acked = request.query.get("acked", "")
        if acked.isdigit():
            done = _("Larm {id} är kvitterat.").format(id=acked)
        here = case_path(case)
        back = here + ("?" + urlencode({k: v for k, v in (("since", since), ("until", until))
                                        if v}) if since or until else "")
        return await page(self.api, request, "case.html", _("Ärende {case}").format(case=case),
                          status=status, case=case, here=here, back=back, done=done,
                          error=error, text=text, reply_max=MAX_REPLY, bad_date=bad_date,
                          since=request.query.get("since", ""),
                          until=request.query.get("until", ""),
                          summary_heading="h2", **found)

    async def reply(self, request: web.Request) -> web.Response:
        case = request.match_info["case"]
        form = await request.post()
        text = str(form.get("text") or "")
        try:
            result = await operation(self.api, request, "reply", case=case, text=text)
        except OpError as e:
            if e.status in (403, 404):
                return await error_page(self.api, request, e.status, e.message)
            return await self.show(request, text=text, error=e.message, status=e.status)
        status = "sent" if result["status"] in SENT else "queued"
        return see_other(f"{case_path(case)}?replied={status}#reply")


def routes(api: StaffApi, guard: object) -> list[web.RouteDef]:
    cases = Cases(api)
    return [web.get(PREFIX + "/cases/{case}", cases.show),
            web.post(PREFIX + "/cases/{case}/reply", cases.reply)]
