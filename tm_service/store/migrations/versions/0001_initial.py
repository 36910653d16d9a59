"""Initial schema: transactions and steps.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stepping_transactions",
        sa.Column("gid", sa.Text, primary_key=True),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("mode", sa.SmallInteger, nullable=False),
        sa.Column("concurrent", sa.Boolean, nullable=False),
        sa.Column("step_timeout", sa.Float, nullable=False),
        sa.Column("check_prepared_after", sa.Float, nullable=False),
        sa.Column("deadline", sa.Float, nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("qp_target", sa.Text, nullable=True),
        sa.Column("qp_method", sa.Text, nullable=True),
        sa.Column("database", sa.Text, nullable=False, server_default=""),
        sa.Column("fingerprint", sa.LargeBinary, nullable=False),
        sa.Column("trace_context", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("query_attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.Text, nullable=True),
        sa.Column("lease_token", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lease_expires", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "create_time",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column(
            "update_time",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("finish_time", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index(
        "ix_stepping_transactions_due",
        "stepping_transactions",
        ["next_time"],
        postgresql_where=sa.text("status IN (1, 2, 5)"),
    )
    op.create_index(
        "ix_stepping_transactions_created", "stepping_transactions", ["create_time", "gid"]
    )
    op.create_index(
        "ix_stepping_transactions_status_created",
        "stepping_transactions",
        ["status", "create_time", "gid"],
    )
    op.create_table(
        "stepping_steps",
        sa.Column(
            "gid",
            sa.Text,
            sa.ForeignKey("stepping_transactions.gid", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("action_target", sa.Text, nullable=False),
        sa.Column("action_method", sa.Text, nullable=False),
        sa.Column("comp_target", sa.Text, nullable=True),
        sa.Column("comp_method", sa.Text, nullable=True),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB, nullable=False),
        sa.Column("initial_interval", sa.Float, nullable=False),
        sa.Column("backoff_coefficient", sa.Float, nullable=False),
        sa.Column("maximum_interval", sa.Float, nullable=False),
        sa.Column("maximum_attempts", sa.Integer, nullable=False),
        sa.Column("timeout", sa.Float, nullable=False),
        sa.Column("status", sa.SmallInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("result", sa.LargeBinary, nullable=True),
        sa.Column("next_attempt_time", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("stepping_steps")
    op.drop_table("stepping_transactions")
