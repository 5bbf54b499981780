"""Data at rest: Fernet for contact details, free text and live session state, and a keyed
hash for looking a phone number or an invitation code up without storing it in the clear."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import zlib
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

    # Live state in Redis is kept compact: the Fernet token as raw bytes (its base64 is a
    # third larger), and a reply to remember compressed first. Redis memory per live session
    # is a limit (bench/burst.py), and 10,000 pupils may start a survey in one minute.
    # Only replies are compressed: what the child was sent, which holds nothing the child
    # does not see and no text anyone else chose, so a stored length reveals nothing (no
    # compression oracle). The state, with the number in it, is not.
    _RAW = b"\x80"  # Fernet's version byte: a raw token
    _ZIPPED = b"z"  # then a raw token of zlib-compressed data
    _BASE64 = b"gAAAAA"  # a token as Fernet writes it: state stored before this format

    def seal(self, data: bytes, *, compress: bool = False) -> bytes:
        """`data` encrypted for Redis, as compact bytes (see above); `unseal` reads it back."""
        if compress:
            return self._ZIPPED + base64.urlsafe_b64decode(
                self._fernet.encrypt(zlib.compress(data, 6)))
        return base64.urlsafe_b64decode(self._fernet.encrypt(data))

    def unseal(self, blob: bytes) -> bytes:
        try:
            if blob.startswith(self._BASE64):
                return self._fernet.decrypt(blob)
            zipped = blob.startswith(self._ZIPPED)
            data = self._fernet.decrypt(base64.urlsafe_b64encode(blob[1:] if zipped else blob))
        except InvalidToken:
            raise SecretKeyError("stored data cannot be read with this TALA_SECRET_KEY: was the "
                                 "key changed?") from None
        return zlib.decompress(data) if zipped else data

    def lookup_hash(self, value: str) -> str:
        """A keyed hash (HMAC-SHA256) to find a phone number, chat or invitation code by
        without storing it: useless without the key, so not a way back to the value."""
        return hmac.new(self._hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
