"""Writing a batch's outcomes: its attempts, and the new states of the deliveries still held
(``write_outcomes``, for ``Queue.record`` and the takeovers in ``workers.py``).

A worker that stalled or was cut off past ``WORKER_TIMEOUT`` may record outcomes of leases that
another worker took over meanwhile. Those attempts are stored flagged ``late``: they change no
delivery, and the attempts that count stay unique per (delivery, number) (migration 0009).
Which leases are still the recorder's is decided where they are locked: on PostgreSQL by the
outcomes' update itself (``RECORD_OUTCOMES`` returns them); on SQLite, which has one writer at
a time, by reading them in the same write (``held_sqlite``).
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from .records import AttemptRecord, Outcome
from .statements import (
    INSERT_ATTEMPT,
    INSERT_ATTEMPTS,
    RECORD_OUTCOME,
    RECORD_OUTCOMES,
    OutcomeParams,
)

# what a late attempt's error says (the API's attempt shape is the SPEC's: no field of its own)
LATE = "recorded late: another worker had taken this delivery over; it changed nothing"

_HELD_SQLITE = (
    "SELECT id FROM deliveries WHERE lease_owner = ? AND id IN (SELECT value FROM json_each(?))"
)


async def held_sqlite(conn: AsyncConnection, owner: str, delivery_ids: list[str]) -> set[str]:
    """SQLite: which of these deliveries ``owner`` still holds the lease of (it holds the
    writer until the commit, so that stays true)."""
    found = await conn.exec_driver_sql(_HELD_SQLITE, (owner, orjson.dumps(delivery_ids).decode()))
    return {row[0] for row in found}


def flag_late(rows: list[AttemptRecord], held: set[str]) -> list[AttemptRecord]:
    """``rows`` with the attempts of deliveries not in ``held`` flagged late."""
    if all(row.delivery_id in held for row in rows):
        return rows
    return [row if row.delivery_id in held else row._replace(late=True) for row in rows]


def shown_error(error: str | None, late: bool) -> str | None:
    """An attempt's error as shown: a late one's says so."""
    if not late:
        return error
    return LATE if error is None else f"{error} ({LATE})"


async def write_outcomes(conn: AsyncConnection, owner: str, outcomes: Sequence[Outcome]) -> int:
    """Store the attempts (always: they happened; not once their delivery is deleted) and the
    new states of the deliveries ``owner`` still holds; return how many it held.

    The attempt of a delivery whose lease ``owner`` no longer holds (another worker took it
    over while this one stalled or was cut off) is stored flagged ``late``: it changes no
    delivery and takes no number from the attempts that count (unique per number).

    PostgreSQL takes each half as one statement over arrays, the states first (the update
    locks each row and says which leases were still ours); SQLite, in process, runs them row
    by row (``executemany``), which is its fastest way, after reading which it holds."""
    if not outcomes:
        return 0
    attempt_rows = [o.attempt for o in outcomes if o.attempt is not None]
    # positional (the fields' order, which mypy checks): a third of the keyword form's cost
    states = [
        OutcomeParams(
            o.delivery_id,
            owner,
            o.status,
            o.attempt_count,
            o.next_attempt_at,
            o.last_status,
            o.last_error,
            o.delivered_at,
        )
        for o in outcomes
    ]
    if conn.dialect.name == "postgresql":
        held = set(await RECORD_OUTCOMES.returned(conn, states))
        if attempt_rows:
            await INSERT_ATTEMPTS.execute(conn, flag_late(attempt_rows, held))
        return len(held)
    if attempt_rows:
        held = await held_sqlite(conn, owner, [a.delivery_id for a in attempt_rows])
        await INSERT_ATTEMPT.executemany(conn, flag_late(attempt_rows, held))
    return await RECORD_OUTCOME.executemany(conn, states)  # SQLite counts every row it changed
