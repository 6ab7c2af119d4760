"""a webhook's description, metadata, filter, template, preset, success statuses, and sealed
headers and auth

Revision ID: 0010
Revises: 0009

SPEC §9: what a webhook may do beyond §2, so it reaches a CRM, a mailing list or a chat
without a receiver of its own (whose answers to success are not always 200: HubSpot's 201, an
Apps Script's 302, so ``success_statuses`` may be set per webhook). Every column is nullable
and null for the webhooks that exist: those go on exactly as before, byte for byte. The
headers and auth are one sealed (encrypted) JSON text under ``SECRET_KEY``, like the API keys.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("description", sa.Text()),
    ("metadata_json", sa.Text()),
    ("filter_json", sa.Text()),
    ("template_json", sa.Text()),
    ("preset", sa.String(64)),
    ("success_statuses", sa.String(200)),
    ("secrets_sealed", sa.Text()),
)


def upgrade() -> None:
    # nullable columns with no default: a catalog change on both databases, no table rewrite
    for name, kind in COLUMNS:
        op.add_column("webhooks", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
