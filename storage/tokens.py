"""Staff API tokens in SQL: made, found, used, revoked. A mixin of `storage.sql.Database`.

A token is `tala_<id>_<secret>`: the id finds the row, and only a SHA-256 of the whole token
is kept (the secret is 256 random bits, so a fast hash is enough: there is nothing to guess
from). Checking compares the hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from storage.models import ApiToken, User, as_utc, utcnow

PREFIX = "tala_"
PERSONAL = "personal"  # the kind `tala users token` makes; a sign-in's is "oidc" or "web"


@dataclass(frozen=True)
class Issued:
    token: str  # shown once
    id: str
    expires_at: datetime


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_id(token: str) -> str | None:
    """The id part of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    tid, sep, secret = token[len(PREFIX):].partition("_")
    return tid if sep and tid.isalnum() and len(tid) <= 16 and len(secret) >= 32 else None


class TokenQueries:
    Session: object

    def add_token(self, user_name: str, kind: str, lifetime: timedelta,
                  label: str | None = None, now: datetime | None = None) -> Issued:
        now = now or utcnow()
        tid = secrets.token_hex(8)
        token = f"{PREFIX}{tid}_{secrets.token_urlsafe(32)}"
        with self.Session.begin() as db:
            user = db.scalar(select(User).where(User.name == user_name))
            if user is None:
                raise LookupError(user_name)
            db.add(ApiToken(id=tid, user_id=user.id, kind=kind, secret_hash=_hash(token),
                            label=label, created_at=now, expires_at=now + lifetime))
        return Issued(token, tid, now + lifetime)

    def token_user(self, token: str, now: datetime | None = None) -> tuple[User, ApiToken] | str:
        """The token's user and row, or why not: "unknown", "expired" or "revoked"."""
        now = now or utcnow()
        tid = token_id(token)
        if tid is None:
            return "unknown"
        with self.Session.begin() as db:
            row = db.get(ApiToken, tid)
            if row is None or not hmac.compare_digest(row.secret_hash, _hash(token)):
                return "unknown"
            if row.revoked_at is not None:
                return "revoked"
            if as_utc(row.expires_at) <= now:
                return "expired"
            user = db.get(User, row.user_id)
            row.last_used_at = now
            return user, row

    def tokens(self, user_name: str | None = None) -> list[tuple[ApiToken, str]]:
        with self.Session() as db:
            q = select(ApiToken, User.name).join(User, User.id == ApiToken.user_id)
            if user_name:
                q = q.where(User.name == user_name)
            return [(t, n) for t, n in db.execute(q.order_by(ApiToken.created_at))]

    def revoke_tokens(self, *, token: str | None = None, user_name: str | None = None,
                      now: datetime | None = None) -> int:
        """Revoke one token (by id) or every token of a user; how many were revoked."""
        now = now or utcnow()
        with self.Session.begin() as db:
            q = update(ApiToken).where(ApiToken.revoked_at.is_(None))
            if token:
                q = q.where(ApiToken.id == token)
            elif user_name:
                q = q.where(ApiToken.user_id.in_(select(User.id).where(User.name == user_name)))
            else:
                return 0
            return db.execute(q.values(revoked_at=now)).rowcount
