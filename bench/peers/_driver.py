"""What every peer process shares: arguments, the concurrent driver, the output."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.measure import StepLog

LOG = StepLog()
"""Step starts of this process; step bodies mark it."""


@dataclass(frozen=True)
class PeerArgs:
    """A peer process's command line."""

    url: str
    concurrency: int
    steps: int
    per_slot: int
    pool_size: int
    durability: str
    style: str


def parse_args(argv: list[str] | None = None) -> PeerArgs:
    """Read the command line the harness passes (see ``run_peer_process``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="libpq URL of the scratch database")
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True, help="no-op steps per workflow")
    parser.add_argument("--per-slot", type=int, required=True, help="workflows per slot")
    parser.add_argument("--pool-size", type=int, default=20)
    parser.add_argument("--durability", default="sync", choices=["sync", "async"])
    parser.add_argument("--style", default="sync", choices=["sync", "async"])
    ns = parser.parse_args(argv)
    return PeerArgs(
        url=ns.url,
        concurrency=ns.concurrency,
        steps=ns.steps,
        per_slot=ns.per_slot,
        pool_size=ns.pool_size,
        durability=ns.durability,
        style=ns.style,
    )


async def drive(args: PeerArgs, run_workflow: Callable[[str], Awaitable[None]]) -> None:
    """``concurrency`` slots, each running ``per_slot`` workflows back to back."""

    # Unique per process: levels share a database, and LangGraph thread ids
    # (like DBOS workflow ids) must not collide with an earlier level's.
    run = uuid.uuid4().hex[:8]

    async def slot(index: int) -> None:
        for n in range(args.per_slot):
            await run_workflow(f"{run}-w{index}-{n}")

    await asyncio.gather(*(slot(i) for i in range(args.concurrency)))


def emit(meta: dict[str, Any]) -> None:
    """Print the step log and facts as the last line of stdout."""
    sys.stdout.write("\n" + json.dumps({"starts": LOG.to_json(), "meta": meta}) + "\n")
    sys.stdout.flush()
