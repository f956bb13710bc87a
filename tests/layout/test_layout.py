"""The package layout keeps its promises: unambiguous imports, services apart."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.fixtures.wheels import build_wheel

ROOT = Path(__file__).resolve().parents[2]


def test_no_service_imports_another_and_the_kernel_imports_none() -> None:
    # import-linter reads the contracts from pyproject.toml.
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken" in result.stdout


@pytest.mark.slow
def test_the_wheel_holds_only_unambiguous_top_level_packages(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/", 1)[0] for name in archive.namelist()}
    packages = {t for t in tops if not t.endswith(".dist-info")}
    assert packages == {
        "specloom",
        "specloom_sessions",
        "specloom_context_design",
        "specloom_coding",
        "specloom_gateway",
        "specloom_web",
    }
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "specloom/v1/gateway_pb2.pyi" in names, "typed stubs ship in the wheel"
    for page in ("templates/base.html", "templates/fragments.html", "static/console.js"):
        assert f"specloom_web/{page}" in names, f"the console's {page} ships in the wheel"
    assert any(n.endswith("entry_points.txt") for n in names)
