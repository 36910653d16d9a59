"""Indexes for the List/Count filters and retention (issue 13; README "Finding jobs").

- tags: GIN ``jsonb_path_ops`` (the ``tags @> '{...}'`` containment filter);
- finish_time: partial btree on finished jobs (finished ranges, retention, purge);
- gid: ``text_pattern_ops`` (the gid prefix, as a ``~>=~``/``~<~`` range);
- steps' targets and methods: a btree each (compensation ones partial);
- needs_attention: partial on (create_time, gid) where set (few rows);
- error text: trigram GIN indexes (``pg_trgm``) on the job error and the step
  last_error, partial on non-empty text, when the extension can be created here;
  without it the filter is a scan of the rows with an error (README says so).

Plain CREATE INDEX: on a large table, writes wait while each index builds.

Revision ID: 0005
Revises: 0004
"""

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_log = logging.getLogger(__name__)
_JOBS = "stepping_transactions"
_STEPS = "stepping_steps"


def _trigram_available() -> bool:
    """Create pg_trgm if this role may (a trusted extension since Postgres 13)."""
    bind = op.get_bind()
    if bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).first():
        nested = bind.begin_nested()
        try:
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        except sa.exc.DBAPIError as err:
            nested.rollback()
            _log.warning("pg_trgm not created (%s); error text filters scan", err.orig)
            return False
        nested.commit()
        return True
    return False


def upgrade() -> None:
    op.create_index(
        "ix_stepping_transactions_tags",
        _JOBS,
        ["tags"],
        postgresql_using="gin",
        postgresql_ops={"tags": "jsonb_path_ops"},
    )
    op.create_index(
        "ix_stepping_transactions_finished",
        _JOBS,
        ["finish_time"],
        postgresql_where=sa.text("finish_time IS NOT NULL"),
    )
    op.create_index(
        "ix_stepping_transactions_gid_pattern",
        _JOBS,
        ["gid"],
        postgresql_ops={"gid": "text_pattern_ops"},
    )
    op.create_index(
        "ix_stepping_transactions_attention",
        _JOBS,
        ["create_time", "gid"],
        postgresql_where=sa.text("needs_attention <> ''"),
    )
    op.create_index("ix_stepping_steps_action_target", _STEPS, ["action_target"])
    op.create_index("ix_stepping_steps_action_method", _STEPS, ["action_method"])
    op.create_index(
        "ix_stepping_steps_comp_target",
        _STEPS,
        ["comp_target"],
        postgresql_where=sa.text("comp_target IS NOT NULL"),
    )
    op.create_index(
        "ix_stepping_steps_comp_method",
        _STEPS,
        ["comp_method"],
        postgresql_where=sa.text("comp_method IS NOT NULL"),
    )
    if _trigram_available():
        op.create_index(
            "ix_stepping_transactions_error_trgm",
            _JOBS,
            ["error"],
            postgresql_using="gin",
            postgresql_ops={"error": "gin_trgm_ops"},
            postgresql_where=sa.text("error <> ''"),
        )
        op.create_index(
            "ix_stepping_steps_last_error_trgm",
            _STEPS,
            ["last_error"],
            postgresql_using="gin",
            postgresql_ops={"last_error": "gin_trgm_ops"},
            postgresql_where=sa.text("last_error <> ''"),
        )


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_stepping_steps_last_error_trgm")
    op.execute("DROP INDEX IF EXISTS ix_stepping_transactions_error_trgm")
    for name in ("comp_method", "comp_target", "action_method", "action_target"):
        op.drop_index(f"ix_stepping_steps_{name}", _STEPS)
    for name in ("attention", "gid_pattern", "finished", "tags"):
        op.drop_index(f"ix_stepping_transactions_{name}", _JOBS)
