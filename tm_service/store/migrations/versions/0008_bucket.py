"""A job's bucket (issue 16 point 4; docs/scaling.md "B. Citus"): ``bucket smallint``.

``bucket = crc32(utf8(gid)) % 256`` (``tm_service.domain.bucket_of``), on both tables:
the distribution key of a sharded database, and what the sweeper claims per when
``STEPPING_CLAIM_BY_BUCKET`` is on. The TM computes it and writes it with every insert.

- the columns are added nullable (a catalogue change, no rewrite); the existing
  *unfinished* jobs (what a claim can take) and their steps are backfilled in batches
  of ``BATCH`` gids (the CRC in Python, sent back as arrays). Finished jobs keep NULL:
  nothing claims them, and filling millions of them here would hold the tables locked
  for minutes (the TM migrates in one transaction) for an opt-in setting. Distributing
  the tables on Citus fills them first, online (docs/scaling.md, "The changes");
- ``stepping_bucket(gid)``: the same CRC-32 in PL/pgSQL, and a ``BEFORE INSERT`` trigger
  on both tables that sets the bucket when a writer left it NULL (a TM older than this
  revision during a rolling upgrade, a bulk loader written in SQL). The TM always sets
  it, so the trigger's ``WHEN`` is false on the hot path and its function never runs;
- ``ix_stepping_transactions_due_bucket``: the due index per bucket, ``(bucket,
  next_time)`` over the active statuses, which serves the per-bucket claim.

The primary keys stay ``gid`` / ``(gid, idx)``: ``(bucket, gid)`` is the change that
distributing the tables on Citus needs, made then (docs/scaling.md, "The changes").

The TM runs its migrations in one transaction: the tables are locked from the first
``ADD COLUMN`` to the commit, backfill included; it touches only unfinished jobs, so it
lasts as long as the backlog is large (≈ 40 µs a job with 2 steps on the 2-core dev VM).

Revision ID: 0008
Revises: 0007
"""

import zlib

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JOBS = "stepping_transactions"
_STEPS = "stepping_steps"
BUCKETS = 256  # frozen here: tm_service.domain.BUCKETS may never change for a database
BATCH = 5000
_UNFINISHED = "(1, 2, 5)"  # PREPARED, SUBMITTED, COMPENSATING (what a claim takes)

# CRC-32 (IEEE, zlib's) of the gid's UTF-8 bytes, bit by bit (≈ 8 µs for a 16-byte gid).
_FUNCTION = f"""
CREATE FUNCTION stepping_bucket(gid text) RETURNS smallint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  crc bigint := 4294967295;
  b bytea := convert_to(gid, 'UTF8');
BEGIN
  FOR i IN 0 .. length(b) - 1 LOOP
    crc := crc # get_byte(b, i);
    FOR j IN 1 .. 8 LOOP
      crc := (crc >> 1) # (3988292384 & -(crc & 1));
    END LOOP;
  END LOOP;
  RETURN ((crc # 4294967295) % {BUCKETS})::smallint;
END $$
"""
_TRIGGER_FUNCTION = """
CREATE FUNCTION stepping_set_bucket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.bucket := stepping_bucket(NEW.gid);
  RETURN NEW;
END $$
"""


def _backfill() -> None:
    bind = op.get_bind()
    jobs = sa.text(
        f"SELECT gid FROM {_JOBS} WHERE status IN {_UNFINISHED} AND gid > :after"
        " AND bucket IS NULL ORDER BY gid LIMIT :n"
    )
    set_jobs = sa.text(
        f"UPDATE {_JOBS} t SET bucket = v.bucket"
        " FROM unnest(CAST(:gids AS text[]), CAST(:buckets AS int2[])) AS v(gid, bucket)"
        " WHERE t.gid = v.gid"
    )
    set_steps = sa.text(
        f"UPDATE {_STEPS} s SET bucket = v.bucket"
        " FROM unnest(CAST(:gids AS text[]), CAST(:buckets AS int2[])) AS v(gid, bucket)"
        " WHERE s.gid = v.gid"
    )
    after = ""
    while gids := list(bind.execute(jobs, {"after": after, "n": BATCH}).scalars()):
        buckets = [zlib.crc32(g.encode()) % BUCKETS for g in gids]
        bind.execute(set_jobs, {"gids": gids, "buckets": buckets})
        bind.execute(set_steps, {"gids": gids, "buckets": buckets})
        after = gids[-1]


def upgrade() -> None:
    for table in (_JOBS, _STEPS):
        op.add_column(table, sa.Column("bucket", sa.SmallInteger(), nullable=True))
    op.execute(_FUNCTION)
    op.execute(_TRIGGER_FUNCTION)
    for table in (_JOBS, _STEPS):
        op.execute(
            f"CREATE TRIGGER {table}_bucket BEFORE INSERT ON {table}"
            " FOR EACH ROW WHEN (NEW.bucket IS NULL) EXECUTE FUNCTION stepping_set_bucket()"
        )
    _backfill()
    op.create_index(
        "ix_stepping_transactions_due_bucket",
        _JOBS,
        ["bucket", "next_time"],
        postgresql_where=sa.text(f"status IN {_UNFINISHED}"),
    )


def downgrade() -> None:
    op.drop_index("ix_stepping_transactions_due_bucket", _JOBS)
    for table in (_STEPS, _JOBS):
        op.execute(f"DROP TRIGGER {table}_bucket ON {table}")
        op.drop_column(table, "bucket")
    op.execute("DROP FUNCTION stepping_set_bucket()")
    op.execute("DROP FUNCTION stepping_bucket(text)")
