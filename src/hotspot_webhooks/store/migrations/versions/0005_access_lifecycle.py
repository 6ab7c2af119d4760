"""operators and locations can be disabled; a rotated key is kept for a grace period

Revision ID: 0005
Revises: 0004

``operators.status`` and ``locations.status`` (with a reason) let the admin suspend an
operator or a location without deleting anything. ``webhooks.previous_api_key_encrypted`` is
the key a rotation replaced: deliveries keep carrying a signature under it until
``previous_key_expires_at`` (``ROTATION_GRACE``), after which it is erased.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hotspot_webhooks.store.schema import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROTATED = "previous_key_expires_at IS NOT NULL"  # as store/schema.py's, at this revision


def upgrade() -> None:
    for table in ("operators", "locations"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("status", sa.String(16), nullable=False, server_default="enabled")
            )
            batch.add_column(sa.Column("disabled_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("previous_api_key_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("previous_key_expires_at", UTCDateTime(), nullable=True))
    op.create_index(
        "ix_webhooks_previous_key_expires_at",
        "webhooks",
        ["previous_key_expires_at"],
        sqlite_where=sa.text(ROTATED),
        postgresql_where=sa.text(ROTATED),
    )


def downgrade() -> None:
    op.drop_index("ix_webhooks_previous_key_expires_at", table_name="webhooks")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_column("previous_key_expires_at")
        batch.drop_column("previous_api_key_encrypted")
    for table in ("locations", "operators"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("disabled_reason")
            batch.drop_column("status")
