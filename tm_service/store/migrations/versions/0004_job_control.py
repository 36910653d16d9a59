"""Job control (issue 13) and the DTM API (issue 17): the columns they share.

- ``tags``: business keys given to Prepare/Submit (``{"order_id": "123"}``).
- ``cancel_reason``: set by Cancel; a replica running the job sees it and stops.
- ``needs_attention``: why the TM stopped retrying and waits for an operator.
- ``qp_history`` and ``stepping_steps.history``: the last calls made (JSON arrays).
- ``protocol``: which wire dialect the job's calls use ("" = stepping, "dtm").

Every column has a constant default: a catalogue change, no table rewrite.
Indexes for the List filters come in their own migration.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_EMPTY_OBJECT = sa.text("'{}'::jsonb")
_EMPTY_ARRAY = sa.text("'[]'::jsonb")


def upgrade() -> None:
    jobs = "stepping_transactions"
    op.add_column(jobs, sa.Column("tags", JSONB, nullable=False, server_default=_EMPTY_OBJECT))
    op.add_column(jobs, sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.add_column(jobs, sa.Column("needs_attention", sa.Text(), nullable=False, server_default=""))
    op.add_column(jobs, sa.Column("qp_history", JSONB, nullable=False, server_default=_EMPTY_ARRAY))
    op.add_column(jobs, sa.Column("protocol", sa.Text(), nullable=False, server_default=""))
    op.add_column(
        "stepping_steps",
        sa.Column("history", JSONB, nullable=False, server_default=_EMPTY_ARRAY),
    )


def downgrade() -> None:
    op.drop_column("stepping_steps", "history")
    for column in ("protocol", "qp_history", "needs_attention", "cancel_reason", "tags"):
        op.drop_column("stepping_transactions", column)
