"""OpenID Connect with the municipality's identity provider.

The server side (`Verifier`): an ID token is believed only when it is signed by a key the
provider publishes (its JWKS, found through its discovery document), was issued by
TALA_OIDC_ISSUER for TALA_OIDC_CLIENT_ID, has not expired, and names a tala user in
TALA_OIDC_USER_CLAIM (preferred_username by default). `tala serve` then gives a session token
of its own (12 hours), so every later request is checked the one way tokens are.

The CLI side, through Authlib's OAuth 2 client, two ways:
- `browser_login`: the authorization code flow with PKCE (S256) for a native app (RFC 8252):
  the browser on this computer opens the provider's sign-in page, which sends it back to a
  one-time listener on 127.0.0.1 with the code; the code is worth nothing without the
  verifier only this process knows. For providers that do not allow the device flow.
- `device_login`: the device authorization grant (RFC 8628), for a terminal with no browser:
  the user opens the provider's page on any device, signs in there (with the municipality's
  multi-factor rules) and types the code the CLI shows.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from admin_cli.i18n import _

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
CACHE_SECONDS = 3600.0
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]


class LoginError(Exception):
    """The sign-in did not prove who this is; the message says what to do."""


def discover(issuer: str, timeout: float = 10.0) -> dict[str, Any]:
    import requests

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        resp = requests.get(url, timeout=timeout)
        resp.raise_for_status()
        meta = resp.json()
    except (requests.RequestException, ValueError) as e:
        raise LoginError(_("Identitetstjänsten svarar inte på {url} ({problem}).").format(
            url=url, problem=e)) from None
    if meta.get("issuer", "").rstrip("/") != issuer.rstrip("/"):
        raise LoginError(_("{url} anger en annan utfärdare ({issuer}).").format(
            url=url, issuer=meta.get("issuer")))
    return meta


class Verifier:
    def __init__(self, issuer: str, client_id: str, claim: str = "preferred_username",
                 clock: Callable[[], float] = time.time):
        self.issuer, self.client_id, self.claim = issuer, client_id, claim
        self.clock = clock
        self._lock = threading.Lock()
        self._meta: dict[str, Any] | None = None
        self._keys: Any = None
        self._fetched = 0.0

    def _key_set(self, refresh: bool = False) -> Any:
        import requests
        from joserfc.jwk import KeySet

        with self._lock:
            if refresh or self._keys is None or self.clock() - self._fetched > CACHE_SECONDS:
                self._meta = discover(self.issuer)
                try:
                    resp = requests.get(self._meta["jwks_uri"], timeout=10)
                    resp.raise_for_status()
                    self._keys = KeySet.import_key_set(resp.json())
                except (requests.RequestException, ValueError, KeyError) as e:
                    raise LoginError(_("Identitetstjänstens nycklar går inte att läsa "
                                       "({problem}).").format(problem=e)) from None
                self._fetched = self.clock()
            return self._keys

    def verify(self, id_token: str, nonce: str | None = None) -> dict[str, Any]:
        """The ID token's claims, or LoginError."""
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            try:
                token = jwt.decode(id_token, self._key_set(), algorithms=ALGORITHMS)
            except JoseError:  # the provider may have rolled its keys since we read them
                token = jwt.decode(id_token, self._key_set(refresh=True),
                                   algorithms=ALGORITHMS)
            checks: dict[str, Any] = {
                "iss": {"essential": True, "value": self.issuer},
                "aud": {"essential": True, "value": self.client_id},
                "exp": {"essential": True}, "sub": {"essential": True}}
            if nonce:
                checks["nonce"] = {"essential": True, "value": nonce}
            jwt.JWTClaimsRegistry(now=int(self.clock()), leeway=30, **checks) \
                .validate(token.claims)
        except (JoseError, ValueError) as e:
            raise LoginError(_("Inloggningen gäller inte ({why}).").format(
                why=getattr(e, "error", "token"))) from None
        name = token.claims.get(self.claim)
        if not isinstance(name, str) or not name:
            raise LoginError(_("Identitetstjänsten angav inte {claim}.").format(
                claim=self.claim))
        return token.claims


def device_login(issuer: str, client_id: str, show: Callable[[str, str], None],
                 timeout: float = 900.0) -> str:
    """Sign in by the device flow; the ID token. `show(url, code)` tells the user where to go
    and what to type."""
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc6749.errors import OAuth2Error

    meta = discover(issuer)
    if "device_authorization_endpoint" not in meta:
        raise LoginError(_("Identitetstjänsten erbjuder ingen inloggning med kod på en annan "
                           "enhet: använd en token (tala login --token)."))
    # A public client (the CLI keeps no secret): its id in the body, no client authentication.
    client = OAuth2Session(client_id, scope="openid profile", token_endpoint_auth_method="none")
    resp = client.post(meta["device_authorization_endpoint"], withhold_token=True,
                       data={"client_id": client_id, "scope": "openid profile"}, timeout=10)
    if resp.status_code != 200:
        raise LoginError(_("Identitetstjänsten nekade inloggningen ({status}).").format(
            status=resp.status_code))
    grant = resp.json()
    show(grant.get("verification_uri_complete") or grant["verification_uri"],
         grant["user_code"])
    interval = float(grant.get("interval", 5))
    deadline = time.monotonic() + min(float(grant.get("expires_in", timeout)), timeout)
    while time.monotonic() < deadline:
        time.sleep(interval)  # the provider's own pace (RFC 8628 section 3.5)
        try:
            token = client.fetch_token(meta["token_endpoint"], grant_type=DEVICE_GRANT,
                                       device_code=grant["device_code"], client_id=client_id)
        except OAuth2Error as e:
            if e.error == "authorization_pending":
                continue
            if e.error == "slow_down":
                interval += 5
                continue
            raise LoginError(_("Inloggningen blev inte klar ({error}).").format(
                error=e.error)) from None
        if not token.get("id_token"):
            raise LoginError(_("Identitetstjänsten gav ingen ID-token (scope openid)."))
        return token["id_token"]
    raise LoginError(_("Inloggningen tog för lång tid: kör tala login igen."))


SIGNED_IN_PAGE = ("<!doctype html><html lang=\"sv\"><meta charset=\"utf-8\"><title>tala</title>"
                  "<p>Du är inloggad i tala. Du kan stänga det här fönstret och gå tillbaka "
                  "till terminalen.</p></html>").encode("utf-8")


def browser_login(issuer: str, client_id: str, open_page: Callable[[str], object],
                  timeout: float = 300.0) -> tuple[str, str]:
    """Sign in in this computer's browser; the ID token and the nonce it must carry.
    `open_page(url)` sends the browser to the provider's sign-in page."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from urllib.parse import parse_qs, urlsplit

    answer: dict[str, str] = {}
    got = threading.Event()

    class Redirected(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if urlsplit(self.path).path != "/callback" or got.is_set():
                self.send_error(404)
                return
            answer.update(query)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(SIGNED_IN_PAGE)))
            self.end_headers()
            self.wfile.write(SIGNED_IN_PAGE)
            got.set()

        def log_message(self, *args: Any) -> None:
            pass  # the code must not reach a log

    listener = HTTPServer(("127.0.0.1", 0), Redirected)
    serving = threading.Thread(target=listener.serve_forever, kwargs={"poll_interval": 0.1},
                               daemon=True)
    serving.start()
    try:
        redirect_uri = f"http://127.0.0.1:{listener.server_address[1]}/callback"
        start = begin_code_flow(issuer, client_id, redirect_uri)
        open_page(start.url)
        if not got.wait(timeout):
            raise LoginError(_("Inloggningen i webbläsaren tog för lång tid: kör tala login "
                               "igen."))
    finally:
        listener.shutdown()
        listener.server_close()
    if answer.get("state") != start.state:
        raise LoginError(_("Webbläsaren kom tillbaka från en annan inloggning (state): försök "
                           "igen."))
    return finish_code_flow(start, answer), start.nonce


@dataclass(frozen=True)
class CodeFlow:
    """A started sign-in (authorization code flow with PKCE): where to send the browser, and
    what only this side knows until the provider sends it back."""

    url: str
    state: str
    nonce: str
    verifier: str
    redirect_uri: str
    issuer: str
    client_id: str


def begin_code_flow(issuer: str, client_id: str, redirect_uri: str) -> CodeFlow:
    """The provider's sign-in address for this sign-in (used by `tala login` and by the staff
    pages' sign-in)."""
    from authlib.common.security import generate_token
    from authlib.integrations.requests_client import OAuth2Session

    meta = discover(issuer)
    client = OAuth2Session(client_id, scope="openid profile", redirect_uri=redirect_uri,
                           code_challenge_method="S256", token_endpoint_auth_method="none")
    verifier, state, nonce = generate_token(64), secrets.token_urlsafe(24), \
        secrets.token_urlsafe(24)
    url, __ = client.create_authorization_url(meta["authorization_endpoint"], state=state,
                                             nonce=nonce, code_verifier=verifier)
    return CodeFlow(url, state, nonce, verifier, redirect_uri, issuer, client_id)


def finish_code_flow(flow: CodeFlow, answer: dict[str, str]) -> str:
    """The ID token for what the provider sent back (its query: code, or error); the caller
    has checked that `state` is this flow's."""
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc6749.errors import OAuth2Error

    if "code" not in answer:
        raise LoginError(_("Inloggningen nekades ({why}).").format(
            why=answer.get("error", "no code")))
    client = OAuth2Session(flow.client_id, scope="openid profile",
                           redirect_uri=flow.redirect_uri, code_challenge_method="S256",
                           token_endpoint_auth_method="none")
    try:
        token = client.fetch_token(discover(flow.issuer)["token_endpoint"],
                                   grant_type="authorization_code", code=answer["code"],
                                   code_verifier=flow.verifier, redirect_uri=flow.redirect_uri,
                                   client_id=flow.client_id)
    except OAuth2Error as e:
        raise LoginError(_("Inloggningen blev inte klar ({error}).").format(
                error=e.error)) from None
    if not token.get("id_token"):
        raise LoginError(_("Identitetstjänsten gav ingen ID-token (scope openid)."))
    return token["id_token"]
