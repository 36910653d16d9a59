"""Proto ↔ domain: validates every request field (naming it on error) and applies defaults."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from stepping.contract import (
    OP_ACTION,
    OP_COMPENSATE,
    OP_QUERY_PREPARED,
    QUERY_PREPARED_METHOD,
    is_reserved_header,
)
from stepping.tm.v1 import tm_pb2

from tm_service.api._limits import abort_reason, check_job_limits, check_job_text
from tm_service.api._tags import tags as check_tags
from tm_service.config import Settings
from tm_service.domain import (
    Attempt,
    Endpoint,
    Mode,
    NewTransaction,
    RetryPolicy,
    StepSpec,
    Transaction,
    TxOptions,
    TxStatus,
)
from tm_service.errors import InvalidArgument
from tm_service.targets import TargetPolicy, TargetRefused

__all__ = ["Converter", "transaction_to_proto"]

_GID = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_METHOD = re.compile(r"^/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-]+):(\d{1,5})$")
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:")
_HEADER_KEY = re.compile(r"^[a-z0-9][a-z0-9_.\-]*$")
_MAX_NAME = 128
_MAX_DURATION = 24 * 3600.0


def _seconds(d: Duration, field: str, *, positive: bool = False) -> float:
    if d.seconds < 0 or d.nanos < 0:
        raise InvalidArgument(field, "must not be negative")
    value = d.seconds + d.nanos / 1e9
    if positive and value <= 0:
        raise InvalidArgument(field, "must be positive")
    if value > _MAX_DURATION:
        raise InvalidArgument(field, "must be at most 24h")
    return value


def validate_target(target: str, field: str) -> None:
    if not target:
        raise InvalidArgument(field, "is required (host:port)")
    if target.startswith(_SCHEMES):
        return
    m = _HOST_PORT.match(target)
    if m is None or not 0 < int(m.group(2)) < 65536:
        raise InvalidArgument(field, f"{target!r} is not a gRPC target of the form host:port")


def check_allowed_target(targets: TargetPolicy, target: str, field: str) -> None:
    """The target policy (allow-list, always-denied addresses) on a target's text."""
    try:
        targets.check_target(target)
    except TargetRefused as err:
        raise InvalidArgument(field, f"is not allowed: {err}") from None


def validate_method(method: str, field: str) -> None:
    if not method:
        raise InvalidArgument(field, "is required (/package.Service/Method)")
    if not _METHOD.match(method):
        raise InvalidArgument(
            field, f"{method!r} is not a full method name /package.Service/Method"
        )


class Converter:
    """Turns requests into validated domain objects using the TM's defaults and limits."""

    def __init__(self, settings: Settings, *, targets: TargetPolicy | None = None) -> None:
        self._s = settings
        self._targets = targets or TargetPolicy.from_settings(
            settings.allowed_targets, settings.listen
        )

    def _target(self, target: str, field: str) -> None:
        validate_target(target, field)
        check_allowed_target(self._targets, target, field)

    def gid(self, gid: str, field: str = "gid") -> str:
        if not gid:
            raise InvalidArgument(field, "is required")
        if len(gid) > self._s.max_gid_length:
            raise InvalidArgument(field, f"is longer than {self._s.max_gid_length} characters")
        if not _GID.match(gid):
            raise InvalidArgument(field, "may only contain letters, digits and _ . : -")
        return gid

    def new_transaction(
        self,
        gid: str,
        steps: Sequence[tm_pb2.Step],
        options: tm_pb2.TransactionOptions,
        *,
        query_prepared: tm_pb2.Endpoint | None,
        database: str,
        trace_context: dict[str, str],
        tags: Mapping[str, str] | None = None,
    ) -> NewTransaction:
        gid = self.gid(gid)
        job_tags = check_tags(tags or {})
        opts = self._options(options)
        policy = self._retry(options.retry_policy, "options.retry_policy", self._default_retry())
        if not steps:
            raise InvalidArgument("steps", "at least one step is required")
        if len(steps) > self._s.max_steps:
            raise InvalidArgument("steps", f"at most {self._s.max_steps} steps are allowed")
        check_job_limits(steps, self._s)
        check_job_text(steps, query_prepared, database)
        specs = tuple(self._step(i, s, opts, policy) for i, s in enumerate(steps))
        qp: Endpoint | None = None
        if query_prepared is not None:
            self._target(query_prepared.target, "query_prepared.target")
            method = query_prepared.method or QUERY_PREPARED_METHOD
            validate_method(method, "query_prepared.method")
            qp = Endpoint(query_prepared.target, method)
        if len(database) > _MAX_NAME:
            raise InvalidArgument("database", f"is longer than {_MAX_NAME} characters")
        # Tags are part of it (a repeat with other tags conflicts); without tags the
        # bytes are those of a request from before tags existed.
        fingerprint = hashlib.sha256(
            tm_pb2.SubmitRequest(steps=steps, options=options, tags=job_tags).SerializeToString(
                deterministic=True
            )
        ).digest()
        return NewTransaction(
            gid=gid,
            steps=specs,
            options=opts,
            query_prepared=qp,
            database=database,
            fingerprint=fingerprint,
            trace_context=trace_context,
            tags=job_tags,
        )

    def _default_retry(self) -> RetryPolicy:
        s = self._s
        return RetryPolicy(
            s.default_initial_interval_seconds,
            s.default_backoff_coefficient,
            s.default_maximum_interval_seconds,
            s.default_maximum_attempts,
        )

    def _options(self, o: tm_pb2.TransactionOptions) -> TxOptions:
        if o.mode not in (tm_pb2.MODE_UNSPECIFIED, tm_pb2.MODE_MESSAGE, tm_pb2.MODE_SAGA):
            raise InvalidArgument("options.mode", f"unknown mode {o.mode}")
        s = self._s
        return TxOptions(
            mode=Mode.SAGA if o.mode == tm_pb2.MODE_SAGA else Mode.MESSAGE,
            step_timeout=_seconds(o.step_timeout, "options.step_timeout", positive=True)
            if o.HasField("step_timeout")
            else s.default_step_timeout_seconds,
            check_prepared_after=_seconds(o.check_prepared_after, "options.check_prepared_after")
            if o.HasField("check_prepared_after")
            else s.default_check_prepared_after_seconds,
            deadline=_seconds(o.deadline, "options.deadline", positive=True)
            if o.HasField("deadline")
            else None,
            concurrent=o.concurrent,
        )

    def _retry(self, p: tm_pb2.RetryPolicy, field: str, base: RetryPolicy) -> RetryPolicy:
        initial = base.initial_interval
        if p.HasField("initial_interval"):
            initial = _seconds(p.initial_interval, f"{field}.initial_interval")
            if initial < self._s.min_retry_interval_seconds:
                raise InvalidArgument(
                    f"{field}.initial_interval",
                    f"must be at least {self._s.min_retry_interval_seconds * 1000:g}ms",
                )
        backoff = base.backoff_coefficient
        if p.backoff_coefficient:
            if not 1.0 <= p.backoff_coefficient <= 100.0:
                raise InvalidArgument(f"{field}.backoff_coefficient", "must be between 1 and 100")
            backoff = p.backoff_coefficient
        maximum = base.maximum_interval
        if p.HasField("maximum_interval"):
            maximum = _seconds(p.maximum_interval, f"{field}.maximum_interval", positive=True)
        if maximum < initial:
            raise InvalidArgument(f"{field}.maximum_interval", "must not be below initial_interval")
        if p.maximum_attempts < 0:
            raise InvalidArgument(f"{field}.maximum_attempts", "must not be negative")
        attempts = p.maximum_attempts or base.maximum_attempts
        codes = base.non_retryable_codes
        if p.non_retryable_codes:
            for n, name in enumerate(p.non_retryable_codes):
                if name not in _CODE_NAMES:
                    raise InvalidArgument(
                        f"{field}.non_retryable_codes[{n}]",
                        f"unknown code {name[:40]!r}; valid: {', '.join(sorted(_CODE_NAMES))}",
                    )
            codes = tuple(dict.fromkeys(p.non_retryable_codes))
        return RetryPolicy(initial, backoff, maximum, attempts, codes)

    def _step(self, i: int, s: tm_pb2.Step, opts: TxOptions, policy: RetryPolicy) -> StepSpec:
        f = f"steps[{i}]"
        if len(s.name) > _MAX_NAME:
            raise InvalidArgument(f"{f}.name", f"is longer than {_MAX_NAME} characters")
        if not s.HasField("action"):
            raise InvalidArgument(f"{f}.action", "is required")
        self._target(s.action.target, f"{f}.action.target")
        validate_method(s.action.method, f"{f}.action.method")
        compensation: Endpoint | None = None
        if s.HasField("compensation") and (s.compensation.target or s.compensation.method):
            if opts.mode is not Mode.SAGA:
                raise InvalidArgument(f"{f}.compensation", "is only used in MODE_SAGA")
            self._target(s.compensation.target, f"{f}.compensation.target")
            validate_method(s.compensation.method, f"{f}.compensation.method")
            compensation = Endpoint(s.compensation.target, s.compensation.method)
        if len(s.payload) > self._s.max_payload_bytes:
            raise InvalidArgument(
                f"{f}.payload",
                f"is {len(s.payload)} bytes; the limit is {self._s.max_payload_bytes}",
            )
        for key, value in s.headers.items():
            hf = f"{f}.headers[{key!r}]"
            if not _HEADER_KEY.match(key) or key.endswith("-bin"):
                raise InvalidArgument(hf, "keys must be lower-case metadata names (not -bin)")
            if is_reserved_header(key):
                raise InvalidArgument(hf, "is reserved")
            if not value.isascii() or not value.isprintable():
                raise InvalidArgument(hf, "values must be printable ASCII")
        timeout = opts.step_timeout
        if s.HasField("timeout"):
            timeout = _seconds(s.timeout, f"{f}.timeout", positive=True)
        return StepSpec(
            index=i,
            name=s.name or f"step-{i}",
            action=Endpoint(s.action.target, s.action.method),
            compensation=compensation,
            payload=s.payload,
            headers=dict(s.headers),
            retry_policy=self._retry(s.retry_policy, f"{f}.retry_policy", policy),
            timeout=timeout,
        )

    def reason(self, reason: str) -> str:
        """An Abort reason as stored (control characters refused, cut to the limit)."""
        return abort_reason(reason, self._s)

    def wait_timeout(self, d: Duration | None, time_remaining: float | None) -> float:
        if d is not None:
            return _seconds(d, "wait_timeout")
        default = self._s.default_wait_timeout_seconds
        if time_remaining is not None:
            # Answer a little before the client's own deadline so it gets the state.
            return max(min(default, time_remaining - 0.2), 0.0)
        return default

    def statuses(self, values: Sequence[int]) -> list[TxStatus]:
        out = []
        for i, v in enumerate(values):
            try:
                out.append(TxStatus(v))
            except ValueError:
                raise InvalidArgument(f"statuses[{i}]", f"unknown status {v}") from None
        return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(value: datetime) -> Timestamp:
    # Timestamp.FromDatetime does the same in pure Python, several times slower.
    delta = value - _EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


# The names RetryPolicy.non_retryable_codes may list: every gRPC code but OK.
_CODE_NAMES = frozenset(c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK)


# Header names whose values are credentials: never returned (nor logged), only named.
_SECRET_HEADER = re.compile(r"auth|token|key|secret|passw|cookie|session|signature", re.I)
REDACTED = "<redacted>"


def _shown(name: str, value: str) -> str:
    return REDACTED if _SECRET_HEADER.search(name) else value


def _dur(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(round(seconds * 1e9))
    return d


def _endpoint(e: Endpoint) -> tm_pb2.Endpoint:
    return tm_pb2.Endpoint(target=e.target, method=e.method)


def _retry_policy(p: RetryPolicy) -> tm_pb2.RetryPolicy:
    return tm_pb2.RetryPolicy(
        initial_interval=_dur(p.initial_interval),
        backoff_coefficient=p.backoff_coefficient,
        maximum_interval=_dur(p.maximum_interval),
        maximum_attempts=p.maximum_attempts,
        non_retryable_codes=list(p.non_retryable_codes),
    )


def trace_id_of(trace_context: dict[str, str]) -> str:
    """The W3C trace id of a stored ``traceparent`` ("" when there is none or it is bad)."""
    parts = trace_context.get("traceparent", "").split("-")
    if len(parts) >= 4 and re.fullmatch(r"[0-9a-f]{32}", parts[1]):
        return parts[1]
    return ""


_ATTEMPT_OPS = {
    OP_ACTION: tm_pb2.ATTEMPT_OP_ACTION,
    OP_COMPENSATE: tm_pb2.ATTEMPT_OP_COMPENSATION,
    OP_QUERY_PREPARED: tm_pb2.ATTEMPT_OP_QUERY_PREPARED,
}


def _attempt(a: Attempt) -> tm_pb2.Attempt:
    return tm_pb2.Attempt(
        number=a.number,
        op=_ATTEMPT_OPS.get(a.op, tm_pb2.ATTEMPT_OP_UNSPECIFIED),
        start_time=_ts(a.start),
        duration=_dur(a.duration),
        code=a.code,
        error=a.error,
    )


def _add_details(tx: Transaction, out: tm_pb2.Transaction) -> None:
    """GetTransaction's extra fields: what each step is, the options, the trace."""
    if tx.options is not None:
        o = tx.options
        out.options.CopyFrom(
            tm_pb2.TransactionOptions(
                mode=int(o.mode),  # type: ignore[arg-type]
                step_timeout=_dur(o.step_timeout),
                check_prepared_after=_dur(o.check_prepared_after),
                concurrent=o.concurrent,
            )
        )
        if o.deadline is not None:
            out.options.deadline.CopyFrom(_dur(o.deadline))
    if tx.deadline_at is not None:
        out.deadline_time.CopyFrom(_ts(tx.deadline_at))
    out.trace_id = trace_id_of(tx.trace_context)
    if tx.query_prepared is not None:
        out.query_prepared.CopyFrom(_endpoint(tx.query_prepared))
    out.needs_attention = tx.needs_attention
    out.query_prepared_history.extend(_attempt(a) for a in tx.query_prepared_history)
    for st, state in zip(out.steps, tx.steps, strict=True):
        st.history.extend(_attempt(a) for a in state.history)
    for st, spec in zip(out.steps, tx.specs, strict=False):
        st.payload = spec.payload
        st.headers.update({k: _shown(k, v) for k, v in spec.headers.items()})
        st.action.CopyFrom(_endpoint(spec.action))
        if spec.compensation is not None:
            st.compensation.CopyFrom(_endpoint(spec.compensation))
        st.retry_policy.CopyFrom(_retry_policy(spec.retry_policy))
        st.timeout.CopyFrom(_dur(spec.timeout))


def transaction_to_proto(tx: Transaction, *, detail: bool = False) -> tm_pb2.Transaction:
    """A job for the API; ``detail`` (GetTransaction) adds the steps' specs, options, trace.

    Lists stay light: no ``detail``, and their reads carry no results or payloads.
    """
    out = tm_pb2.Transaction(
        gid=tx.gid,
        mode=int(tx.mode),  # type: ignore[arg-type]
        status=int(tx.status),  # type: ignore[arg-type]
        error=tx.error,
        create_time=_ts(tx.create_time),
        update_time=_ts(tx.update_time),
        owner=tx.owner or "",
        tags=tx.tags,
        cancel_reason=tx.cancel_reason or "",
    )
    if tx.finish_time is not None:
        out.finish_time.CopyFrom(_ts(tx.finish_time))
    for s in tx.steps:
        st = out.steps.add(
            index=s.index,
            name=s.name,
            status=int(s.status),
            attempts=s.attempts,
            last_error=s.last_error,
            result=s.result or b"",
        )
        if s.next_attempt_time is not None:
            st.next_attempt_time.CopyFrom(_ts(s.next_attempt_time))
    if detail:
        _add_details(tx, out)
    return out
