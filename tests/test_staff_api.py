"""The staff API over real HTTP (tala's aiohttp app on 127.0.0.1): who may read what by their
token, tokens that do not work, the audit log, OpenID Connect against a local identity
provider, and the transport rules."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest
import requests

from admin_cli.api import FAILURES_ALLOWED, add_staff_api
from admin_cli.ops import registry
from bot.server import build_web_app
from storage.sql import utcnow
from tests.fakes.idp import FakeIdP
from tests.fakes.server import RunningServer

API = "/api/v1"


def staff_people(app) -> dict[str, str]:
    """Nord and Syd, each with a case; an admin, two caseworkers, a manager; their tokens."""
    app.service.invite("N-1", 9, unit="Nord", actor="anna")
    app.service.invite("S-1", 9, unit="Syd", actor="bo")
    app.db.add_user("admin", "admin", None, None)
    app.db.add_user("anna", "caseworker", "Nord", None)
    app.db.add_user("bo", "caseworker", "Syd", None)
    app.db.add_user("mia", "manager", "Nord", None)
    # The server's own TALA_USER is an admin: it must not matter to anyone's request.
    app.db.add_user(app.settings.user, "admin", None, None)
    return {n: app.db.add_token(n, "personal", timedelta(days=1)).token
            for n in ("admin", "anna", "bo", "mia")}


@pytest.fixture
def served(app):
    web_app = build_web_app(app, worker=False)
    add_staff_api(web_app, app)
    with RunningServer(web_app) as server:
        yield app, server.url


def _get(url: str, path: str, token: str | None = None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(url + API + path, params=params, headers=headers, timeout=30)


def test_each_role_reads_only_what_it_may_and_every_request_is_audited(served):
    app, url = served
    t = staff_people(app)
    anna = _get(url, "/cases/N-1/summary", t["anna"])
    assert anna.status_code == 200 and anna.json()["case"] == "N-1"
    other = _get(url, "/cases/S-1/summary", t["anna"])
    assert other.status_code == 403 and "inget ärende 'S-1' i din enhet" in other.json()["error"]
    assert other.json()["exit"] == 3
    assert _get(url, "/cases/S-1/summary", t["bo"]).status_code == 200
    # A manager sees the unit's report, never a child's answers.
    report = _get(url, "/reports", t["mia"], format="json")
    assert report.status_code == 200 and report.json()["filters"]["unit"] == "Nord"
    denied = _get(url, "/cases/N-1/summary", t["mia"])
    assert denied.status_code == 403 and "inte läsa ett barns svar" in denied.json()["error"]
    assert _get(url, "/reports", t["mia"], unit="Syd").status_code == 403
    # Export is the admin's, whatever the server's TALA_USER (an admin) is.
    assert _get(url, "/export", t["anna"]).status_code == 403
    export = _get(url, "/export", t["admin"], format="csv")
    assert export.status_code == 200 and export.headers["Content-Type"].startswith("text/csv")
    assert _get(url, "/alerts", t["anna"]).json()["alerts"] == []
    entries = app.db.audit_entries()
    api = [(e.actor, e.case_ref, e.detail) for e in entries if e.action == "api"]
    assert ("anna", "N-1", f"GET {API}/cases/{{case}}/summary -> 200") in api
    assert ("anna", "S-1", f"GET {API}/cases/{{case}}/summary -> 403") in api
    assert ("mia", None, f"GET {API}/reports -> 200") in api
    assert ("admin", None, f"GET {API}/export -> 200") in api
    refused = {(e.actor, e.case_ref) for e in entries if e.action == "refused"}
    assert {("anna", "S-1"), ("mia", "N-1")} <= refused
    assert any(e.actor == "anna" and e.action == "summary" and e.case_ref == "N-1"
               for e in entries)  # the read itself, by the authenticated name
    assert not any(e.actor == app.settings.user for e in entries)


def test_a_wrong_expired_or_revoked_token_gets_401_and_is_audited(served):
    app, url = served
    t = staff_people(app)
    expired = app.db.add_token("anna", "personal", timedelta(days=1),
                               now=utcnow() - timedelta(days=2)).token
    revoked = app.db.add_token("anna", "personal", timedelta(days=1))
    app.db.revoke_tokens(token=revoked.id)
    forged = t["anna"][:-4] + "AAAA"
    for token, why in ((None, "Ingen token"), ("nonsense", "gäller inte"),
                       (forged, "gäller inte"), (expired, "har gått ut"),
                       (revoked.token, "har spärrats")):
        resp = _get(url, "/alerts", token)
        assert resp.status_code == 401, token
        assert why in resp.json()["error"]
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    reasons = [e.detail for e in app.db.audit_entries() if e.action == "refused"]
    assert sum(f"GET {API}/alerts: token" in r for r in reasons) == 5
    assert any(r.endswith("expired") for r in reasons) and any(
        r.endswith("revoked") for r in reasons)
    # Revoking every token of a user stops the one that worked a moment ago.
    assert _get(url, "/alerts", t["anna"]).status_code == 200
    app.db.revoke_tokens(user_name="anna")
    assert _get(url, "/alerts", t["anna"]).status_code == 401
    # A token in the URL is refused even when it is good, and never looked up.
    resp = requests.get(url + API + "/alerts", params={"token": t["admin"]}, timeout=10)
    assert resp.status_code == 400 and "aldrig i adressen" in resp.json()["error"]


def test_failed_sign_ins_from_one_address_are_stopped(served):
    app, url = served
    t = staff_people(app)
    for _ in range(FAILURES_ALLOWED):
        assert _get(url, "/alerts", "tala_0000_" + "x" * 40).status_code == 401
    blocked = _get(url, "/alerts", t["admin"])
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0


def test_answers_carry_security_headers_and_no_cors(served):
    app, url = served
    t = staff_people(app)
    resp = requests.get(url + API + "/me", headers={"Authorization": f"Bearer {t['anna']}",
                                                    "Origin": "https://evil.example"},
                        timeout=10)
    assert resp.json() == {"name": "anna", "role": "caseworker", "unit": "Nord"}
    assert resp.headers["Cache-Control"] == "no-store"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert "Access-Control-Allow-Origin" not in resp.headers
    pre = requests.options(url + API + "/alerts", timeout=10, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert pre.status_code >= 400 and "Access-Control-Allow-Origin" not in pre.headers


def test_bad_input_gets_a_clear_4xx(served):
    app, url = served
    t = staff_people(app)
    h = {"Authorization": f"Bearer {t['anna']}"}
    bad_age = requests.post(url + API + "/invitations", json={"case": "N-2", "age": "nine"},
                            headers=h, timeout=10)
    assert bad_age.status_code == 400 and "age ska vara ett heltal" in bad_age.json()["error"]
    not_json = requests.post(url + API + "/invitations", data="case=N-2", headers=h, timeout=10)
    assert not_json.status_code == 400
    missing = requests.post(url + API + "/invitations", json={"case": "N-2"}, headers=h,
                            timeout=10)
    assert missing.status_code == 400 and "age" in missing.json()["error"]
    unknown = _get(url, "/alerts", t["anna"], colour="red")
    assert unknown.status_code == 400
    made = requests.post(url + API + "/invitations", json={"case": "N-2", "age": 10},
                         headers=h, timeout=10)
    assert made.status_code == 200
    assert made.json()["invitation"]["case"] == "N-2"
    assert app.db.child("N-2").unit == "Nord"  # a caseworker invites into their own unit


WRONG = {int: ["nine", "", 10**30, -1, [1], {"a": 1}, True],
         str: [[], {"a": 1}, 7, "x" * 5000, "../../etc", "\u0000", "ä" * 300],
         bool: ["perhaps", 2, []], list: ["a,b,c", 5, {"a": 1}, [[1]]],
         "date": ["2026-13-45", "igår", 20260101, []]}


def test_no_malformed_request_to_any_operation_gets_a_500(served):
    """Every operation, each parameter in turn given values of the wrong kind, shape or size
    (the others left out or sensible): a 4xx with a message, never a 500."""
    from datetime import date

    app, url = served
    t = staff_people(app)
    h = {"Authorization": f"Bearer {t['admin']}"}
    for op in registry().values():
        for p in op.params:
            for value in WRONG[p.kind if p.kind is not date else "date"]:
                path = op.path
                for q in op.params:
                    if q.where == "path":
                        path = path.replace("{%s}" % q.name, str(value) if q is p else "N-1")
                target = url + API + path.replace("/../", "/%2E%2E/")
                send = {} if p.where == "path" else {p.name: value}
                if op.method in ("GET", "DELETE"):
                    send = {k: str(v) for k, v in send.items()}
                    resp = requests.request(op.method, target, params=send, headers=h,
                                            timeout=30)
                else:
                    resp = requests.request(op.method, target, json=send, headers=h, timeout=30)
                assert resp.status_code < 500, (op.name, p.name, value, resp.text)
                if resp.status_code >= 400:
                    assert resp.json()["error"], (op.name, p.name, value)


def test_the_server_publishes_its_openapi_description(served):
    _, url = served
    doc = requests.get(url + API + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    ops = {o["operationId"] for p in doc["paths"].values() for o in p.values()}
    assert set(registry()) <= ops
    invite = doc["paths"][API + "/invitations"]["post"]
    body = invite["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["case", "age"]
    assert body["properties"]["age"] == {"type": "integer"}


# --------------------------------------------------------------------------- OpenID Connect

@pytest.fixture
def oidc(app):
    with FakeIdP() as idp:
        app.settings.oidc_issuer = idp.issuer
        app.settings.oidc_client_id = idp.client_id
        web_app = build_web_app(app, worker=False)
        add_staff_api(web_app, app)
        with RunningServer(web_app) as server:
            yield app, server.url, idp


def _login(url: str, id_token: str) -> requests.Response:
    return requests.post(url + API + "/login/oidc", json={"id_token": id_token}, timeout=10)


def test_an_id_token_from_the_identity_provider_becomes_a_session_and_is_used_once(oidc):
    from joserfc.jwk import RSAKey

    app, url, idp = oidc
    staff_people(app)
    methods = requests.get(url + API + "/login", timeout=10).json()
    assert methods["oidc"] == {"issuer": idp.issuer, "client_id": idp.client_id}
    id_token = idp.id_token("anna")
    resp = _login(url, id_token)
    assert resp.status_code == 200 and resp.json()["name"] == "anna"
    session = resp.json()["token"]
    assert _get(url, "/me", session).json()["role"] == "caseworker"
    assert _get(url, "/cases/S-1/summary", session).status_code == 403  # still her unit only
    assert _login(url, id_token).status_code == 401  # replayed
    other_key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    for bad in (idp.id_token("admin", key=other_key), idp.id_token("admin", audience="x"),
                idp.id_token("admin", lifetime=-120), idp.id_token("admin", issuer="http://x"),
                "not.a.token"):
        refused = _login(url, bad)
        assert refused.status_code == 401, refused.text
    stranger = _login(url, idp.id_token("eve"))
    assert stranger.status_code == 403 and "inte användare i tala" in stranger.json()["error"]
    entries = app.db.audit_entries()
    assert any(e.actor == "anna" and e.action == "login" for e in entries)
    assert any(e.actor == "anna" and e.action == "api" and "/me -> 200" in e.detail
               for e in entries)
    assert sum(e.action == "refused" and "OIDC" in e.detail for e in entries) >= 6
    assert ("GET", "/jwks") in idp.requests


def test_logging_out_revokes_a_sign_in_s_token_and_keeps_a_personal_one(oidc):
    app, url, idp = oidc
    t = staff_people(app)
    session = _login(url, idp.id_token("anna")).json()["token"]
    other = _login(url, idp.id_token("anna", lifetime=600)).json()["token"]  # elsewhere

    def logout(token):
        return requests.post(url + API + "/logout", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})

    out = logout(session)
    assert out.status_code == 200 and out.json() == {"revoked": True, "kind": "oidc"}
    assert _get(url, "/me", session).status_code == 401  # a copy of it opens nothing now
    assert _get(url, "/me", other).status_code == 200  # only the token that logged out
    assert logout(session).status_code == 401
    kept = logout(t["anna"])
    assert kept.status_code == 200 and kept.json() == {"revoked": False, "kind": "personal"}
    assert _get(url, "/me", t["anna"]).status_code == 200
    assert logout(None).status_code == 401
    assert [e.detail.split(",")[0] for e in app.db.audit_entries()
            if e.actor == "anna" and e.action == "logout"] == ["CLI"]


def test_the_cli_device_sign_in_gets_an_id_token_the_server_accepts(oidc):
    import threading

    from admin_cli.oidc import device_login

    app, url, idp = oidc
    staff_people(app)
    shown: list[str] = []
    signed_in = threading.Event()

    def user_in_the_browser(verification_url: str, code: str) -> None:
        shown.append(verification_url)
        threading.Thread(target=lambda: (idp.approve(code, "mia"), signed_in.set())).start()

    id_token = device_login(idp.issuer, idp.client_id, user_in_the_browser, timeout=60)
    assert signed_in.is_set() and shown == [idp.issuer + "/activate"]
    session = _login(url, id_token).json()["token"]
    assert _get(url, "/reports", session, format="json").status_code == 200


# --------------------------------------------------------------------------- transport

def _outside_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: nothing is sent
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_plain_http_from_the_network_is_refused_unless_a_trusted_proxy_says_https(app):
    address = _outside_address()
    if address is None:
        pytest.skip("this machine has no network address besides loopback")
    t = staff_people(app)
    web_app = build_web_app(app, worker=False)
    add_staff_api(web_app, app)
    with RunningServer(web_app, host=address) as outside:
        resp = _get(outside.url, "/me", t["anna"])
        assert resp.status_code == 403 and "HTTPS" in resp.json()["error"]
        assert requests.get(outside.url + "/healthz", timeout=10).status_code == 200
    web_app = build_web_app(app, worker=False)
    add_staff_api(web_app, app)
    with RunningServer(web_app) as local:  # a proxy on this machine that says plain HTTP
        marked = requests.get(local.url + API + "/me", timeout=10, headers={
            "X-Forwarded-Proto": "http", "Authorization": f"Bearer {t['anna']}"})
        assert marked.status_code == 403
    app.settings.trusted_proxies = "127.0.0.1"
    web_app = build_web_app(app, worker=False)
    add_staff_api(web_app, app)
    with RunningServer(web_app) as proxied:
        forwarded = {"X-Forwarded-For": "10.1.2.3", "Authorization": f"Bearer {t['anna']}"}
        plain = requests.get(proxied.url + API + "/me", timeout=10,
                             headers={**forwarded, "X-Forwarded-Proto": "http"})
        assert plain.status_code == 403
        tls = requests.get(proxied.url + API + "/me", timeout=10,
                           headers={**forwarded, "X-Forwarded-Proto": "https"})
        assert tls.status_code == 200
        assert tls.headers["Strict-Transport-Security"].startswith("max-age=")


def test_the_cli_browser_sign_in_uses_pkce_and_the_server_checks_its_nonce(oidc):
    from admin_cli.oidc import browser_login

    app, url, idp = oidc
    staff_people(app)
    idp.browser_user = "bo"
    pages: list[str] = []

    def the_browser(page: str) -> None:
        pages.append(page)
        # The provider signs bo in and sends the browser back to the CLI's listener.
        landed = requests.get(page, timeout=10)
        assert landed.status_code == 200 and "Du är inloggad" in landed.text

    id_token, nonce = browser_login(idp.issuer, idp.client_id, the_browser, timeout=30)
    assert "code_challenge_method=S256" in pages[0] and "code_challenge=" in pages[0]
    wrong = requests.post(url + API + "/login/oidc", json={"id_token": id_token,
                                                         "nonce": "another"}, timeout=10)
    assert wrong.status_code == 401
    resp = requests.post(url + API + "/login/oidc", json={"id_token": id_token,
                                                        "nonce": nonce}, timeout=10)
    assert resp.status_code == 200 and resp.json()["name"] == "bo"
    assert _get(url, "/cases/S-1/summary", resp.json()["token"]).status_code == 200
