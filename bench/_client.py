"""The load generator for the TM: one process, ``Submit(wait_result)`` per job.

Each job is ONE RPC: a ``SubmitRequest`` with the steps inline, a client-made gid and
``wait_result=true``; the job counts as done when the answer says SUCCEEDED. The
request is encoded once and only the gid field is prepended per job (protobuf fields
may come in any order), so the client spends its CPU on gRPC, not on building
messages. All jobs share one channel unless ``channels`` > 1 (for ``--workers N``:
SO_REUSEPORT spreads connections, not calls, over the TM's processes).

Run by the orchestrator: ``python -m bench._client '<json config>'``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc
from stepping.contract import TM_SERVICE
from stepping.tm.v1 import tm_pb2

from bench._loadgen import LoadShape, run, serve_load
from bench._records import OK, RPC_ERROR, WRONG_RESULT

__all__ = ["ClientConfig", "build_submit_prefix", "encode_submit"]

SUBMIT_METHOD = f"/{TM_SERVICE}/Submit"
_SUCCEEDED = tm_pb2.TRANSACTION_STATUS_SUCCEEDED


@dataclass(frozen=True)
class ClientConfig:
    target: str
    steps: list[tuple[str, str]]  # (target, method) per step
    records_path: str
    gid_prefix: str
    shape: LoadShape = field(default_factory=LoadShape)
    channels: int = 1
    payload_size: int = 16
    call_timeout: float = 60.0

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["shape"] = self.shape.to_dict()
        return json.dumps(d)

    @classmethod
    def from_json(cls, raw: str) -> ClientConfig:
        d: dict[str, Any] = json.loads(raw)
        d["shape"] = LoadShape(**d["shape"])
        d["steps"] = [tuple(s) for s in d["steps"]]
        return cls(**d)


def build_submit_prefix(steps: list[tuple[str, str]], payload: bytes) -> bytes:
    """A ``SubmitRequest`` with everything but the gid, encoded."""
    request = tm_pb2.SubmitRequest(
        steps=[
            tm_pb2.Step(
                name=f"s{i}",
                action=tm_pb2.Endpoint(target=target, method=method),
                payload=payload,
            )
            for i, (target, method) in enumerate(steps)
        ],
        wait_result=True,
    )
    return request.SerializeToString()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_submit(gid: str, rest: bytes) -> bytes:
    """``rest`` (from ``build_submit_prefix``) with field 1 (gid) added."""
    raw = gid.encode()
    return b"\x0a" + _varint(len(raw)) + raw + rest


def _identity(b: bytes) -> bytes:
    return b


async def main(config: ClientConfig) -> None:
    channels = [
        # A local subchannel pool: each channel gets a connection of its own.
        grpc.aio.insecure_channel(config.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(config.channels)
    ]
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), 30)
    calls = [
        ch.unary_unary(SUBMIT_METHOD, request_serializer=_identity, response_deserializer=_identity)
        for ch in channels
    ]
    rest = build_submit_prefix(config.steps, b"x" * config.payload_size)
    errors: Counter[str] = Counter()
    prefix = config.gid_prefix
    n_calls = len(calls)

    async def job(index: int) -> int:
        request = encode_submit(f"{prefix}{index:09d}", rest)
        try:
            raw = await calls[index % n_calls](request, timeout=config.call_timeout)
        except grpc.aio.AioRpcError as err:
            errors[f"{err.code().name}: {(err.details() or '')[:120]}"] += 1
            return RPC_ERROR
        except Exception as err:
            errors[f"{type(err).__name__}: {str(err)[:120]}"] += 1
            return RPC_ERROR
        status = tm_pb2.SubmitResponse.FromString(raw).transaction.status
        if status != _SUCCEEDED:
            errors[f"job ended {tm_pb2.TransactionStatus.Name(status)}"] += 1
            return WRONG_RESULT
        return OK

    try:
        await serve_load(job, config.shape, config.records_path, errors, {})
    finally:
        for ch in channels:
            await ch.close(None)


if __name__ == "__main__":
    run(main(ClientConfig.from_json(sys.argv[1])))
