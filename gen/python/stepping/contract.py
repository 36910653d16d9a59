"""The wire contract between the TM and its participants, written down once.

The TM (``tm_service``) builds step calls and error statuses from these names; the
participant SDK (``participant_sdk``) parses the calls and maps the statuses back with
the same names, so the two sides cannot drift apart. What the protos declare (service
and method names, the error domain, the ``ErrorReason`` names) is read from their
descriptors; the rest is what a proto cannot express: the call metadata of the step
contract and the span attribute names both sides report.

Hand-written, unlike its neighbours: ``scripts/gen-proto`` regenerates the stubs and
leaves this module alone. It needs nothing beyond protobuf and the stubs, so it can
ship with them to participants that do not install the TM.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field

from stepping.participant.v1 import participant_pb2
from stepping.tm.v1 import tm_pb2

__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_GID",
    "ATTR_OP",
    "ATTR_RPC_GRPC_STATUS_CODE",
    "ATTR_RPC_METHOD",
    "ATTR_RPC_SERVICE",
    "ATTR_RPC_SYSTEM",
    "ATTR_SERVER_ADDRESS",
    "ATTR_SERVER_PORT",
    "ATTR_STEP_INDEX",
    "ATTR_STEP_NAME",
    "ERROR_DOMAIN",
    "KEY_ATTEMPT",
    "KEY_GID",
    "KEY_OP",
    "KEY_PREFIX",
    "KEY_SIGNATURE",
    "KEY_STEP_INDEX",
    "KEY_STEP_NAME",
    "OP_ACTION",
    "OP_COMPENSATE",
    "OP_QUERY_PREPARED",
    "PARTICIPANT_SERVICE",
    "QUERY_PREPARED_METHOD",
    "REASON_GID_CONFLICT",
    "REASON_INVALID_ARGUMENT",
    "REASON_INVALID_STATE",
    "REASON_NOT_RESUMABLE",
    "REASON_PERMISSION_DENIED",
    "REASON_SHUTTING_DOWN",
    "REASON_STORE_UNAVAILABLE",
    "REASON_TRANSACTION_NOT_FOUND",
    "REASON_UNAUTHENTICATED",
    "REASON_UNSPECIFIED",
    "SIGNATURE_VERSION",
    "TM_SERVICE",
    "TRACE_KEYS",
    "TRANSPORT_KEYS",
    "VERSION",
    "CallInfo",
    "is_reserved_header",
    "sign_call",
    "signing_input",
    "signing_key",
    "split_method",
    "split_target",
    "verify_signature",
]

#: The version of stepping-tm: the TM, the SDK and these stubs ship together
#: (pyproject reads it from here; telemetry reports it as the scope's version).
VERSION = "0.1.0"

# -- services, methods, errors: from the proto descriptors ---------------------------
_participant = participant_pb2.DESCRIPTOR.services_by_name["ParticipantService"]
_query_prepared = _participant.methods_by_name["QueryPrepared"]

#: ``stepping.tm.v1.TransactionManagerService``
TM_SERVICE: str = tm_pb2.DESCRIPTOR.services_by_name["TransactionManagerService"].full_name
#: ``stepping.participant.v1.ParticipantService``
PARTICIPANT_SERVICE: str = _participant.full_name
#: The gRPC path of the standard back-check handler (the TM's default for QueryPrepared).
QUERY_PREPARED_METHOD = f"/{PARTICIPANT_SERVICE}/{_query_prepared.name}"

#: ``google.rpc.ErrorInfo.domain`` of the TM's errors: its proto package.
ERROR_DOMAIN: str = tm_pb2.DESCRIPTOR.package

_reason = tm_pb2.ErrorReason.Name
#: ``google.rpc.ErrorInfo.reason`` values: the ``ErrorReason`` enum's names.
REASON_UNSPECIFIED = _reason(tm_pb2.ERROR_REASON_UNSPECIFIED)
REASON_TRANSACTION_NOT_FOUND = _reason(tm_pb2.ERROR_REASON_TRANSACTION_NOT_FOUND)
REASON_GID_CONFLICT = _reason(tm_pb2.ERROR_REASON_GID_CONFLICT)
REASON_INVALID_STATE = _reason(tm_pb2.ERROR_REASON_INVALID_STATE)
REASON_INVALID_ARGUMENT = _reason(tm_pb2.ERROR_REASON_INVALID_ARGUMENT)
REASON_SHUTTING_DOWN = _reason(tm_pb2.ERROR_REASON_SHUTTING_DOWN)
REASON_STORE_UNAVAILABLE = _reason(tm_pb2.ERROR_REASON_STORE_UNAVAILABLE)
REASON_UNAUTHENTICATED = _reason(tm_pb2.ERROR_REASON_UNAUTHENTICATED)
REASON_PERMISSION_DENIED = _reason(tm_pb2.ERROR_REASON_PERMISSION_DENIED)
REASON_NOT_RESUMABLE = _reason(tm_pb2.ERROR_REASON_NOT_RESUMABLE)

# -- the step contract: metadata of every call the TM makes to a participant ---------
KEY_PREFIX = "stepping-"
KEY_GID = "stepping-gid"
KEY_STEP_INDEX = "stepping-step-index"
KEY_STEP_NAME = "stepping-step-name"
KEY_OP = "stepping-op"
KEY_ATTEMPT = "stepping-attempt"
#: ``v1=<hex HMAC-SHA256>`` of :func:`signing_input`, when the TM has a signing key.
KEY_SIGNATURE = "stepping-signature"
#: W3C trace context: the only part of a job's stored trace context that is sent.
TRACE_KEYS = frozenset({"traceparent", "tracestate"})
#: Set by gRPC itself: never a step header, and skipped when a participant reads them.
TRANSPORT_KEYS = frozenset({"user-agent", ":authority", "content-type", "te"})
_RESERVED_PREFIXES = ("grpc-", KEY_PREFIX, ":")

#: ``stepping-op`` values.
OP_ACTION = "action"
OP_COMPENSATE = "compensate"
OP_QUERY_PREPARED = "query_prepared"


def is_reserved_header(key: str) -> bool:
    """Whether a step header named ``key`` would clash with the contract or with gRPC."""
    return key.startswith(_RESERVED_PREFIXES) or key in TRACE_KEYS or key in TRANSPORT_KEYS


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    """What the TM tells a participant about one call, besides the payload.

    A step call has a ``step_index``; a back-check (``op`` ``query_prepared``) has
    none and sends no step keys.
    """

    gid: str
    op: str  # OP_ACTION | OP_COMPENSATE | OP_QUERY_PREPARED
    step_index: int | None = None
    step_name: str = ""
    attempt: int = 1
    # The job's trace context (telemetry puts the attempt's span in its place).
    trace_context: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)

    def metadata(
        self, *, signing_key: bytes | None = None, payload: bytes = b""
    ) -> list[tuple[str, str]]:
        """The call's gRPC metadata, in the contract's order (trace context, then headers).

        With ``signing_key``, ``stepping-signature`` (over ``payload``, the request bytes
        as sent) follows the step keys.
        """
        if self.step_index is None:
            md = [(KEY_GID, self.gid), (KEY_OP, self.op)]
        else:
            md = [
                (KEY_GID, self.gid),
                (KEY_STEP_INDEX, str(self.step_index)),
                (KEY_STEP_NAME, self.step_name),
                (KEY_OP, self.op),
                (KEY_ATTEMPT, str(self.attempt)),
            ]
        if signing_key is not None:
            md.append((KEY_SIGNATURE, self.signature(signing_key, payload)))
        md.extend((k, v) for k, v in self.trace_context.items() if k in TRACE_KEYS)
        md.extend(self.headers.items())
        return md

    def signature(self, key: bytes, payload: bytes) -> str:
        """The ``stepping-signature`` value of this call with ``payload``."""
        # A back-check carries no step index and no attempt: both are signed empty.
        attempt = None if self.step_index is None else self.attempt
        return sign_call(
            key,
            gid=self.gid,
            step_index=self.step_index,
            op=self.op,
            attempt=attempt,
            payload=payload,
        )


# -- signed calls ----------------------------------------------------------------------
#: The layout version; the signature is sent as ``<version>=<hex>``.
SIGNATURE_VERSION = "v1"


def signing_input(
    *, gid: str, step_index: int | None, op: str, attempt: int | None, payload: bytes
) -> bytes:
    """The bytes the ``stepping-signature`` HMAC is computed over (layout v1).

    Six lines joined by ``\\n`` (0x0A), UTF-8, no trailing newline::

        stepping-signature-v1
        <gid>
        <step index, decimal; empty for QueryPrepared>
        <op: action | compensate | query_prepared>
        <attempt, decimal; empty for QueryPrepared>
        <lower-case hex SHA-256 of the request message bytes>

    Newlines cannot occur in any field (gids are ``[A-Za-z0-9_.:-]``, metadata values
    cannot hold them), so the joined string names one call only. The first line makes
    the version part of what is signed.
    """
    fields = (
        f"stepping-signature-{SIGNATURE_VERSION}",
        gid,
        "" if step_index is None else str(step_index),
        op,
        "" if attempt is None else str(attempt),
        hashlib.sha256(payload).hexdigest(),
    )
    return "\n".join(fields).encode()


def signing_key(key: bytes | str) -> bytes:
    """A signing key as both sides use it: UTF-8 if text, trailing newlines stripped.

    So the bytes of a key file and the same key pasted as a string sign alike.
    """
    raw = key.encode() if isinstance(key, str) else bytes(key)
    raw = raw.rstrip(b"\r\n")
    if not raw:
        raise ValueError("the signing key is empty")
    return raw


def sign_call(
    key: bytes, *, gid: str, step_index: int | None, op: str, attempt: int | None, payload: bytes
) -> str:
    """``v1=<hex HMAC-SHA256(key, signing_input(...))>``: a ``stepping-signature`` value."""
    message = signing_input(gid=gid, step_index=step_index, op=op, attempt=attempt, payload=payload)
    return f"{SIGNATURE_VERSION}={hmac.new(key, message, hashlib.sha256).hexdigest()}"


def verify_signature(
    key: bytes,
    value: str | None,
    *,
    gid: str,
    step_index: int | None,
    op: str,
    attempt: int | None,
    payload: bytes,
) -> bool:
    """Whether ``value`` (a received ``stepping-signature``) signs this call with ``key``.

    Compared in constant time; a missing value or another version is simply False.
    """
    if not value:
        return False
    expected = sign_call(
        key, gid=gid, step_index=step_index, op=op, attempt=attempt, payload=payload
    )
    return hmac.compare_digest(expected.encode(), value.encode("utf-8", "replace"))


# -- span attributes both sides report -----------------------------------------------
ATTR_GID = "stepping.gid"
ATTR_STEP_INDEX = "stepping.step.index"
ATTR_STEP_NAME = "stepping.step.name"
ATTR_OP = "stepping.op"  # a stepping-op value
ATTR_ATTEMPT = "stepping.attempt"
# OpenTelemetry semantic conventions (RPC, gRPC).
ATTR_RPC_SYSTEM = "rpc.system"
ATTR_RPC_SERVICE = "rpc.service"
ATTR_RPC_METHOD = "rpc.method"
ATTR_RPC_GRPC_STATUS_CODE = "rpc.grpc.status_code"
ATTR_SERVER_ADDRESS = "server.address"
ATTR_SERVER_PORT = "server.port"


def split_method(method: str) -> tuple[str, str]:
    """``"/pkg.Service/Method"`` → ``("pkg.Service", "Method")``."""
    service, _, name = method.lstrip("/").rpartition("/")
    return service, name


def split_target(target: str) -> tuple[str, int | None]:
    """``"host:port"`` (or ``"[::1]:port"``, ``"dns:///host:port"``) → host and port."""
    address = target.rpartition("///")[2]
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    return host.strip("[]"), int(port)
