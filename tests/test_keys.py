"""`tala keys rotate`: a new installation key, with every conversation, lookup and staff
contact still readable afterwards, what was stored before data keys moved to them, and the
old key of no more use."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select, update

from bot.app import create_app
from bot.settings import Settings
from storage.keys import KeyUnreadable
from storage.sql import Invitation, User
from tests.conftest import _settings
from tests.test_staff import ANNA, _cli, _conversation_with_a_disclosure

OTHER = "+46709990011"


def test_rotating_the_installation_key_keeps_everything_and_retires_the_old_one(
        sms_app, fake, monkeypatch):
    app = sms_app
    app.db.add_user("boss", "admin", None, None)
    app.db.add_user("anna", "caseworker", "Nord", ANNA, "anna@nacka.example")
    app.db.set_unit("Nord", on_call="+46705550099")
    done = _conversation_with_a_disclosure(app, case="K-DONE")  # her words in an alert
    live = app.service.invite("K-LIVE", 12, channel="sms", contact=OTHER, unit="Nord",
                              actor="anna").session_id
    app.service.handle(live, "Hej", message_id="l0", channel="sms")
    app.service.handle(live, "4", message_id="l1", channel="sms")
    before = app.service.state(live)
    # Stored the way versions before data keys stored it: under the installation key.
    legacy = app.service.invite("K-OLD", 9, actor="anna").session_id
    old_state = app.store.r.get(app.store.state_key(legacy))
    app.store.r.set(app.store.state_key(legacy), app.crypto.seal(
        app.crypto.unseal(old_state, legacy)), keepttl=True)
    with app.db.Session.begin() as s:
        s.execute(update(Invitation).where(Invitation.session_id == done)
                  .values(contact_enc=app.crypto.encrypt("+46701234567")))
    old_key = (app.settings.data_path / "secret.key").read_bytes().strip()

    rotated = _cli(app, monkeypatch, "boss", "keys", "rotate", "--yes")
    assert rotated.exit_code == 0, rotated.output
    assert "wrapped with the new key" in rotated.output
    new_key = (app.settings.data_path / "secret.key").read_bytes().strip()
    assert new_key != old_key and len(new_key.split()) == 1

    s = app.settings
    fresh = create_app(_settings(app.settings.data_path.parent, s.redis_url, s.database_url))
    try:
        assert fresh.service.state(live) == before  # the conversation goes on where it was
        assert fresh.service.session_for_contact("sms", OTHER) == live  # hashes unchanged
        assert fresh.service.state(legacy).session_id == legacy
        assert fresh.store.r.get(fresh.store.state_key(legacy))[:1] == b"e"  # its own key now
        staff = fresh.db.contacts(["anna"])[0]
        assert (staff.phone, staff.email) == (ANNA, "anna@nacka.example")
        assert fresh.db.on_call(fresh.db.unit("Nord")) == "+46705550099"
        with fresh.db.Session() as db:
            inv = db.scalars(select(Invitation).where(Invitation.session_id == done)).one()
        assert fresh.crypto.decrypt(inv.contact_enc, done) == "+46701234567"
        assert fresh.crypto.keys.get(done).decrypt(inv.contact_enc)  # moved to her key
        [alert] = fresh.db.alerts_for(fresh.db.child("K-DONE").id)
        assert fresh.crypto.decrypt(alert.text_enc, done) == "pappa slår mig"
        again = _cli(fresh, monkeypatch, "boss", "summary", "K-DONE", "--format", "json")
        assert again.exit_code == 0 and "pappa slår mig" in again.output, again.output
        assert fresh.service.handle(live, "3", message_id="l2", channel="sms")
    finally:
        fresh.close()

    # The old key alone opens nothing any more: no data key, no staff contact.
    stale = create_app(Settings(TALA_DATA_DIR=s.data_dir, REDIS_URL=s.redis_url,
                                DATABASE_URL=s.database_url, TALA_SECRET_KEY=old_key.decode()))
    try:
        with pytest.raises(KeyUnreadable):
            stale.crypto.keys.get(live)
        with stale.db.Session() as db:
            phone = db.scalars(select(User.phone_enc).where(User.name == "anna")).one()
        with pytest.raises(InvalidToken):
            Fernet(old_key).decrypt(phone)
    finally:
        stale.close()
    trail = json.loads(_cli(app, monkeypatch, "boss", "audit", "--json").output)
    assert any(e["action"] == "keys" and e["user"] == "boss" for e in trail)


def test_a_rotation_run_again_after_an_interruption_finishes_it(sms_app, monkeypatch):
    """Stopped after the new key went into secret.key beside the old one: running it again
    goes on with that key, and nothing is lost."""
    import bot.rotation

    app = sms_app
    sid = app.service.invite("K-1", 12, channel="sms", contact=OTHER, actor="anna").session_id
    real = bot.rotation._staff

    def crash(*_a):
        raise KeyboardInterrupt  # as if the machine went down here

    monkeypatch.setattr(bot.rotation, "_staff", crash)
    with pytest.raises(KeyboardInterrupt):
        bot.rotation.rotate(app, lambda *_: None)
    halfway = (app.settings.data_path / "secret.key").read_bytes().split()
    assert len(halfway) == 2  # the new key first, the old one after it
    monkeypatch.setattr(bot.rotation, "_staff", real)
    s = app.settings
    resumed = create_app(_settings(app.settings.data_path.parent, s.redis_url, s.database_url))
    try:
        assert resumed.service.state(sid).session_id == sid  # readable with both keys
        bot.rotation.rotate(resumed, lambda *_: None)
    finally:
        resumed.close()
    assert (app.settings.data_path / "secret.key").read_bytes().split() == halfway[:1]
    final = create_app(_settings(app.settings.data_path.parent, s.redis_url, s.database_url))
    try:
        assert final.service.state(sid).session_id == sid
        assert final.service.session_for_contact("sms", OTHER) == sid
    finally:
        final.close()
