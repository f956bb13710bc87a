"""The gateway's step overhead: ``python -m bench.step_overhead``.

Steps per second and p50/p99 step latency through the whole per-step path:
executor stream → gateway → orchestrator (``ReportAndAdvance``, batched with
the reports arriving together as ``ReportAndAdvanceMany``) → Sessions
(``AdvanceSessions``, one transaction per batch) → PostgreSQL, and the next
command back down the same stream, at 1, 16 and 64 concurrent sessions.

The pieces are the shared harness's (:mod:`bench.cluster`,
:mod:`bench.specloom_steps`, :mod:`bench.measure`), so these figures are
defined exactly as the peer comparison's:

- the services run as separate processes (the Kubernetes shape, ``split``:
  ``specloom serve sessions``, the bench orchestrator, ``specloom serve
  gateway``), or all in one (``--shape up``);
- sessions are ``BenchNoop`` (:mod:`bench.workflows`): counted no-op steps,
  served by a benchmark-only orchestrator that never ships in a product
  service; its steps are ordinary steps (appended, leased, reported,
  judged, folded, committed);
- the executors (:class:`bench.executors.Fleet`) speak ``Connect`` and answer
  every command at once, timestamping each assignment: that timestamp is the
  step start, and the interval between two step starts of one session is
  the step latency (one durable commit plus deciding and dispatching the
  next step).

``--write-docs`` replaces the ``## Gateway: step overhead`` section of
``docs/performance.md`` (and only it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster import Cluster, Shape, running
from bench.config import REPO, admin_url_from_env
from bench.docs import replace_section
from bench.measure import StepStats, now, summarize
from bench.pg import scratch_database, server_facts
from bench.profile import Hotspots, hot_frames, start_recording
from bench.results import load_average, machine_facts
from bench.specloom_steps import drive

HEADING = "## Gateway: step overhead"
GOAL_STEPS_PER_S = 1000.0
GOAL_P99_MS = 20.0

log = logging.getLogger("bench.step_overhead")


@dataclass(frozen=True)
class Level:
    """One concurrency level's figures."""

    concurrency: int
    stats: StepStats
    meta: dict[str, Any]
    cpu_ms_per_step: dict[str, float]
    """CPU time (user + system) each process spent per step during the level."""


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


class CpuMeter:
    """CPU per process over one level: the cost of a step wherever it is paid.

    Wall-clock figures on a shared two-core machine move with everything
    else running; CPU seconds per step do not (much), and they say which
    process a step's cost lands in. PostgreSQL backends come and go (a pool's
    overflow connections close when returned), so they are polled through
    the level and each one's last reading counts; the connections opened
    during the level are counted too (``pg_stat_database.sessions``).
    """

    POLL = 0.05

    def __init__(self, cluster: Cluster, admin_url: str, database: str) -> None:
        self._pids = {svc.name: svc.pid for svc in cluster.services}
        self._pids["harness"] = os.getpid()
        self._admin_url = admin_url
        self._database = database
        self._start: dict[str, float] = {}
        self._baseline: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._sessions_at_start = 0
        self._task: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._lock = threading.Lock()

    def _backends(self) -> tuple[list[int], int]:
        import psycopg

        # A cancelled poll's thread may still be running its query: one
        # connection, one user at a time.
        with self._lock:
            if self._conn is None:
                # One connection for all polls: connecting each time would
                # itself fork a backend every poll.
                self._conn = psycopg.connect(self._admin_url, autocommit=True)
            rows = self._conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s", (self._database,)
            ).fetchall()
            opened = self._conn.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", (self._database,)
            ).fetchone()
        return [int(row[0]) for row in rows], int(opened[0]) if opened else 0

    def close(self) -> None:
        """Close the polling connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _poll_once(self) -> int:
        pids, opened = self._backends()
        for pid in pids:
            seconds = _cpu_seconds(pid)
            if seconds <= 0.0:
                continue  # exited while being read
            self._last[pid] = seconds
        return opened

    async def _poll(self) -> None:
        while True:
            await asyncio.to_thread(self._poll_once)
            await asyncio.sleep(self.POLL)

    async def start(self) -> None:
        self._last.clear()
        self._sessions_at_start = await asyncio.to_thread(self._poll_once)
        # Backends present at the start count from their reading then; new
        # ones from zero (a fresh backend's CPU is all this level's).
        self._baseline = dict(self._last)
        self._start = {name: _cpu_seconds(pid) for name, pid in self._pids.items()}
        self._task = asyncio.create_task(self._poll())

    async def per_step(self, steps: int) -> tuple[dict[str, float], int]:
        """CPU ms per step by process, and PostgreSQL connections opened meanwhile."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        opened = await asyncio.to_thread(self._poll_once) - self._sessions_at_start
        cost = {
            name: max(0.0, _cpu_seconds(pid) - self._start.get(name, 0.0))
            for name, pid in self._pids.items()
        }
        cost["postgres"] = sum(
            max(0.0, last - self._baseline.get(pid, 0.0)) for pid, last in self._last.items()
        )
        return {k: v * 1000.0 / max(1, steps) for k, v in cost.items()}, opened


async def grpc_floor(calls: int = 20_000, concurrency: int = 64) -> float:
    """CPU microseconds of one trivial unary ``grpc.aio`` call, client and server together.

    The floor under every hop of a step, measured on this machine: a health
    check answered from memory, caller and server in this one process.
    """
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest()
            for _ in range(500):
                await stub.Check(request)

            async def caller(count: int) -> None:
                for _ in range(count):
                    await stub.Check(request)

            started = time.process_time()
            await asyncio.gather(*(caller(calls // concurrency) for _ in range(concurrency)))
            return (time.process_time() - started) * 1e6 / calls
    finally:
        await server.stop(0)


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


async def measure(
    shape: Shape,
    levels: tuple[int, ...],
    steps: int,
    target: int,
    out: Path,
    profile_seconds: float,
    profile_sessions: int = 64,
) -> tuple[list[Level], list[Hotspots]]:
    """Run every level on one cluster; optionally profile one more level after."""
    results: list[Level] = []
    hotspots: list[Hotspots] = []
    admin_url = admin_url_from_env()
    with scratch_database(admin_url, "gateway") as url:
        async with running(shape, url, out / "logs") as cluster:
            # A warm-up level: first connections, first query plans.
            await drive(cluster, 4, steps, per_slot=2)
            meter = CpuMeter(cluster, admin_url, url.rsplit("/", 1)[-1])
            for concurrency in levels:
                per_slot = max(1, -(-target // (concurrency * steps)))
                meta_load = load_average()
                await meter.start()
                step_log, meta = await drive(cluster, concurrency, steps, per_slot=per_slot)
                stats = summarize(step_log)
                cpu, opened = await meter.per_step(stats.steps)
                meta["postgres_connections_opened"] = opened
                meta["load_before"] = meta_load
                meta["load_after"] = load_average()
                results.append(Level(concurrency, stats, meta, cpu))
                log.info(
                    "%3d sessions: %7.0f steps/s  p50 %.2f ms  p99 %.2f ms  cpu/step %s",
                    concurrency,
                    stats.steps_per_s,
                    stats.p50_ms,
                    stats.p99_ms,
                    " ".join(f"{k}={v:.2f}ms" for k, v in cpu.items()),
                )
            meter.close()
            if profile_seconds > 0:
                hotspots = await _profile(cluster, steps, out, profile_seconds, profile_sessions)
    return results, hotspots


async def _profile(
    cluster: Cluster, steps: int, out: Path, seconds: float, sessions: int
) -> list[Hotspots]:
    """py-spy (GIL samples) on every process during an extra, unpublished run."""
    recordings = [
        start_recording(f"gateway-bench-{svc.name}", svc.pid, out, seconds)
        for svc in cluster.services
    ]
    recordings.append(start_recording("gateway-bench-harness", os.getpid(), out, seconds))
    await drive(cluster, sessions, steps, until=now() + seconds + 1.0)
    found = []
    for recording in recordings:
        await asyncio.to_thread(recording.wait, seconds + 30.0)
        if recording.error:
            log.warning("profile of %s failed: %s", recording.name, recording.error)
            continue
        found.append(hot_frames(recording.name, recording.svg))
    return found


def render(
    levels: list[Level],
    hotspots: list[Hotspots],
    machine: dict[str, Any],
    shape: Shape,
    floor_us: float | None = None,
    profile_sessions: int = 64,
) -> str:
    """The ``## Gateway: step overhead`` section."""
    layout = (
        "three processes (Sessions, the bench orchestrator, the gateway) plus the harness "
        "process holding the executor streams"
        if shape == "split"
        else "one process hosting every service plus the harness process"
    )
    lines = [
        HEADING,
        "",
        "`python -m bench.step_overhead` — executor stream → gateway → orchestrator "
        "(`ReportAndAdvance`, batched as `ReportAndAdvanceMany`) → Sessions "
        "(`AdvanceSessions`, one transaction per batch) → PostgreSQL, the next command "
        "chained back on the same stream.",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM, "
        f"Linux {machine['kernel']}, Python {machine['python']}, {machine['postgresql']}.",
        f"- Commit: `{machine['commit']}`, measured {machine['date']}; "
        f"load average before: {machine['load_before']}.",
        f"- Layout: {layout}, all on this machine, loopback gRPC.",
        "- Sessions: `BenchNoop` (bench-only orchestrator, counted no-op steps); executors "
        "answer each command at once and timestamp its arrival (the step start). Latency is "
        "the interval between two step starts of one session; steps/s is counted over the "
        "10th–90th percentile window of all step starts (`bench/measure.py`).",
        "",
        "| sessions | steps | steps/s | p50 ms | p99 ms | mean ms | executors × slots "
        "| PG connections opened |",
        "|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for level in levels:
        s, m = level.stats, level.meta
        lines.append(
            f"| {level.concurrency} | {s.steps} | {s.steps_per_s:,.0f} | {s.p50_ms:.2f} | "
            f"{s.p99_ms:.2f} | {s.mean_ms:.2f} | {m['executors']} × {m['max_parallel_each']} "
            f"| {m.get('postgres_connections_opened', '?')} |"
        )
    if levels:
        names = list(levels[0].cpu_ms_per_step)
        lines += [
            "",
            "CPU per step (user + system ms, from `/proc`, per process; `postgres` is the "
            "backends serving the benchmark database):",
            "",
            "| sessions | " + " | ".join(names) + " | total |",
            "|---:|" + "---:|" * (len(names) + 1),
        ]
        for level in levels:
            cpu = level.cpu_ms_per_step
            lines.append(
                f"| {level.concurrency} | "
                + " | ".join(f"{cpu[n]:.2f}" for n in names)
                + f" | {sum(cpu.values()):.2f} |"
            )
    if floor_us is not None:
        lines += [
            "",
            f"One trivial unary `grpc.aio` call (health check, caller and server in one "
            f"process, 64 at a time) costs {floor_us:.0f} µs of CPU on this machine: the floor "
            "under each hop. A step crosses two unary hops (gateway → orchestrator → Sessions; "
            "batched, so shared with the other steps of its batch) and one round trip on the "
            "executor stream.",
        ]
    top = max(levels, key=lambda lv: lv.concurrency, default=None)
    if top is not None:
        met_rate = top.stats.steps_per_s >= GOAL_STEPS_PER_S
        met_p99 = top.stats.p99_ms < GOAL_P99_MS
        lines += [
            "",
            f"Goal at {top.concurrency} sessions: ≥ {GOAL_STEPS_PER_S:,.0f} steps/s "
            f"({'met' if met_rate else 'not met'}: {top.stats.steps_per_s:,.0f}), "
            f"p99 < {GOAL_P99_MS:.0f} ms ({'met' if met_p99 else 'not met'}: "
            f"{top.stats.p99_ms:.1f} ms).",
        ]
    if hotspots:
        where = f"Where the time goes at {profile_sessions} sessions"
        lines += ["", f"{where} (py-spy, GIL samples, self time):", ""]
        for spot in hotspots:
            head = ", ".join(f"{pkg} {share:.0%}" for pkg, share in spot.by_package[:5])
            funcs = "; ".join(f"`{fn}` {share:.0%}" for fn, share in spot.self_by_function[:4])
            lines.append(f"- **{spot.name}** ({spot.samples} samples): {head}. Top: {funcs}.")
    analysis = REPO / "bench" / "step_overhead_analysis.md"
    if analysis.exists():
        lines += ["", analysis.read_text().strip()]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.step_overhead", description=__doc__)
    parser.add_argument("--levels", type=_levels, default=(1, 16, 64))
    parser.add_argument("--steps", type=int, default=20, help="no-op steps per session")
    parser.add_argument("--target", type=int, default=6000, help="steps per level (about)")
    parser.add_argument("--shape", choices=["split", "up"], default="split")
    parser.add_argument("--profile", type=float, default=0.0, help="py-spy seconds")
    parser.add_argument(
        "--profile-sessions", type=int, default=64, help="sessions at once while profiling"
    )
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    parser.add_argument("--out", type=Path, default=None, help="logs and flame graphs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out or Path(tempfile.mkdtemp(prefix="step-overhead-"))
    machine = machine_facts(server_facts(admin_url_from_env()).version)
    levels, hotspots = asyncio.run(
        measure(
            args.shape,
            args.levels,
            args.steps,
            args.target,
            out,
            args.profile,
            args.profile_sessions,
        )
    )
    floor = asyncio.run(grpc_floor())
    section = render(levels, hotspots, machine, args.shape, floor, args.profile_sessions)
    print(section)
    print(f"(logs and profiles in {out})")
    if args.write_docs:
        replace_section(section, REPO / "docs" / "performance.md")


if __name__ == "__main__":
    main()
