"""SyncTmClient: the TmClient's methods, blocking (for Flask/Django/sync SQLAlchemy code).

The async client runs on a private event loop in a daemon thread; each method submits
its coroutine there and blocks for the answer. ``SyncJob.start(conn)`` writes the
2-phase barrier row on *your* sync ``Connection``/``Session`` in your thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from participant_sdk._barrier import SyncBarrierConnection, insert_msg_row_sync
from participant_sdk._client import TmClient
from participant_sdk._job import Job, _surely_not_committed
from participant_sdk._state import JobState, JobStatus
from participant_sdk._types import Duration
from participant_sdk.errors import JobRolledBack, TmError

__all__ = ["SyncJob", "SyncTmClient"]

_log = logging.getLogger("participant_sdk")

T = TypeVar("T")


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="stepping-sync-client", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


def _rollback_quietly(conn: SyncBarrierConnection) -> None:
    try:
        conn.rollback()
    except Exception as rollback_error:
        _log.debug("rollback after a failed job start failed: %s", rollback_error)


class SyncJob:
    """A job being built, for :class:`SyncTmClient`: ``add_step`` as on :class:`Job`
    (typed the same), ``start``/``wait``/``fetch`` blocking."""

    def __init__(self, job: Job, loop: _LoopThread) -> None:
        self._job = job
        self._loop = loop
        self.gid = job.gid
        self.add_step = job.add_step
        """:meth:`Job.add_step` (it returns the underlying :class:`Job` for chaining)."""

    def start(
        self,
        conn: SyncBarrierConnection | None = None,
        *,
        wait: bool = False,
        wait_timeout: Duration | None = None,
    ) -> JobState:
        """:meth:`Job.start`; ``conn`` is a sync SQLAlchemy ``Connection`` or ``Session``
        in a transaction holding your writes (Prepare → barrier row → COMMIT → Submit)."""
        job, run = self._job, self._loop.run
        if conn is None:
            return run(job.submit(wait=wait, wait_timeout=wait_timeout))
        prepared = run(job.prepare())
        try:
            if not insert_msg_row_sync(conn, job.gid):
                raise JobRolledBack(
                    f"job {job.gid} was already resolved as rolled back by the back-check"
                )
        except BaseException as exc:
            _rollback_quietly(conn)
            self._abort_quietly(f"local transaction failed: {type(exc).__name__}: {exc}")
            raise
        try:
            conn.commit()
        except BaseException as exc:
            _rollback_quietly(conn)  # as in Job.start: never leave the transaction open
            if _surely_not_committed(exc):
                self._abort_quietly(f"local commit failed: {type(exc).__name__}: {exc}")
            raise
        try:
            return run(job.submit(wait=wait, wait_timeout=wait_timeout))
        except TmError as exc:
            _log.warning(
                "job %s: local transaction committed but Submit failed (%s); "
                "the TM's back-check will submit it",
                job.gid,
                exc,
            )
            return prepared

    def wait(self, timeout: Duration | None = 60.0) -> JobState:
        """:meth:`Job.wait`: the SUCCEEDED state, or JobFailed / JobAborted / TimeoutError."""
        return self._loop.run(self._job.wait(timeout))

    def fetch(self) -> JobState:
        """The job's current state, without waiting."""
        return self._loop.run(self._job.fetch())

    def _abort_quietly(self, reason: str) -> None:
        try:
            self._loop.run(self._job.abort(reason))
        except Exception as exc:
            _log.warning("job %s: Abort failed (%s); the back-check will abort it", self.gid, exc)


class SyncTmClient:
    """:class:`TmClient`, blocking. Connect with :meth:`connect` (same arguments, same
    environment defaults) and close with :meth:`close` or a ``with`` block::

        with SyncTmClient.connect() as tm:
            job = tm.job()
            job.add_step(debit, Transfer("alice", 30), target=bank)
            job.start()
            job.wait()
    """

    def __init__(self, client: TmClient, loop: _LoopThread) -> None:
        self._client = client
        self._loop = loop

    @classmethod
    def connect(cls, target: str | None = None, **kwargs: Any) -> SyncTmClient:
        """:meth:`TmClient.connect` with the same keywords, blocking until connected."""
        loop = _LoopThread()

        async def open_client() -> TmClient:
            return await TmClient.connect(target, **kwargs)

        try:
            client = loop.run(open_client())
        except BaseException:
            loop.stop()
            raise
        return cls(client, loop)

    @property
    def aio(self) -> TmClient:
        """The async client underneath (its calls must run on this client's loop)."""
        return self._client

    def close(self) -> None:
        """Closes the channel and stops the client's loop thread."""
        try:
            self._loop.run(self._client.close())
        finally:
            self._loop.stop()

    def __enter__(self) -> SyncTmClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def job(self, gid: str | None = None, **kwargs: Any) -> SyncJob:
        """:meth:`TmClient.job` (same keywords)."""
        return SyncJob(self._client.job(gid, **kwargs), self._loop)

    def new_gid(self) -> str:
        return self._loop.run(self._client.new_gid())

    def get(self, gid: str) -> JobState:
        return self._loop.run(self._client.get(gid))

    def submit(
        self, gid: str, *, wait: bool = False, wait_timeout: Duration | None = None
    ) -> JobState:
        return self._loop.run(self._client.submit(gid, wait=wait, wait_timeout=wait_timeout))

    def abort(self, gid: str, *, reason: str = "") -> JobState:
        return self._loop.run(self._client.abort(gid, reason=reason))

    def cancel(self, gid: str, *, reason: str = "") -> JobState:
        return self._loop.run(self._client.cancel(gid, reason=reason))

    def resume(self, gid: str) -> JobState:
        return self._loop.run(self._client.resume(gid))

    def list_jobs(
        self, *, statuses: Iterable[JobStatus] = (), **kwargs: Any
    ) -> tuple[list[JobState], str]:
        """:meth:`TmClient.list_jobs` (same keywords)."""
        return self._loop.run(self._client.list_jobs(statuses=statuses, **kwargs))

    def count_jobs(
        self,
        *,
        tags: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        **kwargs: Any,
    ) -> dict[JobStatus, int]:
        """:meth:`TmClient.count_jobs` (same keywords)."""
        return self._loop.run(
            self._client.count_jobs(tags=tags, created_after=created_after, **kwargs)
        )

    def watch(self, gid: str) -> Iterator[JobState]:
        """:meth:`TmClient.watch`, blocking: yields the job's state now and after each
        change, as it happens, until it is final. Leaving the loop early (``break``, an
        exception, or closing the generator) ends the stream."""
        stream = self._client.watch(gid)

        async def step() -> JobState:
            return await anext(stream)

        try:
            while True:
                try:
                    yield self._loop.run(step())
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run(stream.aclose())
