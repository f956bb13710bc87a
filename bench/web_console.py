"""The web console: a sessions list page at 10,000 sessions, and the memory of live pages.

Targets (issue 15): a list page renders in under 200 ms of server time with
10,000 sessions stored; 100 open live pages cost under 50 MB in the server.

It runs the real ``specloom up`` executable (every service and the console in
one process; SQLite unless ``--database-url``), starts the sessions through
the public API (manual mode, so they stay active with no executor), and then:

- times list pages over HTTP: the server's own time from the page's
  ``Server-Timing`` header (the handler: its gateway calls and the template),
  and the wall time this client saw;
- opens live pages as a browser does (the page, then its event stream, kept
  open and read) and reads the server process's resident memory before, once
  they are open, and after every session on them changed once.

    python -m bench.web_console [--sessions 10000] [--pages 100] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.docs import machine_line, write_section
from specloom.client import Client

HEADING = "## Web console: list pages at 10,000 sessions, memory of live pages"
SPECLOOM = str(Path(sys.executable).parent / "specloom")
TYPES = ("ContextDesign", "ContextComponentsDesign", "ContextTesting", "ContextCoding")
USERS = 8


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    address: str
    web: str
    admin: str


def start(root: Path, database_url: str | None) -> Server:
    ready = root / "ready"
    address = f"127.0.0.1:{_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")}
    if database_url:
        env["SPECLOOM_DATABASE_URL"] = database_url
    process = subprocess.Popen(
        [
            SPECLOOM,
            "up",
            "--listen",
            address,
            "--web-listen",
            f"127.0.0.1:{_port()}",
            "--data-dir",
            str(root / "data"),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 60
    while not ready.exists() or "web " not in ready.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("specloom up did not start")
        time.sleep(0.05)
    web = ready.read_text().split("web ", 1)[1].strip()
    admin = (root / "data" / "admin.token").read_text().strip()
    return Server(process, address, web, admin)


async def tokens(server: Server) -> list[str]:
    """One token per person (the list's ``started by`` varies), admin first."""
    from specloom.v1 import common_pb2 as pb

    found = [server.admin]
    async with Client(server.address, server.admin) as client:
        for n in range(1, USERS):
            scope = pb.Scope(account_id="local", project_id="default", user_id=f"person{n}")
            found.append((await client.create_token(scope, name=f"bench {n}")).token)
    return found


async def fill(server: Server, count: int, people: Sequence[str]) -> list[str]:
    """``count`` sessions started through the gateway, 32 at a time; their ids."""
    ids: list[str] = []
    clients = [Client(server.address, token) for token in people]
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            client = clients[n % len(clients)]
            started = await client.start_session(
                TYPES[n % len(TYPES)],
                {"context": f"Context{n}", "profile": "python"},
                mode="manual",
            )
            ids.append(started.session.id)

    await asyncio.gather(*(worker() for _ in range(32)))
    for client in clients:
        await client.close()
    return ids


@dataclass(frozen=True)
class Timing:
    label: str
    server_ms: list[float]
    wall_ms: list[float]


def _server_ms(response: httpx.Response) -> float:
    found = re.search(r"dur=([0-9.]+)", response.headers.get("server-timing", ""))
    if response.status_code != 200 or found is None:
        raise RuntimeError(f"{response.request.url}: {response.status_code}")
    return float(found[1])


async def time_pages(server: Server, repeat: int, count: int) -> list[Timing]:
    """The list's first page, a later page, and filtered pages, ``repeat`` times each."""
    cookies = {"specloom_token": server.admin}
    results: list[Timing] = []
    async with httpx.AsyncClient(base_url=server.web, cookies=cookies, timeout=30) as web:
        first = await web.get("/sessions?show=all")
        older = re.search(r'href="(/sessions\?[^"]*page=[^"]+)"', first.text)
        assert older is not None, "a second page"
        later = older[1].replace("&amp;", "&")
        cases = [
            (f"first page, all {count:,}", "/sessions?show=all"),
            ("second page (cursor)", later),
            (
                "status = active, type = ContextCoding",
                "/sessions?status=active&type=ContextCoding&show=all",
            ),
            ("person = person3", "/sessions?user=person3&show=all"),
        ]
        for label, path in cases:
            server_ms, wall_ms = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                response = await web.get(path)
                wall_ms.append((time.perf_counter() - started) * 1000)
                server_ms.append(_server_ms(response))
            results.append(Timing(label, server_ms, wall_ms))
    return results


async def _hold(
    web: httpx.AsyncClient,
    page: str,
    live: str,
    opened: asyncio.Event,
    events: list[int],
    index: int,
) -> None:
    await web.get(page)
    async with web.stream("GET", live) as response:
        opened.set()
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                events[index] += 1


async def live_memory(server: Server, session_ids: Sequence[str], pages: int) -> dict[str, float]:
    """RSS with no live page, with ``pages`` open, and after each of their sessions changed."""
    pid = server.process.pid
    cookies = {"specloom_token": server.admin}
    limits = httpx.Limits(max_connections=pages + 10, max_keepalive_connections=pages + 10)
    figures: dict[str, float] = {}
    await asyncio.sleep(3)
    figures["before"] = rss_mb(pid)
    events = [0] * pages
    forever = httpx.Timeout(None)  # live streams stay open for the whole measurement
    async with httpx.AsyncClient(
        base_url=server.web, cookies=cookies, timeout=forever, limits=limits
    ) as web:
        opened = [asyncio.Event() for _ in range(pages)]
        holders = []
        watched = list(session_ids[:pages])
        for i in range(pages):
            if i % 2 == 0:  # half session pages, each its own session (its own watch)
                sid = watched[i]
                page, live = f"/sessions/{sid}", f"/live/sessions/{sid}"
            else:  # half list pages, with ten different filters among them
                query = f"?type={TYPES[i % len(TYPES)]}&user=person{i % USERS}&show=all"
                page, live = f"/sessions{query}", f"/live/sessions{query}"
            holders.append(asyncio.create_task(_hold(web, page, live, opened[i], events, i)))
        await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 120)
        await asyncio.sleep(5)
        figures["open"] = rss_mb(pid)
        figures["streams"] = float(pages)
        async with Client(server.address, server.admin) as client:
            for i in range(0, pages, 2):
                await client.pause(watched[i], "bench: a change for every open session page")
        await asyncio.sleep(8)
        figures["after_changes"] = rss_mb(pid)
        figures["events"] = float(sum(events))
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
    return figures


def render(
    count: int, repeat: int, timings: list[Timing], memory: dict[str, float], database: str
) -> str:
    rows = [
        "| list page | server time p50 | p95 | max | wall time p50 (client) |",
        "|---|---:|---:|---:|---:|",
    ]
    worst = 0.0
    for t in timings:
        ordered = sorted(t.server_ms)
        p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
        worst = max(worst, p95)
        rows.append(
            f"| {t.label} | {statistics.median(t.server_ms):.1f} ms | {p95:.1f} ms "
            f"| {max(t.server_ms):.1f} ms | {statistics.median(t.wall_ms):.1f} ms |"
        )
    cost = max(memory["open"], memory["after_changes"]) - memory["before"]
    pages = int(memory["streams"])
    return "\n".join(
        [
            f"`python -m bench.web_console`: the real `specloom up` ({database}) with {count:,}"
            " sessions started through the gateway (four types, eight people). Server time is the"
            " page handler's own (`Server-Timing`: its gateway calls — WhoAmI, ListSessions,"
            " DescribeWorkflows, cached — and the template),"
            f" {repeat} requests per row; each page shows 50 sessions. The client's wall time adds"
            " this Python client's own overhead (curl sees the server time plus about 3 ms).",
            "",
            machine_line(),
            "",
            *rows,
            "",
            f"Live pages: {pages} open at once — half session pages (each its own session, so its"
            " own WatchSession stream through the gateway), half sessions lists under ten different"
            " filters — each opened as a browser does (the page, then its event stream, read"
            " continuously). Resident memory of the `specloom up` process (every service and the"
            " console):",
            "",
            "| | RSS |",
            "|---|---:|",
            f"| no live page | {memory['before']:.0f} MB |",
            f"| {pages} live pages open | {memory['open']:.0f} MB |",
            f"| after every watched session changed once ({memory['events']:.0f} events sent) "
            f"| {memory['after_changes']:.0f} MB |",
            "",
            "Targets: a list page under 200 ms of server time"
            f" ({'met' if worst < 200 else 'MISSED'}: worst p95 {worst:.1f} ms);"
            f" {pages} live pages under 50 MB "
            f"({'met' if cost < 50 else 'MISSED'}: {cost:.1f} MB).",
        ]
    )


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="specloom-web-bench-") as root:
        server = start(Path(root), args.database_url)
        try:
            people = await tokens(server)
            began = time.perf_counter()
            ids = await fill(server, args.sessions, people)
            print(
                f"started {len(ids)} sessions in {time.perf_counter() - began:.1f} s",
                file=sys.stderr,
            )
            timings = await time_pages(server, args.repeat, len(ids))
            memory = await live_memory(server, ids, args.pages)
        finally:
            server.process.send_signal(signal.SIGTERM)
            server.process.wait(60)
    database = "PostgreSQL" if args.database_url else "SQLite"
    return render(args.sessions, args.repeat, timings, memory, database)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=100, help="live pages held open")
    parser.add_argument("--repeat", type=int, default=50, help="requests per list page")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in a temp dir)")
    parser.add_argument("--write-docs", action="store_true", help="update docs/performance.md")
    args = parser.parse_args()
    section = asyncio.run(run(args))
    print(HEADING + "\n\n" + section)
    if args.write_docs:
        write_section(HEADING, section)


if __name__ == "__main__":
    main()
