"""The TM's use cases (DTM's svcPrepare / svcSubmit / svcAbort), free of transport code."""

from __future__ import annotations

import base64
import dataclasses
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

from tm_service.auth import Principal, Role
from tm_service.clock import Clock, SystemClock
from tm_service.config import Settings
from tm_service.domain import ActiveJob, NewTransaction, Transaction, TxStatus
from tm_service.errors import (
    Busy,
    Conflict,
    InvalidArgument,
    InvalidState,
    NotFound,
    NotResumable,
    PermissionDenied,
    ShuttingDown,
    StoreUnavailable,
)
from tm_service.processing import Engine
from tm_service.retention import purge_all
from tm_service.store import JobStore, TxFilter
from tm_service.telemetry import Telemetry

__all__ = ["TransactionService"]

MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


class TransactionService:
    """Prepare, Submit, Abort, Get, List: validated input in, domain objects out.

    ``who`` is the caller's principal, None when the TM runs without an auth file
    (then every call may touch every job). A principal's job carries it as ``owner``.
    """

    def __init__(
        self,
        store: JobStore,
        engine: Engine,
        settings: Settings,
        *,
        telemetry: Telemetry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._clock = clock or SystemClock()
        self._engine = engine
        self._settings = settings
        self._telemetry = telemetry or Telemetry()
        self._watches = 0  # WatchTransaction streams open now

    @property
    def settings(self) -> Settings:
        return self._settings

    def new_gid(self, who: Principal | None = None) -> str:
        _check_create(who, "")
        # Time-ordered (sorts by creation) and unique: ms since epoch + 64 random bits.
        millis = int(self._clock.now().timestamp() * 1000)
        return f"{millis:012x}{secrets.token_hex(8)}"

    async def prepare(self, new: NewTransaction, who: Principal | None = None) -> Transaction:
        self._check_running()
        new = _owned(new, who)
        created = await self._store.insert(
            new, status=TxStatus.PREPARED, owner=None, lease=self._settings.lease_seconds
        )
        if created is not None:
            self._telemetry.job_started(new)
            return created[1]
        return await self._existing(new, who)

    async def submit(
        self,
        gid: str,
        new: NewTransaction | None,
        *,
        wait: bool,
        wait_timeout: float,
        who: Principal | None = None,
    ) -> Transaction:
        """Start a prepared job, or store and start ``new``; optionally wait for the end."""
        self._check_running()
        tx: Transaction | None = None
        if new is None:
            await self._check_write(gid, who)
        else:
            new = _owned(new, who)
            created = await self._store.insert(
                new,
                status=TxStatus.SUBMITTED,
                owner=self._settings.replica_id,
                lease=self._settings.lease_seconds,
            )
            if created is not None:
                self._telemetry.job_started(new)
                await self._start(created[0])
                tx = created[1]
            else:
                tx = await self._existing(new, who)
        if tx is None or tx.status is TxStatus.PREPARED:
            tx = await self._submit_prepared(gid, with_steps=new is not None)
        if wait and not tx.is_final:
            waited = await self._engine.wait_final(gid, wait_timeout)
            tx = waited if waited is not None else tx
        return tx

    async def _submit_prepared(self, gid: str, *, with_steps: bool) -> Transaction:
        moved = await self._store.submit_prepared(
            gid, owner=self._settings.replica_id, lease=self._settings.lease_seconds
        )
        if moved is not None:
            await self._start(moved[0])
            return moved[1]
        stored = await self._store.get(gid)
        if stored is None:
            if not with_steps:
                raise InvalidArgument(
                    "steps", "at least one step is required (no job with this gid was prepared)"
                )
            raise Conflict(f"transaction {gid!r} changed concurrently; retry", gid=gid)
        tx = stored.transaction
        if tx.status is TxStatus.ABORTED:
            raise InvalidState(
                f"transaction {gid!r} was aborted and cannot be submitted",
                gid=gid,
                metadata={"status": _status_name(tx.status)},
            )
        return tx  # already submitted: the same Submit again returns the current state

    async def _start(self, job: ActiveJob) -> None:
        """Run a job just leased here; past ``max_active_jobs`` give it to the sweeper.

        The job is stored either way: over the limit its lease is released at once, so
        it waits in the database until this or any other replica has room for it.
        """
        if self._engine.has_room:
            self._engine.run(job)
        else:
            await self._store.release(job)

    async def abort(self, gid: str, reason: str, who: Principal | None = None) -> Transaction:
        self._check_started()
        await self._check_write(gid, who)
        aborted = await self._store.abort_prepared(gid, reason or "aborted by the client")
        stored = await self._store.get(gid)
        if stored is None:
            raise NotFound(f"transaction {gid!r} does not exist", gid=gid)
        tx = stored.transaction
        if aborted:
            self._telemetry.transaction_finished(tx)
        if aborted or tx.status is TxStatus.ABORTED:
            return tx
        raise InvalidState(
            f"transaction {gid!r} is {_status_name(tx.status)}; only a PREPARED one can be aborted",
            gid=gid,
            metadata={"status": _status_name(tx.status)},
        )

    async def get(self, gid: str, who: Principal | None = None) -> Transaction:
        self._check_started()
        stored = await self._store.get(gid)
        if who is not None and not who.may_read(stored.transaction.owner if stored else None):
            raise _denied(who, "read", gid)
        if stored is None:
            raise NotFound(f"transaction {gid!r} does not exist", gid=gid)
        return stored.transaction

    async def list(
        self,
        *,
        statuses: Sequence[TxStatus],
        page_size: int,
        page_token: str,
        who: Principal | None = None,
        filter: TxFilter | None = None,
    ) -> tuple[list[Transaction], str]:
        """A page of jobs, newest first; a ``client`` principal sees only its own."""
        if page_size < 0:
            raise InvalidArgument("page_size", "must not be negative")
        self._check_started()
        size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        before = _decode_token(page_token) if page_token else None
        owner = None if who is None or who.reads_all else who.name
        txs = await self._store.list_transactions(
            statuses=statuses, limit=size + 1, before=before, owner=owner, filter=filter
        )
        if len(txs) <= size:
            return txs, ""
        txs = txs[:size]
        return txs, _encode_token(txs[-1].create_time, txs[-1].gid)

    async def _existing(self, new: NewTransaction, who: Principal | None) -> Transaction:
        stored = await self._store.get(new.gid)
        if who is not None and not who.may_write(stored.transaction.owner if stored else None):
            raise _denied(who, "write", new.gid)
        if stored is None:  # deleted in between: vanishingly rare; report as a conflict
            raise Conflict(f"transaction {new.gid!r} changed concurrently; retry", gid=new.gid)
        if stored.fingerprint != new.fingerprint:
            raise Conflict(
                f"transaction {new.gid!r} already exists with other steps or options",
                gid=new.gid,
                metadata={"status": _status_name(stored.transaction.status)},
            )
        return stored.transaction

    async def _check_write(self, gid: str, who: Principal | None) -> None:
        """Before a Submit or Abort of a stored job: may ``who`` touch it?"""
        if who is None or who.may_write(None):  # no auth file, or an admin: any job
            return
        stored = await self._store.get(gid) if who.may_create else None
        if stored is None or not who.may_write(stored.transaction.owner):
            raise _denied(who, "write", gid)

    # -- search and retention (issue 13) ------------------------------------------------
    async def count(
        self, filter: TxFilter, who: Principal | None = None, *, at_most: int = 0
    ) -> dict[TxStatus, int]:
        """Jobs per status for ``filter``; a ``client`` principal counts only its own.
        ``at_most`` > 0: up to that many per status (``at_most + 1`` = more)."""
        self._check_started()
        owner = None if who is None or who.reads_all else who.name
        return await self._store.count_transactions(filter.with_owner(owner), at_most=at_most)

    async def purge(
        self,
        *,
        older_than: float,
        statuses: Sequence[TxStatus],
        dry_run: bool,
        who: Principal | None = None,
    ) -> int:
        """Delete finished jobs older than ``older_than`` seconds (admin only)."""
        if who is not None and Role.ADMIN not in who.roles:
            raise PermissionDenied(f"principal {who.name!r} may not purge transactions")
        self._check_started()
        if dry_run:
            return await self._store.purge_finished(
                older_than=older_than, statuses=statuses, limit=0, dry_run=True
            )
        return await purge_all(self._store, older_than=older_than, statuses=statuses)

    # -- job control (issue 13) ---------------------------------------------------
    async def cancel(self, gid: str, reason: str, who: Principal | None = None) -> Transaction:
        """Stop a job for good (see README "Cancel"); idempotent, final jobs unchanged."""
        self._check_started()
        await self._check_write(gid, who)
        moved = await self._store.cancel(gid, reason or "cancelled by the client")
        if moved:
            self._engine.job_cancelled(gid)
        stored = await self._store.get(gid)
        if stored is None:
            raise NotFound(f"transaction {gid!r} does not exist", gid=gid)
        if moved and stored.transaction.is_final:
            self._telemetry.transaction_finished(stored.transaction)
        return stored.transaction

    async def resume(self, gid: str, who: Principal | None = None) -> Transaction:
        """A FAILED job (nothing compensated) runs again from its first unfinished step."""
        self._check_running()
        await self._check_write(gid, who)
        moved = await self._store.resume(
            gid, owner=self._settings.replica_id, lease=self._settings.lease_seconds
        )
        if moved is not None:
            await self._start(moved[0])
            return moved[1]
        stored = await self._store.get(gid)
        if stored is None:
            raise NotFound(f"transaction {gid!r} does not exist", gid=gid)
        tx = stored.transaction
        if tx.status is TxStatus.SUBMITTED:
            return tx  # already resumed (or never failed): the same Resume again
        why = (
            "a saga that compensated steps cannot run forward again"
            if tx.status is TxStatus.FAILED
            else "only a FAILED job can be resumed"
        )
        raise NotResumable(
            f"transaction {gid!r} is {_status_name(tx.status)}: {why}",
            gid=gid,
            metadata={"status": _status_name(tx.status)},
        )

    async def watch(self, gid: str, who: Principal | None = None) -> AsyncIterator[Transaction]:
        """The job now, then after each change; ends after a final state.

        Changes made here wake the watch at once (finish, cancel); others' changes are
        seen by reading the job every ``watch_poll_seconds``. At most ``max_watches``
        watches run at once in this process (``Busy`` past it).
        """
        if self._watches >= self._settings.max_watches:
            raise Busy(f"too many watches open here (max_watches={self._settings.max_watches})")
        self._watches += 1
        try:
            tx = await self.get(gid, who)
            yield tx
            while not tx.is_final:
                await self._engine.wait_change(gid, self._settings.watch_poll_seconds)
                stored = await self._store.get(gid)
                if stored is None:
                    return  # purged meanwhile
                fresh = stored.transaction
                if fresh.update_time != tx.update_time or fresh.status is not tx.status:
                    tx = fresh
                    yield tx
        finally:
            self._watches -= 1

    def _check_running(self) -> None:
        if self._engine.stopping:
            raise ShuttingDown("the TM is shutting down; retry on another replica")
        self._check_started()

    def _check_started(self) -> None:
        # Until then the schema may not exist yet: UNAVAILABLE (retryable), not INTERNAL.
        if not self._engine.started:
            raise StoreUnavailable("the TM is starting: waiting for the database; retry")


def _check_create(who: Principal | None, gid: str) -> None:
    if who is not None and not who.may_create:
        raise _denied(who, "create", gid)


def _owned(new: NewTransaction, who: Principal | None) -> NewTransaction:
    if who is None:
        return new
    _check_create(who, new.gid)
    return dataclasses.replace(new, owner=who.name)


def _denied(who: Principal, action: str, gid: str) -> PermissionDenied:
    # The same words whether the job exists or not: a gid's existence does not leak.
    what = f"transaction {gid!r}" if gid else "transactions"
    return PermissionDenied(f"principal {who.name!r} may not {action} {what}", gid=gid)


def _status_name(status: TxStatus) -> str:
    return f"TRANSACTION_STATUS_{status.name}"


def _encode_token(create_time: datetime, gid: str) -> str:
    return base64.urlsafe_b64encode(f"{create_time.isoformat()}|{gid}".encode()).decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token.encode()).decode()
        stamp, gid = raw.split("|", 1)
        return datetime.fromisoformat(stamp), gid
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "is not a token this TM returned") from None
