"""Late outcomes: which of a batch's attempts were recorded after their lease was lost.

A worker that stalled or was cut off past ``WORKER_TIMEOUT`` may record outcomes of leases that
another worker took over meanwhile. Those attempts are stored flagged ``late``: they change no
delivery, and the attempts that count stay unique per (delivery, number) (migration 0008).
Which leases are still the recorder's is decided where they are locked: on PostgreSQL by the
outcomes' update itself (``RECORD_OUTCOMES`` returns them); on SQLite, which has one writer at
a time, by reading them in the same write (``held_sqlite``).
"""

from __future__ import annotations

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from .records import AttemptRecord

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
