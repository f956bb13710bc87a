"""``python -m bench`` (``make bench``): measure, print, write the report.

Examples::

    python -m bench                         # everything, full sizes
    python -m bench --quick --only pgbench,peers
    python -m bench --only specloom --profile
    python -m bench --render bench/out/results.json   # re-render, no measuring
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from pathlib import Path

from bench.config import REPO, BenchConfig
from bench.results import Results
from bench.runner import ALIASES, DEFAULT_PARTS, PARTS, run, select


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="specloom against the pgbench ceiling and its peers (DBOS, LangGraph).",
    )
    parser.add_argument(
        "--only",
        help=f"comma-separated parts: {', '.join(PARTS)}; aliases: {', '.join(ALIASES)} "
        f"(default: {', '.join(DEFAULT_PARTS)})",
    )
    parser.add_argument("--skip", help="comma-separated parts to leave out")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the specloom processes at 64 sessions"
    )
    parser.add_argument("--concurrency", type=_levels, help="levels, e.g. 1,16,64,256")
    parser.add_argument("--out", type=Path, help="raw results directory (default bench/out)")
    parser.add_argument(
        "--docs", type=Path, default=REPO / "docs", help="where performance.md and the plot go"
    )
    parser.add_argument("--no-docs", action="store_true", help="print only; write no docs")
    parser.add_argument("--render", type=Path, help="re-render a saved results JSON and exit")
    parser.add_argument("--strict", action="store_true", help="stop at the first failing part")
    return parser.parse_args(argv)


def publish(results: Results, docs: Path | None) -> str:
    """Print the section; write it, and the plot, under ``docs`` unless None."""
    from bench.docs import replace_section
    from bench.plot import plot
    from bench.report import render

    section = render(results)
    sys.stdout.write("\n" + section)
    if docs is not None:
        plot(results, docs / "bench-concurrency.png")
        replace_section(section, docs / "performance.md")
        sys.stdout.write(
            f"\nwrote {docs / 'performance.md'} and {docs / 'bench-concurrency.png'}\n"
        )
    return section


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    docs = None if args.no_docs else args.docs
    if args.render:
        publish(Results.load(args.render), docs)
        return 0
    config = BenchConfig.quick_config() if args.quick else BenchConfig()
    if args.concurrency:
        config = replace(config, concurrency=args.concurrency)
    if args.out:
        config = replace(config, out_dir=args.out)
    parts = select(args.only, args.skip)
    results = asyncio.run(run(config, parts, profile=args.profile, strict=args.strict))
    saved = results.save(config.out_dir)
    publish(results, docs)
    sys.stdout.write(f"raw results: {saved}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
