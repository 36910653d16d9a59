"""The group-commit statement, checked against the schema's Tables (no database)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Integer,
    LargeBinary,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from tm_service.domain import (
    Endpoint,
    Mode,
    NewTransaction,
    RetryPolicy,
    StepSpec,
    TxOptions,
    TxStatus,
)
from tm_service.store import _writes
from tm_service.store._schema import ACTIVE_STATUSES, steps, transactions
from tm_service.store._writes import FencedWrite, NewJob

SQL = _writes._BATCH_SQL
INSERTS = (_writes._JOBS, _writes._STEPS)

# Postgres element type of each SQLAlchemy column type, and the Python values asyncpg
# takes for it.
PG_TYPE: dict[type[Any], str] = {
    Text: "text",
    SmallInteger: "int2",
    Integer: "int4",
    BigInteger: "int8",
    Float: "float8",
    Boolean: "bool",
    LargeBinary: "bytea",
    JSONB: "jsonb",
}
PY_TYPE: dict[str, tuple[type[Any], ...]] = {
    "text": (str,),
    "int2": (int,),
    "int4": (int,),
    "int8": (int,),
    "float8": (float, int),
    "bool": (bool,),
    "bytea": (bytes,),
}


def _pg_type(table: Table, column: str) -> str:
    return PG_TYPE[type(table.c[column].type)]


def _parameters() -> list[tuple[int, str]]:
    """The statement's ``$n::type[]`` parameters, in the order they appear."""
    return [(int(n), t) for n, t in re.findall(r"\$(\d+)::(\w+)\[\]", SQL)]


def _full_job() -> tuple[str, NewJob]:
    """A submitted job with every optional value set (so no argument is None)."""
    policy = RetryPolicy(0.5, 2.0, 9.0, 4)
    specs = tuple(
        StepSpec(
            i,
            f"s{i}",
            Endpoint("h:1", "/a.A/Do"),
            Endpoint("h:1", "/a.A/Undo"),
            b"p",
            {"k": "v"},
            policy,
            3.0,
        )
        for i in range(2)
    )
    options = TxOptions(Mode.SAGA, 1.0, 2.0, 60.0, concurrent=True)
    new = NewTransaction(
        "g1", specs, options, Endpoint("q:1", "/Q"), "db", b"fp", {"t": "x"}, "orders"
    )
    return new.gid, NewJob(new, TxStatus.SUBMITTED, "replica-1", 30.0)


def _full_write() -> FencedWrite:
    """A write with every field set."""
    return FencedWrite(
        token=7,
        lease=30.0,
        status=int(TxStatus.SUCCEEDED),
        error="e",
        next_in=1.5,
        finish=True,
        deadline_in=60.0,
        bump_query_attempts=True,
        step=1,
        step_status=2,
        attempts=3,
        last_error="le",
        set_result=True,
        result=b"r",
        step_next_in=2.5,
        history='[{"n": 1}]',
        qp_history='[{"n": 2}]',
        needs_attention="na",
    )


def test_every_inserted_column_is_in_its_table_with_the_parameters_type() -> None:
    for ins in INSERTS:
        table = ins.table
        names = {p.name for p in ins.params}
        for p in ins.params:
            if p.column:
                assert p.name not in ins.computed, (table.name, p.name)
                assert _pg_type(table, p.name) == (p.cast or p.type), (table.name, p.name)
            else:  # an input of computed columns only
                assert p.name not in table.c, (table.name, p.name)
                used = (re.search(rf"\bv\.{p.name}\b", sql) for sql in ins.computed.values())
                assert any(used), (table.name, p.name)
        for column, sql in ins.computed.items():
            assert column in table.c, (table.name, column)
            assert set(re.findall(r"\bv\.(\w+)", sql)) <= names, (table.name, column)
        # A NOT NULL column without a default that the insert leaves out fails every insert.
        inserted = {p.name for p in ins.params if p.column} | set(ins.computed)
        required = {c.name for c in table.c if not c.nullable and c.server_default is None}
        assert required <= inserted, (table.name, required - inserted)


def test_parameters_are_numbered_1_to_n_and_match_the_arguments() -> None:
    params = _parameters()
    assert [n for n, _ in params] == list(range(1, len(params) + 1))
    assert len(re.findall(r"\$\d+", SQL)) == len(params)  # no other placeholder
    gid, job = _full_job()
    prepared = NewJob(job.new, TxStatus.PREPARED, None, 30.0)
    writes = [("g2", _full_write()), ("g3", FencedWrite(1, None))]
    jobs_args = _writes._insert_args([(gid, job), ("g4", prepared)])
    write_args = _writes._write_args(writes)
    args = [*jobs_args, *write_args]
    assert len(args) == len(params)
    # Each array has one value per row of its part, of the parameter's type.
    rows = [2] * len(_writes._JOBS.params) + [4] * len(_writes._STEPS.params)
    rows += [len(writes)] * len(write_args)
    assert [len(a) for a in args] == rows
    for (n, type_), values in zip(params, args, strict=True):
        assert all(isinstance(v, PY_TYPE[type_]) for v in values if v is not None), (n, values)
        assert values[0] is not None, n  # the full job (or write) leaves nothing out
    # And empty batches still bind every parameter.
    assert len(_writes._insert_args([])) + len(_writes._write_args([])) == len(params)


def test_the_fenced_write_fields_are_the_write_parameters_one_to_one() -> None:
    match = re.search(r"w AS \(\s*SELECT \* FROM unnest\((.*?)\) AS v\((.*?)\)", SQL)
    assert match is not None
    types = re.findall(r"\$\d+::(\w+)\[\]", match.group(1))
    names = [n.strip() for n in match.group(2).split(",")]
    assert names == ["gid", *FencedWrite._fields]
    assert types == [t for _, t in _writes._WRITES]
    write = _full_write()
    args = _writes._write_args([("g2", write)])
    assert [a[0] for a in args] == ["g2", *write]
    for field in FencedWrite._fields:  # every field is read by the statement
        assert re.search(rf"\bv\.{field}\b", SQL), field
    # A field that names a column has that column's type.
    for field, type_ in _writes._WRITES:
        for table, sets in ((transactions, _writes._JOB_SET), (steps, _writes._STEP_SET)):
            if sets.get(field) == f"v.{field}":
                assert _pg_type(table, field) == type_, field


def test_the_statement_names_only_columns_of_the_tables() -> None:
    for alias, table in (("t", transactions), ("s", steps)):
        for name in re.findall(rf"\b{alias}\.(\w+)", SQL):
            assert name in table.c, (table.name, name)
    for returning in re.findall(r"RETURNING ([\w., ]+)", SQL):
        for name in returning.split(","):
            assert name.strip().removeprefix("t.") in transactions.c, name
    params = {p.name for ins in INSERTS for p in ins.params} | {n for n, _ in _writes._WRITES}
    assert set(re.findall(r"\bv\.(\w+)", SQL)) <= params


def test_the_due_index_covers_the_active_statuses_as_migration_0001_made_it() -> None:
    (index,) = (i for i in transactions.indexes if i.name == "ix_stepping_transactions_due")
    # Changing the statuses changes the index: that takes a migration.
    assert str(index.dialect_options["postgresql"]["where"]) == "status IN (1, 2, 5)"
    assert ACTIVE_STATUSES == (TxStatus.PREPARED, TxStatus.SUBMITTED, TxStatus.COMPENSATING)
