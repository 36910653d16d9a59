"""Job: the steps of one global transaction, and how it is started."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload

import sqlalchemy.exc
from stepping.tm.v1 import tm_pb2

from participant_sdk._barrier import BarrierConnection, insert_msg_row
from participant_sdk._codec import encode_value
from participant_sdk._state import JobState, JobStatus
from participant_sdk._step import step_definition
from participant_sdk._types import Duration, Endpoint, RetryPolicy, to_duration_pb, to_seconds
from participant_sdk.errors import JobAborted, JobFailed, JobRolledBack, TmError

if TYPE_CHECKING:
    from participant_sdk._client import TmClient

__all__ = ["Job", "StepTarget"]

A = TypeVar("A")


class StepTarget(Protocol):
    """Where a step function is served: a :class:`ParticipantServer`, or anything with
    its ``target`` ("host:port") and ``service`` ("pkg.v1.Service")."""

    @property
    def target(self) -> str: ...

    @property
    def service(self) -> str: ...


_log = logging.getLogger("participant_sdk")

# SQLSTATE classes after which a COMMIT may or may not have happened: connection
# exceptions, operator intervention (shutdown), system and internal errors.
_UNKNOWN_OUTCOME_CLASSES = frozenset({"08", "57", "58", "XX"})


class Job:
    """A job being built: its steps and options. Get one from :meth:`TmClient.job`.

    Add steps with :meth:`add_step`, then :meth:`start` it, without a DB transaction
    (the TM runs the steps at once) or with one (the steps run only if it commits).
    """

    def __init__(
        self,
        client: TmClient,
        gid: str | None,
        *,
        options: tm_pb2.TransactionOptions,
        query_prepared: Endpoint | None,
        database: str,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        self._client = client
        self._tags = dict(tags or {})
        self.gid: str = gid or uuid.uuid4().hex
        """The job's id, known before the job is started (store it with your data)."""
        self._options = options
        self._query_prepared = query_prepared
        self._database = database
        self._steps: list[tm_pb2.Step] = []
        self._prepared = False

    @property
    def step_count(self) -> int:
        """How many steps were added."""
        return len(self._steps)

    @overload
    def add_step(
        self,
        step: Endpoint,
        payload: object = None,
        *,
        name: str | None = None,
        compensation: Endpoint | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Job: ...
    @overload
    def add_step(
        self,
        step: Callable[[], object],
        payload: None = None,
        *,
        target: StepTarget | str,
        service: str | None = None,
        compensate: bool = False,
        name: str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Job: ...
    @overload
    def add_step(
        self,
        step: Callable[[A], object],
        payload: A,
        *,
        target: StepTarget | str,
        service: str | None = None,
        compensate: bool = False,
        name: str | None = None,
        retry_policy: RetryPolicy | None = None,
        timeout: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Job: ...
    def add_step(
        self,
        step: Endpoint | Callable[..., object],
        payload: object = None,
        *,
        name: str | None = None,
        compensation: Endpoint | None = None,
        target: StepTarget | str | None = None,
        service: str | None = None,
        compensate: bool = False,
        retry_policy: RetryPolicy | None = None,
        timeout: Duration | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Job:
        """Appends a step; returns the job so that calls can be chained.

        Typed form: ``step`` is the ``@step`` function itself and ``target`` where it is
        served (a :class:`ParticipantServer`, or "host:port" with ``service=``);
        mypy checks ``payload`` against the function's argument type, and the payload
        is encoded by that annotation. ``compensate=True`` (saga mode) makes the
        step's own endpoint its compensation (its ``@compensation``)::

            job.add_step(debit, Transfer("alice", 30), target=bank_a, compensate=True)

        Endpoint form (steps in other languages): ``step`` is an :class:`Endpoint`,
        ``payload`` a protobuf message, a dataclass or pydantic model (JSON), a
        JSON-able dict/list/str/int/float/bool, ``bytes`` or None, and ``compensation``
        the endpoint that undoes it.

        ``name`` defaults to the method's last part. ``headers`` are sent as call
        metadata (lower-case keys).
        """
        if isinstance(step, Endpoint):
            endpoint = step
            data = encode_value(payload)
        else:
            if target is None:
                raise TypeError("add_step(step_function, ...) needs target=")
            definition = step_definition(step)
            if isinstance(target, str):
                if not service:
                    raise TypeError("add_step(..., target='host:port') needs service=")
                address = target
            else:
                address, service = target.target, service or target.service
            endpoint = Endpoint.for_step(address, service, definition.name)
            if compensate:
                compensation = endpoint
            codec = definition.arg
            data = encode_value(payload) if codec is None else codec.encode(payload)
        if self._prepared:
            raise RuntimeError("the job is already prepared; steps can no longer be added")
        spec = tm_pb2.Step(
            name=name or endpoint.method.rsplit("/", 1)[-1],
            action=endpoint.to_proto(),
            payload=data,
            headers=dict(headers or {}),
        )
        if compensation is not None:
            spec.compensation.CopyFrom(compensation.to_proto())
        if retry_policy is not None:
            spec.retry_policy.CopyFrom(retry_policy.to_proto())
        if timeout is not None:
            spec.timeout.CopyFrom(to_duration_pb(timeout))
        self._steps.append(spec)
        return self

    # -- starting -------------------------------------------------------------
    async def start(
        self,
        conn: BarrierConnection | None = None,
        *,
        wait: bool = False,
        wait_timeout: Duration | None = None,
    ) -> JobState:
        """Starts the job; with ``wait``, returns its final state (or the current one
        after ``wait_timeout``, default 30 s).

        Without ``conn``, the job is submitted with its steps. With ``conn``, an open
        SQLAlchemy ``AsyncConnection`` or ``AsyncSession`` (Postgres) holding your
        business writes, this is the 2-phase message: Prepare at the TM → the barrier
        row in *your* transaction → **commit** → Submit. If anything fails before the
        commit, the transaction is rolled back, the job aborted and the error
        re-raised. If the commit's outcome is unknown (the connection broke), the job
        is left prepared and the TM's back-check settles it from the barrier row. If
        Submit fails after the commit, the job still runs (the back-check submits
        it): a warning is logged and the prepared state returned.
        """
        if conn is None:
            return await self.submit(wait=wait, wait_timeout=wait_timeout)
        prepared = await self.prepare()
        try:
            if not await insert_msg_row(conn, self.gid):
                raise JobRolledBack(
                    f"job {self.gid} was already resolved as rolled back by the back-check"
                )
        except BaseException as exc:
            await _rollback_quietly(conn)
            await self._abort_quietly(f"local transaction failed: {type(exc).__name__}: {exc}")
            raise
        try:
            await conn.commit()
        except BaseException as exc:
            # If the COMMIT never reached the database, a pooled connection must not
            # carry the open transaction (and its msg row) on to its next user.
            await _rollback_quietly(conn)
            if _surely_not_committed(exc):
                await self._abort_quietly(f"local commit failed: {type(exc).__name__}: {exc}")
            raise
        try:
            return await self.submit(wait=wait, wait_timeout=wait_timeout)
        except TmError as exc:
            _log.warning(
                "job %s: local transaction committed but Submit failed (%s); "
                "the TM's back-check will submit it",
                self.gid,
                exc,
            )
            return prepared

    async def prepare(self) -> JobState:
        """Phase one: registers the job as PREPARED (low-level; :meth:`start` calls it)."""
        query_prepared = self._query_prepared
        if query_prepared is None:
            raise ValueError(
                "a job started in a DB transaction needs query_prepared=Endpoint(...) "
                "(on TmClient.connect or tm.job): the participant serving QueryPrepared"
            )
        request = tm_pb2.PrepareRequest(
            gid=self.gid,
            steps=self._steps,
            query_prepared=query_prepared.to_proto(),
            options=self._options,
            database=self._database,
            tags=self._tags,
        )
        response = await self._client.call(self._client.stub.Prepare, request)
        self._prepared = True
        return JobState.from_proto(response.transaction)

    async def submit(self, *, wait: bool = False, wait_timeout: Duration | None = None) -> JobState:
        """Submits the job: a prepared one by its gid, else with its steps (low-level)."""
        request = tm_pb2.SubmitRequest(gid=self.gid)
        if not self._prepared:
            request.steps.extend(self._steps)
            request.options.CopyFrom(self._options)
            request.tags.update(self._tags)
        return await self._client.submit_request(request, wait=wait, wait_timeout=wait_timeout)

    async def abort(self, reason: str = "") -> JobState:
        """Aborts the prepared job (low-level)."""
        return await self._client.abort(self.gid, reason=reason)

    async def fetch(self) -> JobState:
        """The job's current state at the TM, without waiting (see :meth:`wait`)."""
        return await self._client.get(self.gid)

    async def wait(self, timeout: Duration | None = 60.0) -> JobState:
        """Waits for the job to end: returns its final state if it SUCCEEDED, raises
        :class:`~participant_sdk.errors.JobFailed` (FAILED: the failing step's index,
        name and error) or :class:`~participant_sdk.errors.JobAborted` (ABORTED).

        Raises ``TimeoutError`` after ``timeout`` seconds (None: no limit).
        """
        return await wait_for_end(self._client.get, self.gid, timeout)

    async def _abort_quietly(self, reason: str) -> None:
        try:
            await asyncio.shield(self._client.abort(self.gid, reason=reason))
        except Exception as exc:  # the back-check will find the rollback row or no row
            _log.warning("job %s: Abort failed (%s); the back-check will abort it", self.gid, exc)


async def wait_for_end(get: Callable[[str], Any], gid: str, timeout: Duration | None) -> JobState:
    """Polls ``get(gid)`` (50 ms growing to 1 s) until the job is final; see :meth:`Job.wait`."""
    deadline = None if timeout is None else time.monotonic() + to_seconds(timeout)
    delay = 0.05
    while True:
        state: JobState = await get(gid)
        if state.status.is_final:
            return raise_unless_succeeded(state)
        if deadline is not None and time.monotonic() + delay > deadline:
            raise TimeoutError(f"job {gid} is still {state.status.value} after {timeout} s")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def raise_unless_succeeded(state: JobState) -> JobState:
    """The state of a SUCCEEDED job; JobFailed / JobAborted for the other final states."""
    if state.status is JobStatus.FAILED:
        raise JobFailed(state)
    if state.status is JobStatus.ABORTED:
        raise JobAborted(state)
    return state


async def _rollback_quietly(conn: BarrierConnection) -> None:
    try:
        await conn.rollback()
    except Exception as exc:
        _log.debug("rollback after a failed job start failed: %s", exc)


def _surely_not_committed(exc: BaseException) -> bool:
    """True only when the database itself refused the COMMIT (or the flush before it)."""
    if not isinstance(exc, sqlalchemy.exc.DBAPIError) or exc.connection_invalidated:
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(sqlstate, str) and sqlstate[:2] not in _UNKNOWN_OUTCOME_CLASSES
