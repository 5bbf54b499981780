"""`tala keys rotate`: a new installation key, in one command.

The installation key wraps the data keys (storage/keys.py) and encrypts staff contact details;
the children's data itself is under their sessions' keys, so rotating re-wraps a few short
keys and touches no conversation. In order, each step safe to run again:

1. The new key goes first in secret.key, before the old one ("NEW OLD"): from now on every
   tala process started reads with either and writes with the new. (With TALA_SECRET_KEY the
   operator sets that: the command says what.)
2. The lookup-hash key (every stored hash of a number, chat and code depends on it) is kept in
   the key store, wrapped, since it was derived from the old key.
3. Every data key is wrapped again with the new key, in one transaction.
4. Staff phone numbers, e-mail addresses and on-call numbers are encrypted again; what a
   child wrote before sessions had keys of their own (still under the old key) moves to its
   session's key, in SQL, in Redis (live state, kept replies) and in the send queue.
5. secret.key holds only the new key.

Interrupted anywhere, secret.key still has both keys and nothing is lost: run it again and it
goes on from there. Stop every other tala process first: one still running with the old key
alone cannot read what was wrapped anew until it is restarted."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import select

from storage.crypto import LOOKUP_SECRET, Crypto, SecretKeyError
from storage.files import OWNER_ONLY_FILE

if TYPE_CHECKING:
    from bot.app import App


@dataclass
class Rotated:
    data_keys: int = 0
    staff_values: int = 0
    moved_to_session_keys: int = 0
    new_key: str | None = None  # to set in TALA_SECRET_KEY, when the key is not in a file
    steps: list[str] = field(default_factory=list)


def _write_key_file(path: Path, keys: list[bytes]) -> None:
    """Replace secret.key at once (a new file, synced, renamed over the old)."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY_FILE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(b"\n".join(keys) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def rotate(app: App, announce: Callable[[str, str], None]) -> Rotated:
    """Rotate; with TALA_SECRET_KEY (no key file to write), `announce(new key, both keys)`
    is called before anything changes, so the key is never lost to an interruption."""
    done = Rotated()
    old = app.crypto
    in_file = not app.settings.secret_key
    key_file = app.settings.data_path / "secret.key"
    hash_key = old.hash_key  # resolved with the old key(s), before anything changes
    # An interrupted rotation left "NEW OLD": go on with that new key.
    keys = old.material if len(old.material) > 1 else [Fernet.generate_key(), *old.material]
    if in_file:
        _write_key_file(key_file, keys)
        done.steps.append("the new key is first in secret.key, the old one after it")
    else:
        done.new_key = keys[0].decode()
        announce(done.new_key, " ".join(k.decode() for k in keys))
    both = Crypto(b" ".join(keys))
    s = app.settings
    both.keep_keys(lambda: (s.keys_url or s.database_url, s.data_path))
    try:
        both.keys.keep_secret(LOOKUP_SECRET, hash_key)
        wrapping = MultiFernet([Fernet(k) for k in keys])
        done.data_keys = both.keys.rewrap(wrapping)
        done.steps.append(f"{done.data_keys} data key(s) wrapped with the new key")
        done.staff_values = _staff(app, wrapping)
        done.moved_to_session_keys = _children_sql(app, both) + _children_redis(app, both)
        done.steps.append(f"{done.staff_values} staff contact detail(s) encrypted again; "
                          f"{done.moved_to_session_keys} older value(s) of children moved to "
                          "their sessions' keys")
    finally:
        both.close()
    if in_file:
        _write_key_file(key_file, keys[:1])
        done.steps.append("secret.key holds only the new key")
    return done


def _staff(app: App, wrapping: MultiFernet) -> int:
    from storage.models import Unit, User

    n = 0
    with app.db.Session.begin() as db:
        for row, columns in ([(u, ("phone_enc", "email_enc")) for u in db.scalars(select(User))]
                             + [(u, ("on_call_enc",)) for u in db.scalars(select(Unit))]):
            for column in columns:
                token = getattr(row, column)
                if token:
                    setattr(row, column, wrapping.rotate(token))
                    n += 1
    return n


def _to_session_key(both: Crypto, token: bytes, sid: str) -> bytes | None:
    """`token` under its session's key, or None when it is there already."""
    own = both.keys.get(sid)
    if own is not None:
        try:
            own.decrypt(token)
            return None
        except InvalidToken:
            pass
    try:
        text = both.decrypt(token)  # written with the old installation key
    except SecretKeyError:
        return None  # under a key that is gone (an erased child's): nothing to move
    return both.encrypt(text, sid)


def _children_sql(app: App, both: Crypto) -> int:
    from storage.sql import Alert, AnswerRow, Invitation

    n = 0
    with app.db.Session.begin() as db:
        for model, column in ((Invitation, "contact_enc"), (AnswerRow, "text_enc"),
                              (Alert, "text_enc")):
            for row in db.scalars(select(model).where(getattr(model, column).is_not(None))):
                moved = _to_session_key(both, getattr(row, column), row.session_id)
                if moved is not None:
                    setattr(row, column, moved)
                    n += 1
    return n


def _children_redis(app: App, both: Crypto) -> int:
    """Live states and kept replies still sealed with the installation key, and queued texts:
    a child's moves to its session's key, a staff member's is encrypted with the new key."""
    store, r, n = app.store, app.store.r, 0
    for pattern, compress in ((store.state_key("*"), False), (store.reply_key("*"), True)):
        for key in r.scan_iter(match=pattern):
            blob = r.get(key)
            if not blob or blob == b"-" or both.sealed_with_data_key(blob):
                continue
            sid = store.sid_of(key)
            r.set(key, both.seal(both.unseal(blob), compress=compress, subject=sid),
                  keepttl=True)
            n += 1
    for key in r.scan_iter(match=app.queue.text_key("*")):
        blob = r.get(key)
        if blob and not both.sealed_with_data_key(blob):  # a staff member's: the new key
            r.set(key, both.seal(both.unseal(blob)), keepttl=True)
    for key in r.scan_iter(match=app.queue.job_key("*")):  # jobs of versions before
        job = {k.decode(): v for k, v in r.hgetall(key).items()}
        sid = job.get("session_id", b"").decode() or None
        changed = {}
        for name in ("to", "body"):
            if job.get(name):
                token = job[name]
                moved = (_to_session_key(both, token, sid) if sid else
                         both._fernet.rotate(token))
                if moved is not None:
                    changed[name] = moved
        if changed:
            r.hset(key, mapping=changed)
            n += 1 if sid else 0
    return n
