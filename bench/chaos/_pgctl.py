"""``python -m bench.chaos._pgctl start|stop --data DIR --port N [--fsync]``.

Starts or stops the run's embedded Postgres from a fresh process. The run itself must not
fork: it holds gRPC's threads, and ``EmbeddedPostgres`` runs ``pg_ctl`` as another OS user
(as root), which rules out ``vfork``; a plain ``fork`` next to gRPC's threads can crash the
child before it runs ``pg_ctl``.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

__all__ = ["main"]

_EMBEDDED = Path(__file__).resolve().parents[2] / "tm_service" / "store" / "_embedded.py"


def _embedded_postgres() -> Any:
    """``tm_service.store.EmbeddedPostgres``, from its file: the module needs only the
    standard library, while importing ``tm_service.store`` costs seconds (SQLAlchemy,
    Alembic, ...) — seconds the database would stay down longer at each restart."""
    spec = importlib.util.spec_from_file_location("_stepping_embedded", _EMBEDDED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EmbeddedPostgres


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fsync", action="store_true")
    args = parser.parse_args(argv)
    pg = _embedded_postgres()(args.data, port=args.port, fsync=args.fsync)
    if args.action == "start":
        pg.start()
    else:
        pg.stop()


if __name__ == "__main__":
    main()
