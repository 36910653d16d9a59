"""DBOS Transact, the comparison: workflows of K no-op steps on the same Postgres.

One process runs DBOS (its system database is a database of its own on the benchmark's
server) and offers load with the same closed/open loop as the TM's client. ``mode``
picks how the workflows run:

* ``async``: ``async def`` workflow and steps, each job an ``await`` of the workflow on
  the event loop; DBOS does its database work in ``asyncio.to_thread``, so the loop's
  default executor gets one thread per concurrent job.
* ``threads``: plain ``def`` workflow and steps, each job a call in a thread pool of
  ``concurrency`` threads (DBOS's synchronous API).

Run by the orchestrator: ``python -m bench._dbos_run '<json config>'``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dbos import DBOS, DBOSConfig

from bench._loadgen import LoadShape, run, serve_load
from bench._records import OK, RPC_ERROR, WRONG_RESULT

__all__ = ["DbosConfig"]


@dataclass(frozen=True)
class DbosConfig:
    database_url: str  # postgresql://... of the (empty) system database
    steps: int
    records_path: str
    shape: LoadShape = field(default_factory=LoadShape)
    mode: str = "async"
    pool_size: int = 0  # 0: the concurrency plus a few for DBOS's own threads
    migrate_only: bool = False  # launch (creating the schema), shut down, exit

    def to_json(self) -> str:
        d = dict(self.__dict__)
        d["shape"] = self.shape.to_dict()
        return json.dumps(d)

    @classmethod
    def from_json(cls, raw: str) -> DbosConfig:
        d: dict[str, Any] = json.loads(raw)
        d["shape"] = LoadShape(**d["shape"])
        return cls(**d)


@DBOS.step()
async def noop_step_async() -> None:
    return None


@DBOS.workflow()
async def workflow_async(steps: int) -> int:
    for _ in range(steps):
        await noop_step_async()
    return steps


@DBOS.step()
def noop_step() -> None:
    return None


@DBOS.workflow()
def workflow_sync(steps: int) -> int:
    for _ in range(steps):
        noop_step()
    return steps


async def main(config: DbosConfig) -> None:
    concurrency = config.shape.concurrency
    pool = config.pool_size or concurrency + 8
    threads = ThreadPoolExecutor(max_workers=concurrency + 8)
    loop = asyncio.get_running_loop()
    loop.set_default_executor(threads)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    dbos_config: DBOSConfig = {
        "name": "stepping-bench",
        "system_database_url": config.database_url,
        "sys_db_pool_size": pool,
        "log_level": "WARNING",
    }
    DBOS(config=dbos_config)
    await asyncio.to_thread(DBOS.launch)
    if config.migrate_only:
        await asyncio.to_thread(DBOS.destroy)
        return
    errors: Counter[str] = Counter()
    k = config.steps

    async def job(index: int) -> int:
        try:
            if config.mode == "async":
                result = await workflow_async(k)
            else:
                result = await loop.run_in_executor(threads, workflow_sync, k)
        except Exception as err:
            errors[f"{type(err).__name__}: {str(err)[:120]}"] += 1
            return RPC_ERROR
        if result != k:
            errors[f"workflow returned {result!r}"] += 1
            return WRONG_RESULT
        return OK

    info = {"mode": config.mode, "sys_db_pool_size": pool}
    try:
        await serve_load(job, config.shape, config.records_path, errors, info)
    finally:
        await asyncio.to_thread(DBOS.destroy)
        threads.shutdown(wait=False)


if __name__ == "__main__":
    run(main(DbosConfig.from_json(sys.argv[1])))
