"""The machine's PostgreSQL server (127.0.0.1:5432), as the tests use it: each test makes a
database of its own and drops it; none stops or reconfigures the server."""

from __future__ import annotations

import os
import socket

import asyncpg
import pytest

# HW_POSTGRES points the benches at another server (e.g. a throwaway one with pg_stat_statements)
POSTGRES = os.environ.get("HW_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
POSTGRES_SECRET_KEY = "secret-key-for-the-postgresql-tests-0123"


def postgres_listens() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip (or, where CI requires it, fail) unless the machine's PostgreSQL listens."""
    if postgres_listens():
        return
    if os.environ.get("HW_TEST_POSTGRES") == "required":  # set by .ci/run
        pytest.fail("no PostgreSQL listens on 127.0.0.1:5432, and CI requires it")
    pytest.skip("no PostgreSQL listens on 127.0.0.1:5432: the PostgreSQL runs are skipped")


async def admin_sql(*statements: str) -> None:
    """Run statements on the server's ``postgres`` database (CREATE/DROP/ALTER DATABASE)."""
    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


async def terminate_connections(database: str) -> None:
    """End every connection to ``database`` (one the test made)."""
    conn = await asyncpg.connect(f"{POSTGRES}/postgres")
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database
        )
    finally:
        await conn.close()
