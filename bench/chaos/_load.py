"""The load: saga transfers and 2-phase orders, through the SDK's TmClient.

Every job's gid and plan is recorded before it is sent, and every status code a client
sees from the TM is counted (by a client interceptor, on the wire). A client retries a
call that failed with UNAVAILABLE (or a deadline) on the next replica, with exponential
backoff, a bounded number of times, with the same gid: every TM call is idempotent on it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

import grpc
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.chaos._config import ChaosConfig
from bench.chaos._participant import BANK_SERVICE, Transfer
from bench.chaos._schema import POISON_REF, orders
from participant_sdk import Endpoint, Job, RetryPolicy, TmClient
from participant_sdk.errors import JobRolledBack, TmError, TmUnavailable

__all__ = ["BAD_CODES", "Effect", "JobRecord", "LoadGenerator", "Recorder", "as_interceptor"]

#: Codes that must never reach a client: the TM's own failures.
BAD_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})

# One step of a plan: the bank, the method (Debit or Credit) and its payload.
_Step = tuple[str, str, Transfer]

# (rolled back at COMMIT, the client "dies" before its next call) → the variant's name
_ORDER_VARIANTS = {
    (False, False): "commit",
    (False, True): "abandon_submit",
    (True, False): "rollback",
    (True, True): "abandon_abort",
}

_RETRY = RetryPolicy(initial_interval=0.2, backoff_coefficient=2.0, maximum_interval=2.0)


@dataclass(frozen=True)
class Effect:
    """A change a step makes when the job succeeds: ``delta`` on ``account`` at ``bank``."""

    bank: str
    account: str
    delta: int


@dataclass
class JobRecord:
    """What the load knows about one job."""

    gid: str
    kind: str
    """``transfer`` (saga) or ``order`` (2-phase message)."""
    variant: str
    """transfer: ok, no_funds, no_account; order: commit, rollback, abandon_submit,
    abandon_abort."""
    effects: tuple[Effect, ...]
    attempts: int = 0
    outcome: str = ""
    """What the client saw last: a job status, or an error."""


def _short_method(details: Any) -> str:
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    return str(method).rsplit("/", 1)[-1]


if TYPE_CHECKING:
    _Interceptor = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.UnaryUnaryClientInterceptor


class Recorder(_Interceptor):
    """Counts each TM call's status code; simulates clients that die before Submit/Abort.

    For a gid in ``drop_submit`` (``drop_abort``) the call is not sent: the client raises
    UNAVAILABLE as if its process had died there, and the job is left to the TM's
    back-check. Those simulated failures are not counted as codes the TM sent.
    """

    def __init__(self) -> None:
        self.codes: Counter[tuple[str, str]] = Counter()
        self.acked: set[str] = set()
        self.bad: list[dict[str, str]] = []
        self.drop_submit: set[str] = set()
        self.drop_abort: set[str] = set()
        self.dropped = 0

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        method = _short_method(details)
        gid = str(getattr(request, "gid", ""))
        if (method == "Submit" and gid in self.drop_submit) or (
            method == "Abort" and gid in self.drop_abort
        ):
            self.dropped += 1
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE,
                grpc.aio.Metadata(),
                grpc.aio.Metadata(),
                f"chaos: the client died before {method}",
                None,
            )
        call = await continuation(details, request)
        try:
            await call
        except grpc.aio.AioRpcError as err:
            code = err.code()
            if code in BAD_CODES and len(self.bad) < 50:
                self.bad.append({"method": method, "gid": gid, "details": err.details() or ""})
        except asyncio.CancelledError:
            raise
        else:
            code = grpc.StatusCode.OK
            if method in ("Prepare", "Submit") and gid:
                self.acked.add(gid)
        self.codes[(method, code.name)] += 1
        return call


@dataclass
class LoadGenerator:
    """Offers ``cfg.jobs`` jobs at ``cfg.rate``, spread over the TM replicas."""

    cfg: ChaosConfig
    clients: Sequence[TmClient]
    recorder: Recorder
    orders_engine: AsyncEngine
    bank_targets: dict[str, str]
    bank_accounts: dict[str, list[str]]
    records: dict[str, JobRecord] = field(default_factory=dict)
    client_retries: int = 0
    gave_up: int = 0
    max_attempts_used: int = 0
    _rng: random.Random = field(init=False)
    _jitter: random.Random = field(init=False)
    _next_client: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.cfg.seed)
        self._jitter = random.Random(self.cfg.seed + 1)

    async def run(self, deadline: float, more: Callable[[], bool] = lambda: False) -> None:
        """Offers the load (open loop, at most ``max_in_flight`` at once) and waits for it.

        ``cfg.jobs`` at least, and more at the same rate while ``more()`` says so (the
        chaos has events left), until ``deadline``. Each job is planned when it is due,
        in order, so a seed repeats the same jobs.
        """
        gate = asyncio.Semaphore(self.cfg.max_in_flight)
        tasks: list[asyncio.Task[None]] = []
        start = time.monotonic()
        for i in itertools.count():
            due = start + i / self.cfg.rate
            if due > deadline or (i >= self.cfg.jobs and not more()):
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await gate.acquire()
            if self._rng.random() < self.cfg.message_share:
                job = self._order(*self._plan_order())
            else:
                job = self._transfer(*self._plan_transfer())
            tasks.append(asyncio.create_task(self._release_after(job, gate)))
        await asyncio.gather(*tasks)

    async def _release_after(self, job: Awaitable[None], gate: asyncio.Semaphore) -> None:
        try:
            await job
        finally:
            gate.release()

    # -- plans ------------------------------------------------------------------
    def _account(self, bank: str) -> str:
        return self._rng.choice(self.bank_accounts[bank])

    def _plan_transfer(self) -> tuple[str, str, list[_Step]]:
        src, dst = self._rng.sample(sorted(self.bank_targets), 2)
        amount = self._rng.randint(1, 100)
        draw = self._rng.random()
        variant, dst_account = "ok", self._account(dst)
        if draw < self.cfg.no_funds_share:
            variant, amount = "no_funds", 10**12
        elif draw < self.cfg.no_funds_share + self.cfg.no_account_share:
            variant, dst_account = "no_account", "ghost"
        steps = [
            (src, "Debit", Transfer(self._account(src), amount)),
            (dst, "Credit", Transfer(dst_account, amount)),
        ]
        return f"t-{self._rng.getrandbits(64):016x}", variant, steps

    def _plan_order(self) -> tuple[str, str, list[_Step]]:
        rollback = self._rng.random() < self.cfg.rollback_share
        abandon = self._rng.random() < self.cfg.abandon_share
        variant = _ORDER_VARIANTS[(rollback, abandon)]
        steps = [
            (bank, "Credit", Transfer(self._account(bank), self._rng.randint(1, 50)))
            for bank in sorted(self.bank_targets)
        ]
        return f"o-{self._rng.getrandbits(64):016x}", variant, steps

    def _client(self) -> TmClient:
        self._next_client = (self._next_client + 1) % len(self.clients)
        return self.clients[self._next_client]

    def _job(self, client: TmClient, gid: str, mode: str, steps: list[_Step]) -> Job:
        job = client.job(
            gid,
            mode=mode,
            retry_policy=_RETRY,
            step_timeout=timedelta(seconds=3),
            check_prepared_after=timedelta(seconds=2) if mode == "message" else None,
        )
        for bank, method, payload in steps:
            endpoint = Endpoint.for_step(self.bank_targets[bank], BANK_SERVICE, method)
            job.add_step(endpoint, payload, compensation=endpoint if mode == "saga" else None)
        return job

    def _record(self, gid: str, kind: str, variant: str, steps: list[_Step]) -> JobRecord:
        sign = {"Debit": -1, "Credit": 1}
        effects = tuple(Effect(b, t.account, sign[m] * t.amount) for b, m, t in steps)
        record = JobRecord(gid, kind, variant, effects)
        self.records[gid] = record
        return record

    # -- jobs -------------------------------------------------------------------
    async def _transfer(self, gid: str, variant: str, steps: list[_Step]) -> None:
        record = self._record(gid, "transfer", variant, steps)

        async def attempt(client: TmClient) -> str:
            job = self._job(client, gid, "saga", steps)
            state = await job.start(wait=True, wait_timeout=self.cfg.wait_timeout)
            return state.status.name

        await self._with_retries(record, attempt)

    async def _order(self, gid: str, variant: str, steps: list[_Step]) -> None:
        record = self._record(gid, "order", variant, steps)
        if variant == "abandon_submit":
            self.recorder.drop_submit.add(gid)
        if variant == "abandon_abort":
            self.recorder.drop_abort.add(gid)
        ref = POISON_REF if variant in ("rollback", "abandon_abort") else gid
        amount = sum(t.amount for _, _, t in steps)

        async def attempt(client: TmClient) -> str:
            job = self._job(client, gid, "message", steps)
            try:
                async with self.orders_engine.connect() as conn:
                    await conn.begin()
                    await conn.execute(orders.insert().values(gid=gid, amount=amount, ref=ref))
                    state = await job.start(conn, wait=True, wait_timeout=self.cfg.wait_timeout)
            except sa_exc.IntegrityError:
                return "rolled back at commit"
            except JobRolledBack:
                return "rolled back by the back-check"
            except (sa_exc.SQLAlchemyError, OSError) as exc:  # the orders database went away
                return f"database error: {type(exc).__name__}"
            return state.status.name

        await self._with_retries(record, attempt)

    async def _with_retries(
        self, record: JobRecord, attempt: Callable[[TmClient], Awaitable[str]]
    ) -> None:
        delay = 0.2
        for n in range(1, self.cfg.client_attempts + 1):
            record.attempts = n
            self.max_attempts_used = max(self.max_attempts_used, n)
            try:
                record.outcome = await attempt(self._client())
                return
            except TmUnavailable as exc:
                record.outcome = f"{exc.code}: {exc.message}"[:200]
                if n == self.cfg.client_attempts:
                    break
                self.client_retries += 1
                await asyncio.sleep(delay * (0.5 + self._jitter.random()))
                delay = min(delay * 2, 2.0)
            except TmError as exc:  # not retryable: the record says what it was
                record.outcome = f"{exc.code}: {exc.message}"[:200]
                return
        self.gave_up += 1


def as_interceptor(recorder: Recorder) -> grpc.aio.ClientInterceptor:
    """The recorder as the stubs' (partial) interceptor type, for ``TmClient.connect``."""
    return cast(grpc.aio.ClientInterceptor, recorder)
