"""spot-check samples

Each drawn sample beside its subject row: blind code, results, what was published;
a campaign's flow run and its count of publications.

Revision ID: 4186ede7f46b
Revises: 16fb88af98be
Create Date: 2026-12-02 19:52:15.392561
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db


revision = '4186ede7f46b'
down_revision = '16fb88af98be'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('spot_sample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('campaign_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('uscc', sqlmodel.sql.sqltypes.AutoString(length=18), nullable=False),
    sa.Column('enterprise', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('inspectors', sa.JSON(), nullable=False),
    sa.Column('blind_code', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('product', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('batch', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('sampled_on', sa.Date(), nullable=True),
    sa.Column('producer_authority', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('lab', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('failing_items', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('retest_lab', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('retest_passed', sa.Boolean(), nullable=True),
    sa.Column('retest_failing_items', sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
    sa.Column('result', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
    sa.Column('final_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('published', sa.JSON(), nullable=True),
    sa.Column('published_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('corrections', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('blind_code'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('spot_sample', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_spot_sample_campaign_key'), ['campaign_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_sample_result'), ['result'], unique=False)
        batch_op.create_index(batch_op.f('ix_spot_sample_uscc'), ['uscc'], unique=False)

    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flow_run_id', sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column('publications', sa.Integer(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('campaign', schema=None) as batch_op:
        batch_op.drop_column('publications')
        batch_op.drop_column('flow_run_id')

    with op.batch_alter_table('spot_sample', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_spot_sample_uscc'))
        batch_op.drop_index(batch_op.f('ix_spot_sample_result'))
        batch_op.drop_index(batch_op.f('ix_spot_sample_campaign_key'))

    op.drop_table('spot_sample')
