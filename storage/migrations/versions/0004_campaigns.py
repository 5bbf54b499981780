"""anonymous campaigns; sessions that belong to a campaign instead of a child

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'campaigns',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('questionnaire_id', sa.String(length=64), nullable=False),
        sa.Column('keyword', sa.String(length=32), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('unit', sa.String(length=120), nullable=True),
        sa.Column('opens', sa.Date(), nullable=False),
        sa.Column('closes', sa.Date(), nullable=False),
        sa.Column('langs', sa.JSON(), nullable=False),
        sa.Column('created_by', sa.String(length=120), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('flagged', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
        sa.UniqueConstraint('code'),
    )
    with op.batch_alter_table('campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaigns_keyword'), ['keyword'], unique=False)
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.alter_column('child_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('campaign_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_sessions_campaign_id'), ['campaign_id'],
                              unique=False)
        batch_op.create_foreign_key('fk_sessions_campaign_id', 'campaigns', ['campaign_id'],
                                    ['id'], ondelete='CASCADE')


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_constraint('fk_sessions_campaign_id', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_sessions_campaign_id'))
        batch_op.drop_column('campaign_id')
        batch_op.alter_column('child_id', existing_type=sa.Integer(), nullable=False)
    op.drop_table('campaigns')
