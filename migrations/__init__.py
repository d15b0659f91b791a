"""Alembic migrations of the SQL projections. Applied by `tributary migrate`."""
