"""The peers: DBOS and LangGraph on the same PostgreSQL, in the same run.

Each peer runs in its own Python process per concurrency level (a clean
runtime each time; DBOS is a process-wide singleton), writes its step log as
JSON on stdout, and is summarised here with the same
:func:`bench.measure.summarize` as specloom.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from bench.config import BenchConfig
from bench.measure import StepLog, StepStats, summarize
from bench.pg import scratch_database

PEERS: dict[str, tuple[str, ...]] = {
    "dbos": ("bench.peers.dbos_peer", "--style", "sync"),
    "dbos-async": ("bench.peers.dbos_peer", "--style", "async"),
    "langgraph": ("bench.peers.langgraph_peer", "--durability", "sync"),
    "langgraph-async": ("bench.peers.langgraph_peer", "--durability", "async"),
}
"""Peer name → module run as ``python -m`` and its mode.

``dbos`` runs DBOS's synchronous API, one thread per concurrent workflow
(its primary Python API; on this machine it matched the async API's
throughput with a far shorter tail). ``dbos-async`` is the async API on one
event loop. ``langgraph-async`` is LangGraph with ``durability="async"``
(the checkpoint is written while the next node runs): it does not meet the
step definition and is shown for context only. The ``-async`` variants run
only when named."""

DEFAULT_PEERS = ("dbos", "langgraph")

POOL_SIZE = 20
"""Database connections each peer may hold (DBOS's default system pool size;
LangGraph's pool is set to the same so neither is starved nor favoured)."""


@dataclass(frozen=True)
class PeerRun:
    """One peer at one concurrency level."""

    peer: str
    concurrency: int
    stats: StepStats
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain form."""
        return {
            "peer": self.peer,
            "concurrency": self.concurrency,
            "stats": self.stats.to_json(),
            "meta": self.meta,
        }


def run_peer_process(
    peer: str, url: str, concurrency: int, steps: int, per_slot: int, timeout: float = 900.0
) -> PeerRun:
    """Run one peer at one level in a child process and summarise its log."""
    module, *mode = PEERS[peer]
    argv = [
        sys.executable,
        "-m",
        module,
        *mode,
        "--url",
        url,
        "--concurrency",
        str(concurrency),
        "--steps",
        str(steps),
        "--per-slot",
        str(per_slot),
        "--pool-size",
        str(POOL_SIZE),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{peer} at {concurrency} failed:\n{done.stderr[-4000:]}")
    # The peer prints one JSON document as its last stdout line; libraries
    # may print their own lines before it.
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    log = StepLog.from_json(payload["starts"])
    expected = concurrency * per_slot * steps
    if log_steps(log) != expected:
        raise RuntimeError(f"{peer} at {concurrency}: {log_steps(log)} steps, expected {expected}")
    return PeerRun(peer, concurrency, summarize(log), dict(payload.get("meta", {})))


def log_steps(log: StepLog) -> int:
    """Step starts in a log."""
    return sum(len(v) for v in log.starts.values())


def run(config: BenchConfig, peers: tuple[str, ...] = DEFAULT_PEERS) -> list[PeerRun]:
    """Every peer at every concurrency level, each peer on its own scratch database."""
    runs: list[PeerRun] = []
    for peer in peers:
        with scratch_database(config.admin_url, peer.replace("-", "_")) as url:
            for concurrency in config.concurrency:
                runs.append(
                    run_peer_process(
                        peer,
                        url,
                        concurrency,
                        config.steps_per_workflow,
                        config.workflows_per_slot(concurrency),
                    )
                )
    return runs
