"""What is read across cases: group reports, the export for the case system, the audit log."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from admin_cli.access import require
from admin_cli.i18n import _
from admin_cli.ops import Document, OpError, not_found, op
from admin_cli.ops.cases import text_document

if TYPE_CHECKING:
    from bot.app import App

REPORT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8",
                "html": "text/html; charset=utf-8"}
EXPORT_TYPES = {"json": "application/json", "csv": "text/csv; charset=utf-8",
                "fhir": "application/fhir+json"}


def report_data(app: App, actor: str, unit: str | None = None, since: date | None = None,
                until: date | None = None, questionnaire: str | None = None,
                campaign: str | None = None) -> dict:
    """The report's data, for whoever renders it (the `report` op, the staff pages), after
    checking that `actor` may read it: a manager gets their own unit's. Audited."""
    from admin_cli import report as r

    if campaign and (unit or since or until or questionnaire):
        raise OpError(_("--campaign står ensamt: en enkäts rapport gäller hela enkäten."))
    try:
        if campaign:
            c = app.db.campaign(campaign)
            user = require(app, actor, "report", unit=c.unit if c else None)
            if c is None or (user is not None and user.role == "manager"
                             and c.unit != user.unit):
                raise not_found(_("Det finns ingen kampanj '{name}'. Skriv `tala campaign "
                                  "list` för att se dem.").format(name=campaign))
            return r.build_campaign_report(app, actor, campaign,
                                           min_group=app.settings.min_group_size)
        user = require(app, actor, "report", unit=unit)
        if user is not None and user.role == "manager":
            unit = user.unit  # a manager sees their own unit
        return r.build_report(app, actor, unit=unit, since=since, until=until,
                              questionnaire=questionnaire,
                              min_group=app.settings.min_group_size)
    except r.ReportError as e:
        raise OpError(str(e)) from None


@op("GET", "/reports")
def report(app: App, actor: str, unit: str | None = None, since: date | None = None,
           until: date | None = None, questionnaire: str | None = None,
           campaign: str | None = None, format: str = "json", width: int = 110,
           wrap: bool = True, color: bool = False) -> Document:
    """Anonymised group results (format json, text, csv or html): participation and answer
    distributions, small groups merged or left out. A manager sees their own unit."""
    from admin_cli import report as r

    if format not in ("text", *REPORT_TYPES):
        raise OpError(_("format ska vara json, text, csv eller html."))
    data = report_data(app, actor, unit=unit, since=since, until=until,
                       questionnaire=questionnaire, campaign=campaign)
    if format == "text":
        return text_document(r.render_text(data), width, wrap, color)
    content = {"json": r.to_json, "csv": r.to_csv, "html": r.to_html}[format](data)
    return Document(content.encode("utf-8"), REPORT_TYPES[format])


@op("GET", "/reports/indicators")
def indicators(app: App, actor: str, unit: str | None = None, since: date | None = None,
               until: date | None = None, format: str = "json", width: int = 110,
               wrap: bool = True, color: bool = False) -> Document:
    """The unit's monthly indicators per case phase (format json, text or csv): the share of
    children invited in a phase who were heard, and placed children heard at least four times
    in the last twelve months. Small groups hidden. A manager sees their own unit."""
    from admin_cli import report as r

    if format not in ("text", "json", "csv"):
        raise OpError(_("format ska vara json, text eller csv."))
    user = require(app, actor, "report", unit=unit)
    if user is not None and user.role == "manager":
        unit = user.unit
    try:
        data = r.build_indicators(app, actor, unit=unit, since=since, until=until,
                                  min_group=app.settings.min_group_size)
    except r.ReportError as e:
        raise OpError(str(e)) from None
    if format == "text":
        return text_document(r.indicators_text(data), width, wrap, color)
    if format == "csv":
        return Document(r.indicators_csv(data).encode("utf-8"), REPORT_TYPES["csv"])
    return Document(r.indicators_json(data).encode("utf-8"), REPORT_TYPES["json"])


@op("GET", "/export")
def export(app: App, actor: str, format: str = "json", since: date | None = None,
           until: date | None = None) -> Document:
    """Finished sessions for the case system (json, csv with a BOM for Excel, or fhir): never
    contact details. Written to the audit log."""
    from admin_cli.export import ExportError, export as make

    require(app, actor, "export")
    try:
        content = make(app, format, actor, since, until)
    except ExportError as e:
        raise OpError(str(e)) from None
    return Document(content.encode("utf-8"), EXPORT_TYPES[format])


@op("GET", "/audit")
def audit(app: App, actor: str, case: str | None = None, user: str | None = None) -> list:
    """Who read or did what, newest first."""
    require(app, actor, "audit")
    rows = app.db.audit_entries(case_ref=case, actor=user)
    app.db.audit(actor, "audit", case, "")
    return [{"at": r.at.isoformat(), "user": r.actor, "action": r.action, "case": r.case_ref,
             "detail": r.detail} for r in rows]
