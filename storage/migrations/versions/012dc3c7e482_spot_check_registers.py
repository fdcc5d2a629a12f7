"""spot-check registers

Inspection targets and inspectors, the registers a campaign draws from.

Revision ID: 012dc3c7e482
Revises: cf96df836ad0
Create Date: 2026-12-02 17:41:35.522737
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db


revision = '012dc3c7e482'
down_revision = 'cf96df836ad0'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inspection_target',
    sa.Column('uscc', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('authority_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('risk', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('updated_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['authority_code'], ['authority.code'], ),
    sa.PrimaryKeyConstraint('uscc')
    )
    with op.batch_alter_table('inspection_target', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspection_target_authority_code'), ['authority_code'], unique=False)

    op.create_table('inspector',
    sa.Column('login', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('authority_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('qualifications', sa.JSON(), nullable=False),
    sa.Column('conflicts', sa.JSON(), nullable=False),
    sa.Column('updated_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['authority_code'], ['authority.code'], ),
    sa.PrimaryKeyConstraint('login')
    )
    with op.batch_alter_table('inspector', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inspector_authority_code'), ['authority_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('inspector', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspector_authority_code'))

    op.drop_table('inspector')
    with op.batch_alter_table('inspection_target', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inspection_target_authority_code'))

    op.drop_table('inspection_target')
