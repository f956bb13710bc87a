"""The limit: pgbench single-row-update transactions per second.

A workflow step needs at least one commit. The cheapest commit that records
anything is one ``UPDATE … WHERE id = :id`` on a small table, so pgbench
running exactly that script, one statement per transaction, at the same
client counts, is the ceiling no orchestrator on this server can pass.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from bench.config import BenchConfig
from bench.measure import percentile
from bench.pg import scratch_database, server_facts

SCRIPT = """\\set id random(1, {rows})
UPDATE bench_step SET n = n + 1 WHERE id = :id;
"""
"""One transaction = one single-row update (pgbench runs each script in autocommit)."""


@dataclass(frozen=True)
class PgbenchResult:
    """One pgbench run."""

    clients: int
    """Client count asked for (the concurrency level)."""
    clients_used: int
    """Clients actually connected: capped by the server's free connections."""
    tps: float
    """Transactions per second, excluding connection time."""
    p50_ms: float
    """Median transaction latency, from pgbench's per-transaction log."""
    p99_ms: float
    """99th percentile transaction latency."""
    transactions: int

    def to_json(self) -> dict[str, Any]:
        """Plain form."""
        return asdict(self)


def pgbench_path() -> str:
    """The pgbench binary (Debian puts it on PATH, else under the cluster's bin)."""
    found = shutil.which("pgbench")
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob("*/bin/pgbench"), reverse=True):
        return str(candidate)
    raise FileNotFoundError("pgbench not found; install postgresql-client")


def _prepare(url: str, rows: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE bench_step (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO bench_step (id) SELECT generate_series(1, %s)", (rows,))
        conn.execute("VACUUM ANALYZE bench_step")


def _latencies(log_dir: Path) -> list[float]:
    # Per-transaction log lines: client_id transaction_no time_us script_no epoch epoch_us
    samples: list[float] = []
    for path in log_dir.glob("pgbench_log.*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                samples.append(int(fields[2]) / 1_000_000.0)
    return samples


def run_once(url: str, clients: int, seconds: float, rows: int) -> PgbenchResult:
    """pgbench at ``clients`` for ``seconds`` against the prepared database at ``url``."""
    parsed = make_url(url)
    with tempfile.TemporaryDirectory(prefix="pgbench-") as tmp:
        script = Path(tmp) / "step.sql"
        script.write_text(SCRIPT.format(rows=rows))
        argv = [
            pgbench_path(),
            "--no-vacuum",
            "--protocol=prepared",
            f"--client={clients}",
            f"--jobs={min(clients, 2)}",
            f"--time={max(1, round(seconds))}",
            f"--file={script}",
            "--log",
            f"--log-prefix={Path(tmp) / 'pgbench_log'}",
            f"--host={parsed.host or '127.0.0.1'}",
            f"--port={parsed.port or 5432}",
            f"--username={parsed.username or 'postgres'}",
            str(parsed.database),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=tmp)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed ({done.returncode}): {done.stderr.strip()}")
        tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
        count = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
        if tps is None or count is None:
            raise RuntimeError(f"could not read pgbench output:\n{done.stdout}")
        samples = _latencies(Path(tmp))
    return PgbenchResult(
        clients=clients,
        clients_used=clients,
        tps=float(tps.group(1)),
        p50_ms=percentile(samples, 50) * 1000.0,
        p99_ms=percentile(samples, 99) * 1000.0,
        transactions=int(count.group(1)),
    )


def run(config: BenchConfig) -> list[PgbenchResult]:
    """pgbench at every concurrency level, on a scratch database."""
    facts = server_facts(config.admin_url)
    results: list[PgbenchResult] = []
    with scratch_database(config.admin_url, "pgbench") as url:
        _prepare(url, config.pgbench_rows)
        for clients in config.concurrency:
            # The server admits max_connections clients; beyond that pgbench
            # would fail outright. Past saturation the ceiling no longer rises
            # with clients, so the capped figure stands for the asked level.
            used = min(clients, facts.free_connections(config.admin_url))
            result = run_once(url, used, config.pgbench_seconds, config.pgbench_rows)
            results.append(
                PgbenchResult(
                    clients=clients,
                    clients_used=used,
                    tps=result.tps,
                    p50_ms=result.p50_ms,
                    p99_ms=result.p99_ms,
                    transactions=result.transactions,
                )
            )
    return results
