"""Run the selected parts in order, collecting :class:`bench.results.Results`.

A part that fails is recorded under ``skipped`` with its error and the run
goes on (one broken part should not cost the other figures); ``strict``
raises instead, which is what the smoke test wants.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from bench import parts as specloom_parts
from bench import peers, pgbench, scale
from bench.cluster import Unavailable, running
from bench.config import BenchConfig
from bench.measure import now
from bench.pg import scratch_database, server_facts
from bench.profile import start_recording
from bench.results import Results, load_average, machine_facts

log = logging.getLogger("bench")

PARTS = (
    "pgbench",
    "dbos",
    "dbos-async",
    "langgraph",
    "langgraph-async",
    "specloom",
    "up-pg",
    "embedded",
    "growth",
    "sessions-append",
    "fanout",
    "executors",
)
ALIASES = {"peers": ("dbos", "langgraph"), "all": PARTS}
DIAGNOSTIC_PARTS = ("dbos-async", "langgraph-async", "up-pg")
"""Run only when named: the peers' other modes (see :data:`bench.peers.PEERS`)
and the all-in-one process on PostgreSQL."""
DEFAULT_PARTS = tuple(p for p in PARTS if p not in DIAGNOSTIC_PARTS)


def select(only: str | None, skip: str | None) -> tuple[str, ...]:
    """The parts to run, in harness order, from ``--only`` / ``--skip`` lists."""

    def expand(text: str) -> set[str]:
        names: set[str] = set()
        for raw in text.split(","):
            name = raw.strip()
            if not name:
                continue
            if name in ALIASES:
                names.update(ALIASES[name])
            elif name in PARTS:
                names.add(name)
            else:
                known = ", ".join((*PARTS, *ALIASES))
                raise SystemExit(f"unknown part {name!r}; known: {known}")
        return names

    chosen = expand(only) if only else set(DEFAULT_PARTS)
    chosen -= expand(skip) if skip else set()
    return tuple(p for p in PARTS if p in chosen)


async def _guard(
    results: Results, part: str, strict: bool, body: Callable[[], Awaitable[None]]
) -> None:
    started = now()
    log.info("bench: %s …", part)
    try:
        await body()
    except Unavailable as exc:
        if strict:
            raise
        results.skipped[part] = str(exc)
        log.warning("bench: %s skipped: %s", part, exc)
    except Exception as exc:
        if strict:
            raise
        results.skipped[part] = f"failed: {type(exc).__name__}: {str(exc)[:300]}"
        log.error("bench: %s failed\n%s", part, traceback.format_exc())
    else:
        log.info("bench: %s done in %.1f s", part, now() - started)


async def run(
    config: BenchConfig, parts: tuple[str, ...], *, profile: bool = False, strict: bool = False
) -> Results:
    """Measure ``parts``; return everything measured."""
    facts = server_facts(config.admin_url)
    results = Results(machine=machine_facts(facts.version), config=_config_json(config))
    results.machine["postgresql_settings"] = asdict(facts)
    results.config["parts"] = list(parts)

    async def do_pgbench() -> None:
        found = await asyncio.to_thread(pgbench.run, config)
        results.pgbench = [r.to_json() for r in found]

    def do_peer(name: str) -> Callable[[], Awaitable[None]]:
        async def body() -> None:
            found = await asyncio.to_thread(peers.run, config, (name,))
            results.peers.extend(r.to_json() for r in found)

        return body

    def on_postgres(
        purpose: str, body: Callable[[str], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        async def wrapped() -> None:
            with scratch_database(config.admin_url, purpose) as url:
                await body(url)

        return wrapped

    async def do_growth(url: str) -> None:
        async with running("split", url, config.out_dir / "logs" / "growth") as cluster:
            results.growth = await scale.history_growth(
                cluster, config.history_lengths, config.history_window
            )

    async def do_fanout(url: str) -> None:
        async with running("split", url, config.out_dir / "logs" / "fanout") as cluster:
            for children in config.fanout_children:
                results.fanout.append(
                    await scale.fanout(cluster, children, config.fanout_executors)
                )
            if profile:
                # The widest fan-out once more under the sampler (the join
                # target); its figures are not published.
                recordings = [
                    start_recording(f"fanout-{svc.name}", svc.pid, config.out_dir, None)
                    for svc in cluster.services
                ]
                await scale.fanout(cluster, max(config.fanout_children), config.fanout_executors)
                for recording in recordings:
                    await asyncio.to_thread(recording.stop)
                    results.profiles.append(specloom_parts.profile_entry(recording))

    async def do_executors(url: str) -> None:
        async with running("split", url, config.out_dir / "logs" / "executors") as cluster:
            results.executors = await scale.idle_executors(
                cluster, config.idle_executors, config.push_samples
            )

    bodies: dict[str, Callable[[], Awaitable[None]]] = {
        "pgbench": do_pgbench,
        "dbos": do_peer("dbos"),
        "langgraph": do_peer("langgraph"),
        "dbos-async": do_peer("dbos-async"),
        "langgraph-async": do_peer("langgraph-async"),
        "specloom": lambda: specloom_parts.specloom_postgres(
            config, results, "split", "postgres", profile
        ),
        "up-pg": lambda: specloom_parts.specloom_postgres(
            config, results, "up", "postgres-up", False
        ),
        "embedded": lambda: specloom_parts.specloom_sqlite(config, results),
        "sessions-append": lambda: specloom_parts.sessions_append(config, results),
        "growth": on_postgres("growth", do_growth),
        "fanout": on_postgres("fanout", do_fanout),
        "executors": on_postgres("executors", do_executors),
    }
    for part in parts:
        await _guard(results, part, strict, bodies[part])
    results.machine["load_after"] = load_average()
    return results


def _config_json(config: BenchConfig) -> dict[str, Any]:
    data = asdict(config)
    data["out_dir"] = str(config.out_dir)
    data.pop("admin_url", None)
    return data
