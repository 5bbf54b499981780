"""Signing in and out of the staff pages: with a personal token (`tala users token`), or with
the municipality's identity provider (OpenID Connect, the authorization code flow with PKCE,
the same provider and client as `tala login`). Either way the browser gets a session token of
its own (12 hours) in a cookie, and signing out revokes it on the server.
"""

from __future__ import annotations

import hmac
import json
from datetime import timedelta

from aiohttp import web

from admin_cli.api import SESSION_HOURS, SignInRefused, StaffApi, client_address
from admin_cli.i18n import _
from admin_cli.web.render import page
from admin_cli.web.session import (COOKIE, LANG_COOKIE, LANGS, LOGIN_COOKIE, PREFIX, STAFF,
                                   Guard, csrf_for, forget, new_login_secret, safe_next,
                                   see_other, set_cookie)

OIDC_COOKIE = "tala_oidc"  # the state of a sign-in under way at the identity provider
OIDC_SECONDS = 600  # to sign in there
KIND = "web"  # the session tokens the pages give (storage.tokens)


class Login:
    def __init__(self, api: StaffApi, guard: Guard):
        self.api, self.guard, self.app = api, guard, api.app

    async def form(self, request: web.Request, *, error: str | None = None,
                   status: int = 200) -> web.Response:
        if error is None and await self.guard.signed_in(request) is not None:
            raise web.HTTPSeeOther(safe_next(request.query.get("next")))
        secret = request.cookies.get(LOGIN_COOKIE) or new_login_secret()
        has_users = await self.api.run(self.app.db.has_users)
        resp = await page(self.api, request, "login.html", _("Logga in"), status=status,
                          csrf=csrf_for(secret), error=error, has_users=has_users,
                          oidc=self.api.verifier is not None,
                          next=safe_next(request.query.get("next")),
                          signed_out="signed_out" in request.query)
        set_cookie(resp, LOGIN_COOKIE, secret, 3600, same_site="Strict")
        return resp

    async def with_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token") or "").strip()
        target = safe_next(str(form.get("next") or ""))
        client = client_address(request, self.app.settings.trusted_proxies)
        if await self.guard.too_many_failures(client):
            return await self.form(request, status=429, error=_(
                "För många misslyckade inloggningar härifrån: vänta tio minuter."))
        if not token:
            return await self.form(request, status=400, error=_(
                "Skriv in din token (den börjar med tala_)."))
        found = await self.api.run(self.app.db.token_user, token)
        if isinstance(found, str):
            await self.guard.count_failure(client)
            await self.api.run(self.api.audit, "-", "refused", None,
                               f"web sign-in: token {found}")
            why = {"unknown": _("Den token gäller inte. Kontrollera att du fick med hela."),
                   "expired": _("Din token har gått ut: be en administratör om en ny."),
                   "revoked": _("Din token har spärrats: be en administratör om en ny.")}
            return await self.form(request, status=401, error=why[found])
        user, row = found
        return await self._signed_in(user.name, f"token {row.id}", target)

    async def _signed_in(self, name: str, how: str, target: str,
                         issued=None) -> web.Response:
        if issued is None:
            issued = await self.api.run(lambda: self.app.db.add_token(
                name, KIND, timedelta(hours=SESSION_HOURS), "staff pages"))
            await self.api.run(self.api.audit, name, "login", None,
                               f"web ({how}), token {issued.id}")
        resp = see_other(target)
        set_cookie(resp, COOKIE, issued.token, SESSION_HOURS * 3600)
        forget(resp, LOGIN_COOKIE)
        forget(resp, OIDC_COOKIE)
        return resp

    async def oidc_start(self, request: web.Request) -> web.Response:
        from admin_cli.oidc import LoginError, begin_code_flow

        if self.api.verifier is None:
            raise web.HTTPNotFound(reason=_("Den här servern har ingen identitetstjänst: logga "
                                            "in med en token."))
        s = self.app.settings
        try:
            flow = await self.api.run(begin_code_flow, s.oidc_issuer, s.oidc_client_id,
                                      self._redirect_uri(request))
        except LoginError as e:
            return await self.form(request, status=502, error=str(e))
        key = self.app.store.staff_key("weblogin", flow.state)
        remembered = json.dumps({"verifier": flow.verifier, "nonce": flow.nonce,
                                 "redirect_uri": flow.redirect_uri,
                                 "next": safe_next(request.query.get("next"))})
        await self.api.run(lambda: self.app.store.r.set(key, remembered, ex=OIDC_SECONDS))
        resp = see_other(flow.url)
        set_cookie(resp, OIDC_COOKIE, flow.state, OIDC_SECONDS)  # Lax: the provider's
        return resp  # redirect back is a top-level navigation from its site

    async def oidc_callback(self, request: web.Request) -> web.Response:
        from admin_cli.oidc import CodeFlow, LoginError, finish_code_flow

        state = request.query.get("state", "")
        mine = request.cookies.get(OIDC_COOKIE, "")
        if self.api.verifier is None or not state or not hmac.compare_digest(state, mine):
            return await self.form(request, status=400, error=_(
                "Inloggningen kom tillbaka från en annan webbläsare eller är för gammal: "
                "logga in igen."))
        key = self.app.store.staff_key("weblogin", state)
        remembered = await self.api.run(self.app.store.r.getdel, key)
        if remembered is None:
            return await self.form(request, status=400, error=_(
                "Inloggningen tog för lång tid eller är redan använd: logga in igen."))
        r = json.loads(remembered)
        s = self.app.settings
        flow = CodeFlow("", state, r["nonce"], r["verifier"], r["redirect_uri"],
                        s.oidc_issuer, s.oidc_client_id)
        client = client_address(request, s.trusted_proxies)
        try:
            id_token = await self.api.run(finish_code_flow, flow, dict(request.query))
            name, issued = await self.api.sign_in_oidc(id_token, flow.nonce, client, KIND)
        except LoginError as e:
            await self.guard.count_failure(client)
            return await self.form(request, status=401, error=str(e))
        except SignInRefused as e:
            return await self.form(request, status=e.status, error=str(e))
        return await self._signed_in(name, "OIDC", r["next"], issued)

    def _redirect_uri(self, request: web.Request) -> str:
        base = (self.app.settings.public_url or f"{request.scheme}://{request.host}")
        return base.rstrip("/") + PREFIX + "/login/oidc/callback"

    async def logout(self, request: web.Request) -> web.Response:
        staff = request[STAFF]
        await self.api.run(lambda: self.app.db.revoke_tokens(token=staff.token_id))
        await self.api.run(self.api.audit, staff.name, "logout", None,
                           f"web, token {staff.token_id}")
        resp = see_other(PREFIX + "/login?signed_out=1")
        forget(resp, COOKIE)
        return resp

    async def language(self, request: web.Request) -> web.Response:
        lang = request.match_info["lang"]
        if lang not in LANGS:
            raise web.HTTPNotFound(reason=_("Sidorna finns på svenska (sv) och engelska (en)."))
        resp = see_other(safe_next(request.query.get("next")))
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path=PREFIX, secure=True,
                        httponly=True, samesite="Lax")
        return resp


def routes(api: StaffApi, guard: Guard) -> list[web.RouteDef]:
    login = Login(api, guard)
    return [web.get(PREFIX + "/login", login.form),
            web.post(PREFIX + "/login", login.with_token),
            web.get(PREFIX + "/login/oidc", login.oidc_start),
            web.get(PREFIX + "/login/oidc/callback", login.oidc_callback),
            web.post(PREFIX + "/logout", login.logout),
            web.get(PREFIX + "/lang/{lang}", login.language)]
