"""``specloom status`` and ``specloom next`` as a person runs them, on the demo's project.

Real everything: ``specloom up`` (SQLite), the CLI as a subprocess in the
project's repository, real git, real pytest runs for ``status --tests``.
The first test edits the line's worktree the way a person might and checks
the map follows at the next scan; the second (slow) starts a scripted
executor and runs ``specloom next --start`` until the project is done.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest

from specloom.cli import optional_count
from specloom.client import Client
from specloom.demo.run import create_project
from specloom.demo.sample import COMPONENTS
from specloom.demo.script import (
    CONTEXT_DESIGN_FIRST,
    IMPLEMENTATIONS,
    REVIEW,
    TEST_ASSERTIONS,
    component_design,
    entries,
)
from specloom.line import WORKTREE
from specloom.v1 import projectmap_pb2 as mpb
from specloom.workspaces import identify
from tests.cli.conftest import SPECLOOM, Stack, stop
from tests.gateway.conftest import make_repo
from tests.gateway.ledger import TWELVE, Ledger
from tests.gateway.ledger import module as ledger_module

PROJECT_FILE = 'profile = "python"\n\n[[contexts]]\nmodule = "inventory"\n'
CONTEXT_DESIGN = CONTEXT_DESIGN_FIRST.replace(
    "## Test Strategies\n", TEST_ASSERTIONS + "\n## Test Strategies\n"
)
SETTLED = ("met", "not_needed")


@pytest.fixture(autouse=True)
def _python_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # The profile's `python -m pytest` must be this interpreter (it has pytest),
    # without this environment's plugins.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    )
    return done.stdout.strip()


def _path(module: str, root: str, suffix: str) -> str:
    return f"{root}/{module.replace('.', '/')}{suffix}"


def demo_project(tmp_path: Path, *, finished: bool) -> Path:
    """The demo's project with a project file; ``finished``: designed, reviewed and coded."""
    project, origin = tmp_path / "inventory", tmp_path / "origin.git"
    create_project(project, origin)
    files = {"specloom.toml": PROJECT_FILE}
    if finished:
        files["docs/design/inventory.md"] = CONTEXT_DESIGN
        files["docs/review/inventory/context_design.md"] = REVIEW
        files["docs/review/inventory/component_designs.md"] = REVIEW
        for module in COMPONENTS:
            files[_path(module, "docs/design", ".md")] = component_design(module)
            files[_path(module, "src", ".py")] = IMPLEMENTATIONS[module]
        files["src/inventory/stock.py"] = files["src/inventory/stock.py"].replace(
            "        self._levels[sku] = self._levels.get(sku, 0) - quantity\n",
            "        on_hand = self._levels.get(sku, 0)\n"
            "        if quantity > on_hand:\n"
            "            raise OutOfStock(sku)\n"
            "        self._levels[sku] = on_hand - quantity\n",
        )
    for relative, text in files.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "the project file" + (" and the work" if finished else ""))
    return project


def run_json(stack: Stack, project: Path, *args: str, timeout: float = 120) -> Any:
    done = stack.run(*args, "--json", cwd=project, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def requirements(status: Any) -> dict[str, dict[str, str]]:
    """module → requirement key → state word, from ``status --json``."""
    return {
        c["facts"]["module"]: {r["key"]: r["state"] for r in c["requirements"]}
        for c in status["map"]["components"]
    }


def test_status_follows_what_a_person_does_in_the_line(stack: Stack, tmp_path: Path) -> None:
    project = demo_project(tmp_path, finished=True)
    main = git(project, "rev-parse", "main")

    first = run_json(stack, project, "status", "--tests")
    assert first["line"]["branch"] == "specloom/main"
    assert first["line"]["created"] is True
    assert first["line"]["tip"] == main
    line = project / WORKTREE
    assert first["line"]["worktree"] == str(line)
    assert first["scan"]["ran_tests"] is True
    states = requirements(first)
    assert list(states) == ["inventory", *COMPONENTS]
    for module, by_key in states.items():
        assert set(by_key.values()) <= set(SETTLED), (module, by_key)
    assert all(c["done"] for c in first["map"]["components"])

    # The person's checkout: still on main, nothing changed in it.
    assert git(project, "branch", "--show-current") == "main"
    assert git(project, "status", "--porcelain") == ""

    # A plain status keeps the test results while the files are the same, and
    # reads no file it read before (files written in the last second are read
    # again, so they are made older here first).
    past = time.time() - 60
    for path in line.rglob("*"):
        if path.is_file() and ".git" not in path.parts:
            os.utime(path, (past, past))
    plain = run_json(stack, project, "status")
    assert plain["scan"]["ran_tests"] is False
    assert requirements(plain)["inventory.pricing"]["tests_pass"] == "met"
    cached = run_json(stack, project, "status")
    assert cached["scan"]["files_read"] == 0
    assert cached["scan"]["files_seen"] == plain["scan"]["files_seen"] > 0

    # Delete a test file: its tests are missing.
    (line / "tests/inventory/pricing_test.py").unlink()
    gone = requirements(run_json(stack, project, "status"))
    assert gone["inventory.pricing"]["tests"] == "missing"
    git(line, "checkout", "--", "tests/inventory/pricing_test.py")

    # Break a design: the design requirement fails, saying why.
    (line / "docs/design/inventory/stock.md").write_text("# inventory.stock\n\nNothing here.\n")
    broken = run_json(stack, project, "status")
    stock = next(
        c for c in broken["map"]["components"] if c["facts"]["module"] == "inventory.stock"
    )
    design = next(r for r in stock["requirements"] if r["key"] == "design")
    assert design["state"] == "failing"
    assert design["detail"]
    assert stock["done"] is False
    git(line, "checkout", "--", "docs/design/inventory/stock.md")

    # Make a test fail: status --tests says so; the plain text names the failure.
    pricing = line / "src/inventory/pricing.py"
    pricing.write_text(pricing.read_text().replace('Decimal("0.90")', 'Decimal("0.80")'))
    failing = run_json(stack, project, "status", "--tests")
    assert requirements(failing)["inventory.pricing"]["tests_pass"] == "failing"
    text = stack.run("status", cwd=project)
    assert text.returncode == 0, text.stderr
    assert "inventory.pricing" in text.stdout
    assert "failing" in text.stdout
    git(line, "checkout", "--", "src/inventory/pricing.py")
    again = run_json(stack, project, "status", "--tests")
    assert all(c["done"] for c in again["map"]["components"])

    # Nothing to run next.
    following = run_json(stack, project, "next")
    assert following["sessions"] == []
    assert following["done"] is True


def test_a_new_project_starts_with_its_context_design(stack: Stack, tmp_path: Path) -> None:
    project = demo_project(tmp_path, finished=False)
    status = run_json(stack, project, "status")
    assert requirements(status)["inventory"]["design"] == "missing"
    following = run_json(stack, project, "next")
    first = following["sessions"][0]
    assert first["type"] == "ContextDesign"
    assert not first["after"]
    shown = stack.run("next", cwd=project)
    assert shown.returncode == 0, shown.stderr
    assert "1. ContextDesign inventory" in shown.stdout
    assert "`specloom next --start`" in shown.stdout
    bad = stack.run("status", "--line", "bad..line", cwd=project)
    assert bad.returncode == 2
    assert "not a valid branch name" in bad.stderr


def map_as_recorded(stack: Stack, project: Path) -> mpb.ProjectMap:
    """The workspace's map as the gateway has it, read without scanning anything."""
    token = (stack.data_dir / "admin.token").read_text().strip()

    async def read() -> mpb.ProjectMap:
        async with Client(stack.address, token) as client:
            return await client.project_map(identify(project).id)

    return asyncio.run(read())


def script_file(path: Path) -> Path:
    """The demo's recorded edits, and the context review ``next`` also asks for."""
    found = entries()
    found.append(
        {
            "match": {"session_type": "ContextDesignReview", "step": "ExecuteReview"},
            "edits": [{"path": "docs/review/inventory/context_design.md", "write": REVIEW}],
            "reply": "Reviewed the Inventory context.",
        }
    )
    path.write_text(json.dumps({"entries": found}, indent=2))
    return path


def start_agent(
    stack: Stack, tmp_path: Path, project: Path, log: IO[str], script: Path | None = None
) -> subprocess.Popen[str]:
    token_file = tmp_path / "agent.token"
    token_file.write_text((stack.data_dir / "admin.token").read_text())
    script = script or script_file(tmp_path / "script.json")
    return subprocess.Popen(
        [
            SPECLOOM, "--gateway", stack.address, "agent", "--token-file", str(token_file),
            "--workspace", str(project), "--backend", "scripted",
            "--script", str(script), "--max-parallel", "4",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("SPECLOOM_")},
    )  # fmt: skip


def drive(stack: Stack, tmp_path: Path, project: Path, script: Path | None = None) -> list[str]:
    """``specloom next --start 10`` until the project is done; the types started, in order."""
    log = (tmp_path / "agent.log").open("w")
    agent = start_agent(stack, tmp_path, project, log, script)
    ran: list[str] = []
    try:
        for _ in range(10):
            following = run_json(stack, project, "next", "--start", "10")
            if following["done"]:
                break
            waiting = [s["id"] for s in following["started"]] + [
                s["running_session_id"] for s in following["sessions"] if s["running_session_id"]
            ]
            assert waiting, f"nothing started and nothing running: {following['sessions']}"
            ran.extend(s["type"] for s in following["started"])
            for session_id in dict.fromkeys(waiting):
                watched = stack.run("session", "watch", session_id, timeout=600)
                assert watched.returncode == 0, (
                    watched.stdout[-3000:] + (tmp_path / "agent.log").read_text()[-3000:]
                )
            if "ContextCoding" in ran:
                # The map as the executor's scan after the landing left it (no
                # scan here): the line's tip, every requirement met, the tests'
                # passing vouched for by the coding session itself.
                recorded = map_as_recorded(stack, project)
                line_tip = git(project, "rev-parse", "specloom/main")
                assert recorded.revision == line_tip
                unmet = [
                    (c.facts.module, r.key, mpb.RequirementState.Name(r.state), r.detail)
                    for c in recorded.components
                    for r in c.requirements
                    if r.state not in (mpb.REQUIREMENT_STATE_MET, mpb.REQUIREMENT_STATE_NOT_NEEDED)
                ]
                assert not unmet, unmet
        else:
            pytest.fail(f"not done after 10 rounds; ran {ran}")
    finally:
        code = stop(agent)
        log.close()
    assert code == 0, (tmp_path / "agent.log").read_text()[-3000:]
    return ran


@pytest.mark.slow
def test_next_start_repeated_drives_the_demo_from_nothing_to_coded(
    stack: Stack, tmp_path: Path
) -> None:
    project = demo_project(tmp_path, finished=False)
    main = git(project, "rev-parse", "main")
    ran = drive(stack, tmp_path, project)
    assert ran[0] == "ContextDesign"
    assert "ContextCoding" in ran
    final = run_json(stack, project, "status", "--tests")
    for module, by_key in requirements(final).items():
        assert set(by_key.values()) <= set(SETTLED), (module, by_key)
    assert [c["facts"]["module"] for c in final["map"]["components"]] == ["inventory", *COMPONENTS]
    # Every session landed on the line; the person's checkout never moved.
    line = project / WORKTREE
    for module in COMPONENTS:
        assert (line / _path(module, "src", ".py")).is_file()
    assert git(project, "rev-parse", "main") == main
    assert git(project, "branch", "--show-current") == "main"
    assert git(project, "status", "--porcelain") == ""
    touched = {
        c["facts"]["module"]: [t["type"] for t in c["touched_by"]]
        for c in final["map"]["components"]
    }
    assert "ContextDesign" in touched["inventory"]
    listed = run_json(stack, project, "session", "list", "--limit", "100")
    print(
        "DEBUG",
        ran,
        [(x["type"], x["name"], x.get("workspace", {}).get("id"), x["status"]) for x in listed],
    )
    assert "ComponentCoding" in touched["inventory.stock"]


def ledger_script(path: Path, ledger: Ledger) -> Path:
    """Recorded edits for the ledger from nothing: designs, reviews, tests, code."""
    design = [
        {
            "match": {"session_type": "ContextDesign", "step": "GenerateContextDesign"},
            "edits": [{"path": "docs/design/ledger.md", "write": ledger.design()}],
            "reply": "Designed the ledger context.",
        },
        {
            "match": {"session_type": "ComponentDesignReview", "step": "ExecuteReview"},
            "edits": [{"path": "docs/review/ledger/component_designs.md", "write": REVIEW}],
            "reply": "Reviewed the component designs.",
        },
        {
            "match": {"session_type": "ContextDesignReview", "step": "ExecuteReview"},
            "edits": [{"path": "docs/review/ledger/context_design.md", "write": REVIEW}],
            "reply": "Reviewed the ledger context.",
        },
        *(
            {
                "match": {
                    "session_type": "ComponentDesign",
                    "step": "GenerateComponentDesign",
                    "component": ledger_module(name),
                },
                "edits": [
                    {
                        "path": f"docs/design/ledger/{name}.md",
                        "write": ledger.component_design(name),
                    }
                ],
                "reply": f"Designed {ledger_module(name)}.",
            }
            for name, _ in ledger.graph
        ),
    ]
    path.write_text(json.dumps(ledger.script(tests=True, code=True, extra=design)))
    return path


@pytest.mark.slow
def test_next_start_drives_a_twelve_component_context_from_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    ledger = Ledger(TWELVE)
    project = make_repo(
        tmp_path / "ledger",
        {"specloom.toml": 'profile = "python"\n\n[[contexts]]\nmodule = "ledger"\n'},
    )
    ran = drive(stack, tmp_path, project, ledger_script(tmp_path / "script.json", ledger))
    assert ran[0] == "ContextDesign"
    assert ran.index("ContextTesting") < ran.index("ContextCoding")
    final = run_json(stack, project, "status", "--tests")
    modules = [c["facts"]["module"] for c in final["map"]["components"]]
    assert modules == ["ledger", *ledger.modules()]
    for module, by_key in requirements(final).items():
        assert set(by_key.values()) <= set(SETTLED), (module, by_key)
    balances = next(
        c for c in final["map"]["components"] if c["facts"]["module"] == "ledger.balances"
    )
    assert balances["facts"]["dependencies"] == ["ledger.postings"]
    assert balances["facts"]["tests"]["passed"] == 2


def test_start_takes_an_optional_count() -> None:
    assert optional_count(["next", "--start"]) == ["next", "--start=1"]
    assert optional_count(["next", "--start", "--json"]) == ["next", "--start=1", "--json"]
    assert optional_count(["next", "--start", "3"]) == ["next", "--start", "3"]
    assert optional_count(["--gateway", "g", "next", "--start=2"]) == [
        "--gateway",
        "g",
        "next",
        "--start=2",
    ]
    assert optional_count(["session", "start", "--start"]) == ["session", "start", "--start"]
