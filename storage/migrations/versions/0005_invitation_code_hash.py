"""invitation codes kept only as a keyed hash (invitations.code -> invitations.code_hash)

Anyone who could read the invitations table could claim an unused Telegram or Rasa invitation
with its code. The code is now shown once, to whoever invites, and SQL keeps only
`Crypto.lookup_hash(code)`: the same keyed hash that has always been the code's key in Redis
(`tala:bind:code:HASH`), so invitations open before the upgrade still open with their codes.

The key is the installation's own, found as tala finds it (storage.sql.upgrade hands it in;
`tala db upgrade` or alembic by hand read TALA_SECRET_KEY, else the data dir's secret.key).
With codes to convert and no key, the migration stops before changing anything: a new key
would make hashes that match nothing. The old values are set to NULL before the column is
dropped, and a SQLite file is compacted afterwards (storage.sql.upgrade), so they do not stay
behind in the file's free pages.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import context, op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

invitations = sa.table('invitations', sa.column('id', sa.String), sa.column('code', sa.String),
                       sa.column('code_hash', sa.String))


def _crypto():
    crypto = context.config.attributes.get('crypto')
    if crypto is None:
        from bot.settings import Settings
        from storage.crypto import Crypto

        settings = Settings()
        crypto = Crypto.configured(settings.secret_key, settings.data_path, create=False)
    return crypto


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(invitations.c.id, invitations.c.code)
                        .where(invitations.c.code.isnot(None))).all()
    crypto = _crypto() if rows else None  # no key, no change: it stops here
    if conn.dialect.name == 'sqlite':
        conn.exec_driver_sql('PRAGMA secure_delete=ON')  # freed pages are zeroed
    op.add_column('invitations', sa.Column('code_hash', sa.String(length=64), nullable=True))
    if rows:
        conn.execute(invitations.update().where(invitations.c.id == sa.bindparam('row_id'))
                     .values(code_hash=sa.bindparam('hashed'), code=None),
                     [{'row_id': row_id, 'hashed': crypto.lookup_hash(code)}
                      for row_id, code in rows])
        context.config.attributes['scrub'] = True
    op.drop_column('invitations', 'code')


def downgrade() -> None:
    """A hash cannot be turned back into its code: the codes are gone. Open invitations still
    open with them (Redis keeps the same hash); `tala erase` on 0004 leaves their Redis
    binding to expire on its own."""
    op.add_column('invitations', sa.Column('code', sa.String(length=32), nullable=True))
    op.drop_column('invitations', 'code_hash')
