"""attempt numbers unique per delivery; an outcome recorded after its lease was lost is late

Revision ID: 0009
Revises: 0008

A worker that stalled or lost the database past ``WORKER_TIMEOUT`` could record the outcome
of an attempt whose lease another worker had taken over meanwhile: a second row with the
number of the takeover's attempt of unknown outcome, or of the other worker's attempt. From
here such an outcome is stored flagged ``late`` (it changes no delivery), and the attempts
that count are unique per (delivery, number).

Rows are never lost: where a database already holds several rows of one number for one
delivery, the first stored (lowest id) stays the attempt that counts and the others are
flagged late, which is what they were: written after an earlier row had taken the number.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_LATE = sa.text("NOT late")


def upgrade() -> None:
    op.add_column(
        "attempts", sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.execute(
        "UPDATE attempts SET late = true WHERE id IN ("
        " SELECT id FROM ("
        "  SELECT id, row_number() OVER (PARTITION BY delivery_id, number ORDER BY id) AS nth"
        "  FROM attempts) AS numbered"
        " WHERE nth > 1)"
    )
    op.create_index(
        "uq_attempts_delivery_number",
        "attempts",
        ["delivery_id", "number"],
        unique=True,
        sqlite_where=NOT_LATE,
        postgresql_where=NOT_LATE,
    )
    if op.get_bind().dialect.name == "postgresql":  # the row type a batch is bound as (0007)
        op.execute("ALTER TYPE attempt_row ADD ATTRIBUTE late boolean")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE attempt_row DROP ATTRIBUTE late")
    op.drop_index("uq_attempts_delivery_number", table_name="attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("late")
