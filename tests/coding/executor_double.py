"""An executor for the in-memory simulator: answers commands as a real executor reports them.

Git commands report the data the real git operations put in results
(``branch``, ``commit``, ``committed_files``) and the files they collect;
agent commands report a conversation id and the files they wrote; the
RunTests shell command reports a JUnit XML file in pytest's layout whose
contents come from a per-session script of runs. Everything is
deterministic, so simulator traces can be pinned in golden files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from specloom.orchestration.simulate import Call, report
from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
from specloom.workflow.commands import kind_of

FIXTURES = Path(__file__).parent / "fixtures"
CONTEXT_DESIGN = (FIXTURES / "designs" / "inventory.md").read_text()

COMPONENT_DESIGN = """\
# {module}

## Purpose
Keeps one thing.

## Public API
- `level(product) -> int`

## Execution Flow
1. Look it up.

## Test Assertions
- a new product has level 0
"""


@dataclass(frozen=True)
class Run:
    """What one test run reports."""

    passed: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    """Test name -> assertion message."""
    crash: str = ""
    """Non-empty: no report, this on stderr (a compile error)."""
    exit_code: int = 0


def passing(*names: str) -> Run:
    return Run(passed=names or ("test_level_starts_at_zero", "test_receive_adds"))


def failing(failures: Mapping[str, str], *passed: str) -> Run:
    return Run(passed=passed, failed=dict(failures), exit_code=1)


def crashing(stderr: str) -> Run:
    return Run(crash=stderr, exit_code=1)


NO_TESTS = Run(exit_code=5)


def junit(run: Run, classname: str, file: str, *more: tuple[str, str]) -> bytes:
    """A JUnit report laid out as pytest writes it; ``more`` test files run the same."""
    cases = []
    for name_of_class, path in ((classname, file), *more):
        for name in run.passed:
            cases.append(f'<testcase classname="{name_of_class}" name="{name}" time="0.001" />')
        for name, message in run.failed.items():
            text = f"&gt;       assert ...\nE       {escape(message)}\n\n{path}:7: AssertionError"
            cases.append(
                f'<testcase classname="{name_of_class}" name="{name}" time="0.002">'
                f"<failure message={quoteattr(message)}>{text}</failure></testcase>"
            )
    files = 1 + len(more)
    total = (len(run.passed) + len(run.failed)) * files
    return (
        '<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
        f'<testsuite name="pytest" errors="0" failures="{len(run.failed) * files}" skipped="0" '
        f'tests="{total}" time="0.050" timestamp="2026-01-01T00:00:00" hostname="sim">'
        + "".join(cases)
        + "</testsuite></testsuites>"
    ).encode()


def suite_files_of(command: pb.Command) -> list[str]:
    """The test files a RunTests command runs (a context's runs every component's)."""
    return [arg for arg in command.shell.argv if arg.endswith(("_test.py", "_test.exs"))]


def _sha(*parts: str) -> str:
    return hashlib.sha1("/".join(parts).encode()).hexdigest()  # noqa: S324 - a fake commit id


@dataclass
class ExecutorDouble:
    """A responder for :class:`specloom.orchestration.simulate.Simulation`.

    ``runs`` maps a session key ("" for the root, else the component module
    name) to its test runs in order; the last repeats. ``agents`` overrides
    agent results per (key, step) with a function of the call.
    """

    runs: Mapping[str, Sequence[Run]] = field(default_factory=dict)
    default_runs: Sequence[Run] = (passing(),)
    agents: Mapping[tuple[str, str], Callable[[Call], pb.Result]] = field(default_factory=dict)
    prompts: list[tuple[str, str, str]] = field(default_factory=list)
    """(key, step, prompt) of every agent command, for tests to inspect."""
    commands: list[tuple[str, pb.Command]] = field(default_factory=list)

    def __call__(self, call: Call) -> pb.Result:
        self.commands.append((call.key, call.command))
        kind = kind_of(call.command)
        if kind == "git":
            return self._git(call)
        if kind == "agent":
            return self._agent(call)
        if kind == "shell":
            return self._tests(call)
        return report("ok")

    def _content(self, path: str, call: Call) -> str | None:
        name = path.rsplit("/", 1)[-1]
        if "docs/design/" in path:
            if call.session.type.startswith("Context"):
                return CONTEXT_DESIGN
            return COMPONENT_DESIGN.format(module=call.session.component.module_name)
        if "*" in path:
            return None  # no project rules
        if name.endswith(("_test.py", "_test.exs")):
            return "def test_level_starts_at_zero():\n    assert False\n"
        return None

    def _git(self, call: Call) -> pb.Result:
        data: dict[str, JsonValue] = {}
        for op in call.command.git.operations:
            which = op.WhichOneof("op")
            if which == "create_branch":
                data.update(branch=op.create_branch.name, commit=_sha(op.create_branch.name))
            elif which == "add_worktree":
                data.update(
                    branch=op.add_worktree.branch,
                    worktree=op.add_worktree.path,
                    commit=_sha(op.add_worktree.base, *op.add_worktree.merge),
                )
                if op.add_worktree.merge:
                    data.update(merged=list(op.add_worktree.merge), already_merged=[])
            elif which == "commit":
                data.update(
                    commit=_sha(call.key, *op.commit.paths),
                    committed_files=list(op.commit.paths),
                )
                if op.commit.squash_onto:
                    data.update(squashed_onto=op.commit.squash_onto)
            elif which == "merge":
                data.update(
                    branch=call.state.get("branch", ""),
                    commit=_sha(call.key, *op.merge.branches),
                    merged=list(op.merge.branches),
                    already_merged=[],
                )
            elif which == "push":
                data.update(pushed=True, remote="origin")
        files = {path: self._content(path, call) for path in call.command.collect_files}
        return report("ok", files=files, data=data)

    def _agent(self, call: Call) -> pb.Result:
        self.prompts.append((call.key, call.step, call.command.agent.prompt))
        override = self.agents.get((call.key, call.step))
        if override is not None:
            return override(call)
        written = {path: f"# written by {call.step}\n" for path in call.command.collect_files}
        conversation = f"conv-{call.key or 'root'}"
        return report(
            "ok",
            files=written,
            data={"conversation_id": conversation, "backend": "scripted", "replayed": True},
            stdout=f"{call.step} done",
        )

    def _tests(self, call: Call) -> pb.Result:
        script = self.runs.get(call.key, self.default_runs)
        run = script[min(call.attempt, len(script)) - 1]
        (report_path,) = call.command.collect_files
        if run.crash:
            return report(
                "error",
                files={report_path: None},
                exit_code=run.exit_code,
                error=f"exit code {run.exit_code}",
                stdout=run.crash,
            )
        # One set of cases per test file run: a context's RunTests runs them all.
        ran = [
            (path.rsplit(".", 1)[0].replace("/", "."), path)
            for path in suite_files_of(call.command)
        ]
        (classname, file), *more = ran
        return report(
            "ok",
            files={report_path: junit(run, classname, file, *more)},
            exit_code=run.exit_code,
            stdout=f"{len(run.failed)} failed, {len(run.passed)} passed",
        )
