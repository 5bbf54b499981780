"""Data at rest: Fernet for contact details, free text and live session state, and a keyed
hash for looking a phone number or an invitation code up without storing it in the clear.

What belongs to a session (`subject`: its id) is encrypted with that session's own data key
(storage/keys.py), so erasing the child destroys the key and with it every copy; staff contact
details and what has no session use the installation key. Data written before sessions had
keys of their own is still read with the installation key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import threading
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

if TYPE_CHECKING:
    from storage.keys import KeyStore


class SecretKeyError(RuntimeError):
    """TALA_SECRET_KEY is not a usable key."""


LOOKUP_SECRET = "_lookup"  # the key store's name for the lookup-hash key, once rotated
ANONYMOUS = "a:"  # storage.keys.ANONYMOUS: an anonymous session's subject, "a:<session id>"


def _anonymous(subject: str | None) -> bool:
    return bool(subject) and subject.startswith(ANONYMOUS)


def subject_of(state) -> str:
    """The subject a session's data is encrypted for (a flows.engine.State): its id, or for an
    anonymous survey session "a:" and its id (a key derived, not stored: storage/keys.py)."""
    return ANONYMOUS + state.session_id if state.campaign_id else state.session_id


def key_material(key: str | bytes) -> list[bytes]:
    """The installation key(s) as written in TALA_SECRET_KEY or secret.key: one Fernet key,
    or during `tala keys rotate` the new one first and the one before after it (separated by
    commas or white space)."""
    text = key.decode() if isinstance(key, bytes) else key
    return [k.encode() for k in text.replace(",", " ").split()]


class Crypto:
    def __init__(self, key: str | bytes):
        self.material = key_material(key)
        try:
            fernets = [Fernet(k) for k in self.material]
        except (ValueError, TypeError):
            fernets = []
        if not fernets:
            raise SecretKeyError(
                "TALA_SECRET_KEY is not a Fernet key. Make one with: python -c \"from "
                "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"")
        # Encrypts with the first, reads with any (a rotation under way has two).
        self._fernet = fernets[0] if len(fernets) == 1 else MultiFernet(fernets)
        # A separate key for hashing, derived from the installation key (the older one while
        # a rotation is under way) so one setting is enough; once that key is rotated away
        # the key store keeps it (LOOKUP_SECRET), since every stored hash depends on it.
        self._derived_hash_key = hmac.new(self.material[-1], b"tala lookup hash",
                                          hashlib.sha256).digest()
        self._hash_key: bytes | None = None
        self._where_keys: Callable[[], tuple[str | None, Path]] | None = None
        self._keys: KeyStore | None = None
        self._keys_lock = threading.RLock()

    @property
    def hash_key(self) -> bytes:
        if self._hash_key is None:
            with self._keys_lock:
                if self._hash_key is None:
                    keys = self.keys
                    stored = keys.secret(LOOKUP_SECRET) if keys is not None else None
                    self._hash_key = stored or self._derived_hash_key
        return self._hash_key

    def keep_keys(self, where: Callable[[], tuple[str | None, Path]]) -> None:
        """Give sessions data keys of their own, kept where `where()` says (the key store's
        database URL or None, and the data directory); opened when first needed."""
        self._where_keys = where

    @property
    def keys(self) -> KeyStore | None:
        if self._keys is None and self._where_keys is not None:
            with self._keys_lock:
                if self._keys is None:
                    from storage.keys import KeyStore, keys_engine

                    self._keys = KeyStore(keys_engine(*self._where_keys()), self._fernet)
        return self._keys

    def close(self) -> None:
        if self._keys is not None:
            self._keys.engine.dispose()

    @property
    def hash_ready(self) -> bool:
        """Whether `lookup_hash` hashes with no read of the key store."""
        return self._hash_key is not None

    def holds_key(self, sid: str) -> bool:
        """Whether the session's data is read and written with no read of the key store: its
        key (or, for an anonymous survey's session, its derived key) is in memory, or there
        are no data keys at all."""
        if self._keys is None:
            return self._where_keys is None
        return self._keys.holds(sid) or self._keys.holds(ANONYMOUS + sid)

    def _key(self, subject: str | None, create: bool) -> Fernet | None:
        keys = self.keys if subject else None
        return keys.get(subject, create=create) if keys is not None else None

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

    def encrypt(self, text: str, subject: str | None = None) -> bytes:
        """`text` encrypted with `subject`'s data key (made now if it has none), or without a
        subject with the installation key. An anonymous session's token is marked (`a`), so
        it is read by its session id alone."""
        token = (self._key(subject, True) or self._fernet).encrypt(text.encode("utf-8"))
        return self._ANON + token if _anonymous(subject) else token

    def decrypt(self, token: bytes, subject: str | None = None) -> str:
        """`token` as text; `subject` is the session id the row or job belongs to."""
        if token[:1] == self._ANON:
            own = self._key(ANONYMOUS + subject if subject else None, False)
            tries, token = ((own,) if own is not None else ()), token[1:]
        else:
            own = self._key(subject, False)
            # Written before its session had a key: the installation's.
            tries = (own, self._fernet) if own is not None else (self._fernet,)
        for fernet in tries:
            try:
                return fernet.decrypt(token).decode("utf-8")
            except InvalidToken:
                continue
        raise SecretKeyError("stored data cannot be read with this TALA_SECRET_KEY: was the "
                             "key changed, or the child erased?")

    # What tala keeps in Redis is kept compact: sealed with AES-256-GCM under the session's
    # data key (storage.keys.DataKey; the session id is its associated data, so a value
    # copied under another session's key does not open), or as a raw Fernet token where there
    # is no data key (its base64 is a third larger). Redis memory per live session is a limit
    # (bench/wrk.py), and 10,000 pupils may start a survey in one minute. `compress` is for
    # what holds nothing the child does not see and no text anyone else chose, so a stored
    # length reveals nothing (no compression oracle); a live session's record compresses only
    # the child's own answers itself (storage/statecodec.py).
    # The first byte says which key, which cipher and whether compressed:
    _RAW = b"\x80"  # Fernet's version byte: a raw token, installation key
    _ZIPPED = b"z"  # zlib-compressed, installation key
    _OWN = b"s"  # Fernet, the session's data key (written before AES-GCM; read only)
    _OWN_ZIPPED = b"t"  # the same, compressed
    _ANON = b"a"  # Fernet, an anonymous session's derived key (also marks `encrypt`'s)
    _ANON_ZIPPED = b"b"  # the same, compressed (read only)
    # AES-GCM, the session's data key: nonce (12 bytes), ciphertext, tag. (Not "g": a token of
    # Fernet's base64 begins so.)
    _GCM = b"e"
    _GCM_ZIPPED = b"E"
    _ANON_GCM = b"f"  # AES-GCM, an anonymous session's derived key
    _ANON_GCM_ZIPPED = b"F"
    _BASE64 = b"gAAAAA"  # a token as Fernet writes it: state stored before this format
    _ANON_HEADS = (_ANON, _ANON_ZIPPED, _ANON_GCM, _ANON_GCM_ZIPPED)
    _ZIPPED_HEADS = (_OWN_ZIPPED, _ANON_ZIPPED, _GCM_ZIPPED, _ANON_GCM_ZIPPED)
    _GCM_HEADS = (_GCM, _GCM_ZIPPED, _ANON_GCM, _ANON_GCM_ZIPPED)
    _WITH_DATA_KEY = (_OWN, _OWN_ZIPPED, _ANON, _ANON_ZIPPED, *_GCM_HEADS)

    def seal(self, data: bytes, *, compress: bool = False, subject: str | None = None) -> bytes:
        """`data` encrypted for Redis, as compact bytes (see above), with `subject`'s data key
        when it has a subject; `unseal` reads it back by the session id."""
        own = self._key(subject, True)
        if compress:
            data = zlib.compress(data, 6)
        if own is not None:  # a storage.keys.DataKey
            nonce = os.urandom(12)
            head = (self._ANON_GCM_ZIPPED if compress else self._ANON_GCM) \
                if _anonymous(subject) else (self._GCM_ZIPPED if compress else self._GCM)
            return head + nonce + own.aead.encrypt(nonce, data, subject.encode())
        token = base64.urlsafe_b64decode(self._fernet.encrypt(data))
        return self._ZIPPED + token if compress else token

    def sealed_with_data_key(self, blob: bytes) -> bool:
        """Whether `seal` wrote `blob` with a session's data key (not the installation's)."""
        return blob[:1] in self._WITH_DATA_KEY

    def unseal(self, blob: bytes, subject: str | None = None) -> bytes:
        head = blob[:1]
        try:
            if blob.startswith(self._BASE64):
                return self._fernet.decrypt(blob)
            if head in self._WITH_DATA_KEY:
                full = ANONYMOUS + subject if head in self._ANON_HEADS and subject else subject
                own = self._key(full, False)
                if own is None:
                    raise SecretKeyError("this session's data key is gone (the child was "
                                         "erased), or its data was read without its id")
                if head in self._GCM_HEADS:
                    data = own.aead.decrypt(blob[1:13], blob[13:], full.encode())
                else:
                    data = own.decrypt(base64.urlsafe_b64encode(blob[1:]))
                return zlib.decompress(data) if head in self._ZIPPED_HEADS else data
            zipped = head == self._ZIPPED
            data = self._fernet.decrypt(base64.urlsafe_b64encode(blob[1:] if zipped else blob))
        except (InvalidToken, InvalidTag):
            raise SecretKeyError("stored data cannot be read with this TALA_SECRET_KEY: was the "
                                 "key changed?") from None
        return zlib.decompress(data) if zipped else data

    def lookup_hash(self, value: str) -> str:
        """A keyed hash (HMAC-SHA256) to find a phone number, chat or invitation code by
        without storing it: useless without the key, so not a way back to the value."""
        return hmac.new(self.hash_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
