"""Assembles and runs the TM: database, engine, gRPC server (health; reflection when on)."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from dtmgimp import dtmgimp_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from stepping.contract import TM_SERVICE
from stepping.tm.v1 import tm_pb2_grpc

from tm_service._db_health import DatabaseWatch, wait_for_database
from tm_service._listen import ListenError, check_address_free
from tm_service._listeners import add_api_port, start_health_server
from tm_service.api import Converter, MalformedRequests, TransactionManagerServicer
from tm_service.api._dtm import DtmServicer
from tm_service.auth import Authenticator, PrincipalFile
from tm_service.clock import Clock, SystemClock
from tm_service.config import Settings, otel_environment
from tm_service.processing import Engine, GrpcTransport, ProcessingContext, Transport
from tm_service.retention import Retention
from tm_service.store import EmbeddedPostgres, PostgresStore
from tm_service.targets import TargetPolicy
from tm_service.telemetry import (
    InstrumentedTransport,
    ServerSpans,
    Telemetry,
    configure_telemetry,
    watch_backlog,
)
from tm_service.usecases import TransactionService

__all__ = ["ListenError", "TmServer", "run"]

_log = logging.getLogger(__name__)

SERVICE_NAME = TM_SERVICE
#: The health name for liveness (and startup) probes: SERVING while the process answers,
#: also while the database is away (then "" and SERVICE_NAME, for readiness, are not).
LIVENESS_NAME = "stepping.tm.v1.Liveness"


@dataclass
class TmServer:
    """A running TM. ``start()`` it, read ``port``, ``stop()`` it (graceful)."""

    settings: Settings
    # None: the gRPC transport the settings describe (TLS, signing, target policy).
    transport: Transport | None = None
    # Off unless given; ``run()`` builds it from the OTEL_* environment and owns it.
    telemetry: Telemetry = field(default_factory=Telemetry)
    clock: Clock = field(default_factory=SystemClock)
    # SO_REUSEPORT, for ``serve --workers N`` only: otherwise a second TM on a taken
    # address would start silently and take a share of the connections.
    reuse_port: bool = False
    # How often the due-backlog gauges are read from the database (metrics on only).
    backlog_interval: float = 5.0
    port: int = 0
    health_port: int = 0  # of the plaintext health-only listener (STEPPING_HEALTH_LISTEN)
    store: PostgresStore | None = None
    engine: Engine | None = None
    _server: grpc.aio.Server | None = None
    _health: Any = None
    _health_server: grpc.aio.Server | None = None
    _embedded: EmbeddedPostgres | None = None
    _backlog: asyncio.Task[None] | None = None
    _db_watch: DatabaseWatch | None = None
    retention: Retention | None = None
    console: Any = None  # the web console (STEPPING_CONSOLE_LISTEN), a ConsoleServer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        s = self.settings
        if not self.reuse_port:  # fail fast, before the database starts
            check_address_free(s.listen)
        auth = Authenticator(PrincipalFile(s.auth_file)) if s.auth_file else None
        url = s.database_url
        if not url:
            self._embedded = EmbeddedPostgres(Path(s.embedded_pg_dir), port=s.embedded_pg_port)
            url = await asyncio.to_thread(self._embedded.start)
            _log.info("embedded postgres at %s (data in %s)", url, s.embedded_pg_dir)
        self.store = PostgresStore.from_url(
            url,
            pool_size=s.db_pool_size,
            claim_by_bucket=s.claim_by_bucket,
            search_timeout=s.search_timeout_seconds,
        )
        targets = TargetPolicy.from_settings(s.allowed_targets, s.listen)
        if self.transport is None:
            self.transport = GrpcTransport.from_settings(s, targets)
        tel = self.telemetry
        transport = InstrumentedTransport(self.transport, tel) if tel.enabled else self.transport
        ctx = ProcessingContext(
            store=self.store, transport=transport, settings=s, clock=self.clock, telemetry=tel
        )
        self.engine = Engine(ctx)
        service = TransactionService(self.store, self.engine, s, telemetry=tel, clock=self.clock)

        spans = ServerSpans(tel.tracer, (SERVICE_NAME,)) if tel.tracing else None
        # Outermost: a request that does not parse is answered before it is traced.
        interceptors: list[Any] = [MalformedRequests()]
        if spans is not None:
            interceptors.append(spans)
        server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.so_reuseport", 1 if self.reuse_port else 0),
                ("grpc.max_receive_message_length", s.max_request_bytes),
            ],
        )
        main = TransactionManagerServicer(service, Converter(s, targets=targets), auth)
        tm_pb2_grpc.add_TransactionManagerServiceServicer_to_server(main, server)
        # DTM's API beside ours, on the same port (issue 17).
        dtmgimp_pb2_grpc.add_DtmServicer_to_server(
            DtmServicer(service, Converter(s, targets=targets), s, main), server
        )
        self._health = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        await self._set_serving(False)  # "" starts SERVING in grpc_health: not before the DB
        await self._health.set(LIVENESS_NAME, health_pb2.HealthCheckResponse.SERVING)
        if s.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
            )
        try:
            self.port = add_api_port(server, s)
        except RuntimeError as err:  # grpc: "Failed to bind to address ..."
            raise ListenError(f"cannot listen on {s.listen}: {err}") from None
        targets.listening_on(self.port)
        if spans is not None:
            spans.port = self.port
        await server.start()
        self._server = server
        self._health_server, self.health_port = await start_health_server(
            s, self._health, reuse_port=self.reuse_port
        )
        await self._wait_for_database()
        self.engine.start()
        self._start_background()
        await self._set_serving(True)
        console = await self._start_console()
        _log.info("stepping TM listening on %s (port %d)%s", s.listen, self.port, console)

    def _start_background(self) -> None:
        """What runs beside the engine once the database is there: the backlog metric,
        the database watch, retention."""
        assert self.store is not None
        s, tel = self.settings, self.telemetry
        if tel.metrics:
            self._backlog = asyncio.create_task(
                watch_backlog(self.store.due_stats, tel.backlog, self.backlog_interval),
                name="stepping-backlog",
            )
        self._watch_database()
        self.retention = Retention(
            self.store,
            keep_seconds=s.retention_seconds,
            interval=s.retention_interval_seconds,
        )
        self.retention.start()

    async def _wait_for_database(self) -> None:
        """Listen already (NOT_SERVING), so probes get an answer while the database is away."""
        assert self.store is not None
        _log.info("gRPC on port %d; NOT_SERVING until the database is ready", self.port)
        await wait_for_database(
            self.store, migrate=self.settings.migrate_on_start, clock=self.clock
        )

    def _watch_database(self) -> None:
        """From now on health follows the database: pinged, and flipped by failed operations."""
        assert self.store is not None
        self._db_watch = DatabaseWatch(
            self.store,
            self._set_serving,
            interval=self.settings.db_check_interval_seconds,
            clock=self.clock,
        )
        self.store.on_unavailable = self._db_watch.notice
        self._db_watch.start()

    async def _set_serving(self, serving: bool) -> None:
        # Ignored once stop() entered graceful shutdown: NOT_SERVING then stays.
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE_NAME):
            await self._health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Graceful stop: refuse new work, finish in-flight calls, release leases."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        if self.console is not None:
            await self.console.stop()
        if self._db_watch is not None:
            await self._db_watch.stop()
        if self.retention is not None:
            await self.retention.stop()
        if self.engine is not None:
            # New Submits are refused from here on; running step calls get the grace.
            await self.engine.shutdown(grace)
        if self._server is not None:
            await self._server.stop(min(grace, 1.0))
        if self._health_server is not None:
            await self._health_server.stop(None)
        if self._backlog is not None:
            self._backlog.cancel()
            await asyncio.gather(self._backlog, return_exceptions=True)
        if self.store is not None:
            await self.store.close()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)

    # -- the web console (README "Console") --------------------------------------------
    async def _start_console(self) -> str:
        """Start the console when STEPPING_CONSOLE_LISTEN is set; the text for the start line."""
        s = self.settings
        if not s.console_listen or self.reuse_port:  # not in each --workers process
            return ""
        from tm_service.console import ConsoleConfig, ConsoleServer, TmTls

        assert self.store is not None
        tls = TmTls(
            s.console_tls_ca_file,
            s.console_tls_cert_file,
            s.console_tls_key_file,
            s.console_tls_server_name,
        )
        self.console = ConsoleServer(
            self.target,
            s.console_listen,
            tls,
            ConsoleConfig(trace_url=s.console_trace_url, due_stats=self.store.due_stats),
        )
        await self.console.start()
        return f"; console at {self.console.url}"


async def run(settings: Settings, *, reuse_port: bool = False) -> None:
    """Run the TM until SIGTERM or SIGINT, then stop gracefully (and flush telemetry).

    Raises ListenError when the address cannot be bound (what was started is stopped).
    """
    telemetry = configure_telemetry(settings, otel_environment())
    try:
        server = TmServer(settings, telemetry=telemetry, reuse_port=reuse_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            started = await _start_unless_stopped(server, stop)
        except BaseException:
            await server.stop(0)
            raise
        if started:
            await stop.wait()
        _log.info("stopping (grace %.1fs)", settings.shutdown_grace_seconds)
        await server.stop()
    finally:
        await asyncio.to_thread(telemetry.shutdown)


async def _start_unless_stopped(server: TmServer, stop: asyncio.Event) -> bool:
    """Start the server; False when a signal came first (e.g. while waiting for the database)."""
    starting = asyncio.create_task(server.start(), name="stepping-start")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait((starting, stopped), return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if starting.done():
        starting.result()  # a start-up error propagates
        return True
    starting.cancel()
    await asyncio.gather(starting, return_exceptions=True)
    return False
