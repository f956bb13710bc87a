"""DBOS: durable workflows of N no-op steps on PostgreSQL.

Idiomatic DBOS: ``@DBOS.workflow()`` calling ``@DBOS.step()`` functions, the
system database pointed at an existing PostgreSQL through
``system_database_url``. Async workflows, so concurrency is tasks on one
event loop (DBOS runs its database calls on its own thread pool). DBOS
checkpoints each step's output in ``operation_outputs`` before the workflow
goes on: one commit per step, which is the step definition in
:mod:`bench.measure`.

Run as ``python -m bench.peers.dbos_peer --url … --concurrency … --steps …``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from concurrent.futures import ThreadPoolExecutor

from dbos import DBOS, DBOSConfig

from bench.peers._driver import LOG, PeerArgs, drive, emit, parse_args


@DBOS.step()
async def noop_step(key: str) -> None:
    """The step body: record that a step started, do nothing."""
    LOG.mark(key)


@DBOS.workflow()
async def noop_workflow(key: str, steps: int) -> int:
    """N no-op steps, each checkpointed by DBOS."""
    for _ in range(steps):
        await noop_step(key)
    return steps


@DBOS.step()
def noop_step_sync(key: str) -> None:
    """The step body of the thread style."""
    LOG.mark(key)


@DBOS.workflow()
def noop_workflow_sync(key: str, steps: int) -> int:
    """N no-op steps on a plain thread (DBOS's synchronous API)."""
    for _ in range(steps):
        noop_step_sync(key)
    return steps


async def main(args: PeerArgs) -> None:
    """Launch DBOS on the scratch database, drive the workflows, shut down."""
    config: DBOSConfig = {
        "name": "specloom-bench",
        "system_database_url": args.url,
        "sys_db_pool_size": args.pool_size,
        "log_level": "WARNING",
    }
    DBOS(config=config)
    DBOS.launch()
    # The thread style gets one thread per slot (the default executor would
    # cap concurrency at a handful of threads).
    threads = ThreadPoolExecutor(max_workers=args.concurrency, thread_name_prefix="slot")
    loop = asyncio.get_running_loop()
    try:

        async def one(key: str) -> None:
            # Calling a workflow function starts it durably (a workflow_status
            # row) and runs it to the end: in this task, or on a thread of
            # its own in the synchronous style.
            if args.style == "async":
                await noop_workflow(key, args.steps)
            else:
                await loop.run_in_executor(threads, noop_workflow_sync, key, args.steps)

        await drive(args, one)
    finally:
        threads.shutdown()
        DBOS.destroy()
    emit(
        {
            "version": importlib.metadata.version("dbos"),
            "pool_size": args.pool_size,
            "mode": f"{args.style} workflows, @DBOS.step per no-op",
        }
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parse_args()))
