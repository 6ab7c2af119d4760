"""subscriptions (location_ids x event_types, "*" for all) and registered event types

Revision ID: 0006
Revises: 0005

A webhook was one location and one event type (``webhooks.location_id``, ``event_type``). It
now belongs to an operator and subscribes to the pairs in ``subscriptions`` ("*" for all of
the operator's locations, or all types); each existing webhook becomes exactly its one pair.
``event_types`` holds the types an admin registers beside the six built-ins.

On SQLite the webhooks table is rebuilt (batch mode); ``store.migrate`` runs migrations there
with foreign keys off and checks them before committing, so the rebuild cascades nothing.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hotspot_webhooks.store.schema import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROTATED = "previous_key_expires_at IS NOT NULL"  # as store/schema.py's, at this revision


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("location_id", sa.String(200), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("operator_id", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["webhook_id"],
            ["webhooks.id"],
            name="fk_subscriptions_webhook_id_webhooks",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("webhook_id", "location_id", "event_type", name="pk_subscriptions"),
    )
    op.create_index(
        "ix_subscriptions_match", "subscriptions", ["operator_id", "location_id", "event_type"]
    )
    op.create_table(
        "event_types",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("json_schema", sa.JSON(), nullable=False),
        sa.Column("sample", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_event_types"),
    )
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("operator_id", sa.String(64), nullable=True))
    op.execute(
        "UPDATE webhooks SET operator_id = "
        "(SELECT operator_id FROM locations WHERE locations.id = webhooks.location_id)"
    )
    op.execute(
        "INSERT INTO subscriptions (webhook_id, location_id, event_type, operator_id) "
        "SELECT id, location_id, event_type, operator_id FROM webhooks"
    )
    # the partial index is put back by hand: batch mode cannot be trusted to copy its WHERE
    op.drop_index("ix_webhooks_previous_key_expires_at", table_name="webhooks")
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_index("ix_webhooks_location_event")
        batch.drop_constraint("fk_webhooks_location_id_locations", type_="foreignkey")
        batch.drop_column("location_id")
        batch.drop_column("event_type")
        batch.alter_column("operator_id", existing_type=sa.String(64), nullable=False)
        batch.create_foreign_key(
            "fk_webhooks_operator_id_operators",
            "operators",
            ["operator_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_webhooks_operator_id", ["operator_id"])
    _index_rotated()


def downgrade() -> None:
    """Back to one location and one type per webhook: a webhook subscribed to anything else
    ("*", or several) cannot be expressed, so the downgrade refuses while one exists."""
    wider = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT webhook_id FROM subscriptions GROUP BY webhook_id "
                "HAVING COUNT(*) > 1 OR MAX(location_id) = '*' OR MAX(event_type) = '*' LIMIT 1"
            )
        )
        .first()
    )
    if wider is not None:
        raise RuntimeError(
            f"webhook {wider[0]} subscribes to more than one location and type; "
            "delete such webhooks before downgrading below 0006"
        )
    op.drop_index("ix_webhooks_previous_key_expires_at", table_name="webhooks")
    with op.batch_alter_table("webhooks") as batch:
        batch.add_column(sa.Column("location_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("event_type", sa.String(64), nullable=True))
    op.execute(
        "UPDATE webhooks SET "
        "location_id = (SELECT location_id FROM subscriptions s WHERE s.webhook_id = webhooks.id), "
        "event_type = (SELECT event_type FROM subscriptions s WHERE s.webhook_id = webhooks.id)"
    )
    with op.batch_alter_table("webhooks") as batch:
        batch.drop_index("ix_webhooks_operator_id")
        batch.drop_constraint("fk_webhooks_operator_id_operators", type_="foreignkey")
        batch.drop_column("operator_id")
        batch.alter_column("location_id", existing_type=sa.String(200), nullable=False)
        batch.alter_column("event_type", existing_type=sa.String(64), nullable=False)
        batch.create_foreign_key(
            "fk_webhooks_location_id_locations",
            "locations",
            ["location_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_webhooks_location_event", ["location_id", "event_type"])
    _index_rotated()
    op.drop_table("event_types")
    op.drop_index("ix_subscriptions_match", table_name="subscriptions")
    op.drop_table("subscriptions")


def _index_rotated() -> None:
    op.create_index(
        "ix_webhooks_previous_key_expires_at",
        "webhooks",
        ["previous_key_expires_at"],
        sqlite_where=sa.text(ROTATED),
        postgresql_where=sa.text(ROTATED),
    )
