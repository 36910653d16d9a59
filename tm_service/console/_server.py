"""Start and stop the console's HTTP listener."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from tm_service.config import SettingsError
from tm_service.console._app import ConsoleConfig, build_app
from tm_service.console._client import TmClient, TmTls

__all__ = ["ConsoleServer", "parse_listen"]


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise SettingsError(f"STEPPING_CONSOLE_LISTEN: expected host:port, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class ConsoleServer:
    """``start()`` it, read ``url``, ``stop()`` it."""

    tm_address: str
    listen: str = "127.0.0.1:0"
    tls: TmTls = field(default_factory=TmTls)
    config: ConsoleConfig = field(default_factory=ConsoleConfig)
    port: int = 0
    _runner: web.AppRunner | None = None
    _client: TmClient | None = None

    @property
    def url(self) -> str:
        host, _ = parse_listen(self.listen)
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        return f"http://{shown}:{self.port}/"

    async def start(self) -> None:
        host, port = parse_listen(self.listen)
        self._client = TmClient(self.tm_address, self.tls)
        self._runner = web.AppRunner(build_app(self._client, self.config), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server  # aiohttp exposes the bound port only here
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()
