"""Job control (issue 13): ``stepping_steps.non_retryable_codes``.

The gRPC code names that end a step's action at once (``RetryPolicy.non_retryable_codes``);
``[]`` = the TM's default (UNIMPLEMENTED). A constant default: no table rewrite.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "stepping_steps",
        sa.Column(
            "non_retryable_codes", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")
        ),
    )


def downgrade() -> None:
    op.drop_column("stepping_steps", "non_retryable_codes")
