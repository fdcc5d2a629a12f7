"""manager health

Each watcher's failing managers, one row per watcher and manager while it keeps
failing, for the supervision board.

Revision ID: c4e7a2d91f35
Revises: 508eb66f049b
Create Date: 2026-11-27 10:12:05.118342
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db


revision = 'c4e7a2d91f35'
down_revision = '508eb66f049b'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('manager_health',
    sa.Column('watcher', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('manager', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('failing_since', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('failed_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('watcher', 'manager')
    )
    with op.batch_alter_table('manager_health', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_manager_health_failed_at'), ['failed_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('manager_health', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_manager_health_failed_at'))

    op.drop_table('manager_health')
