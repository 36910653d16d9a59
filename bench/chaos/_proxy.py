"""A TCP proxy between one TM replica and Postgres that the run can cut: a partition.

While cut, every open connection is closed (both sides) and new ones are accepted and
closed at once, so the replica sees its database vanish while the others keep theirs.
"""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["CutProxy"]

_CHUNK = 1 << 16


class CutProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream``; :meth:`cut` and :meth:`restore`."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._server: asyncio.Server | None = None
        self._cut = False
        self._links: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections = 0
        self.refused = 0
        self.cuts = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self._drop_all()

    @property
    def is_cut(self) -> bool:
        return self._cut

    async def cut(self) -> None:
        """Closes every connection and refuses new ones until :meth:`restore`."""
        self._cut = True
        self.cuts += 1
        await self._drop_all()

    def restore(self) -> None:
        self._cut = False

    async def _drop_all(self) -> None:
        links = list(self._links)
        for task in links:
            task.cancel()
        await asyncio.gather(*links, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            await _close(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        self._links.add(task)
        try:
            self.connections += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            except OSError:  # Postgres is down: the client sees the connection close
                await _close(writer)
                return
            try:
                await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            finally:
                await _close(up_writer)
                await _close(writer)
        except asyncio.CancelledError:
            pass  # cut: the task ends here (asyncio.start_server would log the cancellation)
        finally:
            self._links.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        # One side ended: end the other, so the pair closes together.
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            writer.close()


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
        await writer.wait_closed()
