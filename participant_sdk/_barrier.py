"""DTM's sub-transaction barrier on Postgres, MySQL/MariaDB and SQLite: exactly-once
step effects.

Every guarded call insert-ignores a row ``(gid, branch_id, op, barrier_id)`` inside the
caller's own transaction, next to its business writes. The unique key does the rest:

* action: no row inserted → a duplicate delivery → skip the body;
* compensate: first insert-ignore the *action's* row (reason ``compensate``). If that
  inserts, the action never ran: skip the compensation, and the late action will find
  its row taken and skip too. Then insert-ignore the compensate row; a duplicate skips;
* msg (branch ``00``): the 2-phase message row, written by ``job.start(conn)`` with
  reason ``msg`` and by QueryPrepared with reason ``rollback``; whichever commits first
  decides the job. An insert blocks while another open transaction holds the key, which
  is what makes the back-check's answer safe.

The insert-ignore per database (chosen by the connection's dialect name):

* Postgres: ``INSERT ... ON CONFLICT (key) DO NOTHING RETURNING id``; a row back means
  inserted. An insert waits for an open transaction holding the same key.
* SQLite: ``INSERT ... ON CONFLICT (key) DO NOTHING``; ``rowcount`` 1 means inserted.
  SQLite has one writer at a time: a second writer waits for the database lock (the
  connection's busy timeout, ``sqlite3.connect(timeout=5.0)`` by default) and fails with
  "database is locked" after it; the back-check then answers UNAVAILABLE and the TM asks
  again later.
* MySQL/MariaDB (InnoDB): a plain ``INSERT``, a duplicate-key error (1062) meaning "not
  inserted". InnoDB rolls back only the failed statement, so the caller's transaction
  goes on. Not ``INSERT IGNORE``: it also turns other errors (a too-long gid truncated
  into another gid's key, a NULL) into warnings. Not ``ON DUPLICATE KEY UPDATE id=id``
  with ``rowcount``: SQLAlchemy's MySQL drivers connect with ``CLIENT_FOUND_ROWS``, which
  reports 1 for an existing row too. An insert waits for an open transaction holding the
  same key (up to ``innodb_lock_wait_timeout``, 50 s by default).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal, overload

import sqlalchemy as sa
from sqlalchemy.dialects.mysql.base import MySQLDialect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

from participant_sdk._info import current_call

__all__ = [
    "MSG_BRANCH",
    "SUPPORTED_DIALECTS",
    "BarrierConnection",
    "SyncBarrierConnection",
    "barrier",
    "barrier_table",
    "dialect_name",
    "insert_msg_row",
    "insert_msg_row_sync",
    "metadata",
    "query_prepared",
]

MSG_BRANCH = "00"
_MSG_BARRIER_ID = "01"

#: The SQLAlchemy dialect names the barrier works on ("mariadb" is MariaDB through a
#: ``mariadb+...://`` URL; through ``mysql+...://`` it is "mysql").
SUPPORTED_DIALECTS = ("postgresql", "mysql", "mariadb", "sqlite")
_MYSQL = ("mysql", "mariadb")
#: MySQL/MariaDB error codes of a duplicate key (ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME).
_MYSQL_DUPLICATE_KEY = (1062, 1586)
_KEY = ("gid", "branch_id", "op", "barrier_id")
_MYSQL_DIALECT = MySQLDialect()

metadata = sa.MetaData()


def _text(mysql_length: int) -> sa.types.TypeEngine[str]:
    """TEXT (Postgres, SQLite); VARCHAR(n) on MySQL, which cannot index TEXT whole."""
    return sa.Text().with_variant(sa.String(mysql_length), *_MYSQL)


# The lengths on MySQL are DTM's (its dtm_barrier.barrier: gid and branch_id 128, the
# rest 45). Postgres keeps TEXT, so tables created before stay what this table says.
barrier_table = sa.Table(
    "stepping_barrier",
    metadata,
    # INTEGER on SQLite: only an INTEGER PRIMARY KEY is its auto-assigned rowid.
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), sa.Identity(), primary_key=True
    ),
    sa.Column("gid", _text(128), nullable=False),
    sa.Column("branch_id", _text(128), nullable=False),
    sa.Column("op", _text(45), nullable=False),
    sa.Column("barrier_id", _text(45), nullable=False),
    sa.Column("reason", _text(45), nullable=False, server_default=""),
    sa.Column(
        "create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("gid", "branch_id", "op", "barrier_id", name="stepping_barrier_uniq"),
)

#: What ``barrier`` and ``job.start`` accept: a connection or session in a transaction.
BarrierConnection = AsyncConnection | AsyncSession
#: The blocking forms (``barrier`` in a plain ``def`` step, ``SyncJob.start``).
SyncBarrierConnection = sa.Connection | Session


@dataclass(frozen=True, slots=True)
class _Row:
    """One barrier row to insert-ignore."""

    gid: str
    branch_id: str
    op: str
    barrier_id: str
    reason: str

    def values(self) -> dict[str, str]:
        return {
            "gid": self.gid,
            "branch_id": self.branch_id,
            "op": self.op,
            "barrier_id": self.barrier_id,
            "reason": self.reason,
        }


def dialect_name(conn: BarrierConnection | SyncBarrierConnection | AsyncEngine) -> str:
    """The SQLAlchemy dialect name of ``conn``, checked against :data:`SUPPORTED_DIALECTS`.

    Raises ``ValueError`` naming the dialect and the supported ones otherwise.
    """
    if isinstance(conn, AsyncSession | Session):
        name = conn.get_bind(clause=barrier_table.select()).dialect.name
    else:
        name = conn.dialect.name
    if name not in SUPPORTED_DIALECTS:
        raise ValueError(
            f"the barrier does not support the {name!r} dialect; "
            f"supported: {', '.join(SUPPORTED_DIALECTS)}"
        )
    return name


def _insert_statement(dialect: str, table: sa.Table, values: dict[str, str]) -> Any:
    """The insert(-ignore) statement of ``table`` (unique on gid, branch_id, op,
    barrier_id; an ``id`` primary key) for ``dialect``."""
    if dialect == "postgresql":
        return (
            pg_insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=list(_KEY))
            .returning(table.c.id)
        )
    if dialect == "sqlite":
        return (
            sqlite_insert(table).values(**values).on_conflict_do_nothing(index_elements=list(_KEY))
        )
    # MySQL/MariaDB: a duplicate key raises. Its key columns are VARCHAR(n): refuse a
    # longer value here rather than count on strict mode to refuse it (a truncated gid
    # could take another gid's key).
    for column, value in values.items():
        length = getattr(table.c[column].type.dialect_impl(_MYSQL_DIALECT), "length", None)
        if length is not None and len(value) > length:
            raise ValueError(
                f"barrier {column} {value[:40]!r}... is {len(value)} characters; "
                f"the column holds {length} on MySQL/MariaDB"
            )
    return table.insert().values(**values)


def _inserted(dialect: str, result: Any) -> bool:
    if dialect == "postgresql":
        # RETURNING, not rowcount: every Postgres driver reports returned rows the same way.
        return result.first() is not None
    return int(result.rowcount) == 1


def _duplicate_key(dialect: str, exc: sa.exc.IntegrityError) -> bool:
    if dialect not in _MYSQL:
        return False
    orig = exc.orig
    code = getattr(orig, "errno", None)
    if code is None and orig is not None and orig.args:
        code = orig.args[0]
    return code in _MYSQL_DUPLICATE_KEY


async def insert_ignore(conn: BarrierConnection, table: sa.Table, values: dict[str, str]) -> bool:
    """Inserts a row into a barrier ``table`` unless its key exists, in ``conn``'s
    transaction; True when a row was inserted. Waits for an open transaction holding
    the same key."""
    dialect = dialect_name(conn)
    try:
        result = await conn.execute(_insert_statement(dialect, table, values))
    except sa.exc.IntegrityError as exc:
        if _duplicate_key(dialect, exc):
            return False
        raise
    return _inserted(dialect, result)


def insert_ignore_sync(
    conn: SyncBarrierConnection, table: sa.Table, values: dict[str, str]
) -> bool:
    """:func:`insert_ignore` on a blocking connection or session."""
    dialect = dialect_name(conn)
    try:
        result = conn.execute(_insert_statement(dialect, table, values))
    except sa.exc.IntegrityError as exc:
        if _duplicate_key(dialect, exc):
            return False
        raise
    return _inserted(dialect, result)


async def _insert_ignore(conn: BarrierConnection, row: _Row) -> bool:
    """Inserts the row unless its key exists; True when a row was inserted."""
    return await insert_ignore(conn, barrier_table, row.values())


def _insert_ignore_sync(conn: SyncBarrierConnection, row: _Row) -> bool:
    return insert_ignore_sync(conn, barrier_table, row.values())


def _plan() -> tuple[_Row, ...]:
    """The rows of the current step call's next barrier: one for an action; for a
    compensation, the action's row (reason ``compensate``) then its own."""
    call = current_call()
    step = call.info
    barrier_id = call.next_barrier_id()
    if step.op == "compensate":
        return (
            _Row(step.gid, step.branch_id, "action", barrier_id, "compensate"),
            _Row(step.gid, step.branch_id, "compensate", barrier_id, "compensate"),
        )
    return (_Row(step.gid, step.branch_id, "action", barrier_id, "action"),)


def _decide(inserted: list[bool]) -> bool:
    if len(inserted) == 1:
        return inserted[0]
    action_never_ran, first = inserted
    return first and not action_never_ran


async def _barrier_async(conn: BarrierConnection, rows: tuple[_Row, ...]) -> bool:
    return _decide([await _insert_ignore(conn, row) for row in rows])


@overload
def barrier(conn: BarrierConnection) -> Coroutine[Any, Any, bool]: ...
@overload
def barrier(conn: SyncBarrierConnection) -> bool: ...
def barrier(
    conn: BarrierConnection | SyncBarrierConnection,
) -> Coroutine[Any, Any, bool] | bool:
    """Guards the DB writes of the current step call; True means "run the body".

    Call it inside a step, on the SQLAlchemy connection or session (Postgres,
    MySQL/MariaDB or SQLite: see :data:`SUPPORTED_DIALECTS`) whose
    transaction also holds the step's business writes, before them. In an ``async def``
    step, on an ``AsyncConnection``/``AsyncSession``, await it::

        async with engine.begin() as conn:
            if await barrier(conn):
                await conn.execute(debit_stmt)

    In a plain ``def`` step, on a ``Connection``/``Session``, it returns the bool::

        with engine.begin() as conn:
            if barrier(conn):
                conn.execute(debit_stmt)

    False means this call must do nothing: a duplicate delivery, or a compensation
    that arrived before its action (then the late action is skipped too). **Commit
    the transaction in both cases**: the rows written by the barrier are the memory
    that makes later deliveries no-ops.
    """
    rows = _plan()
    if isinstance(conn, AsyncConnection | AsyncSession):
        return _barrier_async(conn, rows)
    return _decide([_insert_ignore_sync(conn, row) for row in rows])


def _msg_row(gid: str, reason: str) -> _Row:
    return _Row(gid, MSG_BRANCH, "msg", _MSG_BARRIER_ID, reason)


async def insert_msg_row(conn: BarrierConnection, gid: str) -> bool:
    """Writes the 2-phase message row (reason ``msg``); False if the key was taken."""
    return await _insert_ignore(conn, _msg_row(gid, "msg"))


def insert_msg_row_sync(conn: SyncBarrierConnection, gid: str) -> bool:
    """:func:`insert_msg_row` on a blocking connection or session."""
    return _insert_ignore_sync(conn, _msg_row(gid, "msg"))


async def query_prepared(engine: AsyncEngine, gid: str) -> Literal["committed", "rolled_back"]:
    """The back-check: did the local transaction that prepared ``gid`` commit?

    Insert-ignores the ``rollback`` row (waiting for an open transaction that holds
    the key) and reads which reason won.
    """
    t = barrier_table
    async with read_committed(engine) as conn:
        await _insert_ignore(conn, _msg_row(gid, "rollback"))
        reason = (
            await conn.execute(
                sa.select(t.c.reason).where(
                    t.c.gid == gid,
                    t.c.branch_id == MSG_BRANCH,
                    t.c.op == "msg",
                    t.c.barrier_id == _MSG_BARRIER_ID,
                )
            )
        ).scalar_one()
    return "committed" if reason == "msg" else "rolled_back"


@asynccontextmanager
async def read_committed(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction on ``engine`` whose reads see what committed before them.

    The back-check's read must see the row of the transaction its insert waited for.
    On MySQL/MariaDB the default REPEATABLE READ could serve it from an older snapshot,
    so this transaction is READ COMMITTED there; Postgres's default already is, and
    SQLite has a single writer (nothing can commit in between).
    """
    dialect = dialect_name(engine)
    async with engine.connect() as conn:
        if dialect in _MYSQL:
            await conn.execution_options(isolation_level="READ COMMITTED")
        async with conn.begin():
            yield conn
