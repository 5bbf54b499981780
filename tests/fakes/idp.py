"""A local OpenID Connect identity provider on 127.0.0.1, standing in for the municipality's.

It speaks the parts of the protocol tala uses, on the wire:

    GET  /.well-known/openid-configuration   discovery
    GET  /jwks                               its public signing key (RS256, kid "k1")
    POST /device                             device authorization (RFC 8628): device_code,
                                             user_code, verification_uri, interval
    POST /device/approve                     what the user does in the browser: user_code and
                                             username (the test plays the user)
    GET  /authorize                          the authorization code flow with PKCE: the user
                                             `browser_user` is signed in at once and sent
                                             back to the (loopback) redirect_uri with a code
    POST /token                              grant_type device_code: authorization_pending
                                             until approved, then access_token and id_token;
                                             grant_type authorization_code: the code with
                                             its redirect_uri and the PKCE verifier (S256)

ID tokens carry iss, aud (the client id), sub, preferred_username, iat and exp, signed with
the provider's key. `id_token(...)` makes one directly, also with another key, audience or
expiry, for the tests that forge them. Every request is recorded in `requests`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from email.message import Message
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.fakes.http import Answer, HTTPFake


class FakeIdP(HTTPFake):
    def __init__(self, client_id: str = "tala-cli", interval: int = 1) -> None:
        super().__init__()
        self.client_id = client_id
        self.interval = interval
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256",
                                                         "use": "sig"})
        self.requests: list[tuple[str, str]] = []
        self.devices: dict[str, dict[str, Any]] = {}  # device_code -> grant
        self.codes: dict[str, dict[str, Any]] = {}  # authorization code -> its request
        self.browser_user = "anna"  # who signs in at /authorize

    @property
    def issuer(self) -> str:
        return self._base_url()

    def id_token(self, username: str, *, audience: str | None = None, lifetime: int = 300,
                 key: RSAKey | None = None, issuer: str | None = None,
                 nonce: str | None = None) -> str:
        now = int(time.time())
        claims = {"iss": issuer or self.issuer, "aud": audience or self.client_id,
                  "sub": f"sub-{username}", "preferred_username": username, "iat": now,
                  "exp": now + lifetime}
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key or self.key)

    def approve(self, user_code: str, username: str) -> None:
        with self._cond:
            for grant in self.devices.values():
                if grant["user_code"] == user_code:
                    grant["username"] = username
                    return
        raise KeyError(user_code)

    def _handle(self, method: str, target: str, headers: Message, raw: bytes) -> Answer:
        path = urlsplit(target).path
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        with self._cond:
            self.requests.append((method, path))
        base = self.issuer
        if method == "GET" and path == "/.well-known/openid-configuration":
            return 200, {"issuer": base, "jwks_uri": base + "/jwks",
                         "authorization_endpoint": base + "/authorize",
                         "token_endpoint": base + "/token",
                         "device_authorization_endpoint": base + "/device",
                         "response_types_supported": ["code"],
                         "id_token_signing_alg_values_supported": ["RS256"],
                         "code_challenge_methods_supported": ["S256"]}, {}
        if method == "GET" and path == "/jwks":
            return 200, {"keys": [self.key.as_dict(private=False)]}, {}
        if method == "POST" and path == "/device":
            if form.get("client_id") != self.client_id:
                return 401, {"error": "invalid_client"}, {}
            code = secrets.token_urlsafe(16)
            user_code = f"{secrets.randbelow(10**4):04d}-{secrets.randbelow(10**4):04d}"
            with self._cond:
                self.devices[code] = {"user_code": user_code, "username": None}
            return 200, {"device_code": code, "user_code": user_code,
                         "verification_uri": base + "/activate", "expires_in": 120,
                         "interval": self.interval}, {}
        if method == "POST" and path == "/device/approve":
            body = json.loads(raw or b"{}")
            try:
                self.approve(body["user_code"], body["username"])
            except KeyError:
                return 404, {"error": "no such code"}, {}
            return 200, {"approved": True}, {}
        if method == "GET" and path == "/authorize":
            return self._authorize({k: v[0] for k, v in parse_qs(urlsplit(target).query).items()})
        if method == "POST" and path == "/token" and form.get("grant_type") == \
                "authorization_code":
            return self._code_for_token(form)
        if method == "POST" and path == "/token":
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:device_code":
                return 400, {"error": "unsupported_grant_type"}, {}
            with self._cond:
                grant = self.devices.get(form.get("device_code", ""))
                if grant is None:
                    return 400, {"error": "invalid_grant"}, {}
                if grant["username"] is None:
                    return 400, {"error": "authorization_pending"}, {}
                del self.devices[form["device_code"]]
            return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                         "expires_in": 300, "id_token": self.id_token(grant["username"])}, {}
        return 404, {"error": "not found"}, {}

    def _authorize(self, q: dict[str, str]) -> Answer:
        redirect = q.get("redirect_uri", "")
        if q.get("client_id") != self.client_id or not redirect.startswith("http://127.0.0.1:"):
            return 400, {"error": "invalid_request"}, {}
        if q.get("response_type") != "code" or q.get("code_challenge_method") != "S256" \
                or not q.get("code_challenge") or "openid" not in q.get("scope", "").split():
            return 400, {"error": "invalid_request", "error_description": "PKCE S256"}, {}
        code = secrets.token_urlsafe(16)
        with self._cond:
            self.codes[code] = {"challenge": q["code_challenge"], "redirect_uri": redirect,
                                "nonce": q.get("nonce"), "username": self.browser_user}
        back = urlencode({"code": code, "state": q.get("state", "")})
        return 302, {}, {"Location": f"{redirect}?{back}"}

    def _code_for_token(self, form: dict[str, str]) -> Answer:
        with self._cond:
            grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant"}, {}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()) \
            .rstrip(b"=").decode()
        if challenge != grant["challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verifier"}, {}
        return 200, {"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                     "expires_in": 300,
                     "id_token": self.id_token(grant["username"], nonce=grant["nonce"])}, {}
