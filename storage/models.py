"""The results database's tables: children, invitations, campaigns, finished sessions and
their answers, alerts and who was told of them, staff, their API tokens and their units, the
audit log.

The schema is owned by the Alembic migrations in storage/migrations (a test compares the two);
storage/sql.py and storage/alerting.py read and write these tables.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

from sqlalchemy import (JSON, Boolean, Date, DateTime, Float, ForeignKey, Integer, LargeBinary,
                        String, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


# The case phase an invitation (and the session it led to) belongs to, as a unit follows its
# indicators: preliminary assessment, investigation, follow-up of an intervention, placement.
PHASES = ("forhandsbedomning", "utredning", "uppfoljning", "placering")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class Child(Base):
    __tablename__ = "children"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Pseudonymous case reference (never a personal identity number).
    case_ref: Mapped[str] = mapped_column(String(64), unique=True)
    unit: Mapped[str | None] = mapped_column(String(120))
    caseworker: Mapped[str | None] = mapped_column(String(120))
    birth_year: Mapped[int | None] = mapped_column(Integer)
    preferred_lang: Mapped[str] = mapped_column(String(16), default="sv")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Invitation(Base):
    __tablename__ = "invitations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id", ondelete="CASCADE"),
                                          index=True)
    session_id: Mapped[str] = mapped_column(String(32), unique=True)
    questionnaire_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))
    lang: Mapped[str] = mapped_column(String(16))
    # Phone number or chat, encrypted; the keyed hash finds it without decrypting.
    contact_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    contact_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # The keyed hash of the code a chat (Telegram, Rasa, the console) opens the invitation
    # with: the code itself is shown once, to whoever invites, and never stored.
    code_hash: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="sent")
    # For channels that send first (SMS): queued, sent, delivered, undelivered, failed,
    # opted_out; with the provider's reason when it did not arrive.
    delivery_status: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(String(300))
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    phase: Mapped[str | None] = mapped_column(String(24))  # one of PHASES, or not given


class Campaign(Base):
    """An anonymous group survey: pupils text the keyword (or open the Telegram link) and
    answer with no case and no name. Only counts ever leave it."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    questionnaire_id: Mapped[str] = mapped_column(String(64))
    keyword: Mapped[str] = mapped_column(String(32), index=True)  # normalised
    code: Mapped[str] = mapped_column(String(32), unique=True)  # for the Telegram link
    unit: Mapped[str | None] = mapped_column(String(120))
    opens: Mapped[date] = mapped_column(Date)
    closes: Mapped[date] = mapped_column(Date)  # the last day it is open
    langs: Mapped[list] = mapped_column(JSON)
    created_by: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How many answers raised a safeguarding rule: the owner learns how many, never which.
    flagged: Mapped[int] = mapped_column(Integer, default=0)


class SessionRow(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # A case's session has a child; an anonymous campaign session has a campaign instead.
    child_id: Mapped[int | None] = mapped_column(ForeignKey("children.id", ondelete="CASCADE"),
                                                 index=True)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id",
                                                               ondelete="CASCADE"), index=True)
    invitation_id: Mapped[str | None] = mapped_column(ForeignKey("invitations.id",
                                                                 ondelete="SET NULL"))
    questionnaire_id: Mapped[str] = mapped_column(String(64))
    questionnaire_version: Mapped[int] = mapped_column(Integer)
    lang: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # completed | stopped | expired
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    phase: Mapped[str | None] = mapped_column(String(24))  # the invitation's, when written


class AnswerRow(Base):
    """One answer by language-independent ids. A changed answer keeps its earlier revisions
    (current=False): nothing a child said is overwritten."""

    __tablename__ = "answers"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"),
                                            index=True)
    question_id: Mapped[str] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(Integer)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    value_num: Mapped[float | None] = mapped_column(Float)
    value_option: Mapped[str | None] = mapped_column(String(64))
    value_options: Mapped[list | None] = mapped_column(JSON)
    text_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    lang: Mapped[str] = mapped_column(String(16))
    answered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("session_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[str] = mapped_column(String(32), index=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id", ondelete="CASCADE"),
                                          index=True)
    key: Mapped[str] = mapped_column(String(160))
    question_id: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(64))
    text_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    acked_by: Mapped[str | None] = mapped_column(String(120))
    ack_note: Mapped[str | None] = mapped_column(String(500))
    # Who was told, and when: the responsible caseworker at once, the unit's manager if
    # nobody acknowledged in time.
    notified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    escalated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Base):
    """Someone who uses the CLI (TALA_USER names them): what they may do, for which unit, and
    the work phone and e-mail address their alerts go to (both encrypted)."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # caseworker | manager | admin
    unit: Mapped[str | None] = mapped_column(String(120))
    phone_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiToken(Base):
    """A credential for the staff API: a personal token an admin made (`tala users token`), or
    a session token given after an OpenID Connect sign-in. Only a SHA-256 of the secret is
    kept; the secret is shown once. A token acts as its user as the user is now (a changed
    role or unit applies at once) and stops at its expiry or when revoked."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public, in the token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # personal | oidc
    secret_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Unit(Base):
    """A unit's office hours and its on-call number (socialjour, encrypted): where an urgent
    alert goes when nobody is at the office. A unit without a row keeps the default hours."""

    __tablename__ = "units"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    office_hours: Mapped[str | None] = mapped_column(String(64))  # "mon-fri 08:00-17:00"
    on_call_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Notice(Base):
    """One message to one person (or the on-call number) about a case's alerts: who was told,
    by which route, when, and what the provider said became of it. Alerts close together for
    one case share a notice (notice_alerts)."""

    __tablename__ = "notices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("children.id", ondelete="CASCADE"),
                                          index=True)
    kind: Mapped[str] = mapped_column(String(16))  # notify | escalate
    recipient: Mapped[str] = mapped_column(String(120))  # a user's name, or "on-call"
    route: Mapped[str] = mapped_column(String(16))  # sms | email
    job_id: Mapped[str] = mapped_column(String(120), unique=True)  # its send-queue job
    # queued -> sent (the provider took it) -> delivered | undelivered; or failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(String(300))
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class NoticeAlert(Base):
    __tablename__ = "notice_alerts"
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"),
                                           primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"),
                                          primary_key=True, index=True)


class AuditLog(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    case_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str | None] = mapped_column(String(500))


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything tala stores is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value
