"""The caseworker's side: alerts reach a work phone without content and escalate; replies go
back to the child; roles decide who may read what; erasure leaves nothing behind."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from admin_cli.access import AccessError, require
from bot.service import ReplyError
from storage.sql import Alert, AuditLog, Base
from tests.conftest import Clock, staff_cli

CHILD = "+46701234567"
ANNA = "+46705550001"  # caseworker's work phone
MIA = "+46705550002"  # unit manager's work phone


def _conversation_with_a_disclosure(app, case="K-17", number=CHILD):
    inv = app.service.invite(case, 9, channel="sms", contact=number, unit="Nord",
                             caseworker="anna", actor="anna")
    app.service.send_queued("sms", block_ms=0)
    sid = inv.session_id
    app.service.handle(sid, "Hej", message_id="m0", channel="sms")
    app.service.handle(sid, "pappa slår mig", message_id="m1", channel="sms")
    return sid


def test_an_alert_reaches_the_caseworkers_phone_without_content_then_escalates(sms_app, fake):
    sms_app.service.clock = Clock()  # a Monday morning: escalation is sent in office hours
    sms_app.service.clock.now = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    sms_app.db.add_user("anna", "caseworker", "Nord", ANNA)
    sms_app.db.add_user("mia", "manager", "Nord", MIA)
    sms_app.db.add_user("olle", "manager", "Syd", "+46705550003")
    _conversation_with_a_disclosure(sms_app)
    sms_app.service.send_queued("sms", block_ms=0)
    to_anna = [m for m in fake.messages if m["to"] == ANNA]
    assert len(to_anna) == 1
    body = to_anna[0]["body"]
    assert "K-17" in body and "tala alerts" in body
    for secret in ("pappa", "slår", "violence", "Hur har du det"):
        assert secret not in body  # nothing of what the child said, nor what it was about
    [(alert, child)] = sms_app.db.open_alerts()
    assert alert.notified_at is not None and alert.escalated_at is None

    # Not acknowledged in time: the unit's manager (not another unit's) is told.
    assert sms_app.service.escalate_alerts(alert.created_at + timedelta(hours=1)) == 0
    later = alert.created_at + sms_app.service.escalate_after + timedelta(minutes=1)
    assert sms_app.service.escalate_alerts(later) == 1
    assert sms_app.service.escalate_alerts(later + timedelta(hours=1)) == 0  # once
    sms_app.service.send_queued("sms", block_ms=0)
    to_mia = [m for m in fake.messages if m["to"] == MIA]
    assert len(to_mia) == 1 and "K-17" in to_mia[0]["body"] and "pappa" not in to_mia[0]["body"]
    assert not [m for m in fake.messages if m["to"] == "+46705550003"]


def test_an_acknowledged_alert_is_not_escalated(sms_app, fake):
    sms_app.db.add_user("anna", "caseworker", "Nord", ANNA)
    sms_app.db.add_user("mia", "manager", "Nord", MIA)
    _conversation_with_a_disclosure(sms_app)
    [(alert, _)] = sms_app.db.open_alerts()
    sms_app.db.ack_alert(alert.id, "anna", "Pratade med barnet och skolan samma dag.")
    later = alert.created_at + sms_app.service.escalate_after * 2
    assert sms_app.service.escalate_alerts(later) == 0
    assert sms_app.db.open_alerts() == []
    assert sms_app.db.alert(alert.id).ack_note.startswith("Pratade")


def test_reply_goes_to_the_child_by_sms(sms_app, fake):
    _conversation_with_a_disclosure(sms_app)
    job = sms_app.service.reply("K-17", "Tack för att du berättade. Vi ses på torsdag.", "anna")
    sms_app.service.send_queued("sms", block_ms=0)
    assert fake.messages[-1]["to"] == CHILD
    assert fake.messages[-1]["body"] == "Tack för att du berättade. Vi ses på torsdag."
    assert sms_app.queue.job(job)["status"] == "sent"
    with pytest.raises(ReplyError, match="högst 459 tecken"):
        sms_app.service.reply("K-17", "x" * 500, "anna")
    sms_app.service.opt_out("sms", CHILD)
    with pytest.raises(ReplyError, match="STOP"):
        sms_app.service.reply("K-17", "Hej", "anna")


def test_reply_to_a_console_only_child_says_there_is_nowhere_to_send(app):
    app.service.invite("K-9", 9, actor="anna")
    with pytest.raises(ReplyError, match="ingenstans att skicka"):
        app.service.reply("K-9", "Hej!", "anna")


def test_roles_decide_who_may_read_what(app):
    app.service.invite("N-1", 9, unit="Nord", actor="anna")
    app.service.invite("S-1", 9, unit="Syd", actor="bo")
    assert require(app, "anyone", "erase") is None  # open until the first user exists
    app.db.add_user("admin", "admin", None, None)
    app.db.add_user("anna", "caseworker", "Nord", None)
    app.db.add_user("mia", "manager", "Nord", None)
    assert require(app, "anna", "summary", case_ref="N-1").name == "anna"
    with pytest.raises(AccessError, match="inget ärende 'S-1' i din enhet"):
        require(app, "anna", "summary", case_ref="S-1")
    with pytest.raises(AccessError, match="inte läsa ett barns svar"):
        require(app, "mia", "summary", case_ref="N-1")
    assert require(app, "mia", "report", unit="Nord").name == "mia"
    with pytest.raises(AccessError, match="inte i Syd"):
        require(app, "mia", "report", unit="Syd")
    with pytest.raises(AccessError, match="inte exportera"):
        require(app, "anna", "export")
    with pytest.raises(AccessError, match="inte användare i tala"):
        require(app, "eve", "summary", case_ref="N-1")
    assert require(app, "admin", "erase", case_ref="S-1").role == "admin"


def _cli(app, monkeypatch, user: str, *args: str):
    return staff_cli(app, monkeypatch, user, *args)


def test_the_cli_refuses_other_units_and_lists_and_acks_alerts(app, monkeypatch):
    sid = app.service.invite("N-1", 9, unit="Nord", actor="anna").session_id
    app.service.open(sid)
    app.service.handle(sid, "jag vill dö")
    app.service.invite("S-1", 9, unit="Syd", actor="bo")
    app.db.add_user("admin", "admin", None, None)
    app.db.add_user("anna", "caseworker", "Nord", None)
    app.db.add_user("bo", "caseworker", "Syd", None)

    denied = _cli(app, monkeypatch, "bo", "summary", "N-1")
    assert denied.exit_code == 3 and "inget ärende 'N-1' i din enhet" in denied.output
    mine = _cli(app, monkeypatch, "bo", "alerts", "--json")
    assert mine.exit_code == 0 and json.loads(mine.output) == []  # Syd has none
    listed = _cli(app, monkeypatch, "anna", "alerts", "--json")
    [alert] = json.loads(listed.output)
    assert (alert["case"], alert["level"], alert["topic"]) == ("N-1", "urgent", "self_harm")
    acked = _cli(app, monkeypatch, "anna", "alerts", "ack", str(alert["id"]), "--note",
                 "Ringde BUP")
    assert acked.exit_code == 0, acked.output
    again = _cli(app, monkeypatch, "anna", "alerts", "ack", str(alert["id"]))
    assert again.exit_code == 1 and "redan kvitterat" in again.output
    assert json.loads(_cli(app, monkeypatch, "anna", "alerts", "--json").output) == []

    trail = json.loads(_cli(app, monkeypatch, "admin", "audit", "--json").output)
    actions = [(e["user"], e["action"]) for e in trail]
    assert ("anna", "ack") in actions and ("anna", "alerts") in actions
    assert _cli(app, monkeypatch, "anna", "audit").exit_code == 3


def _opened(app, value: bytes, keys) -> str:
    """A stored value as text: decrypted when it is one of tala's encrypted values (a Fernet
    token, or the compact form kept in Redis) with the installation key or any data key the
    key store still has (`keys`: tests.shredding.every_key), as it is otherwise."""
    from tests.shredding import open_with_every_key

    return open_with_every_key(app, value, keys) or value.decode(errors="replace")


def _everything(app) -> str:
    """Every value in every SQL table and every Redis key and value, as one text, encrypted
    values decrypted."""
    from tests.shredding import every_key

    parts, keys = [], every_key(app)
    with app.db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                for v in row:
                    parts.append(str(v))
                    if isinstance(v, (bytes, memoryview)):
                        parts.append(_opened(app, bytes(v), keys))
        parts += [str(v) for v in conn.execute(text("SELECT * FROM alembic_version"))]
    r = app.store.r
    for key in r.scan_iter(match="*"):
        parts.append(key.decode(errors="replace"))
        kind = r.type(key).decode()
        if kind == "string":
            value = r.get(key)
            parts.append(_opened(app, value, keys))
        elif kind == "hash":
            for k, v in r.hgetall(key).items():
                parts.append(f"{k.decode(errors='replace')} {_opened(app, v, keys)}")
        elif kind == "zset":
            parts += [m.decode() for m in r.zrange(key, 0, -1)]
        elif kind == "stream":
            parts += [str(f) for _, f in r.xrange(key)]
    return "\n".join(parts)


def test_erase_removes_everything_about_a_child_from_sql_and_redis(sms_app, fake):
    sms_app.db.add_user("anna", "caseworker", "Nord", ANNA)
    sid = _conversation_with_a_disclosure(sms_app, case="K-ERASE")
    sms_app.service.handle(sid, "4", message_id="m2", channel="sms")
    sms_app.service.reply("K-ERASE", "Vi hörs!", "anna")
    sms_app.service.send_queued("sms", block_ms=0)
    other = sms_app.service.invite("K-KEEP", 12, channel="sms", contact="+46709998877",
                                   actor="anna").session_id
    inv = sms_app.db.invitation(sid)
    before = _everything(sms_app)
    for trace in ("K-ERASE", sid, CHILD, sms_app.crypto.lookup_hash(CHILD), inv.code_hash,
                  "pappa slår mig"):
        assert trace in before  # the search finds them while they exist

    assert sms_app.service.erase("K-ERASE", "admin")
    after = _everything(sms_app)
    for trace in ("K-ERASE", sid, CHILD, sms_app.crypto.lookup_hash(CHILD), inv.code_hash,
                  "pappa slår mig"):
        assert trace not in after, trace
    assert other in after and "K-KEEP" in after  # nobody else's data went with it
    with sms_app.db.Session() as s:
        [entry] = s.scalars(select(AuditLog).where(AuditLog.action == "erase")).all()
        assert entry.case_ref is None and entry.actor == "admin"
        assert sms_app.crypto.lookup_hash("K-ERASE")[:16] in entry.detail
        assert s.scalars(select(Alert)).all() == []
    assert sms_app.service.erase("K-ERASE", "admin") is False


def test_another_units_case_and_no_case_read_the_same_and_refusals_are_audited(app,
                                                                              monkeypatch):
    app.service.invite("S-7", 9, unit="Syd", actor="bo")
    app.db.add_user("admin", "admin", None, None)
    app.db.add_user("anna", "caseworker", "Nord", None)
    theirs = _cli(app, monkeypatch, "anna", "summary", "S-7")
    nothing = _cli(app, monkeypatch, "anna", "summary", "S-8")
    assert theirs.exit_code == nothing.exit_code == 3
    assert theirs.output.replace("S-7", "S-8") == nothing.output, (theirs.output, nothing.output)
    also = _cli(app, monkeypatch, "anna", "export", "--format", "csv")  # not her role's
    assert also.exit_code == 3

    trail = json.loads(_cli(app, monkeypatch, "admin", "audit", "--json").output)
    refused = [e for e in trail if e["action"] == "refused"]
    assert [e["user"] for e in refused] == ["anna"] * 3
    assert {e["detail"].split(";")[0] for e in refused} == {"summary", "export"}
    # The existing case by name; the one that does not exist only by its keyed hash.
    assert [e["case"] for e in refused if e["detail"].startswith("summary")].count("S-7") == 1
    assert not any(e["case"] == "S-8" or "S-8" in (e["detail"] or "") for e in trail)


def test_looking_an_erased_case_up_never_writes_it_back(app, monkeypatch):
    app.db.add_user("admin", "admin", None, None)
    sid = app.service.invite("K-303", 9, unit="Nord", actor="admin").session_id
    app.service.open(sid)
    assert _cli(app, monkeypatch, "admin", "erase", "K-303", "--yes").exit_code == 0
    for args in (["audit", "--case", "K-303"], ["summary", "K-303"], ["audit", "--json"]):
        shown = _cli(app, monkeypatch, "admin", *args)
        assert "K-303" not in shown.output or args[0] == "summary", (args, shown.output)
    assert "K-303" not in _everything(app)
