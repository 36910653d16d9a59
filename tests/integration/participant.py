"""A participant written with plain grpcio (no SDK), so tests exercise the wire contract.

It serves any method: each call is recorded, and the answer comes from a per-method
script of status codes (then OK). QueryPrepared answers with a settable outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from stepping.participant.v1 import participant_pb2

QP_METHOD = "/stepping.participant.v1.ParticipantService/QueryPrepared"


@dataclass
class Call:
    method: str
    payload: bytes
    metadata: dict[str, str]
    at: float


@dataclass
class FakeAnswer:
    code: grpc.StatusCode
    details: str = ""
    delay: float = 0.0


@dataclass
class Participant:
    calls: list[Call] = field(default_factory=list)
    scripts: dict[str, list[FakeAnswer]] = field(default_factory=lambda: defaultdict(list))
    responses: dict[str, bytes] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    # method -> n: the first n attempts of every (gid, step) answer UNAVAILABLE.
    fail_first: dict[str, int] = field(default_factory=dict)
    prepared_outcome: participant_pb2.PreparedOutcome.ValueType = (
        participant_pb2.PREPARED_OUTCOME_COMMITTED
    )
    query_calls: list[participant_pb2.QueryPreparedRequest] = field(default_factory=list)
    in_flight: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    max_in_flight: int = 0
    on_call: Callable[[Call], None] | None = None
    server: grpc.aio.Server | None = None
    port: int = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def fail(self, method: str, *answers: FakeAnswer) -> None:
        self.scripts[method].extend(answers)

    async def _handle(self, method: str, request: bytes, context: Any) -> bytes:
        md = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        call = Call(method, request, md, time.monotonic())
        self.calls.append(call)
        if self.on_call:
            self.on_call(call)
        key = (md.get("stepping-gid", ""), md.get("stepping-step-index", ""))
        self.in_flight[key] += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight[key])
        try:
            if self.delays.get(method):
                await asyncio.sleep(self.delays[method])
            if int(md.get("stepping-attempt", "0")) <= self.fail_first.get(method, 0):
                await context.abort(grpc.StatusCode.UNAVAILABLE, "first attempts fail")
            script = self.scripts.get(method)
            if script:
                answer = script.pop(0)
                if answer.delay:
                    await asyncio.sleep(answer.delay)
                await context.abort(answer.code, answer.details)
            return self.responses.get(method, b"ok:" + request)
        finally:
            self.in_flight[key] -= 1

    async def _query_prepared(self, request: bytes, context: Any) -> bytes:
        req = participant_pb2.QueryPreparedRequest.FromString(request)
        self.query_calls.append(req)
        script = self.scripts.get(QP_METHOD)
        if script:
            answer = script.pop(0)
            await context.abort(answer.code, answer.details)
        return participant_pb2.QueryPreparedResponse(
            outcome=self.prepared_outcome
        ).SerializeToString()

    async def start(self, port: int = 0) -> Participant:
        participant = self

        class Handler(grpc.GenericRpcHandler):  # type: ignore[type-arg]  # generic in the stubs only
            def service(
                self, details: grpc.HandlerCallDetails
            ) -> grpc.RpcMethodHandler[Any, Any] | None:
                method = details.method
                if method == QP_METHOD:
                    return grpc.unary_unary_rpc_method_handler(participant._query_prepared)

                async def handle(request: bytes, context: Any) -> bytes:
                    return await participant._handle(method, request, context)

                return grpc.unary_unary_rpc_method_handler(handle)

        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers((Handler(),))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(0)
            self.server = None
