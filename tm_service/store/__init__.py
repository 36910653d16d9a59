"""Storage of jobs: the Postgres store, its schema, migrations and the embedded server."""

from tm_service.store._embedded import EmbeddedPostgres, EmbeddedPostgresError
from tm_service.store._migrate import upgrade
from tm_service.store._postgres import PostgresStore, StoredTransaction, normalize_url

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedPostgresError",
    "PostgresStore",
    "StoredTransaction",
    "normalize_url",
    "upgrade",
]
