"""Owner-only files (issue 16): the data directory is 0700 and every file tala, SQLite and the
embedded Redis write in it is 0600, whatever the umask; at start, tala names any file there
that other accounts can still read."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from bot.app import create_app
from storage.files import exposed
from tests.conftest import _settings


def _modes(root: Path) -> dict[str, str]:
    """Every file and directory under root (root too) and its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            found[str(p.relative_to(root))] = oct(stat.S_IMODE(p.stat().st_mode))
    return found


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)  # what most accounts have: files 0644, directories 0755
    yield
    os.umask(old)


def test_everything_in_the_data_directory_is_owner_only_while_tala_runs(tmp_path, loose_umask):
    app = create_app(_settings(tmp_path, None, None), migrate=True)  # its own embedded Redis
    try:
        sid = app.service.invite("F-1", 14, actor="anna").session_id
        app.service.open(sid)
        for text in ["7", "Det är bråk hemma", "sluta", "ja"]:
            app.service.handle(sid, text)
        app.store.r.bgrewriteaof()  # the AOF rewritten as well as appended
        data = app.settings.data_path
        modes = _modes(data)
        # SQLite's WAL while the database is open, Redis's append-only file, the key file.
        assert {"tala.db", "tala.db-wal", "secret.key"} <= set(modes), modes
        assert any(name.startswith("appendonly") for name in modes), modes
        wrong = {name: mode for name, mode in modes.items()
                 if mode != ("0o700" if (data / name).is_dir() else "0o600")}
        assert wrong == {}, wrong
        assert exposed(data) == []
    finally:
        app.close()


def test_a_file_others_can_read_is_named_at_start(tmp_path, loose_umask, caplog):
    settings = _settings(tmp_path, None, None)
    first = create_app(settings, migrate=True)
    first.db.has_users()  # the database made (each part is built on first use)
    first.close()
    data = settings.data_path
    (data / "tala.db").chmod(0o644)  # say, copied back from a backup
    data.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="tala.app"):
        create_app(settings).close()
    [warning] = [r.getMessage() for r in caplog.records if r.name == "tala.app"]
    assert "tala.db" in warning and "chmod -R go=" in warning
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # the directory is closed again at once
