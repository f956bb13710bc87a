"""Writing benchmark figures into docs/performance.md, one section per benchmark.

Each benchmark owns one ``## `` section, found by its heading; rewriting it
leaves every other section as it was.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PERFORMANCE = REPO / "docs" / "performance.md"


def write_section(heading: str, body: str, doc: Path = PERFORMANCE) -> None:
    """Replace (or append) the section that starts with ``heading``."""
    replace_section(f"{heading}\n\n{body.strip()}\n", doc)


def replace_section(section: str, doc: Path = PERFORMANCE) -> None:
    """Replace (or append) the section whose heading is ``section``'s first line."""
    heading = section.split("\n", 1)[0].rstrip()
    if not heading.startswith("## "):
        raise ValueError("a section starts with its '## ' heading")
    text = doc.read_text() if doc.exists() else "# Performance\n"
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        doc.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    tail = "".join(lines[end:])
    doc.write_text("".join(lines[:start]) + section + ("\n" + tail if tail else ""))


def cpu_model() -> str:
    """The CPU's model name."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def commit() -> str:
    """The short git commit measured (with +dirty when the tree has changes)."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


def machine_line() -> str:
    """One line: CPU, cores, memory, kernel, Python, commit, date."""
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"Measured on {cpu_model()} ({os.cpu_count()} cores{memory}), Linux "
        f"{platform.release()}, Python {platform.python_version()}, commit {commit()}, "
        f"{dt.date.today().isoformat()}."
    )
