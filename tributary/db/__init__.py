"""SQL projections and embedded-mode tables (SQLAlchemy 2; PostgreSQL, or SQLite in embedded mode)."""
