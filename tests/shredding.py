"""Looking for a child's data the way someone holding tala's files would: every value in
every file, raw, and every encrypted value decrypted with the installation key and with every
data key the key store still has (an erased child's keys are gone, so theirs must not open)."""

from __future__ import annotations

import base64
import re
import struct
import time
import zlib
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from storage.keys import DataKey, data_keys

_B64_TOKEN = re.compile(rb"gAAAAA[A-Za-z0-9_\-]{60,}={0,2}")
_MAX_RAW = 16 * 1024  # the longest raw token looked for (a session's state is a few KiB)


def _session_ids(app) -> set[str]:
    from storage.sql import Invitation, SessionRow

    with app.db.Session() as db:
        sids = set(db.scalars(select(SessionRow.id))) | set(
            db.scalars(select(Invitation.session_id)))
    for key in app.store.r.scan_iter(match=f"{app.store.prefix}:{{*"):
        sids.add(app.store.sid_of(key))
    return sids


def _data_key(raw: bytes, subject: str) -> DataKey:
    key = DataKey(raw)
    key.subject = subject  # AES-GCM's associated data: what Redis's compact values need
    return key


def every_key(app) -> list[Fernet]:
    """The installation key, every data key the store holds, and the key of every anonymous
    session anything still names (derived from the store's root)."""
    from storage.keys import ANONYMOUS_ROOT, _derive

    kek = app.crypto._fernet
    keys = [kek]
    store = app.crypto.keys
    if store is not None:
        with store.engine.connect() as conn:
            rows = conn.execute(select(data_keys.c.subject, data_keys.c.wrapped)).all()
        keys += [_data_key(kek.decrypt(w), subject) for subject, w in rows
                 if not subject.startswith("_")]
        root = store.secret(ANONYMOUS_ROOT)
        if root is not None:
            keys += [_data_key(_derive(root, sid), "a:" + sid) for sid in _session_ids(app)]
    return keys


_GCM = b"eEfF"  # storage.crypto's heads of AES-GCM values (E, F: compressed)


def _open_gcm(keys: list[Fernet], value: bytes) -> bytes | None:
    if len(value) < 29 or value[0] not in _GCM:
        return None
    for key in keys:
        aead = getattr(key, "aead", None)
        if aead is None:
            continue
        try:
            data = aead.decrypt(value[1:13], value[13:], key.subject.encode())
        except InvalidTag:
            continue
        return zlib.decompress(data) if value[:1] in b"EF" else data
    return None


def _gcm_values(blob: bytes) -> list[bytes]:
    """The values of a Redis file that could be AES-GCM ones: RESP's bulk strings (the
    append-only file) and, in a snapshot (it starts "REDIS"), strings by RDB's length
    prefixes."""
    found = [blob[m.end():m.end() + int(m[1])] for m in _RESP.finditer(blob)
             if blob[m.end():m.end() + 1] and blob[m.end()] in _GCM]
    if blob.startswith(b"REDIS"):
        for i in range(6, len(blob)):
            if blob[i] not in _GCM:
                continue
            b1, b2 = blob[i - 1], blob[i - 2]
            lengths = [b1 & 0x3F] if b1 >> 6 == 0 else []
            if b2 >> 6 == 1:
                lengths.append(((b2 & 0x3F) << 8) | b1)
            if i >= 5 and blob[i - 5] == 0x80:
                lengths.append(struct.unpack(">I", blob[i - 4:i])[0])
            found += [blob[i:i + n] for n in lengths if 29 <= n <= _MAX_RAW]
    return found


_RESP = re.compile(rb"\$(\d{2,5})\r\n")


def _open(keys: list[Fernet], token: bytes) -> bytes | None:
    for key in keys:
        try:
            data = key.decrypt(token)
        except InvalidToken:
            continue
        try:
            return zlib.decompress(data)
        except zlib.error:
            return data
    return None


def open_with_every_key(app, value: bytes, keys: list[Fernet] | None = None) -> str | None:
    """One stored value (a Fernet token, or Redis's compact form) as text, or None."""
    keys = keys if keys is not None else every_key(app)
    if (data := _open_gcm(keys, value)) is not None:
        return data.decode(errors="replace")
    candidates = [value]
    if value[:1] in (b"s", b"t", b"z", b"a", b"b"):
        candidates.append(value[1:])
    for c in candidates:
        token = c if c.startswith(b"gAAAAA") else base64.urlsafe_b64encode(c)
        data = _open(keys, token)
        if data is not None:
            return data.decode(errors="replace")
    return None


def opened_in(blob: bytes, keys: list[Fernet], since: float) -> list[str]:
    """Every encrypted value found anywhere in `blob` (a file of any kind: Redis's append-only
    file or snapshot, SQLite's pages or log), decrypted with `keys`: base64 tokens by their
    look; raw tokens by their version byte and a timestamp since `since`, tried at each
    length a token can have; AES-GCM values (Redis's) by their head and length prefix."""
    found = [d.decode(errors="replace") for m in _B64_TOKEN.finditer(blob)
             if (d := _open(keys, m.group(0))) is not None]
    found += [d.decode(errors="replace") for v in _gcm_values(blob)
              if (d := _open_gcm(keys, v)) is not None]
    lo, hi = int(since) - 5, int(time.time()) + 5
    i = blob.find(b"\x80")
    while i != -1:
        if i + 57 <= len(blob):
            (ts,) = struct.unpack(">Q", blob[i + 1:i + 9])
            if lo <= ts <= hi:
                for end in range(i + 57, min(len(blob), i + _MAX_RAW) + 1, 16):
                    data = _open(keys, base64.urlsafe_b64encode(blob[i:end]))
                    if data is not None:
                        found.append(data.decode(errors="replace"))
                        break
        i = blob.find(b"\x80", i + 1)
    return found


def files_under(*roots: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}
