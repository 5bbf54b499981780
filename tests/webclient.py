"""A client for the staff pages below the browser (tests/test_staff_pages.py and the page
tests beside it): cookies kept the way Chromium keeps them on http://127.0.0.1, the CSRF token
read from a form, signing in with a token, and a child who raises an alert."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import requests

STAFF = "/staff"


class Browser:
    """A client that keeps cookies the way a browser does on http://127.0.0.1 (requests'
    cookie jar never sends a Secure cookie over plain HTTP, Chromium does on loopback)."""

    def __init__(self, url: str):
        self.url = url
        self.cookies: dict[str, str] = {}
        self.set_cookie: list[str] = []

    def _keep(self, resp: requests.Response) -> None:
        for header in resp.raw.headers.getlist("Set-Cookie"):
            self.set_cookie.append(header)
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def request(self, method: str, path: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        target = path if path.startswith("http") else self.url + path
        resp = requests.request(method, target, headers=headers, allow_redirects=False,
                                timeout=30, **kw)
        self._keep(resp)
        return resp

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: dict, **kw) -> requests.Response:
        return self.request("POST", path, data=data, **kw)

    def follow(self, resp: requests.Response) -> requests.Response:
        while resp.status_code in (301, 302, 303):
            location = resp.headers["Location"]
            resp = self.get(location if location.startswith("http") else
                            self.url + location if location.startswith("/") else location)
        return resp


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(b: Browser, token: str, next_page: str = STAFF + "/") -> requests.Response:
    form = b.get(STAFF + "/login")
    return b.post(STAFF + "/login", {"csrf": csrf_of(form.text), "token": token,
                                     "next": next_page})


def raise_alert(app, case: str = "N-1") -> int:
    """The child of `case` writes something that raises an urgent alert."""
    sid = app.service.invite(case, 12, unit="Nord", actor="anna").session_id
    app.service.handle(sid, "jag vill dö", message_id=f"{case}-m1", channel="console")
    return next(a.id for a, c in app.db.open_alerts("Nord") if c.case_ref == case)
