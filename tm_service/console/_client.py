"""The console's connection to the TM: one channel, the user's token on every call."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from google.protobuf.duration_pb2 import Duration
from stepping.tm.v1 import tm_pb2, tm_pb2_grpc

__all__ = ["TmClient", "TmTls"]

_TIMEOUT = 10.0
_CENTURY = 100 * 365 * 86400

if TYPE_CHECKING:
    Stub = tm_pb2_grpc.TransactionManagerServiceAsyncStub


@dataclass(frozen=True, slots=True)
class TmTls:
    """TLS to the TM (all empty: plaintext)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""

    @property
    def on(self) -> bool:
        return bool(self.ca_file or self.cert_file)


# Each status is counted up to this many jobs, then shown as "10000+".
COUNT_AT_MOST = 10_000


class TmClient:
    def __init__(self, address: str, tls: TmTls | None = None) -> None:
        tls = tls or TmTls()
        if tls.on:

            def read(path: str) -> bytes | None:
                return Path(path).read_bytes() if path else None

            creds = grpc.ssl_channel_credentials(
                read(tls.ca_file), read(tls.key_file), read(tls.cert_file)
            )
            options = (
                [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
            )
            self.channel = grpc.aio.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.aio.insecure_channel(address)
        self.stub: Stub = tm_pb2_grpc.TransactionManagerServiceStub(self.channel)

    async def close(self) -> None:
        await self.channel.close(None)

    @staticmethod
    def md(token: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token}"),) if token else ()

    async def list(
        self, token: str, request: tm_pb2.ListTransactionsRequest
    ) -> tm_pb2.ListTransactionsResponse:
        return await self.stub.ListTransactions(request, timeout=_TIMEOUT, metadata=self.md(token))

    async def count(
        self, token: str, flt: tm_pb2.TransactionFilter, *, at_most: int = COUNT_AT_MOST
    ) -> tm_pb2.CountTransactionsResponse:
        # Capped by default: the jobs page stays fast on a table of millions ("10000+").
        request = tm_pb2.CountTransactionsRequest(filter=flt, at_most=at_most)
        return await self.stub.CountTransactions(request, timeout=_TIMEOUT, metadata=self.md(token))

    async def get(self, token: str, gid: str) -> tm_pb2.Transaction:
        request = tm_pb2.GetTransactionRequest(gid=gid)
        response = await self.stub.GetTransaction(
            request, timeout=_TIMEOUT, metadata=self.md(token)
        )
        return response.transaction

    async def cancel(self, token: str, gid: str, reason: str) -> None:
        request = tm_pb2.CancelRequest(gid=gid, reason=reason)
        await self.stub.Cancel(request, timeout=_TIMEOUT, metadata=self.md(token))

    async def resume(self, token: str, gid: str) -> None:
        request = tm_pb2.ResumeRequest(gid=gid)
        await self.stub.Resume(request, timeout=_TIMEOUT, metadata=self.md(token))

    async def check_login(self, token: str) -> None:
        """Raises grpc.aio.AioRpcError (UNAUTHENTICATED) when the TM does not know ``token``."""
        await self.list(token, tm_pb2.ListTransactionsRequest(page_size=1))

    async def is_admin(self, token: str) -> bool:
        """A dry-run purge of nothing: the TM answers it for admins only (no rows touched)."""
        request = tm_pb2.PurgeTransactionsRequest(
            older_than=Duration(seconds=_CENTURY), dry_run=True
        )
        try:
            await self.stub.PurgeTransactions(request, timeout=_TIMEOUT, metadata=self.md(token))
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                return False
            raise
        return True
