"""The image is built from locked, hashed dependencies (deploy/*.lock).

Checked here without a Docker engine: the locks pin every dependency of
pyproject.toml with hashes, the Dockerfile installs from them and nothing
else, and — what the builder stage does, step by step — they install into a
fresh virtualenv with ``--require-hashes`` and the project's wheel, built by
the locked build backend, installs on top without resolving anything.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.dockerfile import DOCKERFILE, stages
from tests.deploy.manifests import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RUNTIME_LOCK = ROOT / "deploy" / "requirements.lock"
BUILD_LOCK = ROOT / "deploy" / "build-requirements.lock"


@dataclass(frozen=True)
class Pin:
    version: Version
    hashes: tuple[str, ...]


def pins(lock: Path) -> dict[str, Pin]:
    """``name -> Pin`` of a pip-compile lock (continuation lines joined)."""
    text = lock.read_text().replace("\\\n", " ")
    found: dict[str, Pin] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)((?:\s+--hash=sha256:[0-9a-f]{64})*)", line)
        assert match, f"{lock.name}: not a pinned, hashed line: {line[:120]}"
        hashes = tuple(re.findall(r"sha256:([0-9a-f]{64})", match.group(3)))
        found[canonicalize_name(match.group(1))] = Pin(Version(match.group(2)), hashes)
    return found


def _covers(lock: Path, requirements: list[str]) -> None:
    locked = pins(lock)
    assert locked, f"{lock.name} is empty"
    for each in locked.values():
        assert each.hashes, f"{lock.name}: a pin without hashes"
    for text in requirements:
        requirement = Requirement(text)
        pin = locked.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not in {lock.name}: run `make lock`"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{lock.name} pins {requirement.name}=={pin.version}, outside {requirement.specifier}"
        )


def test_the_locks_pin_every_dependency_with_hashes() -> None:
    _covers(RUNTIME_LOCK, PYPROJECT["project"]["dependencies"])
    _covers(BUILD_LOCK, PYPROJECT["build-system"]["requires"])
    # Only what runs: no test tool, no build backend in the image's venv.
    runtime = pins(RUNTIME_LOCK)
    for tool in ("pytest", "hatchling", "mypy", "pip-tools"):
        assert canonicalize_name(tool) not in runtime, tool


def test_the_image_installs_only_from_the_locks() -> None:
    builder = stages(DOCKERFILE.read_text())[0]
    commands = [part.strip() for run in builder.all("RUN") for part in run.arguments.split("&&")]
    installs = [c for c in commands if re.search(r"\bpip install\b", c)]
    assert installs, "the builder installs nothing?"
    for command in installs:
        from_lock = "--require-hashes -r deploy/" in command
        own_wheel = "--no-deps" in command and "--no-index" in command
        assert from_lock or own_wheel, (
            f"an install that neither uses a lock nor stays offline: {command}"
        )
    locks = [c for c in installs if "--require-hashes" in c]
    assert {c.rsplit(" ", 1)[-1] for c in locks} == {
        "deploy/requirements.lock",
        "deploy/build-requirements.lock",
    }
    copied = " ".join(copy.arguments for copy in builder.all("COPY"))
    assert "deploy/requirements.lock" in copied
    assert "deploy/build-requirements.lock" in copied
    # The wheel is built by the locked backend, not by whatever an isolated build fetches.
    assert any("pip wheel" in c and "--no-build-isolation" in c for c in commands)


def _run(*argv: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, cwd=cwd, timeout=900
    )
    assert done.returncode == 0, (
        f"{' '.join(map(str, argv))}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_locks_install_in_a_fresh_venv_as_the_builder_stage_does(tmp_path: Path) -> None:
    runtime, build = tmp_path / "specloom", tmp_path / "build"
    for venv in (runtime, build):
        _run(sys.executable, "-m", "venv", venv)
    _run(runtime / "bin" / "pip", "install", "-q", "--require-hashes", "-r", RUNTIME_LOCK)
    _run(build / "bin" / "pip", "install", "-q", "--require-hashes", "-r", BUILD_LOCK)
    wheels = tmp_path / "wheels"
    _run(
        build / "bin" / "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        wheels,
        ROOT,
    )
    (wheel,) = wheels.glob("specloom-*.whl")
    _run(runtime / "bin" / "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    _run(runtime / "bin" / "pip", "check")
    # Exactly the lock, nothing more (the project itself, and what `venv`
    # seeds every environment with, aside).
    seeded = {"pip", "setuptools", "specloom"}
    frozen = _run(runtime / "bin" / "pip", "freeze", "--all")
    installed = {
        canonicalize_name(name): Version(version)
        for name, version in (line.split("==") for line in frozen.split() if "==" in line)
        if canonicalize_name(name) not in seeded
    }
    expected = {name: pin.version for name, pin in pins(RUNTIME_LOCK).items() if name not in seeded}
    assert installed == expected
    assert "serve" in _run(runtime / "bin" / "specloom", "--help")
