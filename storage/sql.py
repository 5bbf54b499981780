"""Results in SQL: children, invitations, finished sessions, answers, alerts and the audit log.

SQLite in the data dir by default, PostgreSQL through DATABASE_URL. The schema is owned by the
Alembic migrations in storage/migrations; `tala db upgrade` applies them (the embedded SQLite
default is upgraded on start so the demo needs no set-up).

Nothing on the per-message path touches SQL except an alert (written the moment it happens)
and the one transaction that stores a finished session.
"""

from __future__ import annotations

import ast
import logging
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import sessionmaker

from flows.engine import State
from storage.alerting import AlertQueries
from storage.tokens import TokenQueries
from storage.crypto import Crypto, subject_of
from storage.engines import engine_for
# The tables, also by this module's name (as every caller has always imported them).
from storage.models import (Alert, AnswerRow, AuditLog, Base, Campaign, Child,  # noqa: F401
                            Invitation, SessionRow, User, as_utc, new_id,
                            utcnow)


log = logging.getLogger("tala.sql")


def _dt(iso: str | None) -> datetime | None:
    return datetime.fromisoformat(iso) if iso else None


def make_engine(url: str | None, data_dir: Path) -> Engine:
    """The results database: `url`, or tala.db in the data directory."""
    return engine_for(url, data_dir, "tala.db",
                      ["foreign_keys=ON", "journal_mode=WAL", "busy_timeout=5000"])


MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION_LINE = re.compile(r"^(down_revision|revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*$", re.M)


def head_revision() -> str | None:
    """The newest migration's revision id, read straight from storage/migrations/versions
    (Alembic's import and script loading take about 0.14 s even when there is nothing to do,
    against 2 ms for this and `schema_is_current`); None when the files do not tell it plainly
    (no migrations, several heads, a line it cannot read)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = {m.group(1): m.group(2)
                 for m in _REVISION_LINE.finditer(path.read_text(encoding="utf-8"))}
        if "revision" not in found:
            continue
        try:
            rev = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found.get("down_revision", "None"))
        except (ValueError, SyntaxError):
            return None
        if not isinstance(rev, str):
            return None
        revisions.add(rev)
        for parent in down if isinstance(down, (tuple, list)) else [down]:
            if parent is not None and not isinstance(parent, str):
                return None
            if parent is not None:
                parents.add(parent)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def schema_versions(engine: Engine) -> list[str] | None:
    """The migrations the database is at (one SELECT); None when it has none yet (no
    alembic_version table) or cannot say."""
    try:
        with engine.connect() as conn:
            return [v for (v,) in
                    conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()]
    except SQLAlchemyError:
        return None


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration already: then `upgrade` would do
    nothing, and a command need not pay for Alembic. False for a new database and whenever in
    doubt."""
    head = head_revision()
    return head is not None and schema_versions(engine) == [head]


def schema_missing(engine: Engine) -> str | None:
    """A clear word, before the first query fails with "no such table", when the database
    was never upgraded (a new PostgreSQL that `tala db upgrade` has not been run on). None
    when it has tables, and when it cannot be reached now: that is told where it matters
    (/healthz, the failing command), and a server still starts and keeps children's answers
    in Redis until SQL is back."""
    try:
        with engine.connect() as conn:
            if inspect(conn).has_table("alembic_version"):
                return None
    except SQLAlchemyError:
        return None
    return (f"The database at DATABASE_URL ({engine.url.render_as_string(hide_password=True)}) "
            "has no tala tables yet. Run `tala db upgrade` once, and again after each upgrade "
            "of tala.")


def upgrade(engine: Engine, crypto: Crypto | None = None, revision: str = "head") -> None:
    """Bring the schema to the newest migration. A migration that needs the installation's key
    (0005 hashes invitation codes) uses `crypto`, or without it the key tala itself would
    use (TALA_SECRET_KEY, else the data dir's), never a new one."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["crypto"] = crypto
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    if cfg.attributes.get("scrub") and engine.dialect.name == "sqlite":
        _scrub_sqlite(engine, "the migration")


def _scrub_sqlite(engine: Engine, after: str) -> None:
    """Rebuild the SQLite file after values were taken out of it (a migration, an erasure):
    they would otherwise stay in its free pages and in the write-ahead log until
    overwritten."""
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except OperationalError as e:  # another tala process is in the middle of a write
        log.warning("could not compact the SQLite file after %s (%s); the old values stay "
                    "in its free pages until it is: sqlite3 %s VACUUM",
                    after, e.orig, engine.url.database)


class Database(AlertQueries, TokenQueries):
    def __init__(self, engine: Engine, crypto: Crypto):
        self.engine = engine
        self.crypto = crypto
        self.Session = sessionmaker(engine, expire_on_commit=False)

    # -- children and invitations
    def ensure_child(self, case_ref: str, **fields: Any) -> Child:
        with self.Session.begin() as db:
            child = db.scalar(select(Child).where(Child.case_ref == case_ref))
            if child is None:
                child = Child(case_ref=case_ref)
                db.add(child)
            for k, v in fields.items():
                if v is not None:
                    setattr(child, k, v)
            db.flush()
            return child

    def child(self, case_ref: str) -> Child | None:
        with self.Session() as db:
            return db.scalar(select(Child).where(Child.case_ref == case_ref))

    def add_invitation(self, inv: Invitation) -> Invitation:
        with self.Session.begin() as db:
            db.add(inv)
        return inv

    def invitation(self, session_id: str) -> Invitation | None:
        with self.Session() as db:
            return db.scalar(select(Invitation).where(Invitation.session_id == session_id))

    def case_ref_of(self, child_id: int) -> str:
        with self.Session() as db:
            return db.scalar(select(Child.case_ref).where(Child.id == child_id)) or ""

    def set_delivery(self, session_id: str, status: str, error: str | None = None) -> None:
        """Record what became of a message that invited a child; a later "sent" never hides
        an earlier "delivered" or "undelivered"."""
        with self.Session.begin() as db:
            inv = db.scalar(select(Invitation).where(Invitation.session_id == session_id))
            if inv is None:
                return
            if status == "sent" and inv.delivery_status not in (None, "queued"):
                return
            inv.delivery_status = status
            inv.delivery_error = error[:300] if error else None
            if status == "opted_out" and inv.status == "sent":
                inv.status = "opted_out"

    def invitations(self, child_id: int) -> list[Invitation]:
        with self.Session() as db:
            return list(db.scalars(select(Invitation).where(Invitation.child_id == child_id)
                                   .order_by(Invitation.created_at)))

    def set_invitation_status(self, session_id: str, status: str) -> None:
        with self.Session.begin() as db:
            inv = db.scalar(select(Invitation).where(Invitation.session_id == session_id))
            if inv is not None:
                inv.status = status

    # -- campaigns
    def add_campaign(self, campaign: Campaign) -> Campaign:
        with self.Session.begin() as db:
            db.add(campaign)
        return campaign

    def campaign(self, name: str) -> Campaign | None:
        with self.Session() as db:
            return db.scalar(select(Campaign).where(Campaign.name == name))

    def campaigns(self) -> list[Campaign]:
        with self.Session() as db:
            return list(db.scalars(select(Campaign).order_by(Campaign.opens, Campaign.name)))

    def close_campaign(self, name: str, at: datetime) -> Campaign | None:
        with self.Session.begin() as db:
            row = db.scalar(select(Campaign).where(Campaign.name == name))
            if row is not None and row.closed_at is None:
                row.closed_at = at
            return row

    def flag_campaign(self, campaign_id: int, n: int = 1) -> None:
        """Count a safeguarding answer in an anonymous survey (the count only, nothing else)."""
        with self.Session.begin() as db:
            db.execute(update(Campaign).where(Campaign.id == campaign_id)
                       .values(flagged=Campaign.flagged + n))

    # -- erasure
    def erase_child(self, case_ref: str) -> tuple[list[Invitation], list[int]] | None:
        """Delete everything SQL holds about one child, audit entries naming the case included.
        Returns the child's invitations and alert ids (so Redis can be cleaned too), or None
        if there is no such case."""
        with self.Session.begin() as db:
            child = db.scalar(select(Child).where(Child.case_ref == case_ref))
            if child is None:
                return None
            invitations = list(db.scalars(select(Invitation)
                                          .where(Invitation.child_id == child.id)))
            session_ids = [s for s in db.scalars(select(SessionRow.id)
                                                 .where(SessionRow.child_id == child.id))]
            alert_ids = list(db.scalars(select(Alert.id).where(Alert.child_id == child.id)))
            self.erase_notices(db, child.id, alert_ids)
            for model, cond in ((AnswerRow, AnswerRow.session_id.in_(session_ids)),
                                (Alert, Alert.child_id == child.id),
                                (SessionRow, SessionRow.child_id == child.id),
                                (Invitation, Invitation.child_id == child.id),
                                (AuditLog, AuditLog.case_ref == case_ref)):
                db.execute(delete(model).where(cond))
            db.delete(child)
            for inv in invitations:
                db.expunge(inv)
            return invitations, alert_ids

    def compact(self) -> None:
        """After an erasure: the SQLite file rebuilt, so the erased rows leave its free pages
        and log. (PostgreSQL keeps dead rows until VACUUM reuses their space, and its own
        log; with the child's data keys destroyed what they hold is unreadable.)"""
        if self.engine.dialect.name == "sqlite":
            _scrub_sqlite(self.engine, "the erasure")

    def audit_entries(self, case_ref: str | None = None, actor: str | None = None,
                      since: datetime | None = None, limit: int = 500) -> list[AuditLog]:
        with self.Session() as db:
            q = select(AuditLog).order_by(AuditLog.at.desc()).limit(limit)
            if case_ref:
                q = q.where(AuditLog.case_ref == case_ref)
            if actor:
                q = q.where(AuditLog.actor == actor)
            if since:
                q = q.where(AuditLog.at >= since)
            return list(db.scalars(q))

    def write_session(self, state: State, child_id: int | None) -> bool:
        """Store a finished (or expired) session and every answer in one transaction; for an
        invitation nobody started, only its status. Returns False when it was already stored:
        writing twice changes nothing. Three statements (the session, all its answers in one
        executemany, the invitation's status): it runs for every finished conversation."""
        sid = state.session_id
        values: dict[str, Any] = {"status": state.status}
        if state.contact and state.campaign_id is None:
            # The chat a Telegram or Rasa child opened the invitation in is learnt only then:
            # kept with the invitation (encrypted), so `tala reply` reaches it after the end.
            values.update(contact_enc=self.crypto.encrypt(state.contact, subject_of(state)),
                          contact_hash=self.crypto.lookup_hash(state.contact))
        set_status = update(Invitation).where(Invitation.session_id == sid).values(**values)
        if state.started_at is None:
            # Never started: the invitation expired; there is no session to store.
            with self.Session.begin() as db:
                db.execute(set_status)
            return True
        answers = [(a, False) for a in state.superseded] + \
                  [(a, True) for a in state.answers.values()]
        rows = []
        for a, current in answers:
            v = a["value"]
            rows.append({
                "session_id": sid, "question_id": a["question_id"], "domain": a["domain"],
                "seq": a["seq"], "current": current, "skipped": a["skipped"],
                "value_num": v if isinstance(v, (int, float)) and not isinstance(v, bool)
                else None,
                "value_option": v if isinstance(v, str) else None,
                "value_options": v if isinstance(v, list) else None,
                "text_enc": self.crypto.encrypt(a["text"], subject_of(state))
                if a.get("text") else None,
                "lang": a["lang"], "answered_at": _dt(a["at"])})
        try:
            with self.Session.begin() as db:
                invitation_id = (select(Invitation.id).where(Invitation.session_id == sid)
                                 .scalar_subquery())
                # The session belongs to the case phase its invitation was made in.
                phase = (select(Invitation.phase).where(Invitation.session_id == sid)
                         .scalar_subquery())
                db.execute(insert(SessionRow).values(
                    id=sid, child_id=child_id, campaign_id=state.campaign_id,
                    invitation_id=invitation_id, phase=phase,
                    questionnaire_id=state.questionnaire_id,
                    questionnaire_version=state.questionnaire_version, lang=state.lang,
                    channel=state.channel, status=state.status,
                    started_at=_dt(state.started_at), completed_at=_dt(state.finished_at)))
                if rows:
                    # The table's INSERT, not the ORM's bulk one: the same rows for a quarter
                    # of the CPU (bench: 1.4 ms against 6 ms on PostgreSQL for 25 answers).
                    db.execute(insert(AnswerRow.__table__), rows)
                db.execute(set_status)
        except IntegrityError:
            # Stored already (the worker and a request both flushed it, or a retry after a
            # lost commit): the first write stands.
            with self.Session() as db:
                if db.get(SessionRow, sid) is None:
                    raise
            return False
        return True

    # -- reading (every read of a child's answers is audited by the caller)
    def audit(self, actor: str, action: str, case_ref: str | None, detail: str = "") -> None:
        """One entry. A case reference is kept in clear only while the case exists: one that
        was erased (or never made, such as a typo) is kept by its keyed hash, as the erasure
        itself is, so looking an erased case up never writes it back. (One that no case could
        have, too long or with a NUL, is not even looked up: PostgreSQL refuses a NUL.)"""
        with self.Session.begin() as db:
            if case_ref is not None and (len(case_ref) > 64 or "\x00" in case_ref or db.scalar(
                    select(Child.id).where(Child.case_ref == case_ref)) is None):
                detail = "; ".join(filter(None, [
                    detail, f"case #{self.crypto.lookup_hash(case_ref)[:16]}"]))
                case_ref = None
            db.add(AuditLog(actor=actor, action=action, case_ref=case_ref, detail=detail[:500]))

    def sessions_for(self, child_id: int) -> list[tuple[SessionRow, list[AnswerRow]]]:
        with self.Session() as db:
            sessions = list(db.scalars(select(SessionRow).where(SessionRow.child_id == child_id)
                                       .order_by(SessionRow.started_at)))
            out = []
            for s in sessions:
                answers = list(db.scalars(select(AnswerRow).where(
                    AnswerRow.session_id == s.id, AnswerRow.current.is_(True))
                    .order_by(AnswerRow.seq)))
                out.append((s, answers))
            return out

    def alerts_for(self, child_id: int) -> list[Alert]:
        with self.Session() as db:
            return list(db.scalars(select(Alert).where(Alert.child_id == child_id)
                                   .order_by(Alert.created_at)))

    def count(self, model: type[Base]) -> int:
        with self.Session() as db:
            return db.scalar(select(func.count()).select_from(model)) or 0

    def ping(self) -> bool:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True


