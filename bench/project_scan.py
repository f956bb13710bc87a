"""Scanning a 500-component workspace for the project map: ``python -m bench.project_scan``.

Issue 18 asks that the scan behind ``specloom status`` cost little on a
repository of 500 components, and that it be incremental.

- **Workspace.** A python-profile project in a git repository: contexts of
  10 to 25 components (sizes cycle 10, 15, 20, 25, the last context takes
  the rest), each context a valid design listing its components (a fifth
  of them schemas, a chain of dependencies inside the context), each
  component a valid design, a test file (schemas have none) and code.
  Every file is dated a minute back, as the files of a checkout are when
  someone runs ``specloom status``.
- **Cold.** The scan with no cache: every file read, every design parsed and
  validated, the cache written.
- **One file changed.** After a cold scan, one code file is rewritten (a
  different one each run) and dated ten seconds back; the scan reads the
  cache, stats every file, reads and hashes that one, writes the cache.
- Each is run ``--runs`` times; mean and p50 of the wall time, with
  ``files_seen`` and ``files_read`` of the last run.

``--quick`` builds 40 components (a smoke test: the figures mean nothing).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.measure import percentile
from specloom.profiles import get_profile
from specloom.projectmap import next_sessions, project_map, scan_checkout
from specloom.v1 import projectmap_pb2 as pb
from specloom.v1 import sessions_pb2 as spb

SIZES = (10, 15, 20, 25)
"""Components per context, cycled."""

PROFILE = get_profile("python")


@dataclass(frozen=True)
class Workspace:
    """A generated workspace."""

    root: Path
    components: int
    contexts: int
    code_files: tuple[str, ...]
    """Code files, the ones a run changes."""


@dataclass(frozen=True)
class Figures:
    """One kind of scan, run several times."""

    label: str
    runs_ms: tuple[float, ...]
    files_seen: int
    files_read: int

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.runs_ms)

    @property
    def p50_ms(self) -> float:
        return percentile(self.runs_ms, 50)


def context_sizes(components: int) -> list[int]:
    """Context sizes cycling :data:`SIZES` that add up to ``components``."""
    sizes: list[int] = []
    left = components
    while left > 0:
        size = SIZES[len(sizes) % len(SIZES)]
        if left - size < SIZES[0]:
            size = left  # the last context takes the rest (at most 10 + 24)
        sizes.append(size)
        left -= size
    return sizes


def _context_design(name: str, parts: Sequence[tuple[str, str, str]]) -> str:
    blocks = []
    for module, kind, depends in parts:
        row = f"| dependencies | {depends} |\n" if depends else ""
        blocks.append(
            f"### {module}\n\n| field | value |\n|---|---|\n| type | {kind} |\n{row}\n"
            f"Keeps {module} for the {name} context.\n"
        )
    return (
        f"# {name}\n\n## Purpose\nThe {name} part of the application.\n\n"
        f"## Entity Ownership\n- {name} records\n\n## Access Patterns\n- By id.\n\n"
        f"## Public API\n- `get(id)` returns a record.\n\n"
        f"## State Management Strategy\nIn memory.\n\n"
        f"## Execution Flow\n1. Look the record up.\n2. Return it.\n\n"
        f"## Dependencies\n- None\n\n## Components\n\n"
        + "\n".join(blocks)
        + "\n## Test Strategies\nUnit tests per component.\n\n"
        "## Test Assertions\n- a missing record is not found\n"
    )


def _component_design(module: str, kind: str) -> str:
    if kind == "schema":
        return (
            f"# {module}\n\n## Purpose\nThe record {module} holds.\n\n## Fields\n\n"
            "| Field | Type | Required | Description | Constraints |\n"
            "|---|---|---|---|---|\n| id | integer | yes | Identity | > 0 |\n\n"
            "## Test Assertions\n- an id below 1 is invalid\n"
        )
    return (
        f"# {module}\n\n## Purpose\nWhat {module} does.\n\n"
        "## Public API\n- `value()` returns 1.\n\n## Execution Flow\n1. Return 1.\n\n"
        "## Test Assertions\n- value is 1\n"
    )


def generate(root: Path, components: int) -> Workspace:
    """Write the workspace into a new git repository at ``root``."""
    root.mkdir(parents=True)
    files: dict[str, str] = {"README.md": "# generated\n"}
    code: list[str] = []
    sizes = context_sizes(components)
    for number, size in enumerate(sizes, start=1):
        name = f"area{number:02d}"
        parts = []
        for index in range(size):
            module = f"{name}.part{index:02d}"
            kind = "schema" if index % 5 == 4 else "module"
            depends = f"{name}.part{index - 1:02d}" if index % 3 == 2 else ""
            parts.append((module, kind, depends))
            layout = PROFILE.files(module)
            files[layout.design] = _component_design(module, kind)
            files[layout.code] = f"def value():\n    return {index}\n"
            code.append(layout.code)
            if kind != "schema":
                files[layout.test] = (
                    f"from {module} import value\n\n\ndef test_value():\n    assert value() >= 0\n"
                )
        files[PROFILE.design_path(name)] = _context_design(name, parts)
    for path, text in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", "-A")
    _git(
        root,
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.com",
        "commit",
        "-q",
        "-m",
        "generated",
    )
    _date_back(root, [root / p for p in files], seconds=60)
    return Workspace(root, components, len(sizes), tuple(code))


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def _date_back(root: Path, paths: Sequence[Path], seconds: int) -> None:
    then = time.time_ns() - seconds * 1_000_000_000
    for path in paths:
        os.utime(path, ns=(then, then))


def measure(workspace: Workspace, runs: int, cache: Path) -> tuple[Figures, Figures]:
    """Cold scans and scans after one file changed, ``runs`` of each."""
    cold_ms: list[float] = []
    seen = read = 0
    for _ in range(runs):
        cache.unlink(missing_ok=True)
        started = time.perf_counter()
        scan = scan_checkout(workspace.root, PROFILE, cache_path=cache)
        cold_ms.append((time.perf_counter() - started) * 1000)
        seen, read = scan.files_seen, scan.files_read
        if scan.problems:
            raise RuntimeError(f"the generated workspace has problems: {scan.problems[:3]}")
    if len(scan.components) != workspace.components + workspace.contexts:
        raise RuntimeError(f"scanned {len(scan.components)} components, expected more")
    cold = Figures("cold (no cache)", tuple(cold_ms), seen, read)
    warm_ms: list[float] = []
    for run in range(runs):
        path = workspace.root / workspace.code_files[run % len(workspace.code_files)]
        path.write_text(path.read_text() + f"# change {run}\n", encoding="utf-8")
        _date_back(workspace.root, [path], seconds=10)
        started = time.perf_counter()
        scan = scan_checkout(workspace.root, PROFILE, cache_path=cache)
        warm_ms.append((time.perf_counter() - started) * 1000)
        seen, read = scan.files_seen, scan.files_read
    warm = Figures("one file changed", tuple(warm_ms), seen, read)
    return cold, warm


def judge_and_plan(scan: pb.ProjectScan, runs: int) -> tuple[float, ...]:
    """What the gateway adds to a map read: judging every requirement and planning next."""
    facts = spb.FetchProjectFactsResponse(
        scanned=True,
        last_scan=scan,
        components=[spb.StoredComponent(facts=component) for component in scan.components],
    )
    took: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        judged = project_map("ws-000000000000", facts)
        next_sessions(judged, [], None, 0)
        took.append((time.perf_counter() - started) * 1000)
    return tuple(took)


def render(
    workspace: Workspace, figures: Sequence[Figures], cache_bytes: int, judged_ms: Sequence[float]
) -> str:
    """The figures as a markdown table."""
    lines = [
        f"{workspace.components} components in {workspace.contexts} contexts; "
        f"{len(figures[0].runs_ms)} runs each; cache {cache_bytes / 1024:.0f} KiB",
        "",
        "| scan | mean ms | p50 ms | files seen | files read |",
        "|---|---:|---:|---:|---:|",
    ]
    for item in figures:
        lines.append(
            f"| {item.label} | {item.mean_ms:.1f} | {item.p50_ms:.1f} | "
            f"{item.files_seen} | {item.files_read} |"
        )
    lines.append(
        f"| judge + plan of the recorded facts (the gateway's share of a map read) | "
        f"{statistics.fmean(judged_ms):.1f} | {percentile(judged_ms, 50):.1f} | — | — |"
    )
    return "\n".join(lines)


def run(components: int, runs: int) -> tuple[Workspace, tuple[Figures, Figures], str]:
    """Generate, measure, render (in a temporary directory removed after)."""
    with tempfile.TemporaryDirectory(prefix="project-scan-") as scratch:
        workspace = generate(Path(scratch) / "workspace", components)
        cache = Path(scratch) / "scan-cache.json"
        figures = measure(workspace, runs, cache)
        judged = judge_and_plan(scan_checkout(workspace.root, PROFILE, cache_path=cache), runs)
        return workspace, figures, render(workspace, figures, cache.stat().st_size, judged)


def main(argv: list[str] | None = None) -> None:
    """Command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.project_scan", description=__doc__)
    parser.add_argument("--components", type=int, default=500, help="(default 500)")
    parser.add_argument("--runs", type=int, default=5, help="scans of each kind (default 5)")
    parser.add_argument("--quick", action="store_true", help="40 components, 3 runs: a smoke test")
    args = parser.parse_args(argv)
    components, runs = (40, 3) if args.quick else (args.components, args.runs)
    if components < SIZES[0] or runs < 1:
        parser.error(f"--components must be at least {SIZES[0]} and --runs at least 1")
    print(run(components, runs)[2])


if __name__ == "__main__":
    main()
