"""Room on each page for updated rows: job and step rows are updated a few times each.

With free space on the page (fillfactor below 100), an update that changes no indexed
column is a HOT update: no new index entries, and the old version is pruned without a
vacuum. Step rows change only unindexed columns; job rows mostly too (lease, times).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE stepping_transactions SET (fillfactor = 70)")
    op.execute("ALTER TABLE stepping_steps SET (fillfactor = 70)")


def downgrade() -> None:
    op.execute("ALTER TABLE stepping_transactions RESET (fillfactor)")
    op.execute("ALTER TABLE stepping_steps RESET (fillfactor)")
