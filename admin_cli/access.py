"""Who may do what, checked inside every staff operation (admin_cli/ops) with the actor it is
given: on the server, the user its token or sign-in proves; on the local data directory, the
operating-system user or TALA_USER. `tala users add` gives a user a role and a unit.

    caseworker  invite, summary, reply, alerts and ack - for their own unit's cases only
    manager     group reports and anonymous surveys for their unit, and the unit's alerts
                (no child's answers)
    admin       everything, including export, audit, erase, users and keys

Until the first user is added, tala runs open (everyone may do everything), so a new
installation and `tala demo` need no set-up; `tala users add` says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App
    from storage.sql import User

ROLES = ("caseworker", "manager", "admin")
ALLOWED = {
    "caseworker": {"invite", "summary", "reply", "alerts", "ack", "assign"},
    "manager": {"report", "alerts", "ack", "campaigns", "assign", "units"},
    "admin": {"invite", "summary", "reply", "alerts", "ack", "report", "export", "audit",
              "erase", "users", "campaigns", "assign", "units", "keys"},
}
WHAT = {"invite": "invite children", "summary": "read a child's answers",
        "reply": "reply to a child", "alerts": "see alerts", "ack": "acknowledge alerts",
        "report": "see group reports", "export": "export answers", "audit": "read the audit log",
        "erase": "erase a child's data", "users": "manage users",
        "campaigns": "run anonymous surveys", "assign": "make someone responsible for a case",
        "units": "set a unit's office hours and on-call number",
        "keys": "rotate the installation key"}


class AccessError(PermissionError):
    """Not allowed; the message says why and who can help."""


def require(app: App, actor: str, action: str, *, case_ref: str | None = None,
            unit: str | None = None) -> User | None:
    """The acting user if they may do `action` (on this case or unit); None while tala runs
    open. Raises AccessError otherwise, and the refusal is in the audit log (by the name
    given, with what was asked)."""
    try:
        return _check(app, actor, action, case_ref, unit)
    except AccessError:
        app.db.audit(actor, "refused", case_ref, f"{action}: unit {unit}" if unit else action)
        raise


def _check(app: App, actor: str, action: str, case_ref: str | None,
           unit: str | None) -> User | None:
    if not app.db.has_users():
        return None
    user = app.db.user(actor)
    if user is None:
        raise AccessError(f"'{actor}' is not a tala user. An admin can add you with: "
                          f"tala users add {actor} --role caseworker --unit YOUR-UNIT")
    if action not in ALLOWED.get(user.role, set()):
        raise AccessError(f"As {user.role}, {actor} may not {WHAT.get(action, action)}.")
    if user.role == "admin":
        return user
    if case_ref is not None:
        child = app.db.child(case_ref)
        # Another unit's case and a case that does not exist read the same (a new case is
        # made by inviting): a caseworker learns nothing of other units' cases, not even that
        # they exist.
        if (child is None and action != "invite") or (child is not None
                                                      and child.unit != user.unit):
            raise AccessError(f"There is no case '{case_ref}' in your unit ({user.unit}).")
    if unit is not None and unit != user.unit:
        raise AccessError(f"{actor} works in {user.unit}, not {unit}.")
    return user
