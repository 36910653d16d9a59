"""Storage of jobs: the store port, the Postgres store and its in-memory twin, schema,
migrations and the embedded server."""

from tm_service.store._embedded import EmbeddedPostgres, EmbeddedPostgresError
from tm_service.store._memory import InMemoryStore
from tm_service.store._migrate import upgrade
from tm_service.store._port import JobStore, StoredTransaction, Written
from tm_service.store._postgres import PostgresStore, normalize_url
from tm_service.store._search import PURGE_BATCH, RETENTION_LOCK_KEY, TxFilter

__all__ = [
    "PURGE_BATCH",
    "RETENTION_LOCK_KEY",
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "InMemoryStore",
    "JobStore",
    "PostgresStore",
    "StoredTransaction",
    "TxFilter",
    "Written",
    "normalize_url",
    "upgrade",
]
