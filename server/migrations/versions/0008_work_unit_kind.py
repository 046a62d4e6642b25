"""work unit kind

Agents' work is typed: ``work_units.kind`` is unit, overhead or subnet (``latency_tables.kinds``),
so coverage and uploads dispatch on a column instead of key prefixes. Existing rows get their
kind from their key.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('work_units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), server_default='unit', nullable=False))
    units = sa.table('work_units', sa.column('unit_key', sa.String), sa.column('kind', sa.String))
    op.execute(units.update().where(units.c.unit_key == 'overhead:empty').values(kind='overhead'))
    op.execute(units.update().where(units.c.unit_key.like('subnet:%')).values(kind='subnet'))


def downgrade() -> None:
    with op.batch_alter_table('work_units', schema=None) as batch_op:
        batch_op.drop_column('kind')
