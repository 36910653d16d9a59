"""The TM's one settings object: defaults, ``STEPPING_*`` environment variables, CLI flags.

Nothing else in the TM reads the environment. Each field ``foo_bar`` is set by the
environment variable ``STEPPING_FOO_BAR`` and the ``serve`` flag ``--foo-bar``; flags win.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

__all__ = ["ENV_PREFIX", "Settings", "SettingsError", "check_database_url", "otel_environment"]

ENV_PREFIX = "STEPPING_"


class SettingsError(ValueError):
    """A setting has a value of the wrong form."""


def _default_replica_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Settings:
    """Every knob of the TM, with its default."""

    # Network
    listen: str = field(
        default="127.0.0.1:36790",
        metadata={"help": "gRPC listen address (set 0.0.0.0:36790 to serve other hosts)"},
    )
    advertise_address: str = field(
        default="",
        metadata={
            "help": "the address others reach this TM at, sent to DTM participants as "
            "dtm-dtm (default: the listen address)"
        },
    )
    workers: int = field(
        default=1, metadata={"help": "TM processes sharing the listen port (SO_REUSEPORT)"}
    )
    # Security (README "Security")
    tls_cert_file: str = field(
        default="",
        metadata={"help": "serve TLS with this PEM certificate chain (re-read when changed)"},
    )
    tls_key_file: str = field(default="", metadata={"help": "the PEM private key of tls_cert_file"})
    tls_client_ca_file: str = field(
        default="", metadata={"help": "require client certificates signed by this PEM CA (mTLS)"}
    )
    health_listen: str = field(
        default="", metadata={"help": "also serve only grpc.health.v1, in plaintext, here"}
    )
    auth_file: str = field(
        default="", metadata={"help": "TOML file of principals: tokens, TLS identities, roles"}
    )
    reflection: bool = field(default=False, metadata={"help": "serve gRPC server reflection"})
    # Storage
    database_url: str = field(
        default="",
        metadata={"help": "Postgres URL (postgresql://...); empty starts an embedded Postgres"},
    )
    embedded_pg_dir: str = field(
        default="/var/tmp/stepping-tm/pgdata",
        metadata={"help": "data directory of the embedded Postgres (keep it out of $HOME)"},
    )
    embedded_pg_port: int = field(default=0, metadata={"help": "embedded Postgres port; 0 = free"})
    migrate_on_start: bool = field(default=True, metadata={"help": "apply migrations on start"})
    db_pool_size: int = field(default=10, metadata={"help": "database connections per process"})
    db_check_interval_seconds: float = field(
        default=1.0,
        metadata={"help": "how often the database is pinged; health is NOT_SERVING while it fails"},
    )
    db_wait_seconds: float = field(
        default=300.0,
        metadata={"help": "how long db upgrade waits for the database (serve waits until stopped)"},
    )
    # Processing
    replica_id: str = field(
        default_factory=_default_replica_id, metadata={"help": "this replica's lease owner name"}
    )
    lease_seconds: float = field(
        default=30.0, metadata={"help": "how long a claimed job stays with this replica"}
    )
    poll_interval_seconds: float = field(
        default=1.0,
        metadata={
            "help": "how often the sweeper looks for due jobs "
            "and the lease watch for cancelled ones"
        },
    )
    sweep_batch_size: int = field(default=100, metadata={"help": "jobs claimed per sweep"})
    max_active_jobs: int = field(default=5000, metadata={"help": "jobs run at once per process"})
    sweep_max_active: int = field(
        default=256,
        metadata={
            "help": "of those, at most this many taken from the database by the sweeper "
            "(retries, other replicas' jobs, a backlog): the rest stays free for new jobs"
        },
    )
    claim_by_bucket: bool = field(
        default=False,
        metadata={
            "help": "the sweeper claims per bucket: due buckets first, then each its share "
            "(the claim a sharded database needs; docs/scaling.md)"
        },
    )
    search_timeout_seconds: float = field(
        default=5.0,
        metadata={
            "help": "a ListTransactions or CountTransactions statement running longer is "
            "stopped (DEADLINE_EXCEEDED, saying how to narrow it); 0: no limit"
        },
    )
    inline_retry_max_seconds: float = field(
        default=5.0,
        metadata={"help": "retry delays up to this are waited in memory; longer ones in the DB"},
    )
    shutdown_grace_seconds: float = field(
        default=10.0, metadata={"help": "on SIGTERM, how long in-flight work may finish"}
    )
    # Retention (README "Retention"): finished jobs older than this are deleted
    retention_seconds: float = field(
        default=30 * 86400.0,
        metadata={"help": "delete jobs finished longer ago than this (seconds); 0 keeps them"},
    )
    retention_interval_seconds: float = field(
        default=60.0, metadata={"help": "how often a retention pass runs (one replica at a time)"}
    )
    max_watches: int = field(
        default=1000, metadata={"help": "WatchTransaction streams open at once per process"}
    )
    watch_poll_seconds: float = field(
        default=0.5, metadata={"help": "how often a watch reads the job for others' changes"}
    )
    # Defaults of a job's options
    default_initial_interval_seconds: float = 1.0
    default_backoff_coefficient: float = 2.0
    default_maximum_interval_seconds: float = 60.0
    default_maximum_attempts: int = 0
    default_step_timeout_seconds: float = 3.0
    default_check_prepared_after_seconds: float = 10.0
    default_wait_timeout_seconds: float = 30.0
    # Limits of a request
    max_payload_bytes: int = field(default=1 << 20, metadata={"help": "largest step payload"})
    max_steps: int = field(default=100, metadata={"help": "most steps in one job"})
    max_gid_length: int = 128
    # Limits (issue 12): each refused with a clear status, nothing stored (README "Limits")
    max_request_bytes: int = field(
        default=8 << 20,
        metadata={"help": "largest request message; larger ones get RESOURCE_EXHAUSTED"},
    )
    max_job_payload_bytes: int = field(
        default=4 << 20, metadata={"help": "largest total of a job's step payloads"}
    )
    max_step_headers: int = field(default=32, metadata={"help": "most headers on one step"})
    max_step_header_bytes: int = field(
        default=4096, metadata={"help": "largest total of a step's header keys and values"}
    )
    max_error_text_bytes: int = field(
        default=4096,
        metadata={"help": "stored error texts and Abort reasons are cut to this many bytes"},
    )
    max_response_bytes: int = field(
        default=1 << 20,
        metadata={"help": "largest participant response; larger ones fail the step for good"},
    )
    min_retry_interval_seconds: float = field(
        default=0.1, metadata={"help": "smallest retry initial_interval a job may ask for"}
    )
    # Calls to participants: TLS, signatures, which targets may be called (README: Security)
    participant_tls: bool = field(default=False, metadata={"help": "call participants over TLS"})
    participant_tls_ca_file: str = field(
        default="",
        metadata={"help": "PEM roots participants' certificates must chain to (empty: system)"},
    )
    participant_tls_cert_file: str = field(
        default="", metadata={"help": "PEM client certificate the TM presents (mTLS)"}
    )
    participant_tls_key_file: str = field(
        default="", metadata={"help": "PEM private key of that certificate"}
    )
    participant_signing_key_file: str = field(
        default="",
        metadata={"help": "HMAC key file (trailing newline stripped): sign every call"},
    )
    participant_reload_seconds: float = field(
        default=10.0,
        metadata={
            "help": "how often the participant TLS and signing-key files are checked; "
            "changed ones are re-read (new calls use them, no restart)"
        },
    )
    allowed_targets: str = field(
        default="",
        metadata={"help": "host:port patterns and CIDRs participants may have; empty: any"},
    )
    participant_max_channels: int = field(
        default=1000, metadata={"help": "most participant channels kept open (LRU)"}
    )
    participant_channel_idle_seconds: float = field(
        default=300.0, metadata={"help": "close a participant channel unused this long"}
    )
    participant_resolve_seconds: float = field(
        default=30.0,
        metadata={"help": "how long a checked DNS answer for a participant name is used"},
    )
    # Telemetry / logging (traces and metrics exporters: the standard OTEL_* variables)
    metrics_port: int = field(
        default=0,
        metadata={"help": "serve Prometheus /metrics on this HTTP port; 0 = off"},
    )
    log_level: str = "INFO"
    log_json: bool = False
    # -- Web console (README "Console"; tm_service/console) ------------------------------
    console_listen: str = field(
        default="",
        metadata={"help": "serve the web console on this host:port (empty = off)"},
    )
    console_trace_url: str = field(
        default="",
        metadata={"help": "trace link of the console, {trace_id} replaced (e.g. Jaeger's)"},
    )
    console_tls_ca_file: str = field(
        default="", metadata={"help": "the console calls the TM over TLS with this PEM CA"}
    )
    console_tls_cert_file: str = field(
        default="", metadata={"help": "client certificate the console shows the TM (mTLS)"}
    )
    console_tls_key_file: str = field(
        default="", metadata={"help": "the PEM private key of console_tls_cert_file"}
    )
    console_tls_server_name: str = field(
        default="", metadata={"help": "the TM's name in its certificate, if not the address"}
    )

    @property
    def tm_address(self) -> str:
        """Where others reach this TM: the advertised address, else the listen address."""
        return self.advertise_address or self.listen

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Defaults, then ``STEPPING_*`` variables from ``env``, then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = parse_value(f, raw)
        for name, value in (overrides or {}).items():
            if value is None:
                continue
            f = _field(name)
            values[name] = parse_value(f, value) if isinstance(value, str) else value
        if values.get("database_url"):
            check_database_url(values["database_url"])
        return dataclasses.replace(cls(), **values)


def otel_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ``OTEL_*`` variables, which configure telemetry (tm_service.telemetry)."""
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.startswith("OTEL_")}


_DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")


def check_database_url(url: str) -> None:
    """Fail at once on a URL no retry can fix (the URL is not echoed: it may hold a password)."""
    env_name = ENV_PREFIX + "DATABASE_URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError as err:
        raise SettingsError(f"{env_name}: not a valid URL ({err})") from None
    if parts.scheme not in _DATABASE_SCHEMES:
        got = repr(parts.scheme) if parts.scheme else "none"
        raise SettingsError(f"{env_name}: expected a postgresql:// URL, got scheme {got}")


def _field(name: str) -> dataclasses.Field[Any]:
    for f in fields(Settings):
        if f.name == name:
            return f
    raise SettingsError(f"unknown setting {name!r}")


def field_type(f: dataclasses.Field[Any]) -> type:
    """The Python type of a settings field (annotations are strings here)."""
    return {"str": str, "int": int, "float": float, "bool": bool}[str(f.type)]


def parse_value(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = field_type(f)
    env_name = ENV_PREFIX + f.name.upper()
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{env_name}: expected true/false, got {raw!r}")
    try:
        return kind(raw)
    except ValueError:
        raise SettingsError(f"{env_name}: expected {kind.__name__}, got {raw!r}") from None
