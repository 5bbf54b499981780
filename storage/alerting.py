"""Alerts in SQL, and everything about who hears of them: the staff and their contact details,
the units (office hours, on-call number) and the notices (each message that told someone).

A mixin of `storage.sql.Database` (it uses its `Session` and `crypto`): the queries are here so
that the database module stays small enough to read. Phone numbers and e-mail addresses are
stored encrypted, like the children's contact details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from storage.crypto import subject_of
from storage.models import Alert, Child, Notice, NoticeAlert, Unit, User, utcnow

if TYPE_CHECKING:
    from flows.engine import State
    from storage.crypto import Crypto

# What became of a notice, from what the provider said; a later report never goes backwards
# (Twilio's "sent" can arrive after its "delivered").
NOTICE_ORDER = {"queued": 0, "sent": 1, "delivered": 2, "undelivered": 2, "failed": 2}
FAILED = ("undelivered", "failed")
# Alerts that go to the managers when nobody acknowledged them in time; a child's message
# after the questions ("message") does only when it could not be delivered.
ESCALATING = ("urgent", "concern")


@dataclass(frozen=True)
class Contact:
    """A member of staff as an alert needs them: name, role and where to reach them."""

    name: str
    role: str
    unit: str | None
    phone: str | None
    email: str | None


class AlertQueries:
    Session: Any
    crypto: Crypto

    # -- alerts
    def write_alert(self, state: State, child_id: int, alert: dict) -> tuple[int, bool]:
        """Idempotent: the same alert (session, key) is stored once however often it is sent.
        Returns the alert's id and whether staff are still to be told of it (`notified_at`
        unset): so an alert stored by an attempt that was cut off before its notification was
        queued (killed, Redis gone) is notified by the retry."""
        row = Alert(session_id=state.session_id, child_id=child_id, key=alert["key"],
                    question_id=alert["question_id"], level=alert["level"],
                    topic=alert["topic"], created_at=datetime.fromisoformat(alert["at"]),
                    text_enc=self.crypto.encrypt(alert["text"], subject_of(state))
                    if alert.get("text") else None)
        try:
            with self.Session.begin() as db:
                db.add(row)
                db.flush()
                return row.id, True
        except IntegrityError:  # already written by an earlier attempt
            with self.Session() as db:
                earlier = db.scalars(select(Alert).where(
                    Alert.session_id == state.session_id, Alert.key == alert["key"])).one()
                return earlier.id, earlier.notified_at is None

    def alert(self, alert_id: int) -> Alert | None:
        with self.Session() as db:
            return db.get(Alert, alert_id)

    def open_alerts(self, unit: str | None = None) -> list[tuple[Alert, Child]]:
        with self.Session() as db:
            q = (select(Alert, Child).join(Child, Child.id == Alert.child_id)
                 .where(Alert.acked_at.is_(None), Alert.level != "note")
                 .order_by(Alert.created_at))
            if unit is not None:
                q = q.where(Child.unit == unit)
            return [(a, c) for a, c in db.execute(q).all()]

    def ack_alert(self, alert_id: int, actor: str, note: str | None) -> Alert | None:
        with self.Session.begin() as db:
            row = db.get(Alert, alert_id)
            if row is None or row.acked_at is not None:
                return row
            row.acked_at, row.acked_by = utcnow(), actor
            row.ack_note = note[:500] if note else None
            return row

    def mark_alert(self, alert_id: int, **when: datetime) -> None:
        with self.Session.begin() as db:
            row = db.get(Alert, alert_id)
            if row is not None:
                for k, v in when.items():
                    setattr(row, k, v)

    def alerts_to_escalate(self, created_before: datetime) -> list[tuple[Alert, Child]]:
        """Open safeguarding alerts not yet escalated that are older than `created_before`, and
        any a notice failed to reach anyone with (undelivered, failed): those go at once."""
        failed = (select(NoticeAlert.alert_id).join(Notice, Notice.id == NoticeAlert.notice_id)
                  .where(Notice.status.in_(FAILED), Notice.kind == "notify"))
        with self.Session() as db:
            q = (select(Alert, Child).join(Child, Child.id == Alert.child_id)
                 .where(Alert.acked_at.is_(None), Alert.escalated_at.is_(None),
                        ((Alert.created_at <= created_before)
                         & Alert.level.in_(ESCALATING)) | Alert.id.in_(failed))
                 .order_by(Alert.created_at))
            return [(a, c) for a, c in db.execute(q).all()]

    # -- notices: who was told, how, and what became of it
    def add_notice(self, child_id: int, alert_id: int, kind: str, recipient: str, route: str,
                   job_id: str, at: datetime) -> Notice:
        """Idempotent by `job_id`: a notification retried after a crash is recorded once."""
        try:
            with self.Session.begin() as db:
                notice = Notice(child_id=child_id, kind=kind, recipient=recipient, route=route,
                                job_id=job_id, status="queued", queued_at=at)
                db.add(notice)
                db.flush()
                db.add(NoticeAlert(notice_id=notice.id, alert_id=alert_id))
                return notice
        except IntegrityError:
            with self.Session() as db:
                return db.scalars(select(Notice).where(Notice.job_id == job_id)).one()

    def join_notice(self, notice_id: int, alert_id: int) -> None:
        """An alert told by an earlier notice (several alerts close together: one message)."""
        try:
            with self.Session.begin() as db:
                db.add(NoticeAlert(notice_id=notice_id, alert_id=alert_id))
        except IntegrityError:
            pass  # joined already

    def recent_notices(self, child_id: int, kind: str, since: datetime) -> list[Notice]:
        with self.Session() as db:
            return list(db.scalars(select(Notice).where(
                Notice.child_id == child_id, Notice.kind == kind, Notice.queued_at >= since,
                Notice.status.not_in(FAILED))))

    def set_notice_status(self, job_id: str, status: str, error: str | None = None) -> None:
        with self.Session.begin() as db:
            notice = db.scalars(select(Notice).where(Notice.job_id == job_id)).one_or_none()
            if notice is None or NOTICE_ORDER.get(status, 0) <= NOTICE_ORDER[notice.status]:
                return
            notice.status, notice.updated_at = status, utcnow()
            notice.error = error[:300] if error else None

    def notices_of(self, alert_ids: list[int]) -> dict[int, list[Notice]]:
        """Every notice that told of these alerts, oldest first, by alert id."""
        out: dict[int, list[Notice]] = {a: [] for a in alert_ids}
        if not alert_ids:
            return out
        with self.Session() as db:
            q = (select(NoticeAlert.alert_id, Notice)
                 .join(Notice, Notice.id == NoticeAlert.notice_id)
                 .where(NoticeAlert.alert_id.in_(alert_ids)).order_by(Notice.queued_at, Notice.id))
            for alert_id, notice in db.execute(q).all():
                out[alert_id].append(notice)
        return out

    def erase_notices(self, db: Any, child_id: int, alert_ids: list[int]) -> None:
        """Inside an erasure's transaction: the child's notices go with their alerts."""
        if alert_ids:
            db.execute(delete(NoticeAlert).where(NoticeAlert.alert_id.in_(alert_ids)))
        db.execute(delete(Notice).where(Notice.child_id == child_id))

    # -- staff
    def contacts(self, names: list[str] | None = None, role: str | None = None,
                 unit: str | None = None) -> list[Contact]:
        """Staff by name, or by role and unit, with their phone and e-mail decrypted."""
        with self.Session() as db:
            q = select(User).order_by(User.name)
            if names is not None:
                q = q.where(User.name.in_(names))
            if role is not None:
                q = q.where(User.role == role, User.unit == unit)
            return [Contact(u.name, u.role, u.unit,
                            self.crypto.decrypt(u.phone_enc) if u.phone_enc else None,
                            self.crypto.decrypt(u.email_enc) if u.email_enc else None)
                    for u in db.scalars(q)]

    def add_user(self, name: str, role: str, unit: str | None, phone: str | None,
                 email: str | None = None) -> User:
        """Add or change a user; a phone or e-mail of None keeps what was there, "" removes
        it."""
        with self.Session.begin() as db:
            user = db.scalar(select(User).where(User.name == name)) or User(name=name)
            user.role, user.unit = role, unit
            if phone is not None:
                user.phone_enc = self.crypto.encrypt(phone) if phone else None
            if email is not None:
                user.email_enc = self.crypto.encrypt(email) if email else None
            db.add(user)
            db.flush()
            return user

    def user(self, name: str) -> User | None:
        with self.Session() as db:
            return db.scalar(select(User).where(User.name == name))

    def users(self) -> list[User]:
        with self.Session() as db:
            return list(db.scalars(select(User).order_by(User.name)))

    def has_users(self) -> bool:
        with self.Session() as db:
            return bool(db.scalar(select(func.count()).select_from(User)))

    # -- units
    def unit(self, name: str | None) -> Unit | None:
        if not name:
            return None
        with self.Session() as db:
            return db.scalar(select(Unit).where(Unit.name == name))

    def units(self) -> list[Unit]:
        with self.Session() as db:
            return list(db.scalars(select(Unit).order_by(Unit.name)))

    def set_unit(self, name: str, *, on_call: str | None = None,
                 office_hours: str | None = None) -> Unit:
        """Set a unit's on-call number and/or office hours (None keeps, "" removes)."""
        with self.Session.begin() as db:
            unit = db.scalar(select(Unit).where(Unit.name == name)) or Unit(name=name)
            if on_call is not None:
                unit.on_call_enc = self.crypto.encrypt(on_call) if on_call else None
            if office_hours is not None:
                unit.office_hours = office_hours or None
            unit.updated_at = utcnow()
            db.add(unit)
            db.flush()
            return unit

    def on_call(self, unit: Unit | None) -> str | None:
        return self.crypto.decrypt(unit.on_call_enc) if unit and unit.on_call_enc else None
