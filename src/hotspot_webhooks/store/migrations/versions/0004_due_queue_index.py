"""the due index holds only the deliveries waiting for a worker

Revision ID: 0004
Revises: 0003

Before, ``ix_deliveries_due`` was (status, next_attempt_at) over every delivery, so each
claim and each outcome wrote an entry into it. Partial on what a claim looks for, it takes an
entry only when a delivery becomes due again (a retry, a takeover), and stays as small as the
queue.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DUE = "status = 'pending' AND lease_owner IS NULL"  # as store/schema.py's, at this revision


def upgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index(
        "ix_deliveries_due",
        "deliveries",
        ["next_attempt_at"],
        sqlite_where=sa.text(DUE),
        postgresql_where=sa.text(DUE),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_due", table_name="deliveries")
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
