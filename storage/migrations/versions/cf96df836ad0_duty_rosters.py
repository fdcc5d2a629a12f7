"""duty rosters

Who is on duty when at each authority: roster shifts and overrides.

Revision ID: cf96df836ad0
Revises: bc79410eae97
Create Date: 2026-12-02 16:33:27.069821
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db


revision = 'cf96df836ad0'
down_revision = 'bc79410eae97'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('duty_shift',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('authority_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('starts_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ends_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('officer', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('leader', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('created_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.ForeignKeyConstraint(['authority_code'], ['authority.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('duty_shift', schema=None) as batch_op:
        batch_op.create_index('ix_duty_shift_when', ['authority_code', 'starts_at', 'ends_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('duty_shift', schema=None) as batch_op:
        batch_op.drop_index('ix_duty_shift_when')

    op.drop_table('duty_shift')
