"""The database: tables and migrations, the typed records, and every query.

``store.store.Store`` is the one entry point; ``records`` holds the plain data it reads and
writes for the delivery engine (importable without SQLAlchemy, for the pure modules above it).
This package's ``__init__`` imports nothing, for that reason.
"""
