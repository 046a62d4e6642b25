"""subnet measurements

The closed loop: whole subnets on a search's front, measured end to end by the target's agents
(``server.measurements.verification``), one row per (hardware target, architecture).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('subnet_measurements',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('hardware_id', sa.Integer(), nullable=False),
    sa.Column('lighttrack', sa.String(length=255), nullable=False),
    sa.Column('median_ms', sa.Float(), nullable=False),
    sa.Column('p90_ms', sa.Float(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('env', sa.JSON(), nullable=False),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['hardware_id'], ['hardware.id'], name=op.f('fk_subnet_measurements_hardware_id_hardware'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subnet_measurements')),
    sa.UniqueConstraint('hardware_id', 'lighttrack', name=op.f('uq_subnet_measurements_hardware_id_lighttrack'))
    )


def downgrade() -> None:
    op.drop_table('subnet_measurements')
