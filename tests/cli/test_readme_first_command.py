"""The README's first command, run the way a new user would: fresh copy, fresh venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def first_command() -> str:
    """The first line of the first code block under "## Two commands"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Two commands", 1)[1]
    block = section.split("```", 2)[1]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    return lines[0].split("#", 1)[0].strip()


def copy_project(target: Path) -> None:
    """The working tree as a fresh clone would have it (tracked and new files, nothing ignored)."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True,
        check=True,
    )
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            destination = target / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


@pytest.mark.slow
def test_the_readme_first_command_runs_the_demo_to_the_end(tmp_path: Path) -> None:
    command = first_command()
    assert command == "make demo", "the README's first command changed: update this test"
    project = tmp_path / "specloom"
    copy_project(project)
    assert not (project / ".venv").exists()
    # A new user's shell: no virtualenv active, none of our settings.
    venv_bin = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin")
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SPECLOOM_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["PATH"] = path
    env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert (project / ".venv" / "bin" / "specloom").exists(), "it installed into a fresh venv"
    for session_type in ("ContextDesign", "ContextComponentsDesign", "ContextCoding"):
        assert re.search(rf"session:\s+{session_type}\s+complete", output), output[-4000:]
    assert "REPLAYED from a recorded script" in output
    assert re.search(r"console:\s+http://127\.0\.0\.1:\d+", output), "it names its web console"
    # Tokens and cost per agent step and per session: zero, and it says why.
    flat = " ".join(output.split())  # the terminal wraps long lines
    assert "GenerateImplementation (0/0 tok $0.0000)" in flat
    assert re.search(r"usage, with children: \d+ agent steps, 0 input \+ 0 output tokens", flat)
    assert "no model ran" in flat
    demo_project = Path(re.search(r"project:\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    branch = re.search(r"branch:\s+(\S+)", output).group(1)  # type: ignore[union-attr]
    files = subprocess.run(
        ["git", "-C", str(demo_project), "show", "--name-only", "--format=", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(files) == [
        "src/inventory/pricing.py",
        "src/inventory/reorder.py",
        "src/inventory/stock.py",
    ]
    pushed = subprocess.run(
        ["git", "-C", str(demo_project), "ls-remote", "origin", branch],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert pushed.strip(), "the branch was pushed to origin"
