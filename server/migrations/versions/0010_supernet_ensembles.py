"""supernet ensembles

A supernet row may be an ensemble of the team's other supernets (``members``: their ids, in
order): a search on it scores each candidate with the mean of the members' scores.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 21:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('supernets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('members', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('supernets', schema=None) as batch_op:
        batch_op.drop_column('members')
