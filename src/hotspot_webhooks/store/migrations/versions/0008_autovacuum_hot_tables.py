"""autovacuum settings of the hot tables, on PostgreSQL

Revision ID: 0008
Revises: 0007

PostgreSQL vacuums a table once a fifth of its rows are dead (and analyzes it at a tenth): on
a table of millions of deliveries, a purge or a day of updates leaves millions of dead rows
before autovacuum looks, and the table and its indexes swell. The hot tables are vacuumed at
1 % and analyzed at 2 % instead. Deliveries are updated in place (claimed, marked on the wire,
recorded): a fill factor of 80 leaves room in each page for the new versions of its rows.
The settings are storage parameters of the tables (``pg_class.reloptions``); SQLite has none
and nothing changes there.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTOVACUUM = {
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_analyze_scale_factor": "0.02",
}
# table → its storage parameters, at this revision
HOT_TABLES = {
    "deliveries": {**AUTOVACUUM, "fillfactor": "80"},
    "attempts": AUTOVACUUM,
    "events": AUTOVACUUM,
    "workers": AUTOVACUUM,
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, parameters in HOT_TABLES.items():
        settings = ", ".join(f"{name} = {value}" for name, value in parameters.items())
        op.execute(f"ALTER TABLE {table} SET ({settings})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, parameters in HOT_TABLES.items():
        op.execute(f"ALTER TABLE {table} RESET ({', '.join(parameters)})")
