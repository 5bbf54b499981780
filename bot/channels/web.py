"""The web chat: the page a child opens from the SMS link (`tala invite --channel web`).

    GET  /c/<token>          the chat page, in the child's language, right to left where the
                             language is; the first browser to open it keeps it (a cookie)
    POST /c/<token>/open     start or resume: the introduction, or where the child was
    POST /c/<token>/say      a typed message {"id", "text"}, or a button {"id", "question",
                             "answer"}; the same commands as by SMS ("/back", "/pause" ...)
    GET  /c/<token>/aloud    the question being asked, spoken (OGG/Opus, the same offline
                             speech files as Telegram's voice messages), played in the page
    GET  /c/static/<file>    the page's one script and style sheet

Every message goes through the conversation service's `receive`, as any channel's does; `id`
is made by the page once per message, so a message sent again after a network failure is
applied once. Nothing is fetched from elsewhere, nothing a child typed becomes markup (the
script sets only text), and the link's token never leaves the page (no Referer).
The service side (tokens, the device a link is open on, the SMS) is bot/weblinks.py.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

import redis
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from bot.app import App
from bot.receive import ANSWERED, DUPLICATE, STALE, Received
from bot.render import face
from bot.speech import NO_VOICE, Speech, spoken_text
from bot.weblinks import ELSEWHERE, OPEN, TOKEN_LENGTH, WEB
from flows import engine
from flows import messages as M
from flows.engine import RLM, Say, State
from flows.i18n import SOURCE_LANG

log = logging.getLogger("tala.webchat")
STATIC = Path(__file__).resolve().parent / "webchat"
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css"}
COOKIE = "tala_chat"
TOKEN = re.compile(f"[A-Z2-9]{{{TOKEN_LENGTH}}}")
MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_TEXT = 2000  # characters in one message; a child's longest are a few hundred
MAX_JSON = 8 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "media-src 'self'; img-src 'self'; form-action 'none'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "Cache-Control": "no-store",
           "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
           "X-Frame-Options": "DENY", "X-Robots-Tag": "noindex, nofollow",
           "Cross-Origin-Opener-Policy": "same-origin",
           "Cross-Origin-Resource-Policy": "same-origin"}
# The page's words, in the child's language (flows/messages.py).
LABELS = {"send": M.WEB_SEND, "type_here": M.WEB_TYPE_HERE, "back": M.WEB_BACK,
          "pause": M.WEB_PAUSE, "language": M.WEB_LANGUAGE, "answers": M.WEB_ANSWERS,
          "stop": M.WEB_STOP, "bigger": M.WEB_BIGGER, "aloud": M.READ_ALOUD,
          "done": M.DONE_CHOOSING, "offline": M.WEB_OFFLINE, "title": M.WEB_TITLE}
Run = Callable[..., Awaitable[Any]]


def message_json(say: Say) -> dict[str, Any]:
    """One message as the page shows it: a text, or a question with its buttons."""
    p = say.prompt
    if p is None:
        return {"text": say.text}
    return {"text": p.text, "hint": p.hint, "question": p.question_id, "multi": p.multi,
            "choices": [{"key": k, "label": label.lstrip(RLM), "face": face(p, k)}
                        for k, label in p.choices],
            "scale": list(p.scale_range) if p.scale_range and not p.choices else None}


class WebChat:
    def __init__(self, app: App, run: Run, speech: Speech | None = None):
        self.app = app
        self.svc = app.service
        self.run = run
        self.catalogs = app.runtime.catalogs
        self.speech = speech or Speech(app.settings.data_path / "speech")
        self.files = {p.name: (p.read_bytes(), STATIC_TYPES[p.suffix])
                      for p in STATIC.iterdir() if p.suffix in STATIC_TYPES}

    async def _run(self, fn: Callable, *args: Any) -> Any:
        """The service's work in the server's threads; Redis or SQL away is a 503 (the page
        sends the message again, with the same id, so it counts once)."""
        try:
            return await self.run(fn, *args)
        except (redis.RedisError, SQLAlchemyError) as e:
            self.app.metrics.errors.labels(WEB, "storage").inc()
            log.error("web chat request failed: %s", type(e).__name__)
            raise web.HTTPServiceUnavailable(text="try again") from None

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/c/static/{name}", self.static), web.get("/c/{token}", self.page),
                web.post("/c/{token}/open", self.open), web.post("/c/{token}/say", self.say),
                web.get("/c/{token}/aloud", self.aloud)]

    # ------------------------------------------------------------------ pages
    async def static(self, request: web.Request) -> web.Response:
        found = self.files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        return web.Response(body=found[0], content_type=found[1], charset="utf-8",
                            headers={"Cache-Control": "max-age=3600",
                                     "X-Content-Type-Options": "nosniff"})

    async def page(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        device = request.cookies.get(COOKIE)
        verdict, state, new_device = (await self._run(self.svc.web_open, token, device)
                                      if TOKEN.fullmatch(token) else ("closed", None, None))
        if verdict == ELSEWHERE:
            return self._notice(state.lang if state else SOURCE_LANG, [M.WEB_ELSEWHERE], 409)
        if verdict != OPEN:
            return self._notice(SOURCE_LANG, [M.WEB_CLOSED, M.HELP_NOW], 404)
        resp = web.Response(text=self._chat_html(state), content_type="text/html",
                            charset="utf-8", headers=HEADERS)
        if new_device:
            settings = self.app.settings
            secure = (settings.public_url or "").startswith("https://") and \
                request.host == settings.public_url.split("//", 1)[1].split("/", 1)[0]
            resp.set_cookie(COOKIE, new_device, path=f"/c/{token}", httponly=True,
                            samesite="Strict", secure=secure,
                            max_age=int(self.app.policy.invitation_open.total_seconds()))
        return resp

    def _t(self, lang: str, msgid: str) -> str:
        return self.catalogs.gettext(lang, msgid)

    def labels(self, lang: str) -> dict[str, str]:
        return {k: self._t(lang, v) for k, v in LABELS.items()}

    def _shell(self, lang: str, body: str) -> str:
        d = "rtl" if self.catalogs.rtl(lang) else "ltr"
        title = html.escape(self._t(lang, M.WEB_TITLE))
        return (f'<!doctype html>\n<html lang="{html.escape(lang)}" dir="{d}">\n<head>'
                '<meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                '<meta name="robots" content="noindex"><meta name="referrer" '
                f'content="no-referrer"><title>{title}</title>'
                '<link rel="stylesheet" href="/c/static/chat.css"></head>\n'
                f'<body>\n{body}\n</body>\n</html>\n')

    def _notice(self, lang: str, msgids: list[str], status: int) -> web.Response:
        paras = "".join(f"<p>{html.escape(self._t(lang, m))}</p>" for m in msgids)
        title = html.escape(self._t(lang, M.WEB_TITLE))
        return web.Response(text=self._shell(lang, f'<main class="notice"><h1 class="hidden">'
                                                   f'{title}</h1>{paras}</main>'),
                            status=status, content_type="text/html", charset="utf-8",
                            headers=HEADERS)

    def _chat_html(self, state: State) -> str:
        t = {k: html.escape(v) for k, v in self.labels(state.lang).items()}
        tools = "".join(f'<button type="button" data-command="/{c}">{t[c]}</button>'
                        for c in ("back", "pause", "answers", "stop"))
        body = (
            f'<main id="chat">\n<h1 class="hidden">{t["title"]}</h1>\n'
            '<header><button type="button" id="bigger" aria-pressed="false">'
            f'{t["bigger"]}</button><button type="button" data-command="/language">'
            f'{t["language"]}</button></header>\n'
            '<ol id="log" aria-live="polite"></ol>\n'
            '<div id="buttons"></div>\n'
            f'<p id="offline" role="alert" hidden>{t["offline"]}</p>\n'
            '<form id="typed"><label for="text" class="hidden">'
            f'{t["type_here"]}</label><input id="text" name="text" autocomplete="off" '
            f'maxlength="{MAX_TEXT}" placeholder="{t["type_here"]}">'
            f'<button type="submit">{t["send"]}</button></form>\n'
            f'<nav id="tools">{tools}</nav>\n</main>\n'
            '<script src="/c/static/chat.js"></script>')
        return self._shell(state.lang, body)

    # ------------------------------------------------------------------ messages
    async def _message(self, request: web.Request) -> tuple[str, dict]:
        """The token and the JSON of a message from the page that has the link; raises 4xx
        for anything else (a forged or garbled request changes nothing)."""
        token = request.match_info["token"]
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="the page sends JSON")
        if request.content_length is not None and request.content_length > MAX_JSON:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_JSON,
                                                actual_size=request.content_length)
        try:
            data = await request.json()
        except (ValueError, UnicodeDecodeError, web.RequestPayloadError):
            raise web.HTTPBadRequest(text="not JSON") from None
        if not isinstance(data, dict) or not MESSAGE_ID.fullmatch(str(data.get("id", ""))):
            raise web.HTTPBadRequest(text="a message needs an id")
        await self._from_its_device(request, token)
        return token, data

    async def _from_its_device(self, request: web.Request, token: str) -> None:
        """Raise 403 unless the request comes from the device the link is open on."""
        if not TOKEN.fullmatch(token) or not await self._run(
                self.svc.web_device_ok, token, request.cookies.get(COOKIE)):
            self.app.metrics.errors.labels(WEB, "forbidden").inc()
            raise web.HTTPForbidden(text="this link is open elsewhere, or no longer works")

    async def open(self, request: web.Request) -> web.Response:
        token, data = await self._message(request)
        got = await self._run(lambda: self.svc.receive(WEB, token, "", f"o{data['id']}",
                                                      start=True))
        self.app.metrics.messages.labels(WEB, "in").inc()
        return self._answer(got)

    async def say(self, request: web.Request) -> web.Response:
        token, data = await self._message(request)
        question, answer, text = data.get("question"), data.get("answer"), data.get("text")
        if question is not None:
            if not isinstance(question, str) or not isinstance(answer, str) or \
                    len(question) > 64 or len(answer) > 200:
                raise web.HTTPBadRequest(text="a button sends a question and an answer")
            text = answer
        elif not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
            raise web.HTTPBadRequest(text=f"a message is text, at most {MAX_TEXT} characters")
        got = await self._run(lambda: self.svc.receive(WEB, token, text, f"w{data['id']}",
                                                      answers=question))
        self.app.metrics.messages.labels(WEB, "in").inc()
        return self._answer(got)

    def _answer(self, got: Received) -> web.Response:
        state = got.state
        if got.outcome == STALE:
            says = [Say(self.svc.text_for(state, M.ALREADY_ANSWERED))]
        elif got.outcome in (ANSWERED, DUPLICATE) and state is not None:
            says = got.says
        else:  # gone (erased, or ended and let go): as a link that no longer works
            return web.json_response({"closed": self._t(SOURCE_LANG, M.WEB_CLOSED)},
                                     status=410, headers=HEADERS)
        lang = state.lang
        return web.json_response({
            "lang": lang, "dir": "rtl" if self.catalogs.rtl(lang) else "ltr",
            "labels": self.labels(lang), "messages": [message_json(s) for s in says],
            "aloud": self.speech.can_speak(lang),
            "over": state.status in engine.FINISHED}, headers=HEADERS)

    # ------------------------------------------------------------------ read aloud
    async def aloud(self, request: web.Request) -> web.Response:
        """The question being asked, spoken; where it cannot be, 404 with the words that say
        why in the child's language (the page shows them instead)."""
        token = request.match_info["token"]
        await self._from_its_device(request, token)
        ogg, why = await self._run(self._speak, token)
        if ogg is None:
            return web.json_response({"text": why}, status=404, headers=HEADERS)
        return web.Response(body=ogg, content_type="audio/ogg",
                            headers={**HEADERS, "Cache-Control": "private, max-age=3600"})

    def _speak(self, token: str) -> tuple[bytes | None, str]:
        state = self.svc.asking(WEB, token)
        instead = self.svc.read_aloud_instead(state)
        if instead is None:
            why = self.speech.why_not(state.lang)
            instead = None if why is None else \
                M.READ_ALOUD_NO_VOICE if why == NO_VOICE else M.READ_ALOUD_OFF
        if instead is None:
            key = f"{state.questionnaire_id}:{state.questionnaire_version}:{state.current}:" \
                  f"{state.lang}"  # as Telegram's voice message: one speech file for both
            ogg = self.speech.speak(spoken_text(self.svc.prompt(state)), state.lang, key)
            if ogg is not None:
                return ogg, ""
            instead = M.READ_ALOUD_OFF
        return None, self.svc.text_for(state, instead)
