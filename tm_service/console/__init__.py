"""The web console (README "Console"): an HTTP server that is a gRPC client of the TM."""

from tm_service.console._app import COOKIE, ConsoleConfig, build_app
from tm_service.console._client import TmClient, TmTls
from tm_service.console._server import ConsoleServer, parse_listen

__all__ = [
    "COOKIE",
    "ConsoleConfig",
    "ConsoleServer",
    "TmClient",
    "TmTls",
    "build_app",
    "parse_listen",
]
