"""Alembic environment and versions, shipped inside the package (no alembic.ini needed)."""
