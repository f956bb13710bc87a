"""Test-only orchestrators as processes of their own.

``python -m tests.reliability.orchestrator toy`` serves the toy workflows
(:mod:`tests.orchestration.toy`: ``Build``, ``Tree``, ``Leaf``) and ``bench``
the benchmark's no-op workflows (:mod:`bench.workflows`), each exactly as
``specloom serve`` hosts a product orchestrator: settings from
``SPECLOOM_*`` variables, a graceful stop on SIGTERM. Neither is ever in a
product service, so they cannot be started through ``specloom serve``.
"""

from __future__ import annotations

import argparse
import asyncio

from bench.workflows import SERVICE as BENCH
from specloom.host import HostSettings, ServiceSpec
from specloom.logs import configure
from specloom.orchestration import orchestrator_service
from specloom.process import start_host
from specloom.rpc.server import stop_signals
from tests.orchestration.toy import REGISTRY as TOY_REGISTRY

SPECS: dict[str, ServiceSpec] = {
    "toy": orchestrator_service("toy", "toy workflows (tests only)", TOY_REGISTRY),
    "bench": BENCH,
}


async def serve(name: str) -> None:
    """Serve ``name`` until SIGTERM/SIGINT."""
    settings = HostSettings()
    configure(settings.log_format, settings.log_level)
    host = await start_host([SPECS[name]], settings)
    await stop_signals().wait()
    await host.stop()


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("name", choices=sorted(SPECS))
    asyncio.run(serve(parser.parse_args().name))


if __name__ == "__main__":
    main()
