"""score standard errors

Every stored validation score keeps its standard error (over validation pairs or sequences):
``score_cache``, ``search_results`` and ``front_points`` get a nullable ``score_se``. Rows
written before this revision keep NULL (no standard error known).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

TABLES = ("score_cache", "search_results", "front_points")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('score_se', sa.Float(), nullable=True))


def downgrade() -> None:
    for table in reversed(TABLES):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('score_se')
