"""The invariants, checked at the end by reading every database directly.

* **nothing lost** — every job a TM acknowledged (Prepare/Submit answered OK) and every
  order whose transaction committed is stored at the TM;
* **every job final** — no job is left PREPARED, SUBMITTED or COMPENSATING;
* **money conserved** — each account holds its opening balance plus exactly what the
  jobs' final states say it should (a succeeded transfer moved its amount, a failed
  one nothing, a succeeded order credited its amounts), and so does the total;
* **exactly once** — each step's effect is in the ledger once (never twice), and the
  effects of each job match its final state;
* **2-phase atomic** — an order's transaction committed ⇔ its job SUCCEEDED (and a job
  whose transaction did not commit is ABORTED);

A job left unfinished fails *every job final* only: the money, exactly-once and 2-phase
checks take the effects it applied so far as they are (and still catch a duplicate).
* **no INTERNAL** — no client ever got INTERNAL (or UNKNOWN) from a TM.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.chaos._load import BAD_CODES, JobRecord, Recorder

__all__ = ["Invariant", "Snapshot", "check", "read_snapshot"]

# stepping_transactions.status (tm_service.domain.TxStatus)
_STATUS = {
    1: "PREPARED",
    2: "SUBMITTED",
    3: "SUCCEEDED",
    4: "ABORTED",
    5: "COMPENSATING",
    6: "FAILED",
}
_FINAL = {"SUCCEEDED", "ABORTED", "FAILED"}
_SAMPLES = 10


@dataclass
class Invariant:
    name: str
    ok: bool
    detail: str
    violations: int = 0
    samples: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "violations": self.violations,
            "samples": self.samples,
        }


@dataclass
class Snapshot:
    """What the databases hold at the end."""

    jobs: dict[str, str]
    """gid → final status name, from the TM's table."""
    balances: dict[tuple[str, str], int]
    """(bank, account) → balance."""
    ledger: list[tuple[str, str, int, str, str, int]]
    """(bank, gid, step_index, op, account, delta) rows."""
    committed_orders: set[str]


async def read_snapshot(tm_dsn: str, bank_dsns: Mapping[str, str], orders_dsn: str) -> Snapshot:
    conn = await asyncpg.connect(tm_dsn)
    try:
        rows = await conn.fetch("SELECT gid, status FROM stepping_transactions")
        jobs = {r["gid"]: _STATUS.get(r["status"], str(r["status"])) for r in rows}
    finally:
        await conn.close()
    balances: dict[tuple[str, str], int] = {}
    ledger: list[tuple[str, str, int, str, str, int]] = []
    for bank, dsn in bank_dsns.items():
        conn = await asyncpg.connect(dsn)
        try:
            for r in await conn.fetch("SELECT name, balance FROM accounts"):
                balances[(bank, r["name"])] = int(r["balance"])
            for r in await conn.fetch(
                "SELECT gid, step_index, op, account, delta FROM ledger ORDER BY id"
            ):
                ledger.append(
                    (bank, r["gid"], r["step_index"], r["op"], r["account"], int(r["delta"]))
                )
        finally:
            await conn.close()
    conn = await asyncpg.connect(orders_dsn)
    try:
        committed = {
            r["gid"] for r in await conn.fetch("SELECT gid FROM orders WHERE gid <> 'seed'")
        }
    finally:
        await conn.close()
    return Snapshot(jobs, balances, ledger, committed)


def _invariant(name: str, bad: list[str], ok_detail: str, bad_detail: str) -> Invariant:
    return Invariant(name, not bad, bad_detail if bad else ok_detail, len(bad), bad[:_SAMPLES])


def check(
    snap: Snapshot,
    records: Mapping[str, JobRecord],
    recorder: Recorder,
    opening: Mapping[tuple[str, str], int],
) -> list[Invariant]:
    return [
        _nothing_lost(snap, recorder),
        _every_job_final(snap, records),
        _money(snap, records, opening),
        _exactly_once(snap, records),
        _two_phase(snap, records),
        _no_internal(recorder),
    ]


def _nothing_lost(snap: Snapshot, recorder: Recorder) -> Invariant:
    bad = [f"{g}: acknowledged, not stored" for g in sorted(recorder.acked - snap.jobs.keys())]
    bad += [
        f"{g}: order committed, job not stored"
        for g in sorted(snap.committed_orders - snap.jobs.keys())
    ]
    return _invariant(
        "nothing_lost",
        bad,
        f"all {len(recorder.acked)} acknowledged jobs and {len(snap.committed_orders)} "
        "committed orders are stored",
        f"{len(bad)} jobs lost",
    )


def _every_job_final(snap: Snapshot, records: Mapping[str, JobRecord]) -> Invariant:
    open_jobs = {g: s for g, s in snap.jobs.items() if s not in _FINAL}
    unknown = sorted(snap.jobs.keys() - records.keys())
    bad = [f"{g}: {s}" for g, s in sorted(open_jobs.items())]
    bad += [f"{g}: stored but never sent by the load" for g in unknown]
    states = Counter(open_jobs.values())
    return _invariant(
        "every_job_final",
        bad,
        f"all {len(snap.jobs)} stored jobs are final",
        f"not final: {dict(states)}; unknown: {len(unknown)}",
    )


def _unfinished(snap: Snapshot, gid: str) -> bool:
    """Stored and not final: its end is every_job_final's to report, not the others'."""
    status = snap.jobs.get(gid)
    return status is not None and status not in _FINAL


def _in_flight_effects(snap: Snapshot, gid: str) -> list[tuple[str, str, int]]:
    """The effects an unfinished job has applied so far, each counted once."""
    seen: set[tuple[str, int, str]] = set()
    out = []
    for bank, g, index, op, account, delta in snap.ledger:
        if g == gid and (bank, index, op) not in seen:
            seen.add((bank, index, op))
            out.append((bank, account, delta))
    return out


def _money(
    snap: Snapshot, records: Mapping[str, JobRecord], opening: Mapping[tuple[str, str], int]
) -> Invariant:
    expected = dict(opening)
    for gid, record in records.items():
        status = snap.jobs.get(gid)
        if status == "SUCCEEDED":
            effects = [(e.bank, e.account, e.delta) for e in record.effects]
        elif _unfinished(snap, gid):
            effects = _in_flight_effects(snap, gid)
        else:
            effects = []
        for bank, account, delta in effects:
            if (bank, account) in expected:
                expected[(bank, account)] += delta
    bad = [
        f"{bank}/{account}: holds {snap.balances.get((bank, account))}, expected {want}"
        for (bank, account), want in sorted(expected.items())
        if snap.balances.get((bank, account)) != want
    ]
    total, want_total = sum(snap.balances.values()), sum(expected.values())
    if total != want_total:
        bad.insert(0, f"total {total}, expected {want_total} ({total - want_total:+d})")
    return _invariant(
        "money_conserved",
        bad,
        f"{len(expected)} accounts hold what the jobs' outcomes say (total {total})",
        f"total {total} vs expected {want_total}; {len(bad)} mismatches",
    )


def _exactly_once(snap: Snapshot, records: Mapping[str, JobRecord]) -> Invariant:
    applied: dict[str, Counter[tuple[str, int, str]]] = defaultdict(Counter)
    net: dict[str, int] = defaultdict(int)
    for bank, gid, index, op, _account, delta in snap.ledger:
        applied[gid][(bank, index, op)] += 1
        net[gid] += delta
    bad: list[str] = []
    duplicates = 0
    for gid, counts in sorted(applied.items()):
        for (bank, index, op), n in sorted(counts.items()):
            if n > 1:
                duplicates += n - 1
                bad.append(f"{gid}: step {index} {op} at {bank} applied {n} times")
    for gid, record in sorted(records.items()):
        status, counts = snap.jobs.get(gid), applied.get(gid, Counter())
        if _unfinished(snap, gid):
            continue  # only its duplicates count (above)
        actions = {(b, i) for (b, i, op) in counts if op == "action"}
        if status == "SUCCEEDED":
            want = {(e.bank, i) for i, e in enumerate(record.effects)}
            comps = [k for k in counts if k[2] == "compensate"]
            if actions != want or comps:
                bad.append(f"{gid}: SUCCEEDED but effects {sorted(counts)}")
        elif status == "FAILED":
            if net.get(gid, 0) != 0:
                bad.append(f"{gid}: FAILED but its effects sum to {net[gid]:+d}")
        elif counts:
            bad.append(f"{gid}: {status or 'not stored'} but effects {sorted(counts)}")
    return _invariant(
        "exactly_once",
        bad,
        f"{len(snap.ledger)} effects, each applied once and matching its job",
        f"{duplicates} duplicate effects; {len(bad)} violations",
    )


def _two_phase(snap: Snapshot, records: Mapping[str, JobRecord]) -> Invariant:
    bad: list[str] = []
    orders = [r for r in records.values() if r.kind == "order"]
    for r in orders:
        committed, status = r.gid in snap.committed_orders, snap.jobs.get(r.gid)
        if _unfinished(snap, r.gid):
            continue
        if committed and status != "SUCCEEDED":
            bad.append(f"{r.gid} ({r.variant}): committed, job {status or 'not stored'}")
        elif not committed and status not in (None, "ABORTED"):
            bad.append(f"{r.gid} ({r.variant}): not committed, job {status}")
    outcome = Counter(
        ("committed" if r.gid in snap.committed_orders else "rolled back") for r in orders
    )
    return _invariant(
        "two_phase_atomic",
        bad,
        f"{len(orders)} orders: {dict(outcome)}; committed <=> SUCCEEDED holds",
        f"{len(bad)} orders where commit and job disagree",
    )


def _no_internal(recorder: Recorder) -> Invariant:
    bad_counts = {f"{m} {c}": n for (m, c), n in recorder.codes.items() if c in _bad_names()}
    n = sum(bad_counts.values())
    samples = [f"{b['method']} {b['gid']}: {b['details'][:160]}" for b in recorder.bad]
    return Invariant(
        "no_internal",
        n == 0,
        f"clients saw {dict(_by_code(recorder.codes.items()))}"
        if n == 0
        else f"{n} calls answered INTERNAL/UNKNOWN: {bad_counts}",
        n,
        samples[:_SAMPLES],
    )


def _bad_names() -> set[str]:
    return {c.name for c in BAD_CODES}


def _by_code(items: Iterable[tuple[tuple[str, str], int]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for (_method, code), n in items:
        out[code] += n
    return out
