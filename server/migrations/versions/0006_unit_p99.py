"""unit p99

Units keep their tail latency: ``lut_entries`` gets a nullable ``p99_ms`` (p50 is
``median_ms``, p90 ``p90_ms``). Entries measured before this revision keep NULL.

Revision ID: 0006
Revises: 0003
Create Date: 2026-12-02 01:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lut_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column('p99_ms', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("lut_entries", schema=None) as batch_op:
        batch_op.drop_column('p99_ms')
