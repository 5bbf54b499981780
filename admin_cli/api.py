"""The staff API, served by `tala serve` under /api/v1 beside the channels' routes.

Every staff operation (admin_cli/ops) is a route here, run as the user the request proves to
be: a personal token (`tala users token`) or a session token given after an OpenID Connect
sign-in (POST /api/v1/login/oidc), always in `Authorization: Bearer`. TALA_USER means nothing
here. Roles are checked inside each operation; every request is written to the audit log with
the authenticated name, and every refused one too.

    GET  /api/v1/openapi.json   the API, described (OpenAPI 3.1)
    GET  /api/v1/login          how to sign in here (tokens; the OIDC issuer and client id)
    POST /api/v1/login/oidc     {"id_token": ..., "nonce": ...} from the identity provider ->
                                a session token (the nonce the browser sign-in sent)
    POST /api/v1/logout         `tala logout`: the calling session token is revoked (a
                                personal token is an administrator's to revoke: kept)

Transport: plain HTTP is refused except from this machine (loopback) or from a proxy named in
TALA_TRUSTED_PROXIES that says the client used HTTPS; a token in the URL is refused; answers
carry no-store, nosniff, a deny-all CSP and no CORS headers, so no web page elsewhere may call
this API from a browser. Failed sign-ins are limited per client address, requests per token.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import ipaddress
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from aiohttp import web

from admin_cli import ops
from admin_cli.i18n import _, use_lang
from bot.app import App
from bot.server import from_proxy
from storage.tokens import PERSONAL

log = logging.getLogger("tala.api")
PREFIX = "/api/v1"
PUBLIC = {(PREFIX + "/openapi.json", "GET"), (PREFIX + "/login", "GET"),
          (PREFIX + "/login/oidc", "POST")}
FAILURES_ALLOWED = 20  # failed sign-ins per client address ...
FAILURE_WINDOW = 600  # ... in this many seconds
REQUESTS_PER_MINUTE = 600  # per token
SESSION_HOURS = 12  # a session token after an OIDC sign-in
HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
           "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
STAFF_KEY = web.RequestKey("tala_staff", dict)


class SignInRefused(Exception):
    """A sign-in that did not prove a tala user: the HTTP status, and the message says why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str, code: int = 2, **headers: str) -> web.Response:
    resp = web.json_response({"error": message, "exit": code}, status=status)
    resp.headers.update({k.replace("_", "-"): v for k, v in headers.items()})
    return resp


def is_secure(request: web.Request, trusted: str | None) -> bool:
    """HTTPS; or a trusted proxy that says its client used HTTPS; or this machine itself. A
    request from this machine that a proxy marked as plain HTTP (X-Forwarded-Proto: http, an
    nginx on port 80 in front) is refused too, trusted or not."""
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto")
    if from_proxy(request, trusted) and (proto or request.headers.get("X-Forwarded-For")):
        return (proto or "").lower() == "https"
    try:
        loopback = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        loopback = False  # a Unix socket: only a proxy on this machine can reach it
    return loopback and (proto is None or proto.lower() == "https")


def client_address(request: web.Request, trusted: str | None) -> str:
    """The client's address: the proxy's last hop when it is trusted, else the peer."""
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and from_proxy(request, trusted):
        return forwarded.split(",")[-1].strip()
    return request.remote or "-"


class StaffApi:
    def __init__(self, app: App, threads: int = 4):
        self.app = app
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="tala-staff")
        self.verifier = None
        # The staff pages' guard and the paths it keeps (admin_cli/web), when they are served:
        # run from this one middleware, so a child's webhook passes one middleware, not two.
        self.pages: tuple[str, Any] | None = None
        s = app.settings
        if s.oidc_issuer and s.oidc_client_id:
            from admin_cli.oidc import Verifier

            self.verifier = Verifier(s.oidc_issuer, s.oidc_client_id, s.oidc_user_claim)

    async def run(self, fn, *args) -> Any:
        # A pool thread does not get this request's context by itself: without the copy, an
        # operation would answer in the server's language instead of the caller's.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self.pool, context.run, fn,
                                                                *args)

    def audit(self, actor: str, action: str, case: str | None, detail: str) -> None:
        self.app.db.audit(actor, action, case, detail)  # a failure propagates: no request
        # is answered that could not be audited

    # -- the guard around every /api/ request
    @web.middleware
    async def guard(self, request: web.Request, handler) -> web.StreamResponse:
        path = request.path
        if not path.startswith("/api/"):
            if self.pages is not None and path.startswith(self.pages[0]):
                return await self.pages[1](request, handler)
            return await handler(request)
        # Every answer, and every operation run for it, in the caller's language (the CLI
        # sends its own; without the header, the server's TALA_LANG or locale).
        with use_lang(request.headers.get("Accept-Language")):
            try:
                resp = await self._guarded(request, handler)
            except web.HTTPException as e:  # no such path, or not this method (a preflight)
                resp = _error(e.status, f"{request.method} {request.path}: {e.reason}.")
        resp.headers.update(HEADERS)
        if request.secure or request.headers.get("X-Forwarded-Proto") == "https":
            resp.headers["Strict-Transport-Security"] = "max-age=31536000"
        return resp

    async def _guarded(self, request: web.Request, handler) -> web.StreamResponse:
        trusted = self.app.settings.trusted_proxies
        if not is_secure(request, trusted):
            return _error(403, _("API:et för personal svarar bara över HTTPS (eller på den "
                                 "här datorn)."))
        if {"token", "access_token", "api_key"} & set(request.query):
            return _error(400, _("Skicka din token i huvudet Authorization, aldrig i "
                                 "adressen."))
        client = client_address(request, trusted)
        failures_key = self.app.store.staff_key("failed", client)
        failures = await self.run(self.app.store.r.get, failures_key)
        if failures is not None and int(failures) >= FAILURES_ALLOWED:
            return _error(429, _("För många misslyckade inloggningar härifrån: vänta tio "
                                 "minuter."), Retry_After=str(FAILURE_WINDOW))
        if (request.path, request.method) in PUBLIC or request.method == "OPTIONS":
            return await handler(request)
        auth = request.headers.get("Authorization", "")
        scheme, __, token = auth.partition(" ")
        found = (await self.run(self.app.db.token_user, token.strip())
                 if scheme.lower() == "bearer" and token.strip() else "missing")
        route = request.match_info.route.resource
        where = f"{request.method} {route.canonical if route else request.path}"
        case = request.match_info.get("case")
        if isinstance(found, str):
            await self.run(self.app.store.count, failures_key, FAILURE_WINDOW)
            await self.run(self.audit, "-", "refused", case, f"{where}: token {found}")
            why = {"missing": _("Ingen token: skicka Authorization: Bearer TOKEN."),
                   "unknown": _("Din token gäller inte."), "expired": _("Din token har gått ut."),
                   "revoked": _("Din token har spärrats.")}[found]
            return _error(401, why, 3, WWW_Authenticate='Bearer error="invalid_token"')
        user, row = found
        used = await self.run(self.app.store.count, self.app.store.staff_key("uses", row.id), 60)
        if used > REQUESTS_PER_MINUTE:
            return _error(429, _("För många anrop med den här token: vänta en minut."),
                          Retry_After="60")
        request[STAFF_KEY] = {"name": user.name, "role": user.role, "unit": user.unit,
                              "token": row.id, "kind": row.kind}
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            await self.run(self.audit, user.name, "api", case, f"{where} -> {e.status}")
            raise
        except Exception:
            log.exception("a staff API request failed: %s", where)
            await self.run(self.audit, user.name, "api", case, f"{where} -> 500")
            return _error(500, _("Något gick fel på servern; serverns logg säger vad."), 1)
        await self.run(self.audit, user.name, "api", case, f"{where} -> {resp.status}")
        return resp

    # -- the routes
    def route(self, operation: ops.Op):
        async def handle(request: web.Request) -> web.Response:
            params: dict[str, Any] = {}
            for p in operation.params:
                if p.where == "path":
                    params[p.name] = request.match_info[p.name]
                elif p.where == "query" and p.name in request.query:
                    params[p.name] = request.query[p.name]
            if operation.method in ("POST", "PUT") and request.can_read_body:
                try:
                    body = await request.json()
                except ValueError:
                    return _error(400, _("Innehållet ska vara JSON."))
                if not isinstance(body, dict):
                    return _error(400, _("Innehållet ska vara ett JSON-objekt."))
                params.update({k: v for k, v in body.items() if k not in params})
            unknown = set(request.query) - {p.name for p in operation.params}
            if unknown:
                return _error(400, _("Okänd parameter: {names}.").format(
                    names=", ".join(sorted(unknown))))
            actor = request[STAFF_KEY]["name"]
            try:
                result = await self.run(ops.run, self.app, actor, operation.name, params)
            except ops.OpError as e:
                return _error(e.status, e.message, e.code)
            if isinstance(result, ops.Document):
                media, __, rest = result.media_type.partition(";")
                return web.Response(body=result.content, content_type=media.strip(),
                                    charset="utf-8" if "charset" in rest else None)
            return web.json_response(result, dumps=_dumps)

        return handle

    async def login_methods(self, request: web.Request) -> web.Response:
        s = self.app.settings
        return web.json_response({
            "token": True,
            "oidc": {"issuer": s.oidc_issuer, "client_id": s.oidc_client_id}
            if self.verifier else None})

    async def login_oidc(self, request: web.Request) -> web.Response:
        """An ID token from the identity provider, for a session token of tala's own."""
        if self.verifier is None:
            return _error(404, _("Den här servern har ingen identitetstjänst: be en "
                                 "administratör om en token (tala users token NAMN)."))
        try:
            body = await request.json()
            id_token, nonce = body["id_token"], body.get("nonce")
            if not isinstance(id_token, str) or not isinstance(nonce, (str, type(None))):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, _('Skicka {"id_token": "...", "nonce": "..."} som JSON.'))
        try:
            name, issued = await self.sign_in_oidc(
                id_token, nonce, client_address(request, self.app.settings.trusted_proxies))
        except SignInRefused as e:
            return _error(e.status, str(e), 3)
        return web.json_response({"token": issued.token, "expires_at":
                                  issued.expires_at.isoformat(), "name": name})

    async def sign_in_oidc(self, id_token: str, nonce: str | None, client: str,
                           kind: str = "oidc") -> tuple[str, Any]:
        """A verified ID token (used once, naming a tala user) for a session token of tala's
        own: the user's name and the issued token. SignInRefused says why not; the failure
        is counted for the client's address and audited. The API and the staff pages both
        sign in here."""
        from admin_cli.oidc import LoginError

        assert self.verifier is not None
        try:
            claims = await self.run(self.verifier.verify, id_token, nonce)
        except LoginError as e:
            await self.run(self.app.store.count, self.app.store.staff_key("failed", client),
                           FAILURE_WINDOW)
            await self.run(self.audit, "-", "refused", None, f"OIDC sign-in: {e}")
            raise SignInRefused(401, str(e)) from None
        name = claims[self.verifier.claim]
        digest = hashlib.sha256(id_token.encode()).hexdigest()
        ttl = max(int(claims["exp"] - time.time()) + 60, 60)
        first = await self.run(lambda: self.app.store.r.set(
            self.app.store.staff_key("idtoken", digest), 1, ex=ttl, nx=True))
        if not first:
            await self.run(self.audit, "-", "refused", None, f"OIDC sign-in of {name}: "
                           "ID token used before")
            raise SignInRefused(401, _("Den här inloggningen är redan använd: logga in igen."))
        if await self.run(self.app.db.user, name) is None:
            await self.run(self.audit, name, "refused", None, "OIDC sign-in: not a tala user")
            raise SignInRefused(403, _("'{name}' loggade in, men är inte användare i tala. En "
                                       "administratör lägger till dig med: tala users add "
                                       "{name} --role caseworker --unit ENHET").format(
                                           name=name))
        issued = await self.run(lambda: self.app.db.add_token(
            name, kind, timedelta(hours=SESSION_HOURS),
            "OIDC sign-in" if kind == "oidc" else f"OIDC sign-in ({kind})"))
        how = "OIDC" if kind == "oidc" else f"OIDC ({kind})"
        await self.run(self.audit, name, "login", None, f"{how}, token {issued.id}")
        return name, issued

    async def logout(self, request: web.Request) -> web.Response:
        """The end of a sign-in: its session token is revoked at once, so a copy of it (a
        login file left behind, a backup) opens nothing. A personal token was made by an
        administrator, perhaps for several computers: it is kept, and the answer says so."""
        staff = request[STAFF_KEY]
        if staff["kind"] == PERSONAL:
            return web.json_response({"revoked": False, "kind": PERSONAL})
        await self.run(lambda: self.app.db.revoke_tokens(token=staff["token"]))
        await self.run(self.audit, staff["name"], "logout", None, f"CLI, token {staff['token']}")
        return web.json_response({"revoked": True, "kind": staff["kind"]})

    async def openapi(self, request: web.Request) -> web.Response:
        from admin_cli.openapi import document

        return web.json_response(document(ops.registry()), dumps=_dumps)


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def add_staff_api(web_app: web.Application, app: App) -> StaffApi:
    """The staff routes and their guard, on the app `tala serve` runs."""
    api = StaffApi(app)
    web_app.middlewares.append(api.guard)
    web_app.router.add_get(PREFIX + "/openapi.json", api.openapi)
    web_app.router.add_get(PREFIX + "/login", api.login_methods)
    web_app.router.add_post(PREFIX + "/login/oidc", api.login_oidc)
    web_app.router.add_post(PREFIX + "/logout", api.logout)
    for operation in ops.registry().values():
        web_app.router.add_route(operation.method, PREFIX + operation.path,
                                 api.route(operation))

    async def stop(_: web.Application) -> None:
        api.pool.shutdown(wait=True)

    web_app.on_cleanup.append(stop)
    return api
