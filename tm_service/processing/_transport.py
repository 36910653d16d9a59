"""Calls to participants: the one-method transport interface and its gRPC implementation.

The gRPC transport dials only what the target policy allows (tm_service.targets): a
name is resolved here, each address checked, and the channel pinned to those addresses
(re-resolved every ``resolve_seconds``, or at once after UNAVAILABLE), so gRPC's own
resolver never dials an address that was not checked. Channels are kept in a bounded
LRU and closed when idle. A dial failure is reported generically ("participant
unreachable"); what gRPC said goes to the log, not into the job, so jobs cannot be
used to scan ports.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from stepping.contract import CallInfo, signing_key

from tm_service._files import FileStamp, file_stamp
from tm_service.config import Settings, SettingsError
from tm_service.domain import Endpoint
from tm_service.targets import HostPort, IPAddress, TargetPolicy, TargetRefused, parse_ip

__all__ = ["CallInfo", "CallResult", "GrpcTransport", "Resolver", "Transport"]

_log = logging.getLogger(__name__)

_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class CallResult:
    """How a participant answered: a status code, the raw response and the details."""

    code: grpc.StatusCode
    response: bytes = b""
    details: str = ""
    # The participant's own hint (google.rpc.RetryInfo), when it sent one.
    retry_after: float | None = None
    # Retrying cannot help (the response is over the TM's limit, or the target policy
    # refused it): a step fails for good.
    permanent: bool = False

    @property
    def error_text(self) -> str:
        if not self.details:
            return self.code.name
        # Stored as text: Postgres rejects NUL characters, so a participant's text
        # must not be able to make the write fail.
        return f"{self.code.name}: {self.details}".replace("\x00", "\\0")


class Transport(Protocol):
    """Sends raw bytes to a unary gRPC method and reports the answer; never raises.

    ``info`` says what the call is (the job, the step, the op); the transport sends it
    as the step contract's metadata (``info.metadata()``).
    """

    async def call(
        self, endpoint: Endpoint, payload: bytes, *, info: CallInfo, timeout: float
    ) -> CallResult: ...

    async def close(self) -> None: ...


def _identity(b: bytes) -> bytes:
    return b


def _retry_after(err: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay in the call's rich status details, if any."""
    trailers: Any = err.trailing_metadata() or ()
    for key, value in trailers:
        if key != _DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                seconds: float = info.retry_delay.ToTimedelta().total_seconds()
                return max(seconds, 0.0)
    return None


#: ``async (host, port) -> addresses``: how a participant's name is resolved.
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

_UNREACHABLE = "participant unreachable"
# grpc's own text when a channel refuses a response over its max_receive_message_length.
_TOO_LARGE = "CLIENT: Received message larger than max"
_NO_ANSWER = "participant did not answer in time"
# Codes gRPC itself reports for a connection that failed or never answered: their
# text would tell a refused port from a filtered one or an HTTP server. (A deadline
# is always generic: a slow participant and a silent port must read alike.)
_GENERIC = {
    grpc.StatusCode.UNAVAILABLE: _UNREACHABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED: _NO_ANSWER,
}
# How long a replaced channel may finish its calls before it is closed.
_RETIRE_GRACE = 60.0


async def _getaddrinfo(host: str, port: int) -> list[IPAddress]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    found: list[IPAddress] = []
    for info in infos:
        ip = parse_ip(str(info[4][0]))
        if ip is not None and ip not in found:
            found.append(ip)
    return found


@dataclass(eq=False)
class _Channel:
    channel: grpc.aio.Channel
    checked_at: float
    last_used: float
    pinned: tuple[str, ...] = ()  # the checked addresses it dials (names only)
    methods: dict[str, grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = field(default_factory=dict)
    in_flight: int = 0
    stale: bool = False
    generation: int = 0  # of the credentials it was dialled with


#: What the TM's participant secrets load to: channel credentials and the signing key.
Secrets = tuple[grpc.ChannelCredentials | None, bytes | None]


class SecretFiles:
    """The participant TLS and signing-key files, re-read when one of them changes.

    cert-manager and the like rotate them in place: a changed ``file_stamp`` means "read
    them again".
    """

    def __init__(self, paths: tuple[str, ...], load: Callable[[], Secrets]) -> None:
        self._paths = tuple(p for p in paths if p)
        self._load = load
        self._stamp = self._stamps()

    def __bool__(self) -> bool:
        return bool(self._paths)

    def _stamps(self) -> tuple[FileStamp | None, ...]:
        out: list[FileStamp | None] = []
        for path in self._paths:
            try:
                out.append(file_stamp(path))
            except OSError:
                out.append(None)
        return tuple(out)

    def changed(self) -> Secrets | None:
        """The secrets read again when a file changed since the last look, else None.

        A file that cannot be read (half-written, removed) keeps the old secrets; the
        next look tries again.
        """
        stamp = self._stamps()
        if stamp == self._stamp:
            return None
        try:
            secrets = self._load()
        except SettingsError as err:
            _log.error("participant TLS or signing-key files changed but unusable: %s", err)
            return None
        self._stamp = stamp
        return secrets


def _pinned_target(addresses: list[IPAddress], port: int) -> tuple[str, tuple[str, ...]]:
    v4 = [str(a) for a in addresses if a.version == 4]
    if v4:
        return "ipv4:" + ",".join(f"{a}:{port}" for a in v4), tuple(v4)
    v6 = [str(a) for a in addresses]
    return "ipv6:" + ",".join(f"[{a}]:{port}" for a in v6), tuple(v6)


class GrpcTransport:
    """grpc.aio transport: one channel per target (bounded LRU), reused for every call.

    ``targets`` decides what may be dialled; ``credentials`` make every channel TLS;
    with ``signing_key`` each call carries ``stepping-signature``.
    """

    def __init__(
        self,
        *,
        targets: TargetPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        signing_key: bytes | None = None,
        max_channels: int = 1000,
        idle_seconds: float = 300.0,
        resolve_seconds: float = 30.0,
        resolver: Resolver = _getaddrinfo,
        clock: Callable[[], float] = time.monotonic,
        max_response_bytes: int = 1 << 20,
        secret_files: SecretFiles | None = None,
        reload_seconds: float = 10.0,
    ) -> None:
        self._max_response_bytes = max_response_bytes
        self._targets = targets or TargetPolicy()
        self._credentials = credentials
        self._key = signing_key
        self._max = max(1, max_channels)
        self._idle = idle_seconds
        self._resolve_every = resolve_seconds
        self._resolver = resolver
        self._clock = clock
        self._channels: OrderedDict[str, _Channel] = OrderedDict()
        self._opening: dict[str, asyncio.Lock] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._files = secret_files if secret_files else None
        self._reload_every = reload_seconds
        self._generation = 0  # bumped when the credentials change: channels re-dial
        self._reloader: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, s: Settings, targets: TargetPolicy | None = None) -> GrpcTransport:
        """The transport the settings describe (files are read now: a bad one fails start)."""

        def load() -> Secrets:
            return channel_credentials(s), read_signing_key(s.participant_signing_key_file)

        credentials, key = load()
        files = SecretFiles(
            (
                s.participant_tls_ca_file,
                s.participant_tls_cert_file,
                s.participant_tls_key_file,
                s.participant_signing_key_file,
            ),
            load,
        )
        return cls(
            targets=targets or TargetPolicy.from_settings(s.allowed_targets, s.listen),
            credentials=credentials,
            signing_key=key,
            max_channels=s.participant_max_channels,
            idle_seconds=s.participant_channel_idle_seconds,
            resolve_seconds=s.participant_resolve_seconds,
            max_response_bytes=s.max_response_bytes,
            secret_files=files,
            reload_seconds=s.participant_reload_seconds,
        )

    @property
    def open_channels(self) -> int:
        return len(self._channels)

    async def call(
        self, endpoint: Endpoint, payload: bytes, *, info: CallInfo, timeout: float
    ) -> CallResult:
        try:
            entry = self._cached(endpoint.target)  # the hot path: no timer, no await
            if entry is None:
                async with asyncio.timeout(timeout):  # a slow DNS answer is the call's time too
                    entry = await self._channel(endpoint.target)
        except TargetRefused as err:
            _log.warning("participant target refused: %s", err, extra={"target": endpoint.target})
            return CallResult(
                grpc.StatusCode.PERMISSION_DENIED, b"", f"target refused: {err}", permanent=True
            )
        except asyncio.CancelledError:
            raise
        except Exception as err:  # resolution failed, a malformed target
            _log.info(
                "participant unreachable: %s: %s",
                type(err).__name__,
                err,
                extra={"target": endpoint.target},
            )
            return CallResult(grpc.StatusCode.UNAVAILABLE, b"", _UNREACHABLE)
        method = entry.methods.get(endpoint.method)
        if method is None:
            method = entry.channel.unary_unary(
                endpoint.method, request_serializer=_identity, response_deserializer=_identity
            )
            entry.methods[endpoint.method] = method
        metadata = tuple(info.metadata(signing_key=self._key, payload=payload))
        entry.in_flight += 1
        try:
            response = await method(payload, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as err:
            return self._failed(endpoint, entry, err)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a closed channel: retry like UNAVAILABLE
            _log.info("participant call failed: %r", err, extra={"target": endpoint.target})
            entry.stale = True
            return CallResult(grpc.StatusCode.UNAVAILABLE, b"", _UNREACHABLE)
        finally:
            entry.in_flight -= 1
            entry.last_used = self._clock()
        return CallResult(grpc.StatusCode.OK, bytes(response))

    def _failed(self, endpoint: Endpoint, entry: _Channel, err: grpc.aio.AioRpcError) -> CallResult:
        code = err.code()
        details = err.details() or ""
        if code is grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in details:
            return CallResult(
                code,
                details=f"the response is larger than the TM's limit of "
                f"{self._max_response_bytes} bytes (STEPPING_MAX_RESPONSE_BYTES): {details}",
                permanent=True,
            )
        generic = _GENERIC.get(code)
        # UNAVAILABLE on a connected channel is the participant's own answer: keep its
        # text. On a channel that is not READY, gRPC wrote it about the connection.
        answered = (
            code is grpc.StatusCode.UNAVAILABLE
            and entry.channel.get_state() is grpc.ChannelConnectivity.READY
        )
        if generic is None or answered:
            return CallResult(code, b"", err.details() or "", _retry_after(err))
        _log.info(
            "participant call failed: %s",
            err.debug_error_string(),
            extra={"target": endpoint.target, "method": endpoint.method, "code": code.name},
        )
        if code is grpc.StatusCode.UNAVAILABLE:
            entry.stale = True  # the addresses may have moved: resolve again first
        return CallResult(code, b"", generic, _retry_after(err))

    # -- channels ----------------------------------------------------------------
    def _cached(self, target: str) -> _Channel | None:
        """The target's channel when it needs no (re-)check now."""
        entry = self._channels.get(target)
        if entry is None or self._due(entry, self._clock()):
            return None
        self._channels.move_to_end(target)
        return entry

    async def _channel(self, target: str) -> _Channel:
        cached = self._cached(target)
        if cached is not None:
            return cached
        now = self._clock()
        lock = self._opening.setdefault(target, asyncio.Lock())
        try:
            async with lock:  # one resolution per target at a time
                entry = self._channels.get(target)
                if entry is None or self._due(entry, now):
                    entry = await self._open(target, entry, now)
        finally:
            if not lock.locked():
                self._opening.pop(target, None)
        self._channels.move_to_end(target)
        self._start_sweeper()
        return entry

    def _due(self, entry: _Channel, now: float) -> bool:
        if entry.generation != self._generation:
            return True  # dialled with credentials that were replaced since
        if not entry.pinned:
            return False  # an IP literal: checked when opened, nothing to re-resolve
        return entry.stale or now - entry.checked_at >= self._resolve_every

    async def _open(self, target: str, old: _Channel | None, now: float) -> _Channel:
        addresses = self._targets.check_target(target)
        names = [a for a in addresses if a.ip is None]
        if old is not None and old.generation != self._generation:
            old = None  # new credentials: a new channel (the old one finishes its calls)
        gen = self._generation
        if not names:
            if old is not None:
                return old
            channel = _Channel(self._dial(target, None), now, now, generation=gen)
            return self._store(target, channel)
        resolved = await self._resolve(names[0])
        dial, pinned = _pinned_target(resolved, names[0].port)
        if old is not None and old.pinned == pinned:
            old.checked_at, old.stale = now, False
            return old
        authority = f"{names[0].host}:{names[0].port}"
        channel = _Channel(self._dial(dial, authority), now, now, pinned, generation=gen)
        return self._store(target, channel)

    async def _resolve(self, name: HostPort) -> list[IPAddress]:
        resolved = await self._resolver(name.host, name.port)
        if not resolved:
            raise OSError(f"{name.host} has no addresses")
        for ip in resolved:
            self._targets.check_address(ip, name.port)
        return resolved

    def _dial(self, target: str, authority: str | None) -> grpc.aio.Channel:
        # The STEPPING_MAX_RESPONSE_BYTES limit: the channel refuses larger responses.
        options: list[tuple[str, Any]] = [
            ("grpc.max_receive_message_length", self._max_response_bytes)
        ]
        if authority is not None:
            # The name, not the pinned address, is what the participant and its
            # certificate know.
            options.append(("grpc.default_authority", authority))
        if self._credentials is None:
            return grpc.aio.insecure_channel(target, options=options)
        return grpc.aio.secure_channel(target, self._credentials, options=options)

    def _store(self, target: str, entry: _Channel) -> _Channel:
        previous = self._channels.get(target)
        if previous is not None and previous is not entry:
            self._retire(previous)  # re-resolved elsewhere: its calls may finish
        self._channels[target] = entry
        self._channels.move_to_end(target)
        # Over the bound: close the least recently used channels no call is using.
        excess = len(self._channels) - self._max
        for key, other in list(self._channels.items()):
            if excess <= 0:
                break
            if other is not entry and other.in_flight == 0:
                del self._channels[key]
                self._retire(other)
                excess -= 1
        return entry

    def _retire(self, entry: _Channel) -> None:
        task = asyncio.create_task(entry.channel.close(_RETIRE_GRACE))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def close_idle(self) -> int:
        """Close the channels unused for ``idle_seconds``; how many were closed."""
        now = self._clock()
        idle = [
            key
            for key, e in self._channels.items()
            if e.in_flight == 0 and now - e.last_used >= self._idle
        ]
        for key in idle:
            self._retire(self._channels.pop(key))
        return len(idle)

    def _start_sweeper(self) -> None:
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = asyncio.create_task(self._sweep(), name="stepping-channel-sweeper")
        if self._files is not None and self._reloader is None:
            self._reloader = asyncio.create_task(self._reload(), name="stepping-secret-files")

    async def _reload(self) -> None:
        """Look at the secret files every ``reload_seconds``; take new ones at once."""
        assert self._files is not None
        while True:
            await asyncio.sleep(self._reload_every)
            self.reload_now()

    def reload_now(self) -> bool:
        """Re-read the secret files if they changed; True when new ones are in use."""
        secrets = None if self._files is None else self._files.changed()
        if secrets is None:
            return False
        self._credentials, self._key = secrets
        self._generation += 1
        _log.info("participant TLS or signing-key files changed: new calls use them")
        return True

    async def _sweep(self) -> None:
        while self._channels:
            await asyncio.sleep(min(max(self._idle / 2, 1.0), 60.0))
            self.close_idle()

    async def close(self) -> None:
        for task in (self._sweeper, self._reloader):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        channels, self._channels = list(self._channels.values()), OrderedDict()
        await asyncio.gather(*(c.channel.close(None) for c in channels), return_exceptions=True)
        await asyncio.gather(*self._closing, return_exceptions=True)


def read_signing_key(path: str) -> bytes | None:
    """The key in ``path`` (its bytes, a trailing newline stripped); None without a path."""
    if not path:
        return None
    try:
        return signing_key(Path(path).read_bytes())
    except (OSError, ValueError) as err:
        raise SettingsError(f"STEPPING_PARTICIPANT_SIGNING_KEY_FILE: {err}") from None


def channel_credentials(s: Settings) -> grpc.ChannelCredentials | None:
    """TLS credentials for participant channels, or None for plaintext."""
    files = (s.participant_tls_ca_file, s.participant_tls_cert_file, s.participant_tls_key_file)
    if not s.participant_tls:
        if any(files):
            raise SettingsError(
                "STEPPING_PARTICIPANT_TLS_*_FILE is set but STEPPING_PARTICIPANT_TLS is not true"
            )
        return None
    if bool(s.participant_tls_cert_file) != bool(s.participant_tls_key_file):
        raise SettingsError(
            "STEPPING_PARTICIPANT_TLS_CERT_FILE and _KEY_FILE go together (the TM's client cert)"
        )

    def read(path: str, name: str) -> bytes | None:
        if not path:
            return None
        try:
            return Path(path).read_bytes()
        except OSError as err:
            raise SettingsError(f"STEPPING_PARTICIPANT_TLS_{name}_FILE: {err}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read(s.participant_tls_ca_file, "CA"),
        private_key=read(s.participant_tls_key_file, "KEY"),
        certificate_chain=read(s.participant_tls_cert_file, "CERT"),
    )
