"""incident origin

The 12315 complaint an incident was escalated from.

Revision ID: bc79410eae97
Revises: 2558e1391b4e
Create Date: 2026-12-02 16:20:34.967780
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db

revision = 'bc79410eae97'
down_revision = '2558e1391b4e'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_column('origin')
