"""Settings, read once from the environment (and `.env`) in `main()`."""

from __future__ import annotations

import getpass
import ipaddress
import re
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.refusal import Refusal


class SettingsError(RuntimeError):
    """Settings that cannot work together; the message says what to set."""


class SetupNeeded(Refusal, RuntimeError):
    """A step the operator has still to take (the message says which), such as upgrading a new
    database's schema. A `Refusal`, so staff read it in their language."""


def _default_data_dir() -> str:
    return str(Path.home() / ".local" / "share" / "tala")


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: str = Field(default_factory=_default_data_dir, alias="TALA_DATA_DIR")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    # Where the children's data keys are kept (storage/keys.py): keys.db in the data dir, or
    # with DATABASE_URL that database, unless this names one of their own.
    keys_url: str | None = Field(default=None, alias="TALA_KEYS_URL")
    secret_key: str | None = Field(default=None, alias="TALA_SECRET_KEY")
    public_url: str | None = Field(default=None, alias="TALA_PUBLIC_URL")
    # The reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-Proto and
    # X-Forwarded-Host are believed, when TALA_PUBLIC_URL is not set; nobody else's are.
    trusted_proxies: str | None = Field(default=None, alias="TALA_TRUSTED_PROXIES")
    user: str = Field(default_factory=_default_user, alias="TALA_USER")
    # Staff sign-in with the municipality's identity provider (OpenID Connect): its issuer
    # URL, the client id registered for tala, and the claim that holds the tala user name.
    oidc_issuer: str | None = Field(default=None, alias="TALA_OIDC_ISSUER")
    oidc_client_id: str | None = Field(default=None, alias="TALA_OIDC_CLIENT_ID")
    oidc_user_claim: str = Field(default="preferred_username", alias="TALA_OIDC_USER_CLAIM")
    # How long a quiet session waits before one reminder, and before it expires (hours).
    remind_after_hours: float = Field(default=24, alias="TALA_REMIND_AFTER_HOURS")
    expire_after_hours: float = Field(default=14 * 24, alias="TALA_EXPIRE_AFTER_HOURS")
    # How long an invitation may wait before the child starts (days).
    invitation_days: int = Field(default=14, alias="TALA_INVITATION_DAYS")
    # Reminders only in the daytime, in this time zone (hours, 24h clock).
    timezone: str = Field(default="Europe/Stockholm", alias="TALA_TIMEZONE")
    day_starts: int = Field(default=8, alias="TALA_DAY_STARTS")
    day_ends: int = Field(default=20, alias="TALA_DAY_ENDS")
    # Reports never show a group smaller than this. An installation setting, not a report
    # option: two reports rounded for different sizes could be compared to narrow a count.
    min_group_size: int = Field(default=5, alias="TALA_MIN_GROUP_SIZE")
    # An alert nobody acknowledged within this many hours goes to the unit's manager.
    alert_escalate_hours: float = Field(default=4, alias="TALA_ALERT_ESCALATE_HOURS")
    # Who the child is told is asking, in invitations ("Socialtjänsten i Nacka").
    sender_name: str = Field(default="Socialtjänsten", alias="TALA_SENDER_NAME")

    # SMS through Twilio.
    twilio_account_sid: str | None = Field(default=None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(default=None, alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str | None = Field(default=None, alias="TWILIO_FROM_NUMBER")
    twilio_messaging_service_sid: str | None = Field(default=None,
                                                     alias="TWILIO_MESSAGING_SERVICE_SID")
    twilio_api_base_url: str | None = Field(default=None, alias="TWILIO_API_BASE_URL")
    # Messages per second to Twilio (a long code takes about 1; a short code far more).
    sms_rate: float = Field(default=1.0, alias="TALA_SMS_RATE")
    # A sender that stops mid-message (killed, crashed) has its claims taken over after this.
    send_lease_seconds: float = Field(default=60, alias="TALA_SEND_LEASE_SECONDS")
    # A message the provider cannot take for now (5xx, 429, unreachable) is tried again, ever
    # less often (at most 5 minutes apart), for this long after its first failed try.
    send_retry_seconds: float = Field(default=24 * 3600, alias="TALA_SEND_RETRY_SECONDS")
    # The country a phone number written without +country code belongs to.
    sms_default_region: str = Field(default="SE", alias="TALA_SMS_REGION")
    # WhatsApp through the same Twilio account: the business's WhatsApp sender (+46...), and
    # the invitation's pre-approved template in each language as Twilio Content SIDs,
    # "sv=HX...,ar=HX..." (a business may only start a WhatsApp conversation with a template;
    # sv is used for a language that has none). Its variable {{1}} is TALA_SENDER_NAME.
    twilio_whatsapp_from: str | None = Field(default=None, alias="TWILIO_WHATSAPP_FROM")
    twilio_whatsapp_templates: str | None = Field(default=None,
                                                  alias="TWILIO_WHATSAPP_TEMPLATES")
    whatsapp_rate: float = Field(default=10.0, alias="TALA_WHATSAPP_RATE")

    # Telegram.
    telegram_bot_token: str | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_bot_username: str | None = Field(default=None, alias="TELEGRAM_BOT_USERNAME")
    telegram_webhook_secret: str | None = Field(default=None, alias="TELEGRAM_WEBHOOK_SECRET")
    telegram_api_base_url: str | None = Field(default=None, alias="TELEGRAM_API_BASE_URL")
    telegram_rate: float = Field(default=25.0, alias="TALA_TELEGRAM_RATE")

    # Staff alerts by e-mail (bot/mail.py): smtp://USER:PASSWORD@HOST:587 (STARTTLS) or
    # smtps://...:465, and the address they come from.
    smtp_url: str | None = Field(default=None, alias="TALA_SMTP_URL")
    alert_from: str | None = Field(default=None, alias="TALA_ALERT_FROM")
    email_rate: float = Field(default=5.0, alias="TALA_EMAIL_RATE")

    # Rasa: the shared secret every call to `tala rasa-actions` must carry.
    rasa_token: str | None = Field(default=None, alias="TALA_RASA_TOKEN")

    def check_channels(self) -> None:
        """Refuse a channel switched on but not fully configured, saying what to set."""
        if self.twilio_account_sid or self.twilio_whatsapp_from:
            if not (self.twilio_account_sid and self.twilio_auth_token):
                raise SettingsError("SMS and WhatsApp need TWILIO_ACCOUNT_SID and "
                                   "TWILIO_AUTH_TOKEN.")
            if not (self.sms_on or self.twilio_whatsapp_from):
                raise SettingsError("SMS needs TWILIO_FROM_NUMBER or "
                                   "TWILIO_MESSAGING_SERVICE_SID (or, for WhatsApp alone, "
                                   "TWILIO_WHATSAPP_FROM).")
        if self.twilio_whatsapp_from:
            if "sv" not in self.whatsapp_templates:
                raise SettingsError("WhatsApp needs TWILIO_WHATSAPP_TEMPLATES with the "
                                   "invitation's approved template for Swedish at least, "
                                   "e.g. TWILIO_WHATSAPP_TEMPLATES=sv=HX0123...,ar=HX4567...")
        if self.smtp_url and not self.alert_from:
            raise SettingsError("E-mail alerts need TALA_ALERT_FROM too (the address they come "
                               "from), e.g. TALA_ALERT_FROM=tala@kommun.se.")
        for part in (self.trusted_proxies or "").split(","):
            try:
                if part.strip():
                    ipaddress.ip_network(part.strip(), strict=False)
            except ValueError:
                raise SettingsError(f"TALA_TRUSTED_PROXIES: '{part.strip()}' is not an address "
                                    "or network, e.g. TALA_TRUSTED_PROXIES=10.0.0.5,"
                                    "192.168.1.0/24.") from None
        if self.telegram_bot_token and not self.telegram_bot_username:
            raise SettingsError("Telegram needs TELEGRAM_BOT_USERNAME too (for the invitation "
                               "links), e.g. TELEGRAM_BOT_USERNAME=nacka_tala_bot.")

    @property
    def web_on(self) -> bool:
        """The web chat: its links go by SMS, and point at TALA_PUBLIC_URL."""
        return bool(self.sms_on and self.public_url)

    @property
    def sms_on(self) -> bool:
        return bool(self.twilio_account_sid and (self.twilio_from_number
                                                 or self.twilio_messaging_service_sid))

    @property
    def whatsapp_templates(self) -> dict[str, str]:
        """The invitation template's Content SID by language, from TWILIO_WHATSAPP_TEMPLATES."""
        pairs = (part.partition("=") for part in (self.twilio_whatsapp_templates or "").split(","))
        found = {lang.strip(): sid.strip() for lang, eq, sid in pairs if eq and sid.strip()}
        bad = [sid for sid in found.values() if not re.fullmatch(r"HX[0-9a-fA-F]{32}", sid)]
        if bad:
            raise SettingsError(f"TWILIO_WHATSAPP_TEMPLATES: '{bad[0]}' is not a Content SID "
                                "(HX and 32 hexadecimal digits, as Twilio's Content Template "
                                "Builder shows it).")
        return found

    @property
    def data_path(self) -> Path:
        # An empty TALA_DATA_DIR (a variable set from nothing) is the default, never the
        # current directory.
        return Path(self.data_dir or _default_data_dir()).expanduser()
