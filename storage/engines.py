"""SQLAlchemy engines for tala's databases: the URL given, or an owner-only SQLite file in the
data directory (SQLite gives its WAL and shared-memory files the database's mode), with the
pragmas each connection to it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine

from storage.files import private_dir, private_file


def engine_for(url: str | None, data_dir: Path, filename: str, pragmas: list[str]) -> Engine:
    if not url:
        url = f"sqlite:///{private_file(private_dir(data_dir) / filename)}"
    engine = create_engine(url, future=True)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            for pragma in pragmas:
                cur.execute(f"PRAGMA {pragma}")
            cur.close()
    return engine
