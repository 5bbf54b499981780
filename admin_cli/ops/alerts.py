"""Alerts: the open ones for the user's cases, and acknowledging one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from admin_cli.access import require
from admin_cli.i18n import _
from admin_cli.ops import OpError, not_found, op

if TYPE_CHECKING:
    from bot.app import App


def _age(dt) -> str:
    from storage.sql import as_utc, utcnow

    minutes = int((utcnow() - as_utc(dt)).total_seconds() // 60)
    if minutes < 60:
        return _("{n} min").format(n=minutes)
    if minutes < 48 * 60:
        return _("{n} tim").format(n=minutes // 60)
    return _("{n} dygn").format(n=minutes // (24 * 60))


@op("GET", "/alerts")
def alerts(app: App, actor: str) -> dict:
    """Open alerts (important answers nobody has acknowledged yet), oldest first: the user's
    unit's, or every unit's for an admin. Content-free: read the answers in the summary."""
    user = require(app, actor, "alerts")
    unit = user.unit if user is not None and user.role != "admin" else None
    rows = app.db.open_alerts(unit)
    told = app.db.notices_of([al.id for al, _ in rows])
    app.db.audit(actor, "alerts", None, f"{len(rows)} open")
    return {"timezone": app.settings.timezone, "alerts": [
        {"id": al.id, "case": c.case_ref, "unit": c.unit, "level": al.level,
         "topic": al.topic, "question_id": al.question_id,
         "created_at": al.created_at.isoformat(), "age": _age(al.created_at),
         "notified": al.notified_at is not None, "escalated": al.escalated_at is not None,
         "told": [{"who": n.recipient, "route": n.route, "kind": n.kind,
                   "at": n.queued_at.isoformat(), "status": n.status, "error": n.error}
                  for n in told[al.id]]}
        for al, c in rows]}


@op("POST", "/alerts/{alert_id}/ack")
def ack(app: App, actor: str, alert_id: int, note: str | None = None) -> dict:
    """Record that an alert was handled, by whom, and how."""
    row = app.db.alert(alert_id)
    if row is None:
        raise not_found(_("Det finns inget larm {id}. Skriv `tala alerts` för att se de "
                          "öppna larmen.").format(id=alert_id))
    case = app.db.case_ref_of(row.child_id)
    require(app, actor, "ack", case_ref=case)
    if row.acked_at is not None:
        raise OpError(_("Larm {id} är redan kvitterat av {who}.").format(
            id=alert_id, who=row.acked_by), 1, 409)
    app.db.ack_alert(alert_id, actor, note)
    app.db.audit(actor, "ack", case, f"alert {alert_id}")
    return {"id": alert_id, "acked_by": actor}
