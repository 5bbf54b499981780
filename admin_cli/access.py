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

from admin_cli.i18n import N_, _

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
WHAT = {"invite": N_("bjuda in barn"), "summary": N_("läsa ett barns svar"),
        "reply": N_("svara ett barn"), "alerts": N_("se larm"), "ack": N_("kvittera larm"),
        "report": N_("se sammanställningar för grupper"), "export": N_("exportera svar"),
        "audit": N_("läsa loggen över vem som gjort vad"),
        "erase": N_("radera ett barns uppgifter"), "users": N_("hantera användare"),
        "campaigns": N_("göra anonyma enkäter"),
        "assign": N_("göra någon ansvarig för ett ärende"),
        "units": N_("ställa in en enhets kontorstider och jourtelefon"),
        "keys": N_("byta installationens nyckel")}
# The roles as staff read them (the ids stay in the data and on the command line).
ROLE_TITLES = {"caseworker": N_("handläggare"), "manager": N_("chef"),
               "admin": N_("administratör")}


def role_title(role: str | None) -> str:
    """A role's name in the staff language ("handläggare"); the id itself if unknown."""
    found = ROLE_TITLES.get(role or "")
    return _(found) if found else (role or "")


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
        raise AccessError(_("'{actor}' är inte användare i tala. En administratör kan lägga "
                            "till dig med: tala users add {actor} --role caseworker --unit "
                            "DIN-ENHET").format(actor=actor))
    if action not in ALLOWED.get(user.role, set()):
        what = _(WHAT[action]) if action in WHAT else action
        raise AccessError(_("Som {role} får {actor} inte {what}.").format(
            role=role_title(user.role), actor=actor, what=what))
    if user.role == "admin":
        return user
    if case_ref is not None:
        child = app.db.child(case_ref)
        # Another unit's case and a case that does not exist read the same (a new case is
        # made by inviting): a caseworker learns nothing of other units' cases, not even that
        # they exist.
        if (child is None and action != "invite") or (child is not None
                                                      and child.unit != user.unit):
            raise AccessError(_("Det finns inget ärende '{case}' i din enhet ({unit}). "
                                "Skriv `tala alerts` för att se din enhets larm.").format(
                case=case_ref, unit=user.unit))
    if unit is not None and unit != user.unit:
        raise AccessError(_("{actor} arbetar i {unit}, inte i {other}.").format(
            actor=actor, unit=user.unit, other=unit))
    return user
