"""py-spy flame graphs of running processes, and where their time went.

``py-spy record --pid`` attaches with ptrace. It works in this sandbox
(root, no Yama restriction) in the default blocking mode; where ptrace is
refused the recorder reports the error instead of a profile. Attaching by
pid lets the harness profile the service processes it started without
changing how they start.

The SVG is for people. For the report, :func:`hot_frames` reads the same SVG
back (each frame is a ``<rect>`` with ``fg:x``/``fg:w`` sample counts and a
``y`` level) and derives self time per function and the share per package.
"""

from __future__ import annotations

import html
import itertools
import re
import shutil
import signal
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FRAME = re.compile(
    r'<g><title>(?P<title>[^<]*)</title><rect [^>]*?y="(?P<y>[\d.]+)"[^>]*?'
    r'fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
_SAMPLES = re.compile(r" \([\d,]+ samples?, [\d.]+%\)$")
_LINE = re.compile(r":\d+\)$")
ENTRY = re.compile(r"\((specloom/cli/|bench/serve\.py)")
OURS = ("specloom", "bench")
"""Packages whose functions get inclusive totals (a recursive function would
count twice; none of ours recurses on the request path)."""


def py_spy() -> str:
    """The py-spy binary next to this interpreter, or on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    if local.exists():
        return str(local)
    found = shutil.which("py-spy")
    if not found:
        raise FileNotFoundError("py-spy is not installed (pip install py-spy)")
    return found


@dataclass
class Recording:
    """A py-spy process sampling one target."""

    name: str
    pid: int
    svg: Path
    process: subprocess.Popen[bytes]
    error: str = ""

    def wait(self, timeout: float) -> None:
        """Wait for the recording to finish; keep py-spy's complaint if it failed."""
        try:
            _, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        if self.process.returncode != 0 or not self.svg.exists():
            self.error = err.decode(errors="replace").strip()[-500:] or "py-spy failed"

    def stop(self, timeout: float = 60.0) -> None:
        """End an open-ended recording (py-spy writes its output on SIGINT)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        self.wait(timeout)


def start_recording(name: str, pid: int, out_dir: Path, seconds: float | None) -> Recording:
    """Start sampling ``pid`` into ``out_dir/profile-<name>.svg``.

    For ``seconds``, or with None until :meth:`Recording.stop`.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    svg = out_dir / f"profile-{name}.svg"
    svg.unlink(missing_ok=True)
    argv = [
        py_spy(),
        "record",
        "--pid",
        str(pid),
        *(() if seconds is None else ("--duration", str(max(1, round(seconds))))),
        "--rate",
        "200",
        "--output",
        str(svg),
        "--format",
        "flamegraph",
        # Only samples holding the GIL: each service is one interpreter, so
        # its throughput is bounded by GIL time, and the idle gRPC poller
        # threads would otherwise fill the graph with epoll waits.
        "--gil",
    ]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Recording(name=name, pid=pid, svg=svg, process=process)


@dataclass
class Frame:
    """One rectangle of a flame graph."""

    title: str
    x: int
    w: int
    y: float


@dataclass
class Hotspots:
    """Where one process spent its sampled time."""

    name: str
    samples: int
    self_by_function: list[tuple[str, float]] = field(default_factory=list)
    """(function, share of samples) with the most self time, descending."""
    by_package: list[tuple[str, float]] = field(default_factory=list)
    """(top-level package, share of self samples), descending."""
    ours_inclusive: list[tuple[str, float]] = field(default_factory=list)
    """(specloom function, share of samples inside it, callees included):
    which of our calls the time goes to (e.g. one servicer method)."""

    def to_json(self) -> dict[str, Any]:
        """Plain form."""
        return {
            "name": self.name,
            "samples": self.samples,
            "self_by_function": self.self_by_function,
            "by_package": self.by_package,
            "ours_inclusive": self.ours_inclusive,
        }


def _frames(svg: Path) -> list[Frame]:
    text = svg.read_text(errors="replace")
    return [
        Frame(html.unescape(m["title"]), int(m["x"]), int(m["w"]), float(m["y"]))
        for m in _FRAME.finditer(text)
    ]


def _function(title: str) -> str:
    # "handle (grpc/aio/_server.py:123) (17 samples, 3.2%)" -> "handle (grpc/aio/_server.py)"
    return _LINE.sub(")", _SAMPLES.sub("", title))


def _package(function: str) -> str:
    match = re.search(r"\(([^)]*)\)$", function)
    if not match:
        return function
    path = match.group(1)
    if path.startswith("<"):
        return path
    head = path.split("/", 1)[0]
    return head.removesuffix(".py")


def hot_frames(name: str, svg: Path, top: int = 12) -> Hotspots:
    """Self time per function and per package, read back from a py-spy SVG."""
    frames = _frames(svg)
    if not frames:
        return Hotspots(name=name, samples=0)
    total = max(f.w for f in frames)
    levels: dict[float, list[Frame]] = defaultdict(list)
    for frame in frames:
        levels[frame.y].append(frame)
    ys = sorted(levels)
    step = min((b - a for a, b in itertools.pairwise(ys)), default=16.0)
    self_time: dict[str, float] = defaultdict(float)
    for frame in frames:
        if frame.title.startswith("all "):
            continue
        # Children sit one level further from the root, inside the parent's x range.
        below = levels.get(frame.y + step, [])
        inner = sum(c.w for c in below if frame.x <= c.x < frame.x + frame.w)
        self_time[_function(frame.title)] += max(0, frame.w - inner)
    packages: dict[str, float] = defaultdict(float)
    for function, samples in self_time.items():
        packages[_package(function)] += samples
    inclusive: dict[str, float] = defaultdict(float)
    for frame in frames:
        function = _function(frame.title)
        if _package(function).startswith(OURS):
            inclusive[function] += frame.w
    # The process's entry frames (module, CLI, main) hold nearly every
    # sample; they say nothing about where the time goes.
    inclusive = {
        fn: w
        for fn, w in inclusive.items()
        if w < 0.98 * total and not fn.startswith("<module>") and not ENTRY.search(fn)
    }
    ranked = sorted(
        ((fn, w) for fn, w in self_time.items() if w > 0), key=lambda kv: kv[1], reverse=True
    )[:top]
    ranked_packages = sorted(packages.items(), key=lambda kv: kv[1], reverse=True)[:top]
    return Hotspots(
        name=name,
        samples=total,
        self_by_function=[(fn, s / total) for fn, s in ranked],
        by_package=[(pkg, s / total) for pkg, s in ranked_packages],
        ours_inclusive=[
            (fn, s / total)
            for fn, s in sorted(inclusive.items(), key=lambda kv: kv[1], reverse=True)[:top]
        ],
    )
