"""``specloom up``: time to serving, and resident memory once idle.

Targets (issue 6): starts in under 2 seconds, idles under 150 MB resident.
Each run starts the real ``specloom`` executable as a person would, with its
own data directory, and measures from process start until the gRPC health
service answers SERVING (the ready file is written after the server starts;
the health check proves it answers). Memory is the process's resident set
(VmRSS) after it has sat idle, and its peak (VmHWM).

    python -m bench.up_startup [--runs 5] [--idle 10] [--write-docs]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.docs import machine_line, write_section

HEADING = "## specloom up: start time and idle memory"
SPECLOOM = str(Path(sys.executable).parent / "specloom")


@dataclass(frozen=True)
class Run:
    """One start of ``specloom up``."""

    fresh: bool
    """A new data directory (migrations and the first token included)."""
    seconds: float
    rss_mb: float
    peak_mb: float


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=0.5
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _memory(pid: int) -> tuple[float, float]:
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def start_once(data_dir: Path, idle: float, fresh: bool) -> Run:
    """Start ``specloom up`` on ``data_dir``, time it, sample memory, stop it."""
    address = f"127.0.0.1:{_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    started = time.perf_counter()
    process = subprocess.Popen(
        [SPECLOOM, "up", "--listen", address, "--data-dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        while not _serving(address):
            if process.poll() is not None:
                raise RuntimeError(f"specloom up exited with {process.returncode}")
            if time.perf_counter() - started > 30:
                raise RuntimeError("specloom up did not serve within 30 s")
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        time.sleep(idle)
        rss, peak = _memory(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return Run(fresh=fresh, seconds=seconds, rss_mb=rss, peak_mb=peak)


def measure(runs: int, idle: float) -> list[Run]:
    """One fresh start, then ``runs`` starts on the existing data directory."""
    with tempfile.TemporaryDirectory(prefix="specloom-up-bench-") as root:
        data = Path(root) / "data"
        found = [start_once(data, idle, fresh=True)]
        found += [start_once(data, idle, fresh=False) for _ in range(runs)]
    return found


def render(found: list[Run], idle: float) -> str:
    """The markdown section."""
    fresh = [r for r in found if r.fresh]
    warm = [r for r in found if not r.fresh]
    rows = [
        "| start | runs | time to SERVING (median) | max | idle RSS (median) | peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, group in (("fresh data directory", fresh), ("existing data directory", warm)):
        if group:
            rows.append(
                f"| {label} | {len(group)} | {statistics.median(r.seconds for r in group):.2f} s "
                f"| {max(r.seconds for r in group):.2f} s "
                f"| {statistics.median(r.rss_mb for r in group):.0f} MB "
                f"| {max(r.peak_mb for r in group):.0f} MB |"
            )
    worst_time = max(r.seconds for r in found)
    worst_rss = max(r.rss_mb for r in found)
    verdict = (
        f"Targets: start under 2 s ({'met' if worst_time < 2 else 'MISSED'}: worst "
        f"{worst_time:.2f} s), idle under 150 MB ({'met' if worst_rss < 150 else 'MISSED'}: "
        f"worst {worst_rss:.0f} MB)."
    )
    return "\n".join(
        [
            "`python -m bench.up_startup`: the real `specloom up` executable (every service in one"
            " process, SQLite), timed from process start until the standard health check answers"
            f" SERVING; memory is VmRSS after {idle:.0f} s idle. A fresh data directory includes"
            " the migrations and issuing the first admin token.",
            "",
            machine_line(),
            "",
            *rows,
            "",
            verdict,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="starts on an existing data directory")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before sampling")
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    found = measure(args.runs, args.idle)
    section = render(found, args.idle)
    print(HEADING + "\n\n" + section)
    if args.write_docs:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
