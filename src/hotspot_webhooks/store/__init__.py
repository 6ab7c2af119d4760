"""The database: tables, migrations and every query."""

from .database import create_engine, parse_database_url, sqlite_file
from .queries import ClaimedDelivery, ExpiredLease, NewEvent, Outcome, Store, UnknownLocation

__all__ = [
    "ClaimedDelivery",
    "ExpiredLease",
    "NewEvent",
    "Outcome",
    "Store",
    "UnknownLocation",
    "create_engine",
    "parse_database_url",
    "sqlite_file",
]
