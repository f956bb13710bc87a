"""Step cost against history length, through the real Sessions service on PostgreSQL.

``python -m bench.sessions_append`` starts the Sessions service exactly as
``specloom serve sessions`` does (on a scratch database of the server in
``DATABASE_URL``, default the local one), then times one step — an
``AdvanceSession`` that completes the pending interaction and appends the
next, what an orchestrator sends per workflow step — at a short history
(about 10 interactions) and a long one (about 10,000) in one session.
Short and long blocks alternate, so drift in the machine's load hits both
alike. The figures are printed and written into ``docs/performance.md``
under ``## Sessions: step cost vs history length``.

The promise being checked: the long figure is within 1.5x of the short one
(interactions are rows keyed by (session, seq); nothing reads the history
to append to it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bench.docs import commit, replace_section
from specloom.host import HostSettings
from specloom.process import start_host
from specloom.rpc.channels import ChannelPool
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1.sessions_pb2_grpc import SessionsServiceStub
from specloom_sessions.service import SERVICE

if TYPE_CHECKING:
    from specloom.v1.sessions_pb2_grpc import SessionsServiceAsyncStub

HEADING = "## Sessions: step cost vs history length"
DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
LIMIT = 1.5


@dataclass(frozen=True)
class Figures:
    """Per-step latencies (seconds) at one history length."""

    history: int
    samples: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples) * 1000

    @property
    def p90_ms(self) -> float:
        return statistics.quantiles(self.samples, n=10)[-1] * 1000


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """An empty database on the server (libpq URL), dropped after."""
    name = f"specloom_bench_sessions_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Driver:
    """One session driven step by step, like an orchestrator with a cached head."""

    def __init__(self, stub: SessionsServiceAsyncStub, metadata: tuple[tuple[str, str], ...]):
        self.stub = stub
        self.metadata = metadata
        self.scope = pb.Scope(account_id="bench", project_id="sessions", user_id="bench")
        self.session_id = ""
        self.version = 0
        self.pending_id = ""
        self.length = 0

    @staticmethod
    def _command(n: int) -> spb.NewInteraction:
        command = pb.Command(step=f"Step{n % 7}")
        command.shell.argv.extend(["pytest", "-q", f"tests/test_{n % 13}.py"])
        return spb.NewInteraction(step=command.step, command=command)

    async def open(self) -> None:
        response = await self.stub.CreateSession(
            spb.CreateSessionRequest(
                scope=self.scope,
                type="Bench",
                execution_mode=pb.EXECUTION_MODE_MANUAL,
                definition_version=1,
                first=self._command(0),
            ),
            metadata=self.metadata,
        )
        session = response.session
        self.session_id, self.version = session.id, session.version
        self.pending_id, self.length = session.interactions[0].id, 1

    async def step(self) -> float:
        """One step (complete + append); returns its wall time."""
        request = spb.AdvanceSessionRequest(
            scope=self.scope,
            session_id=self.session_id,
            expected_version=self.version,
            complete=spb.CompletePart(
                interaction_id=self.pending_id,
                result=pb.Result(status=pb.RESULT_STATUS_OK, stdout="5 passed", duration_ms=12),
            ),
            append=[self._command(self.length)],
        )
        started = time.perf_counter()
        response = await self.stub.AdvanceSession(request, metadata=self.metadata)
        elapsed = time.perf_counter() - started
        self.version = response.session.version
        self.pending_id = response.appended[-1].id
        self.length = int(response.session.interaction_count)
        return elapsed

    async def grow_to(self, length: int) -> None:
        while self.length < length:
            await self.step()


async def measure(admin_url: str, long_length: int, rounds: int, block: int) -> list[Figures]:
    """Alternate blocks of steps on fresh short sessions and one long session."""
    with scratch_database(admin_url) as url:
        settings = HostSettings(
            listen="127.0.0.1:0",
            database_url=url,
            internal_secret=SecretStr("bench-secret"),
            token_pepper=SecretStr("bench-pepper"),
            grace_seconds=1.0,
        )
        await SERVICE.admin["migrate"](settings)
        host = await start_host([SERVICE], settings)
        channels = ChannelPool(internal_secret="bench-secret")
        try:
            stub = SessionsServiceStub(channels.get(host.address))
            long = Driver(stub, channels.metadata)
            await long.open()
            started = time.perf_counter()
            await long.grow_to(long_length)
            print(
                f"built a {long.length}-interaction session in "
                f"{time.perf_counter() - started:.1f} s"
            )
            short_samples: list[float] = []
            long_samples: list[float] = []
            warm = Driver(stub, channels.metadata)
            await warm.open()
            await warm.grow_to(200)  # warm caches and prepared statements alike
            for _ in range(rounds):
                short = Driver(stub, channels.metadata)
                await short.open()
                await short.grow_to(10)
                short_samples += [await short.step() for _ in range(block)]
                long_samples += [await long.step() for _ in range(block)]
            return [Figures(10, short_samples), Figures(long_length, long_samples)]
        finally:
            await host.stop(1.0)
            await channels.close()


def _server_version(admin_url: str) -> str:
    with psycopg.connect(admin_url) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]).split()[0] if row else "?"


def render(figures: list[Figures], admin_url: str, rounds: int, block: int) -> str:
    """The markdown section."""
    short, long = figures
    ratio = long.median_ms / short.median_ms
    load = os.getloadavg()[0]
    lines = [
        HEADING,
        "",
        "One step is one `AdvanceSession` (complete the pending interaction, append the",
        "next) sent over gRPC on loopback to the Sessions service, started as",
        "`specloom serve sessions` starts it, on PostgreSQL "
        f"{_server_version(admin_url)} ({platform.machine()}, {os.cpu_count()} CPUs,",
        f"load average {load:.1f} at the end of the run; commit {commit()}, "
        f"{time.strftime('%Y-%m-%d')}). Short",
        f"sessions are fresh at 10 interactions; the long one holds {long.history:,} interactions;",
        f"blocks of {block} steps alternate between them, {rounds} rounds, so load",
        "drift hits both alike. Client and server share one process and event loop.",
        "Reproduce: `python -m bench.sessions_append`.",
        "",
        "| history length | steps | median ms | mean ms | p90 ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        lines.append(
            f"| {f.history:,} | {len(f.samples)} | {f.median_ms:.2f} | "
            f"{f.mean_ms:.2f} | {f.p90_ms:.2f} |"
        )
    verdict = "within" if ratio <= LIMIT else "NOT within"
    lines += [
        "",
        f"Long/short median ratio: **{ratio:.2f}x** ({verdict} the {LIMIT}x promise). The",
        "step touches the session row and two interaction rows by primary key",
        "(`seq` comes from `sessions.interaction_count`, the one-pending rule from",
        "`sessions.pending_seq`), so its cost does not depend on the history.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--long", type=int, default=10_000, help="long history length")
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds")
    parser.add_argument("--block", type=int, default=25, help="steps per block")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    admin_url = os.environ.get("DATABASE_URL", LOCAL_SERVER).replace(
        "postgresql+psycopg://", "postgresql://"
    )
    figures = asyncio.run(measure(admin_url, args.long, args.rounds, args.block))
    section = render(figures, admin_url, args.rounds, args.block)
    print(section)
    if not args.no_write:
        replace_section(section, DOC)
        print(f"written to {DOC}")
    short, long = figures
    return 0 if long.median_ms <= LIMIT * short.median_ms else 1


if __name__ == "__main__":
    raise SystemExit(main())
