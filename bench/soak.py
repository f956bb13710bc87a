"""Soak: mixed workflows at a moderate, steady load, resident memory of every process sampled.

    python -m bench.soak [--minutes 30] [--sample-seconds 15] [--write-docs]

Every service is its own process on a scratch PostgreSQL database (``specloom
serve sessions``, ``context_design``, ``coding``, the bench orchestrator and
``specloom serve gateway``), with two ``specloom agent`` processes: one runs
the no-op benchmark sessions, the other the real design and coding workflows
on a real git repository with the scripted backend. The load, for
``--minutes``:

- a ``BenchNoop`` session (10–40 no-op steps) started every second, and a
  ``BenchParent`` fanning out to 5 children every 20 seconds;
- the demo pipeline (ContextDesign → ContextComponentsDesign → ContextCoding:
  git branches and worktrees, agent edits, pytest runs, commits, pushes) over
  and over, the repository reset between rounds;
- readers: listings, full session reads, output reads and short-lived watch
  streams (with children and output) on recent sessions.

Every ``--sample-seconds`` the resident set (VmRSS) of every process is
read from ``/proc``. The report fits a line through each process's samples
after a warm-up (the first third of the run, at most 5 minutes: caches fill,
pools open) and gives its slope in MB per hour; a process *grows* when the
slope is above ``max(10 MB/h, 10% of its median per hour)`` and its last
third's median is above its first third's by more than 5%. Raw samples go
to ``bench/out/soak-<time>.json``; ``--write-docs`` puts the table into
``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import SecretStr

from bench.cluster import free_ports
from bench.config import REPO
from bench.docs import machine_line, write_section
from bench.pg import async_url, scratch_database
from bench.workflows import NOOP_TYPE, PARENT_TYPE
from specloom.client import Client
from specloom.demo.run import PIPELINE, create_project, stage_params
from specloom.demo.script import write_script
from specloom.errors import SpecloomError
from specloom.host import HostSettings, discover
from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb

HEADING = "## Soak: memory over a long run"
DOC = REPO / "docs" / "reliability.md"
SPECLOOM = str(Path(sys.executable).with_name("specloom"))
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
T = TypeVar("T")
TERMINAL = (pb.SESSION_STATUS_COMPLETE, pb.SESSION_STATUS_FAILED, pb.SESSION_STATUS_CANCELLED)


@dataclass
class Proc:
    """One process of the soak and its memory samples."""

    name: str
    process: subprocess.Popen[bytes]
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since the load began, RSS in MB)."""

    def rss_mb(self) -> float:
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return float("nan")
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        return float("nan")


@dataclass
class Tally:
    """What the load did."""

    started: Counter[str] = field(default_factory=Counter)
    finished: Counter[str] = field(default_factory=Counter)
    pipelines: int = 0
    pipeline_seconds: list[float] = field(default_factory=list)
    reads: int = 0
    watches: int = 0
    errors: Counter[str] = field(default_factory=Counter)


def _spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> Proc:
    with (logs / f"{name}.log").open("ab") as out:
        process = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    return Proc(name, process)


async def _serving(address: str, proc: Proc, within: float = 60.0) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + within
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc.process.poll() is not None:
                raise RuntimeError(f"{proc.name} exited at start; see its log")
            with contextlib.suppress(grpc.aio.AioRpcError):
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=2)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{proc.name} not serving on {address} after {within} s")


@contextlib.asynccontextmanager
async def cluster(admin_url: str, work: Path) -> AsyncIterator[tuple[str, str, list[Proc]]]:
    """Every service as a process on a scratch database: (gateway, admin token, processes)."""
    with scratch_database(admin_url, "soak") as url:
        secret, pepper = os.urandom(16).hex(), os.urandom(16).hex()
        settings = HostSettings(
            database_url=async_url(url),
            internal_secret=SecretStr(secret),
            token_pepper=SecretStr(pepper),
        )
        sessions = discover()["sessions"]
        await sessions.admin["migrate"](settings)
        token = str(
            await sessions.admin["issue-token"](
                settings, account_id="soak", project_id="noop", user_id="soak", admin=True
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
        env.update(
            SPECLOOM_DATABASE_URL=async_url(url),
            SPECLOOM_INTERNAL_SECRET=secret,
            SPECLOOM_TOKEN_PEPPER=pepper,
            SPECLOOM_GRACE_SECONDS="2",
        )
        *ports, gateway_port = free_ports(len(ORCHESTRATORS) + 2)
        addresses = {
            n: f"127.0.0.1:{p}" for n, p in zip(("sessions", *ORCHESTRATORS), ports, strict=True)
        }
        env["SPECLOOM_SESSIONS_ADDRESS"] = addresses["sessions"]
        gateway = f"127.0.0.1:{gateway_port}"
        plan = [(name, _argv(name, address), address) for name, address in addresses.items()]
        routes = [arg for o in ORCHESTRATORS for arg in ("--orchestrator", addresses[o])]
        plan.append(
            ("gateway", [SPECLOOM, "serve", "gateway", "--listen", gateway, *routes], gateway)
        )
        procs: list[Proc] = []
        try:
            for name, argv, address in plan:
                procs.append(_spawn(name, argv, {**env, "SPECLOOM_LISTEN": address}, work))
                await _serving(address, procs[-1])
            yield gateway, token, procs
        finally:
            for proc in procs:
                if proc.process.poll() is None:
                    proc.process.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.process.wait(20)
                except subprocess.TimeoutExpired:
                    proc.process.kill()


ORCHESTRATORS = ("context_design", "coding", "bench")


def _argv(name: str, address: str) -> list[str]:
    if name == "bench":
        return [sys.executable, "-m", "bench.serve", "bench"]
    return [SPECLOOM, "serve", name, "--listen", address]


def agent(name: str, gateway: str, token: str, workspace: Path, script: Path, logs: Path) -> Proc:
    """A ``specloom agent`` process (scripted backend)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    # The demo's test steps run `python -m pytest`: this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = [
        SPECLOOM, "--gateway", gateway, "--token", token, "agent", "--workspace",
        str(workspace), "--backend", "scripted", "--script", str(script), "--name", name,
        "--max-parallel", "16",
    ]  # fmt: skip
    return _spawn(f"agent-{name}", argv, env, logs)


async def _call(tally: Tally, coro: Awaitable[T]) -> T | None:
    try:
        return await coro
    except SpecloomError as exc:
        tally.errors[exc.code] += 1
        return None


async def noop_load(client: Client, tally: Tally, stop: asyncio.Event) -> None:
    """A BenchNoop every second, a BenchParent every 20 seconds."""
    n = 0
    while not stop.is_set():
        n += 1
        kind, params = (
            (PARENT_TYPE, {"children": 5})
            if n % 20 == 0
            else (NOOP_TYPE, {"ticks": random.randint(10, 40)})
        )
        if await _call(tally, client.start_session(kind, params, idempotency_key=f"soak-{n}")):
            tally.started[kind] += 1
        await asyncio.sleep(1.0)


def reset_project(project: Path, origin: Path) -> None:
    """Back to the first commit: no branches, worktrees or pushes from earlier rounds."""

    def git(*args: str, cwd: Path = project) -> None:
        subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)

    shutil.rmtree(project / ".specloom" / "worktrees", ignore_errors=True)
    git("worktree", "prune")
    git("checkout", "-q", "-f", "main")
    git("reset", "-q", "--hard", "origin/main")
    git("clean", "-q", "-fdx", "-e", ".specloom")
    branches = subprocess.run(
        ["git", "-C", str(project), "for-each-ref", "--format=%(refname:short)", "refs/heads"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for branch in branches:
        if branch != "main":
            git("branch", "-q", "-D", branch)
    remote = subprocess.run(
        ["git", "-C", str(origin), "for-each-ref", "--format=%(refname:short)", "refs/heads"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    for branch in remote:
        if branch != "main":
            git("branch", "-q", "-D", branch, cwd=origin)


async def pipeline_load(
    client: Client, project: Path, origin: Path, tally: Tally, stop: asyncio.Event
) -> None:
    """The demo pipeline, round after round."""
    round_no = 0
    while not stop.is_set():
        round_no += 1
        await asyncio.to_thread(reset_project, project, origin)
        began = time.monotonic()
        base = ""
        for session_type in PIPELINE:
            started = await _call(
                tally,
                client.start_session(
                    session_type,
                    stage_params(base),  # each stage builds on the last one's branch
                    idempotency_key=f"round-{round_no}-{session_type}",
                ),
            )
            if started is None:
                break
            session_id = started.session.id
            status = await _wait(client, session_id, tally)
            tally.finished[session_type] += 1
            if status != pb.SESSION_STATUS_COMPLETE:
                tally.errors[f"{session_type} not complete"] += 1
                break
            finished = await _call(tally, client.get_session(session_id, pb.INTERACTION_VIEW_NONE))
            base = str(struct_to_dict(finished.state).get("branch", "")) if finished else ""
        else:
            tally.pipelines += 1
            tally.pipeline_seconds.append(time.monotonic() - began)


async def _wait(client: Client, session_id: str, tally: Tally) -> int:
    while True:
        session = await _call(tally, client.get_session(session_id, pb.INTERACTION_VIEW_NONE))
        if session is not None and session.status in TERMINAL:
            return int(session.status)
        await asyncio.sleep(0.5)


async def readers(clients: list[Client], tally: Tally, stop: asyncio.Event) -> None:
    """Listings, full reads, output reads and short watch streams, about twice a second."""
    while not stop.is_set():
        for client in clients:
            listed = await _call(tally, client.list_sessions(page_size=20))
            if not listed:
                continue
            sessions = listed[0]
            tally.reads += 1
            if not sessions:
                continue
            target = random.choice(sessions)
            await _call(tally, client.get_session(target.id))
            await _call(tally, client.read_output(target.id))
            tally.reads += 2
            with contextlib.suppress(SpecloomError, TimeoutError):
                async with asyncio.timeout(1.0):
                    async for _ in client.watch(
                        target.id, include_children=True, include_output=True
                    ):
                        pass
            tally.watches += 1
        await asyncio.sleep(0.5)


async def sample(procs: list[Proc], began: float, every: float, stop: asyncio.Event) -> None:
    """RSS of every process every ``every`` seconds."""
    while not stop.is_set():
        now = time.monotonic() - began
        for proc in procs:
            proc.samples.append((now, proc.rss_mb()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


@dataclass(frozen=True)
class Trend:
    """One process's memory over the run."""

    name: str
    start_mb: float
    median_mb: float
    peak_mb: float
    end_mb: float
    slope_mb_per_hour: float
    first_third_mb: float
    last_third_mb: float
    grows: bool


def trend(name: str, samples: list[tuple[float, float]], warmup_s: float) -> Trend:
    """The least-squares slope after the warm-up, and the verdict (see the module doc)."""
    values = [(t, mb) for t, mb in samples if mb == mb]  # drop NaN (process gone)
    kept = [(t, mb) for t, mb in values if t >= warmup_s] or values
    times = [t / 3600.0 for t, _ in kept]
    mbs = [mb for _, mb in kept]
    slope = statistics.linear_regression(times, mbs).slope if len(kept) >= 3 else 0.0
    third = max(1, len(mbs) // 3)
    first, last = statistics.median(mbs[:third]), statistics.median(mbs[-third:])
    median = statistics.median(mbs)
    grows = slope > max(10.0, 0.10 * median) and last > first * 1.05
    return Trend(name, values[0][1], median, max(mbs), mbs[-1], slope, first, last, grows)


def render(trends: list[Trend], minutes: float, tally: Tally, samples: int, warmup_s: float) -> str:
    """The report as markdown."""
    steps = sum(tally.started.values())
    grows = [t.name for t in trends if t.grows]
    verdict = (
        "**no growth trend** in any process"
        if not grows
        else f"**memory grows** in {', '.join(grows)}"
    )
    lines = [
        f"`python -m bench.soak --minutes {minutes:g}` (`make soak` runs 30 minutes). "
        + machine_line(),
        "",
        f"Ran {minutes:g} minutes: {steps} benchmark sessions started "
        f"({tally.started[NOOP_TYPE]} BenchNoop of 10–40 steps, {tally.started[PARENT_TYPE]} "
        f"BenchParent with 5 children), {tally.pipelines} full demo pipelines "
        f"(median {statistics.median(tally.pipeline_seconds or [0]):.0f} s each), "
        f"{tally.reads} reads, {tally.watches} watch streams; client errors: "
        f"{dict(tally.errors) or 'none'}. RSS sampled {samples} times per process; slopes "
        f"fitted after a {warmup_s / 60:.1f}-minute warm-up.",
        "",
        "| process | start MB | median MB | peak MB | end MB | first third MB | last third MB "
        "| slope MB/h | trend |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in trends:
        lines.append(
            f"| {t.name} | {t.start_mb:.1f} | {t.median_mb:.1f} | {t.peak_mb:.1f} | "
            f"{t.end_mb:.1f} | {t.first_third_mb:.1f} | {t.last_third_mb:.1f} | "
            f"{t.slope_mb_per_hour:+.1f} | {'grows' if t.grows else 'flat'} |"
        )
    lines += ["", f"Verdict: {verdict}."]
    return "\n".join(lines)


async def soak(minutes: float, every: float, admin_url: str, out: Path) -> tuple[str, bool]:
    """Run the soak; returns the report and whether every process stayed flat."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    work = out / f"soak-{stamp}"
    work.mkdir(parents=True)
    project, origin = work / "inventory", work / "origin.git"
    create_project(project, origin)
    bulk = work / "bulk"
    create_project(bulk, work / "bulk-origin.git")
    script = write_script(work / "script.json")
    tally = Tally()
    async with cluster(admin_url, work) as (gateway, token, procs):
        admin = Client(gateway, token)
        demo_scope = pb.Scope(account_id="soak", project_id="demo", user_id="soak")
        demo_token = (await admin.create_token(demo_scope, name="demo")).token
        procs.append(agent("noop", gateway, token, bulk, script, work))
        procs.append(agent("demo", gateway, demo_token, project, script, work))
        demo = Client(gateway, demo_token)
        stop = asyncio.Event()
        began = time.monotonic()
        tasks = [
            asyncio.create_task(noop_load(admin, tally, stop)),
            asyncio.create_task(pipeline_load(demo, project, origin, tally, stop)),
            asyncio.create_task(readers([admin, demo], tally, stop)),
            asyncio.create_task(sample(procs, began, every, stop)),
        ]
        try:
            await asyncio.sleep(minutes * 60)
        finally:
            stop.set()
            await asyncio.wait(tasks, timeout=180)
            for task in tasks:
                task.cancel()
            await admin.close()
            await demo.close()
    warmup = min(300.0, minutes * 60 / 3)
    trends = [trend(p.name, p.samples, warmup) for p in procs]
    raw = {
        "minutes": minutes,
        "samples": {p.name: p.samples for p in procs},
        "tally": {
            "started": dict(tally.started),
            "pipelines": tally.pipelines,
            "pipeline_seconds": tally.pipeline_seconds,
            "reads": tally.reads,
            "watches": tally.watches,
            "errors": dict(tally.errors),
        },
        "trends": [t.__dict__ for t in trends],
    }
    (out / f"soak-{stamp}.json").write_text(json.dumps(raw, indent=1))
    samples = min((len(p.samples) for p in procs), default=0)
    return render(trends, minutes, tally, samples, warmup), not any(t.grows for t in trends)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument(
        "--sample-seconds", type=float, default=15.0, help="RSS sampling interval (default 15)"
    )
    parser.add_argument("--write-docs", action="store_true", help=f"write the table into {DOC}")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    args = parser.parse_args()
    admin_url = os.environ.get("DATABASE_URL", DEFAULT_ADMIN_URL).replace("+psycopg", "")
    report, flat = asyncio.run(soak(args.minutes, args.sample_seconds, admin_url, args.out))
    print(report)
    if args.write_docs:
        write_section(HEADING, report, DOC)
    sys.exit(0 if flat else 1)


if __name__ == "__main__":
    main()
