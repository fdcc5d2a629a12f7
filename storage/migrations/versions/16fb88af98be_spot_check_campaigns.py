"""spot-check campaigns

Campaign plans as filed and their draws, with what a re-run needs.

Revision ID: 16fb88af98be
Revises: 012dc3c7e482
Create Date: 2026-12-02 17:59:07.894721
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db


revision = '16fb88af98be'
down_revision = '012dc3c7e482'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('campaign',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('authority_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('plan_text', sa.Text(), nullable=False),
    sa.Column('plan_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('created_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=True),
    sa.Column('algorithm', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('snapshot', sa.JSON(), nullable=True),
    sa.Column('samples', sa.JSON(), nullable=True),
    sa.Column('drawn_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('drawn_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.ForeignKeyConstraint(['authority_code'], ['authority.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_campaign_authority_code'), ['authority_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_campaign_authority_code'))

    op.drop_table('campaign')
