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


# plain ALTER TABLE, not batch mode: SQLite's batch mode rebuilds ``supernets``, and dropping the old
# table cascades (ON DELETE CASCADE) through searches to every result
def upgrade() -> None:
    op.add_column('supernets', sa.Column('members', sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column('supernets', 'members')
