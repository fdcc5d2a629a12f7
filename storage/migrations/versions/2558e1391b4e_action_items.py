"""action items

The improvements a post-incident review assigns, each tracked by a deadline.

Revision ID: 2558e1391b4e
Revises: d5f18a2c7b40
Create Date: 2026-12-02 16:18:53.231275
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db

revision = '2558e1391b4e'
down_revision = 'd5f18a2c7b40'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('action_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('what', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('authority_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('created_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('done_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('done_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.ForeignKeyConstraint(['authority_code'], ['authority.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('subject', 'seq')
    )
    with op.batch_alter_table('action_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_item_authority_code'), ['authority_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_item_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_item_subject'), ['subject'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('action_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_item_subject'))
        batch_op.drop_index(batch_op.f('ix_action_item_status'))
        batch_op.drop_index(batch_op.f('ix_action_item_authority_code'))

    op.drop_table('action_item')
