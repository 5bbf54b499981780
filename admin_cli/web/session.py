"""Who is signed in on the staff pages, and the guard around every /staff/ request.

A signed-in browser holds one cookie: a session token of the staff API's own kind (12 hours,
kept in SQL only as a hash), so a page is checked exactly the way an API call is - revoked,
expired and unknown tokens alike - and `tala users revoke` ends a browser's session too. The
cookie is Secure, HttpOnly and SameSite=Lax, and only sent to /staff/.

Every form carries a CSRF token: a hash of the session token (of the sign-in cookie before
signing in), which a page elsewhere can neither read nor make. A POST without the right one,
or from another origin, is refused before any handler runs.

Every answer has a strict Content-Security-Policy (scripts, styles and images from /staff/
only, no inline script or style, nothing from anywhere else), no-store, and no framing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from aiohttp import web

from admin_cli.api import (FAILURE_WINDOW, FAILURES_ALLOWED, REQUESTS_PER_MINUTE, StaffApi,
                           is_secure)
from admin_cli.i18n import _, use_lang

log = logging.getLogger("tala.web")
PREFIX = "/staff"
COOKIE = "tala_staff"  # the session token
LOGIN_COOKIE = "tala_login"  # before signing in: what the login form's CSRF token is made of
LANG_COOKIE = "tala_lang"
LANGS = ("sv", "en")
PUBLIC = {PREFIX + "/login", PREFIX + "/login/oidc", PREFIX + "/login/oidc/callback"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
           "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "same-origin", "Cross-Origin-Opener-Policy": "same-origin",
           "Cross-Origin-Resource-Policy": "same-origin"}
STAFF = web.RequestKey("tala_web_staff", object)
LANG = web.RequestKey("tala_web_lang", str)


@dataclass(frozen=True)
class Staff:
    name: str
    role: str
    unit: str | None
    token_id: str
    csrf: str


def csrf_for(secret: str) -> str:
    """The CSRF token for a session (or a sign-in cookie): unguessable without the cookie,
    and not the hash the token is kept under in SQL."""
    return hashlib.sha256(b"tala-staff-csrf:" + secret.encode()).hexdigest()[:40]


def set_cookie(resp: web.StreamResponse, name: str, value: str, max_age: int | None,
               same_site: str = "Lax") -> None:
    resp.set_cookie(name, value, max_age=max_age, path=PREFIX, secure=True, httponly=True,
                    samesite=same_site)


def forget(resp: web.StreamResponse, name: str) -> None:
    resp.del_cookie(name, path=PREFIX, secure=True, httponly=True, samesite="Lax")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a page of ours, never another site."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") \
            and "\\" not in target and not urlsplit(target).netloc:
        return target
    return PREFIX + "/"


def lang_of(request: web.Request) -> str | None:
    """The language the user chose on the pages; unset = the server's (Swedish by default,
    whatever the browser says: staff read tala in Swedish unless they ask otherwise)."""
    chosen = request.cookies.get(LANG_COOKIE)
    return chosen if chosen in LANGS else None


def _same_origin(request: web.Request) -> bool:
    """A POST from our own pages: the browser's Origin (or Referer) names this host."""
    origin = request.headers.get("Origin") or request.headers.get("Referer")
    if not origin:
        return True  # an old browser; the CSRF token still has to match
    host = urlsplit(origin).netloc
    return host in {request.host, request.headers.get("X-Forwarded-Host")}


class Guard:
    def __init__(self, api: StaffApi):
        self.api = api
        self.app = api.app

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if not (request.path == PREFIX or request.path.startswith(PREFIX + "/")):
            return await handler(request)
        lang = lang_of(request)
        request[LANG] = lang or ""
        with use_lang(lang):
            try:
                resp = await self._guarded(request, handler)
            except web.HTTPException as e:
                if e.status >= 400:
                    from admin_cli.web.render import error_page

                    resp = await error_page(self.api, request, e.status, e.reason)
                else:  # a redirect
                    resp = web.Response(status=e.status, headers=e.headers)
        resp.headers.update(HEADERS)
        if request.path.startswith(PREFIX + "/static/") and resp.status == 200:
            resp.headers["Cache-Control"] = "max-age=3600"  # the same for everyone
        if request.secure or request.headers.get("X-Forwarded-Proto") == "https":
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        return resp

    async def _guarded(self, request: web.Request, handler) -> web.StreamResponse:
        if not is_secure(request, self.app.settings.trusted_proxies):
            return web.Response(status=403, text=_(
                "Personalens sidor svarar bara över HTTPS (eller på den här datorn)."))
        if request.path.startswith(PREFIX + "/static/"):
            return await handler(request)
        if request.method == "POST" and not _same_origin(request):
            await self.api.run(self.api.audit, "-", "refused", None,
                               f"web {request.path}: another origin")
            raise web.HTTPForbidden(reason=_("Formuläret kom från en annan webbplats."))
        if request.path in PUBLIC or request.path.startswith(PREFIX + "/lang/"):
            if request.method == "POST":
                await self._check_form(request, request.cookies.get(LOGIN_COOKIE, ""))
            return await handler(request)
        staff = await self.signed_in(request)
        if staff is None:
            if request.method == "GET":
                raise web.HTTPSeeOther(PREFIX + "/login?next=" + quote(request.path_qs))
            raise web.HTTPForbidden(reason=_("Du är inte inloggad längre: logga in igen."))
        request[STAFF] = staff
        if request.method == "POST":
            await self._check_form(request, request.cookies.get(COOKIE, ""))
        return await handler(request)

    async def _check_form(self, request: web.Request, secret: str) -> None:
        form = await request.post()
        sent = form.get("csrf")
        if not secret or not isinstance(sent, str) \
                or not hmac.compare_digest(sent, csrf_for(secret)):
            await self.api.run(self.api.audit, "-", "refused", None,
                               f"web {request.path}: CSRF token missing or wrong")
            raise web.HTTPForbidden(reason=_(
                "Formuläret var för gammalt eller kom inte från tala: ladda om sidan och "
                "försök igen."))

    async def signed_in(self, request: web.Request) -> Staff | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        found = await self.api.run(self.app.db.token_user, token)
        if isinstance(found, str):
            await self.api.run(self.api.audit, "-", "refused", None,
                               f"web {request.method} {request.path}: token {found}")
            return None
        user, row = found
        used = await self.api.run(self.app.store.count,
                                  self.app.store.staff_key("uses", row.id), 60)
        if used > REQUESTS_PER_MINUTE:
            raise web.HTTPTooManyRequests(reason=_("För många sidor på en minut: vänta en "
                                                   "stund."))
        return Staff(user.name, user.role, user.unit, row.id, csrf_for(token))

    async def too_many_failures(self, client: str) -> bool:
        key = self.app.store.staff_key("failed", client)
        failures = await self.api.run(self.app.store.r.get, key)
        return failures is not None and int(failures) >= FAILURES_ALLOWED

    async def count_failure(self, client: str) -> None:
        await self.api.run(self.app.store.count, self.app.store.staff_key("failed", client),
                           FAILURE_WINDOW)


def see_other(location: str) -> web.Response:
    """A redirect after a form or a sign-in (a Response, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location})


def new_login_secret() -> str:
    return secrets.token_urlsafe(24)
