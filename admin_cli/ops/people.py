"""Who may use tala (users and their API tokens) and the units (office hours, on-call
number)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

from admin_cli.access import ROLES, require, role_title
from admin_cli.i18n import _, refusal_text
from admin_cli.ops import OpError, not_found, op

if TYPE_CHECKING:
    from bot.app import App

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_TOKEN_DAYS = 366


@op("GET", "/me")
def me(app: App, actor: str) -> dict:
    """Who this is, as tala knows them: name, role and unit."""
    user = app.db.user(actor)
    if user is None:
        return {"name": actor, "role": None, "unit": None}
    return {"name": user.name, "role": user.role, "unit": user.unit}


@op("GET", "/users")
def users(app: App, actor: str) -> list:
    """Everyone who may use tala."""
    require(app, actor, "users")
    return [{"name": u.name, "role": u.role, "unit": u.unit, "sms": bool(u.phone_enc),
             "email": bool(u.email_enc)} for u in app.db.users()]


@op("PUT", "/users/{name}", name="users_add")
def users_add(app: App, actor: str, name: str, role: str, unit: str | None = None,
              phone: str | None = None, email: str | None = None) -> dict:
    """Add a user or change one. The first user ends open mode and must be an admin."""
    from bot.channels.sms import NumberError, normalise_number

    if role not in ROLES:
        raise OpError(_("--role ska vara en av {roles}.").format(roles=", ".join(ROLES)))
    if role != "admin" and not unit:
        raise OpError(_("En {role} behöver --unit (den enhet vars ärenden hen arbetar "
                        "med).").format(role=role_title(role)))
    if app.db.has_users():
        require(app, actor, "users")
    elif role != "admin":
        raise OpError(_("Den första användaren ska vara administratör (tills dess får alla "
                        "göra allt): tala users add {actor} --role admin").format(actor=actor))
    try:
        number = normalise_number(phone, app.settings.sms_default_region) if phone else None
    except NumberError as e:
        raise OpError(refusal_text(e)) from None
    if email and not EMAIL.fullmatch(email.strip()):
        raise OpError(_("'{email}' ser inte ut som en e-postadress (namn@kommun.se).").format(
            email=email))
    app.db.add_user(name, role, unit, number, email.strip() if email else None)
    app.db.audit(actor, "users", None, f"{name}: {role} {unit or ''}".strip())
    return {"name": name, "role": role, "unit": unit}


@op("POST", "/users/{name}/tokens", name="users_token")
def users_token(app: App, actor: str, name: str, days: int = 90,
                label: str | None = None) -> dict:
    """A personal API token for `name` (shown once, kept only as a hash), valid for `days`."""
    from storage.tokens import PERSONAL

    require(app, actor, "users")
    if not 1 <= days <= MAX_TOKEN_DAYS:
        raise OpError(_("--days ska vara mellan 1 och {max}.").format(max=MAX_TOKEN_DAYS))
    try:
        issued = app.db.add_token(name, PERSONAL, timedelta(days=days), label)
    except LookupError:
        raise not_found(_("Det finns ingen användare '{name}' i tala. Lägg till hen först: "
                          "tala users add {name} --role caseworker --unit ENHET").format(
            name=name)) from None
    app.db.audit(actor, "users", None, f"{name}: token {issued.id} for {days} days")
    return {"name": name, "id": issued.id, "token": issued.token,
            "expires_at": issued.expires_at.isoformat()}


@op("GET", "/tokens", name="users_tokens")
def users_tokens(app: App, actor: str, name: str | None = None) -> list:
    """The API tokens (never their secrets): whose, since when, until when, last used."""
    require(app, actor, "users")

    def iso(dt):
        return dt.isoformat() if dt else None

    return [{"id": t.id, "name": who, "kind": t.kind, "label": t.label,
             "created_at": iso(t.created_at), "expires_at": iso(t.expires_at),
             "last_used_at": iso(t.last_used_at), "revoked_at": iso(t.revoked_at)}
            for t, who in app.db.tokens(name)]


@op("POST", "/tokens/revoke", name="users_revoke")
def users_revoke(app: App, actor: str, name: str | None = None,
                 token: str | None = None) -> dict:
    """Revoke one token (its id) or every token of a user: they stop working at once."""
    require(app, actor, "users")
    if not (name or token):
        raise OpError(_("Säg vems token som ska spärras: tala users revoke NAMN, "
                        "eller en enda: --token ID."))
    n = app.db.revoke_tokens(token=token, user_name=None if token else name)
    app.db.audit(actor, "users", None, f"revoked {n} token(s) of {token or name}")
    return {"revoked": n}


@op("GET", "/units")
def units(app: App, actor: str) -> dict:
    """The units, their office hours and on-call numbers."""
    from bot.hours import DEFAULT_HOURS

    require(app, actor, "units")
    return {"default_hours": DEFAULT_HOURS, "units": [
        {"name": u.name, "office_hours": u.office_hours or DEFAULT_HOURS,
         "on_call": app.db.on_call(u)} for u in app.db.units()]}


@op("PUT", "/units/{unit}", name="units_set")
def units_set(app: App, actor: str, unit: str, on_call: str | None = None,
              hours: str | None = None) -> dict:
    """Set a unit's on-call number ("" removes it) and office hours."""
    from bot.channels.sms import NumberError, normalise_number
    from bot.hours import DEFAULT_HOURS, HoursError

    if on_call is None and hours is None:
        raise OpError(_("Säg vad som ska ställas in, till exempel: tala units set {unit} "
                        "--on-call 0701234567 --hours \"mon-fri 08:00-17:00\"").format(
            unit=unit))
    require(app, actor, "units", unit=unit)
    try:
        number = (normalise_number(on_call, app.settings.sms_default_region)
                  if on_call else on_call)
        app.service.notifier.set_unit(unit, on_call=number, office_hours=hours)
    except (NumberError, HoursError) as e:
        raise OpError(refusal_text(e)) from None
    app.db.audit(actor, "units", None, f"{unit}: " + ", ".join(part for part in (
        "on-call number " + ("set" if number else "removed") if on_call is not None else "",
        f"hours {hours}" if hours else "") if part))
    row = app.db.unit(unit)
    return {"name": unit, "office_hours": row.office_hours or DEFAULT_HOURS,
            "on_call": app.db.on_call(row), "sms": "sms" in app.service.outbound}
