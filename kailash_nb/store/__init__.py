"""Persistence: one SQLAlchemy store (SQLite by default, PostgreSQL by URL)."""
