"""anchor measurements

Drift probes: a target's anchor subnets re-measured by its agents on a schedule
(``server.measurements.drift``), one row per (hardware target, round, architecture).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 12:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('anchor_measurements',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('hardware_id', sa.Integer(), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('lighttrack', sa.String(length=255), nullable=False),
    sa.Column('median_ms', sa.Float(), nullable=False),
    sa.Column('p90_ms', sa.Float(), nullable=True),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('env', sa.JSON(), nullable=False),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['hardware_id'], ['hardware.id'], name=op.f('fk_anchor_measurements_hardware_id_hardware'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_anchor_measurements')),
    sa.UniqueConstraint('hardware_id', 'round', 'lighttrack',
                        name=op.f('uq_anchor_measurements_hardware_id_round_lighttrack'))
    )


def downgrade() -> None:
    op.drop_table('anchor_measurements')
