"""LangGraph: graphs of N no-op nodes checkpointed by ``AsyncPostgresSaver``.

Idiomatic LangGraph persistence: a ``StateGraph`` compiled with the
``langgraph-checkpoint-postgres`` checkpointer over a psycopg
``AsyncConnectionPool`` (autocommit, ``prepare_threshold=0``, ``dict_row``:
what the checkpointer requires), ``setup()`` once, one ``thread_id`` per run.
``durability="sync"`` persists each superstep's checkpoint before the next
node starts, which is the step definition in :mod:`bench.measure`; the
default ``"async"`` overlaps the write with the next node and is offered as
a separate, clearly labelled peer.

Run as ``python -m bench.peers.langgraph_peer --url … --concurrency … --steps …``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import itertools
from typing import Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.graph import END, START, StateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.peers._driver import LOG, PeerArgs, drive, emit, parse_args


class Counter(TypedDict):
    """Graph state: how many nodes ran."""

    n: int


async def noop_node(state: Counter, config: RunnableConfig) -> dict[str, Any]:
    """The step body: record that a step started, bump the counter."""
    LOG.mark(str(config["configurable"]["thread_id"]))
    return {"n": state["n"] + 1}


def build_graph(steps: int) -> StateGraph[Counter]:
    """A chain of ``steps`` no-op nodes."""
    graph: StateGraph[Counter] = StateGraph(Counter)
    names = [f"step{i}" for i in range(steps)]
    for name in names:
        graph.add_node(name, noop_node)
    graph.add_edge(START, names[0])
    for a, b in itertools.pairwise(names):
        graph.add_edge(a, b)
    graph.add_edge(names[-1], END)
    return graph


async def main(args: PeerArgs) -> None:
    """Set the checkpointer up on the scratch database and drive the graphs."""
    durability: Literal["sync", "async"] = "sync" if args.durability == "sync" else "async"
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        args.url,
        min_size=min(4, args.pool_size),
        max_size=args.pool_size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open(wait=True)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        app = build_graph(args.steps).compile(checkpointer=saver)

        async def one(key: str) -> None:
            config: RunnableConfig = {
                "configurable": {"thread_id": key},
                "recursion_limit": args.steps + 10,
            }
            out = await app.ainvoke({"n": 0}, config, durability=durability)
            if out["n"] != args.steps:
                raise RuntimeError(f"graph ran {out['n']} nodes, expected {args.steps}")

        await drive(args, one)
    finally:
        await pool.close()
    emit(
        {
            "version": importlib.metadata.version("langgraph"),
            "checkpoint_postgres": importlib.metadata.version("langgraph-checkpoint-postgres"),
            "pool_size": args.pool_size,
            "durability": durability,
        }
    )


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
