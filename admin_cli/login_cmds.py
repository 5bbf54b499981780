"""`tala login` and `tala logout`: work with a tala server from this computer, as yourself.
Merged into the `tala` command by admin_cli/main.py; only Typer and Rich at import."""

from __future__ import annotations

import json
from typing import Optional

import typer

from admin_cli.common import err, fail, out
from admin_cli.i18n import _

commands = typer.Typer()


@commands.command(help=_(
    "Arbeta mot en tala-server från den här datorn: varje personalkommando går dit från och "
    "med nu, som du. Inloggningen sparas i din konfigurationsmapp, läsbar bara för dig."))
def login(
    server: str = typer.Option(..., "--server", help=_("tala-servern, t.ex. "
                                                       "https://tala.kommun.se")),
    token: Optional[str] = typer.Option(None, "--token", help=_(
        "En personlig token från en administratör (tala users token NAMN). Utan den: logga in "
        "med identitetstjänsten.")),
    browser: Optional[bool] = typer.Option(None, "--browser/--device", help=_(
        "Logga in i den här datorns webbläsare, eller på en annan enhet med en kod (förvalt: "
        "med en kod där identitetstjänsten tillåter det).")),
) -> None:
    from admin_cli.access import role_title
    from admin_cli.client import ClientError, Server, check_url, save_login

    try:
        url = check_url(server)
        if token is None:
            token = _sign_in(Server(url), browser)
        who = json.loads(Server(url, token.strip()).request("GET", "/me").content)
        path = save_login(url, token.strip(), who)
    except ClientError as e:
        fail(e.message, e.code)
    role = role_title(who["role"]) + (f", {who['unit']}" if who.get("unit") else "")
    out.print(_("Inloggad på {url} som {name} ({role}). Sparat i {path}; 'tala logout' glömmer "
                "det.").format(url=url, name=who["name"], role=role, path=path))


def _sign_in(server, browser: bool | None) -> str:
    """OpenID Connect with the server's identity provider: in this computer's browser
    (authorization code with PKCE) or on any device (device flow); a session token."""
    from admin_cli.client import ClientError
    from admin_cli.oidc import LoginError, browser_login, device_login, discover

    methods = json.loads(server.request("GET", "/login").content)
    if not methods.get("oidc"):
        raise ClientError(_("{url} loggar bara in med personliga token: be en administratör om "
                            "en (tala users token NAMN), och kör sedan tala login --server ... "
                            "--token ...").format(url=server.url))
    oidc = methods["oidc"]

    def show_code(url: str, code: str) -> None:
        err.print(_("Öppna {url} på din telefon eller dator, logga in och skriv koden "
                    "{code}").format(url=url, code=f"[bold]{code}[/bold]"))
        err.print(_("kod: {code}").format(code=code), style="dim")

    def open_page(url: str) -> None:
        import webbrowser

        err.print(_("Logga in i webbläsarfönstret som öppnas. Om inget öppnas, gå till den här "
                    "adressen:\n{url}").format(url=url))
        webbrowser.open(url)

    try:
        if browser is None:
            browser = "device_authorization_endpoint" not in discover(oidc["issuer"])
        if browser:
            id_token, nonce = browser_login(oidc["issuer"], oidc["client_id"], open_page)
        else:
            id_token, nonce = device_login(oidc["issuer"], oidc["client_id"], show_code), None
    except LoginError as e:
        raise ClientError(str(e), 3) from None
    reply = server.request("POST", "/login/oidc", body={"id_token": id_token, "nonce": nonce})
    return json.loads(reply.content)["token"]


@commands.command(help=_("Logga ut: servern spärrar inloggningen och den här datorn glömmer "
                         "den (en personlig token spärrar en administratör)."))
def logout() -> None:
    from admin_cli.client import ClientError, Server, load_login, login_file

    path, login = login_file(), load_login()
    if not path.exists():
        out.print(_("Du var inte inloggad på någon server."))
        return
    login = login or {}
    url, name = login.get("server"), (login.get("user") or {}).get("name", "NAMN")
    said: dict | None = None
    if url and login.get("token"):
        try:
            said = json.loads(Server(url, login["token"]).request("POST", "/logout").content)
        except ClientError as e:
            said = {"code": e.code, "message": e.message}
        except ValueError:
            said = {"code": 2, "message": ""}
    path.unlink()
    if said is None:
        out.print(_("Utloggad: {path} är borttagen.").format(path=path))
    elif said.get("revoked"):
        out.print(_("Utloggad: {url} har spärrat inloggningen och {path} är borttagen. "
                    "Personalkommandona arbetar mot den här datorns egen datamapp igen.").format(
            url=url, path=path))
    elif said.get("kind") == "personal":
        out.print(_("Utloggad: {path} är borttagen. Din personliga token gäller fortfarande där "
                    "du har sparat den; en administratör spärrar den med tala users revoke "
                    "{name}.").format(path=path, name=name))
    elif said.get("code") == 3:  # expired or revoked already: nothing left to revoke
        out.print(_("Utloggad: {path} är borttagen (inloggningen gällde redan inte).").format(
            path=path))
    else:  # the server away (4), or one of a version without /logout
        err.print(_("Utloggad på den här datorn: {path} är borttagen. {url} kunde inte spärra "
                    "inloggningen ({why}), så den gäller där tills den går ut eller en "
                    "administratör spärrar den: tala users revoke {name}").format(
            path=path, url=url, why=said.get("message") or "?", name=name))
