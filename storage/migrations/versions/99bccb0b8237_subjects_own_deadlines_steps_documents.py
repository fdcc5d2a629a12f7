"""deadlines, steps and documents owned by any subject; enforcement cases

Revision ID: 99bccb0b8237
Revises: 271875aeb941
Create Date: 2026-11-26 17:34:25.526794
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel
import storage.db


revision = '99bccb0b8237'
down_revision = '271875aeb941'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('enforcement_case',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('party', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('authority_code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('handler', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('reporter', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('reporter_contact', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('real_name', sa.Boolean(), nullable=False),
    sa.Column('linked_to', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('received_at', storage.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('filed_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('clock_paused_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('fine', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('surcharge', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('rectification', sa.Boolean(), nullable=False),
    sa.Column('rules_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('flow_run_id', sa.Uuid(), nullable=True),
    sa.Column('listed_by', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('report_every', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('finish_by', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('supervision_reports', sa.Integer(), nullable=False),
    sa.Column('lookback_at', storage.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('lookback_run_id', sa.Uuid(), nullable=True),
    sa.Column('facts', sa.JSON(), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['authority_code'], ['authority.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('flow_run_id'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('enforcement_case', schema=None) as batch_op:
        batch_op.create_index('ix_case_without_run', ['flow_run_id', 'received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_enforcement_case_authority_code'), ['authority_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_enforcement_case_stage'), ['stage'], unique=False)
        batch_op.create_index(batch_op.f('ix_enforcement_case_status'), ['status'], unique=False)

    for table, key in OWNED.items():
        _to_subject(table, key)


# Deadlines, steps and documents were keyed by incident id; cases own them too now, so
# the owner is the subject's number (INC-..., CASE-..., CMP-...), as in the outbox,
# escalations and the audit log.
OWNED = {"deadline": "name", "step": "name", "report": "step"}
# Reflected SQLite constraints have no names; this convention gives them some to drop.
CONVENTION = {"uq": "uq_%(table_name)s_%(column_0_name)s", "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _to_subject(table: str, key: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(table) as batch_op:
        batch_op.add_column(sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        if table == "deadline":
            batch_op.add_column(sa.Column('authority', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    op.execute(f"UPDATE {table} SET subject = (SELECT number FROM incident WHERE incident.id = {table}.incident_id)")
    if table == "deadline":
        op.execute("UPDATE deadline SET authority = (SELECT authority_code FROM incident WHERE incident.id = deadline.incident_id)")
    with op.batch_alter_table(table, recreate="always" if sqlite else "auto",
                              naming_convention=CONVENTION if sqlite else None) as batch_op:
        if sqlite:
            batch_op.drop_constraint(f"uq_{table}_incident_id", type_="unique")
            batch_op.drop_constraint(f"fk_{table}_incident_id_incident", type_="foreignkey")
        batch_op.drop_index(f"ix_{table}_incident_id")
        batch_op.drop_column('incident_id')  # PostgreSQL drops its constraints with it
        batch_op.alter_column('subject', existing_type=sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False)
        batch_op.create_index(f"ix_{table}_subject", ['subject'], unique=False)
        batch_op.create_unique_constraint(f"uq_{table}_subject_{key}", ['subject', key])
        if table == "deadline":
            batch_op.alter_column('authority', existing_type=sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False)
            batch_op.create_index("ix_deadline_authority", ['authority'], unique=False)


def _to_incident(table: str, key: str) -> None:
    """Back to incident ids; rows of cases have no incident and are dropped."""
    op.execute(f"DELETE FROM {table} WHERE subject NOT IN (SELECT number FROM incident)")
    with op.batch_alter_table(table) as batch_op:
        batch_op.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
    op.execute(f"UPDATE {table} SET incident_id = (SELECT id FROM incident WHERE incident.number = {table}.subject)")
    with op.batch_alter_table(table, recreate="always" if op.get_bind().dialect.name == "sqlite" else "auto") as batch_op:
        batch_op.drop_constraint(f"uq_{table}_subject_{key}", type_="unique")
        batch_op.drop_index(f"ix_{table}_subject")
        batch_op.drop_column('subject')
        if table == "deadline":
            batch_op.drop_index("ix_deadline_authority")
            batch_op.drop_column('authority')
        batch_op.alter_column('incident_id', existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(f"fk_{table}_incident_id_incident", 'incident', ['incident_id'], ['id'])
        batch_op.create_index(f"ix_{table}_incident_id", ['incident_id'], unique=False)
        batch_op.create_unique_constraint(f"uq_{table}_incident_id", ['incident_id', key])


def downgrade() -> None:
    for table, key in OWNED.items():
        _to_incident(table, key)
    with op.batch_alter_table('enforcement_case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_enforcement_case_status'))
        batch_op.drop_index(batch_op.f('ix_enforcement_case_stage'))
        batch_op.drop_index(batch_op.f('ix_enforcement_case_authority_code'))
        batch_op.drop_index('ix_case_without_run')
    op.drop_table('enforcement_case')
