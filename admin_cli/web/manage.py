"""The managers' pages: the anonymised group report per unit (the same report as `tala
report`, by the same rules and access checks), its CSV, and the monthly indicators per case
phase. The anonymous surveys and their posters are in admin_cli/web/surveys.py.

A manager sees their own unit only; an administrator chooses a unit or sees all; a
caseworker is refused, in words. Nothing here shows a single child."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import TYPE_CHECKING, Any

from aiohttp import web

from admin_cli.api import StaffApi
from admin_cli.i18n import _
from admin_cli.ops import Document, OpError
from admin_cli.web.render import error_page, operation, page
from admin_cli.web.session import PREFIX, STAFF

if TYPE_CHECKING:
    from bot.app import App

FILTERS = ("unit", "since", "until")


def unit_names(app: App) -> list[str]:
    """Every unit an administrator may choose: those set up with `tala units set` and those
    with children or staff."""
    from sqlalchemy import select

    from storage.sql import Child

    with app.db.Session() as db:
        with_children = set(db.scalars(select(Child.unit).distinct()))
    names = {u.name for u in app.db.units()} | {u.unit for u in app.db.users()} | with_children
    return sorted(n for n in names if n)


def safe_filename(*parts: str | None) -> str:
    """A file name a browser and every file system takes: letters, digits, - _ . only."""
    name = "-".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "tala"


def document_response(doc: Document, filename: str, disposition: str) -> web.Response:
    """A Document from an operation as a download (attachment) or shown in the browser
    (inline), with its own media type."""
    media, _sep, params = doc.media_type.partition(";")
    charset = params.split("=", 1)[1].strip() if "charset=" in params else None
    return web.Response(body=doc.content, content_type=media.strip(), charset=charset,
                        headers={"Content-Disposition": f'{disposition}; filename="{filename}"'})


class Filters:
    """The report's filters from the address: what was typed (kept in the form) and, when
    the dates are dates, what the report is asked for."""

    def __init__(self, request: web.Request):
        q = request.query
        self.typed = {k: q.get(k, "").strip() for k in (*FILTERS, "campaign")}
        self.invalid: list[str] = []
        self.dates: dict[str, date | None] = {}
        for k in ("since", "until"):
            try:
                self.dates[k] = date.fromisoformat(self.typed[k]) if self.typed[k] else None
            except ValueError:
                self.dates[k] = None
                self.invalid.append(k)

    @property
    def error(self) -> str | None:
        if self.invalid:
            return _("Skriv datumet som år-månad-dag, till exempel 2025-03-31.")
        return None

    def query(self, *keys: str) -> str:
        from urllib.parse import urlencode

        return urlencode({k: self.typed[k] for k in keys if self.typed[k]})


def _report_context(app: App, actor: str, unit: str | None, since: date | None,
                    until: date | None, campaign: str | None) -> dict[str, Any]:
    """The report for a staff page (in the pool): report_data checks who may read it and
    audits it; a refusal becomes OpError 403 as it does for every operation."""
    from admin_cli.access import AccessError
    from admin_cli.ops.records import report_data
    from admin_cli.report import html

    try:
        data = report_data(app, actor, unit=unit, since=since, until=until,
                           campaign=campaign)
    except AccessError as e:
        raise OpError(str(e), 3, 403) from None
    return html.context(data)


def indicator_rows(report: dict) -> dict[str, Any]:
    """The indicators' JSON as a table: a column per phase, a row per month, each figure as
    the text report writes it ("12 av 20 (60 %)", "färre än 5", "inga", "– av 20")."""
    from admin_cli.labels import PHASE_TITLES
    from admin_cli.report.indicators import SHARE_PHASES
    from admin_cli.report.indicators_out import figure
    from admin_cli.report.texts import HIDDEN, hidden_note

    n = report["filters"]["min_group"]
    rows = [{"month": m["month"], "cells": [figure(m["phases"][p], n) for p in SHARE_PHASES]}
            for m in report["months"]]
    placed = report.get("placed")
    notes = list(report["notes"])
    if any(HIDDEN in c for r in rows for c in r["cells"]) or (
            placed and placed.get("heard") is None and placed.get("invited")):
        notes.append(hidden_note(n))
    return {"phases": [_(PHASE_TITLES[p]).capitalize() for p in SHARE_PHASES], "rows": rows,
            "placed": placed and {**placed, "figure": figure(placed, n)},
            "definitions": report["definitions"], "notes": notes}


class Reports:
    def __init__(self, api: StaffApi):
        self.api = api

    async def _choices(self, request: web.Request) -> list[str]:
        staff = request[STAFF]
        return await self.api.run(unit_names, self.api.app) if staff.role == "admin" else []

    async def _form_page(self, request: web.Request, template: str, title: str,
                         f: Filters, status: int = 200, error: str | None = None,
                         **values: Any) -> web.Response:
        return await page(self.api, request, template, title, status=status, error=error,
                          typed=f.typed, invalid=f.invalid, units=await self._choices(request),
                          query=f.query(*FILTERS), campaign=f.typed["campaign"], **values)

    async def report(self, request: web.Request) -> web.Response:
        staff = request[STAFF]
        f = Filters(request)
        title = _("Rapport")
        if f.error:
            return await self._form_page(request, "reports.html", title, f, 400, f.error,
                                         shown=None)
        try:
            shown = await self.api.run(
                _report_context, self.api.app, staff.name, f.typed["unit"] or None,
                f.dates["since"], f.dates["until"], f.typed["campaign"] or None)
        except OpError as e:
            if e.status in (403, 404):
                return await error_page(self.api, request, e.status, e.message)
            return await self._form_page(request, "reports.html", title, f, e.status,
                                         e.message, shown=None)
        csv_query = f.query("campaign") if f.typed["campaign"] else f.query(*FILTERS)
        return await self._form_page(request, "reports.html", shown["report"]["title"], f,
                                     shown=shown, csv_query=csv_query, **shown)

    async def report_csv(self, request: web.Request) -> web.Response:
        f = Filters(request)
        if f.error:
            return await error_page(self.api, request, 400, f.error)
        params = {k: f.typed[k] or None for k in (*FILTERS, "campaign")}
        try:
            doc = await operation(self.api, request, "report", format="csv", **params)
        except OpError as e:
            return await error_page(self.api, request, e.status, e.message)
        name = safe_filename("tala-rapport", params["campaign"] or params["unit"],
                             params["since"], params["until"]) + ".csv"
        return document_response(doc, name, "attachment")

    async def indicators(self, request: web.Request) -> web.Response:
        f = Filters(request)
        title = _("Indikatorer")
        if f.error:
            return await self._form_page(request, "indicators.html", title, f, 400, f.error,
                                         ind=None)
        params = {k: f.typed[k] or None for k in FILTERS}
        try:
            doc = await operation(self.api, request, "indicators", format="json", **params)
        except OpError as e:
            if e.status in (403, 404):
                return await error_page(self.api, request, e.status, e.message)
            return await self._form_page(request, "indicators.html", title, f, e.status,
                                         e.message, ind=None)
        data = json.loads(doc.content)
        return await self._form_page(request, "indicators.html", data["title"], f, ind=data,
                                     table=None if data["too_few"] else indicator_rows(data))


def routes(api: StaffApi, guard: object) -> list[web.RouteDef]:
    reports = Reports(api)
    return [web.get(PREFIX + "/reports", reports.report),
            web.get(PREFIX + "/reports.csv", reports.report_csv),
            web.get(PREFIX + "/reports/indicators", reports.indicators)]
