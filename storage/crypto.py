"""Data at rest: Fernet for contact details, free text and live session state, and a keyed
hash for looking a phone number or an invitation code up without storing it in the clear."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken


class SecretKeyError(RuntimeError):
    """TALA_SECRET_KEY is not a usable key."""


class Crypto:
    def __init__(self, key: str | bytes):
        key_bytes = key.encode() if isinstance(key, str) else key
        try:
            self._fernet = Fernet(key_bytes)
        except (ValueError, TypeError):
            raise SecretKeyError(
                "TALA_SECRET_KEY is not a Fernet key. Make one with: python -c \"from "
                "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"") \
                from None
        # A separate key for hashing, derived so one setting is enough.
        self._hash_key = hmac.new(key_bytes, b"tala lookup hash", hashlib.sha256).digest()

    @classmethod
    def configured(cls, secret_key: str | None, data_dir: Path, *,
                   create: bool = True) -> "Crypto":
        """The installation's key: TALA_SECRET_KEY when set, else the one kept in the data dir
        (made on first run; with `create` False a missing one is an error, not a new key)."""
        if secret_key:
            return cls(secret_key)
        if not create and not (Path(data_dir) / "secret.key").exists():
            raise SecretKeyError(
                f"No key to read tala's data with: TALA_SECRET_KEY is not set and there is no "
                f"{Path(data_dir) / 'secret.key'}. Set TALA_SECRET_KEY (or TALA_DATA_DIR) to "
                "what tala serve uses, then run the command again.")
        return cls.from_data_dir(data_dir)

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> "Crypto":
        """The key kept in the data dir, made on first run (readable by this user only)."""
        path = Path(data_dir) / "secret.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken:
            raise SecretKeyError("stored data cannot be read with this TALA_SECRET_KEY: was the "
                                 "key changed?") from None

    def lookup_hash(self, value: str) -> str:
        """A keyed hash (HMAC-SHA256) to find a phone number, chat or invitation code by
        without storing it: useless without the key, so not a way back to the value."""
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
