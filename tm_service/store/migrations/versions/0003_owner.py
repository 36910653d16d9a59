"""The principal that created a job: ``owner`` (README "Security").

NULL for jobs created without an auth file. A client principal lists only its own
jobs, newest first: the partial index serves that page query.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable without a default: a catalogue change, no table rewrite.
    op.add_column("stepping_transactions", sa.Column("owner", sa.Text(), nullable=True))
    op.create_index(
        "ix_stepping_transactions_owner_created",
        "stepping_transactions",
        ["owner", "create_time", "gid"],
        postgresql_where=sa.text("owner IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_stepping_transactions_owner_created", "stepping_transactions")
    op.drop_column("stepping_transactions", "owner")
