"""row types that a recorded batch is bound as, on PostgreSQL

Revision ID: 0007
Revises: 0006

A batch of outcomes was bound as one array per field, and asyncpg checks every element of
every array against ``collections.abc``: 22 checks per outcome, a fifth of the worker's
recording CPU. Bound as one array of rows of these composite types, it checks each row once.
Their attributes are the fields of ``AttemptRecord`` and ``OutcomeParams`` (``statements.py``
declares them as of now; a test compares them with the database's). SQLite records row by row
and has no such types: nothing changes there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# as store/statements.py's, at this revision
ROW_TYPES = {
    "attempt_row": "delivery_id varchar, number integer, started_at timestamptz, "
    "duration_ms integer, request_headers text, status integer, response_excerpt text, "
    "error text",
    "outcome_row": "delivery_id varchar, owner varchar, status varchar, attempt_count integer, "
    "next_attempt_at timestamptz, last_status integer, last_error text, "
    "delivered_at timestamptz",
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, attributes in ROW_TYPES.items():
        op.execute(f"CREATE TYPE {name} AS ({attributes})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in ROW_TYPES:
        op.execute(f"DROP TYPE {name}")
