"""Host the benchmark orchestrator, alone or with every product service.

``python -m bench.serve bench`` serves only :data:`bench.workflows.SERVICE`
(the split topology: its own process, like a product orchestrator pod).
``python -m bench.serve --up`` is ``specloom up``'s composition — every
installed service plus the bench workflows in one process on one port,
through ``start_host(..., self_hosted=True)`` — so the benchmark workflows
never ship in a product service. Settings come from ``SPECLOOM_*``
variables, as for ``specloom serve``.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bench.workflows import SERVICE
from specloom.host import HostSettings, ServiceSpec, discover
from specloom.process import start_host
from specloom.rpc.server import stop_signals

PRODUCT = ("sessions", "context_design", "coding", "gateway")


def specs(up: bool) -> list[ServiceSpec]:
    """The bench orchestrator, and with ``up`` every product service first."""
    if not up:
        return [SERVICE]
    found = discover()
    missing = [name for name in PRODUCT if name not in found]
    if missing:
        raise SystemExit(f"services not installed: {', '.join(missing)}")
    return [found[name] for name in PRODUCT] + [SERVICE]


async def serve(up: bool, ready_file: Path | None) -> None:
    """Start, say where (ready file), run until SIGTERM/SIGINT."""
    settings = HostSettings()
    if up:
        # `specloom up` migrates before serving; so does its bench twin.
        await discover()["sessions"].admin["migrate"](settings)
    host = await start_host(specs(up), settings, self_hosted=up)
    if ready_file is not None:
        ready_file.write_text(host.address + "\n")  # noqa: ASYNC240 - once, at start
    await stop_signals().wait()
    await host.stop(1.0)


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", nargs="?", default="bench", choices=["bench"])
    parser.add_argument("--up", action="store_true", help="every service plus bench, one process")
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.up, args.ready_file))


if __name__ == "__main__":
    main()
