"""A minimal participant: a grpc.aio server where every method answers OK, empty body.

One process per step, as in the peers' measurements. It prints ``READY <port>`` once
it listens and serves until SIGTERM/SIGINT.

Run by the orchestrator: ``python -m bench._participant [--port N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc

from bench._loadgen import announce, run

__all__ = ["METHOD"]

METHOD = "/bench.Participant/Step"


async def _ok(request: bytes, context: Any) -> bytes:
    return b""


class _AnyMethod(grpc.GenericRpcHandler):  # type: ignore[type-arg]
    # Requests stay bytes: no deserializer, and the same handler serves every method.
    _handler = grpc.unary_unary_rpc_method_handler(_ok)

    def service(
        self, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[bytes, bytes]:
        return self._handler


async def main(port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_AnyMethod(),))
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    announce(f"READY {bound}")
    await stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    run(main(parser.parse_args().port))
