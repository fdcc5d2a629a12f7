"""authority government

The duty office of the people's government of each authority's region, told of
emergencies at the levels a plan names.

Revision ID: d5f18a2c7b40
Revises: c4e7a2d91f35
Create Date: 2026-12-02 14:10:00.000000
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = 'd5f18a2c7b40'
down_revision = 'c4e7a2d91f35'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('authority', schema=None) as batch_op:
        batch_op.add_column(sa.Column('government', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('authority', schema=None) as batch_op:
        batch_op.drop_column('government')
