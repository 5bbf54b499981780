"""Alembic environment: runs on the connection `storage.sql.upgrade` hands it, or on
DATABASE_URL / the default SQLite file when alembic is run by hand."""

from alembic import context

from storage.sql import Base

target_metadata = Base.metadata
config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from pathlib import Path

        from bot.settings import Settings
        from storage.sql import make_engine

        settings = Settings()
        engine = make_engine(settings.database_url, Path(settings.data_dir))
        with engine.begin() as conn:
            _migrate(conn)
        return
    _migrate(connection)


def _migrate(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
