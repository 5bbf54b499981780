"""Settings, read once from the environment (and `.env`) in `main()`."""

from __future__ import annotations

import getpass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    secret_key: str | None = Field(default=None, alias="TALA_SECRET_KEY")
    public_url: str | None = Field(default=None, alias="TALA_PUBLIC_URL")
    user: str = Field(default_factory=_default_user, alias="TALA_USER")
    # How long a quiet session waits before one reminder, and before it expires (hours).
    remind_after_hours: float = Field(default=24, alias="TALA_REMIND_AFTER_HOURS")
    expire_after_hours: float = Field(default=14 * 24, alias="TALA_EXPIRE_AFTER_HOURS")
    # How long an invitation may wait before the child starts (days).
    invitation_days: int = Field(default=14, alias="TALA_INVITATION_DAYS")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser()
