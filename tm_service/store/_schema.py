"""The TM's tables as SQLAlchemy Core objects (the Alembic migrations create them)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

from tm_service.domain import TxStatus

__all__ = ["ACTIVE_STATUSES", "metadata", "steps", "transactions"]

metadata = MetaData()

# Statuses a sweeper may have to act on: waiting for the back-check, running, undoing.
ACTIVE_STATUSES: tuple[int, ...] = tuple(
    int(s) for s in (TxStatus.PREPARED, TxStatus.SUBMITTED, TxStatus.COMPENSATING)
)

transactions = Table(
    "stepping_transactions",
    metadata,
    Column("gid", Text, primary_key=True),
    Column("status", SmallInteger, nullable=False),
    Column("mode", SmallInteger, nullable=False),
    Column("concurrent", Boolean, nullable=False),
    Column("step_timeout", Float, nullable=False),
    Column("check_prepared_after", Float, nullable=False),
    Column("deadline", Float, nullable=True),
    Column("deadline_at", DateTime(timezone=True), nullable=True),
    Column("qp_target", Text, nullable=True),
    Column("qp_method", Text, nullable=True),
    Column("database", Text, nullable=False, server_default=""),
    Column("fingerprint", LargeBinary, nullable=False),
    Column("trace_context", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("error", Text, nullable=False, server_default=""),
    Column("query_attempts", Integer, nullable=False, server_default="0"),
    # When a sweeper should next look at the job.
    Column("next_time", DateTime(timezone=True), nullable=False),
    # The lease: owner, a fencing token bumped at every claim, and its expiry.
    Column("lease_owner", Text, nullable=True),
    Column("lease_token", BigInteger, nullable=False, server_default="0"),
    Column("lease_expires", DateTime(timezone=True), nullable=True),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("finish_time", DateTime(timezone=True), nullable=True),
    # The principal that created the job (migration 0003); NULL without an auth file.
    Column("owner", Text, nullable=True),
    # Migration 0004: job control and the DTM dialect.
    Column("tags", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    Column("cancel_reason", Text, nullable=True),
    Column("needs_attention", Text, nullable=False, server_default=""),
    Column("qp_history", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("protocol", Text, nullable=False, server_default=""),
    # Migration 0007: the token a running job held when cancelled (see store.cancel).
    Column("cancelled_token", BigInteger, nullable=True),
    # Migration 0008: bucket_of(gid), written by the TM (a trigger fills it for writers
    # that leave it out); the per-bucket claim's key, Citus's distribution column.
    # NULL only on jobs that were already finished when 0008 ran.
    Column("bucket", SmallInteger, nullable=True),
    Index(
        "ix_stepping_transactions_due",
        "next_time",
        # Migration 0001 made it with these statuses; a change needs a migration.
        postgresql_where=text(f"status IN ({', '.join(map(str, ACTIVE_STATUSES))})"),
    ),
    Index(
        "ix_stepping_transactions_due_bucket",
        "bucket",
        "next_time",
        postgresql_where=text(f"status IN ({', '.join(map(str, ACTIVE_STATUSES))})"),
    ),
    Index("ix_stepping_transactions_created", "create_time", "gid"),
    Index("ix_stepping_transactions_status_created", "status", "create_time", "gid"),
    Index(
        "ix_stepping_transactions_owner_created",
        "owner",
        "create_time",
        "gid",
        postgresql_where=text("owner IS NOT NULL"),
    ),
    postgresql_with={"fillfactor": 70},  # room for HOT updates (migration 0002)
)

steps = Table(
    "stepping_steps",
    metadata,
    Column(
        "gid",
        Text,
        ForeignKey("stepping_transactions.gid", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("idx", Integer, primary_key=True),
    Column("name", Text, nullable=False),
    Column("action_target", Text, nullable=False),
    Column("action_method", Text, nullable=False),
    Column("comp_target", Text, nullable=True),
    Column("comp_method", Text, nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("headers", JSONB, nullable=False),
    Column("initial_interval", Float, nullable=False),
    Column("backoff_coefficient", Float, nullable=False),
    Column("maximum_interval", Float, nullable=False),
    Column("maximum_attempts", Integer, nullable=False),
    Column("timeout", Float, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("result", LargeBinary, nullable=True),
    Column("next_attempt_time", DateTime(timezone=True), nullable=True),
    # Migration 0004: the last calls made, oldest first (JSON objects).
    Column("history", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # Migration 0005: RetryPolicy.non_retryable_codes ([] = the TM's default).
    Column("non_retryable_codes", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    # Migration 0008: its job's bucket (NULL as its job's).
    Column("bucket", SmallInteger, nullable=True),
    postgresql_with={"fillfactor": 70},
)
