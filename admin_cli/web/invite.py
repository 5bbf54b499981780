"""Inviting a child from the staff pages: the form, the `invite` operation (the same checks and
messages as `tala invite`), and what to give the child: for SMS and WhatsApp whether the
message went, for Telegram the link as text and as a QR code to print."""

from __future__ import annotations

import base64
import io
from typing import Any

from aiohttp import web

from admin_cli.access import WHAT, role_title
from admin_cli.api import StaffApi
from admin_cli.i18n import _
from admin_cli.labels import PHASE_TITLES, delivery_text
from admin_cli.ops import OpError
from admin_cli.web.cases import case_path
from admin_cli.web.render import error_page, may, operation, page
from admin_cli.web.session import PREFIX, STAFF

CHANNELS = ("sms", "whatsapp", "web", "telegram")  # console and rasa: not for a child invited here
FIELDS = ("case", "age", "phase", "lang", "channel", "to", "unit")


def qr_png(link: str) -> str:
    """The link as a QR code: a PNG as a data: URL (black on white, a 4-module margin)."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=8,
                       border=4)
    qr.add_data(link)
    qr.make(fit=True)
    buf = io.BytesIO()
    qr.make_image(fill_color="black", back_color="white").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def languages(app: Any) -> list[dict[str, str]]:
    """The languages the questionnaires are translated to, each in its own name."""
    catalogs = app.runtime.catalogs
    return [{"code": lang, "name": f"{catalogs.own_name(lang)} ({lang})"}
            for lang in catalogs.languages]


class Invite:
    def __init__(self, api: StaffApi):
        self.api = api

    async def form(self, request: web.Request, *, values: dict[str, str] | None = None,
                   error: str | None = None, status: int = 200) -> web.Response:
        staff = request[STAFF]
        if not may(staff, "invite"):
            return await error_page(self.api, request, 403, _(
                "Som {role} får {actor} inte {what}.").format(
                role=role_title(staff.role), actor=staff.name, what=_(WHAT["invite"])))
        entered = {"lang": "sv", "channel": "sms", **(values or {})}
        return await page(self.api, request, "invite.html", _("Bjud in ett barn"),
                          status=status, values={f: entered.get(f, "") for f in FIELDS},
                          error=error, languages=languages(self.api.app),
                          phases=[(k, _(v)) for k, v in PHASE_TITLES.items()],
                          channels=[c for c in CHANNELS if self._offered(c)],
                          ask_unit=staff.role == "admin")

    def _offered(self, channel: str) -> bool:
        svc = self.api.app.service
        return {"whatsapp": "whatsapp" in svc.outbound, "web": bool(svc.web_url)}.get(channel,
                                                                                     True)

    async def send(self, request: web.Request) -> web.Response:
        staff = request[STAFF]
        form = await request.post()
        values = {f: str(form.get(f) or "").strip() for f in FIELDS}
        channel = values["channel"]
        try:
            result = await operation(
                self.api, request, "invite", case=values["case"] or None,
                age=values["age"] or None, lang=values["lang"] or None,
                channel=channel or None, phase=values["phase"] or None,
                to=(values["to"] or None) if channel != "telegram" else None,
                unit=(values["unit"] or None) if staff.role == "admin" else None)
        except OpError as e:
            if not may(staff, "invite"):
                return await error_page(self.api, request, e.status, e.message)
            return await self.form(request, values=values, error=e.message, status=e.status)
        inv = result["invitation"]
        sms, sms_problem = delivery_text(inv) or (None, False)
        qr = await self.api.run(qr_png, inv["link"]) if inv["link"] else None
        return await page(self.api, request, "invite_done.html",
                          _("Barnet i ärende {case} är inbjudet.").format(case=inv["case"]),
                          inv=inv, until=inv["expires_at"][:10], case_href=case_path(inv["case"]),
                          sms=sms, sms_problem=sms_problem, qr=qr,
                          alerts_to=result["alerts_to"], notes=result["notes"],
                          phase_title=_(PHASE_TITLES[inv["phase"]]) if inv["phase"] else None)


def routes(api: StaffApi, guard: object) -> list[web.RouteDef]:
    invite = Invite(api)
    return [web.get(PREFIX + "/invite", invite.form),
            web.post(PREFIX + "/invite", invite.send)]
