"""The ``python`` profile: a src-layout package tested with pytest.

``inventory.stock`` ->
``docs/design/inventory/stock.md``, ``src/inventory/stock.py``,
``tests/inventory/stock_test.py`` (pytest collects ``*_test.py`` by default),
fixtures in ``tests/inventory/stock_fixtures.py``. CamelCase segments are
underscored (``MyApp.Inventory`` -> ``my_app/inventory``).

Scaffolding a context creates every package level with an ``__init__.py``
(the context's own module is its package), one module per component
(a nested context is a package), a test skeleton per component that gets
tests (a schema's are its context's, as in the original system), and checks
that every module imports (``PYTHONPATH=src``, no bytecode written) and every
test skeleton compiles. An existing ``__init__.py`` or test file is kept as
it is (a package needs only the file; tests written first are the
component's tests); an existing module with other content is a conflict.
"""

from __future__ import annotations

from collections.abc import Sequence

from specloom.naming import safe_relative_path
from specloom.profiles._base import (
    ComponentFiles,
    ReportFormat,
    TestInvocation,
    module_segments,
    underscore,
)
from specloom.profiles._scaffold import (
    SCAFFOLD_MARKER,
    PlannedFile,
    ScaffoldComponent,
    ScaffoldPlan,
)

_CHECK_TESTS = (
    "import sys\n"
    "for path in sys.argv[1:]:\n"
    "    with open(path, encoding='utf-8') as handle:\n"
    "        compile(handle.read(), path, 'exec')\n"
)
"""Compiles the test skeletons without writing bytecode next to them."""

UNTESTED_TYPES = frozenset({"schema", "context"})
"""Component types with no test file of their own (a schema is tested through its
context; a nested context through its components)."""


def _docstring(text: str) -> str:
    # Descriptions are written by agents: no quote or backslash may end the docstring.
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _first_line(description: str) -> str:
    line = description.strip().splitlines()[0].strip() if description.strip() else ""
    return f": {line}" if line else ""


class PythonProfile:
    """Python with pytest, reports as JUnit XML."""

    name = "python"
    language = "Python"
    report_format: ReportFormat = "junit"
    agent_commands: tuple[str, ...] = ("python", "pytest")
    test_guidance = (
        "The module under test does not exist yet. Import it inside the tests "
        "(for example in a fixture with importlib.import_module), not at the top "
        "of the test file: a top-level import of a missing module stops pytest "
        "from collecting the file at all, and then no test can fail on its own."
    )

    def module_path(self, module_name: str) -> str:
        return safe_relative_path("/".join(underscore(p) for p in module_segments(module_name)))

    def files(self, module_name: str) -> ComponentFiles:
        stem = self.module_path(module_name)
        return ComponentFiles(
            design=f"docs/design/{stem}.md",
            code=f"src/{stem}.py",
            test=f"tests/{stem}_test.py",
            fixtures=f"tests/{stem}_fixtures.py",
        )

    def design_path(self, module_name: str) -> str:
        return f"docs/design/{self.module_path(module_name)}.md"

    def test_invocation(self, test_paths: Sequence[str], report_path: str) -> TestInvocation:
        return TestInvocation(
            argv=(
                "python",
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report_path}",
                "--",
                *test_paths,
            ),
            env={"PYTHONPATH": "src", "PYTHONDONTWRITEBYTECODE": "1"},
            report_path=report_path,
            report_format=self.report_format,
            # 1: some tests failed; 5: none collected. Both are verdicts for
            # the judge, not executor failures.
            ok_exit_codes=(0, 1, 5),
        )

    def scaffold(self, context: str, components: Sequence[ScaffoldComponent]) -> ScaffoldPlan:
        files: dict[str, str] = {}
        keep: set[str] = set()
        modules: list[str] = []
        packages = {self.module_path(context)}
        for component in components:
            stem = self.module_path(component.module_name)
            parts = stem.split("/")
            packages.update("/".join(parts[:i]) for i in range(1, len(parts)))
            if component.type == "context":
                packages.add(stem)
        for package in sorted(packages):
            dotted = package.replace("/", ".")
            keep.add(f"src/{package}/__init__.py")
            files[f"src/{package}/__init__.py"] = (
                f'"""{_docstring(dotted)} (package)."""\n\n# {SCAFFOLD_MARKER}\n'
            )
            modules.append(dotted)
        for component in components:
            stem = self.module_path(component.module_name)
            dotted = stem.replace("/", ".")
            about = _docstring(f"{component.module_name}{_first_line(component.description)}")
            if stem not in packages:
                files[f"src/{stem}.py"] = (
                    f'"""{about}\n\nDesigned in {self.design_path(component.module_name)}; '
                    f'not implemented yet."""\n\n# {SCAFFOLD_MARKER}\n'
                )
                modules.append(dotted)
            if component.type not in UNTESTED_TYPES:
                keep.add(self.files(component.module_name).test)
                files[self.files(component.module_name).test] = (
                    f'"""Tests of {_docstring(dotted)}, written from its design\'s Test '
                    f'Assertions."""\n\n# {SCAFFOLD_MARKER}\n'
                )
        tests = sorted(path for path in files if path.startswith("tests/"))
        checks: list[tuple[str, ...]] = [("python", "-c", f"import {', '.join(sorted(modules))}")]
        if tests:
            checks.append(("python", "-c", _CHECK_TESTS, *tests))
        return ScaffoldPlan(
            files=tuple(PlannedFile(path, files[path], path in keep) for path in sorted(files)),
            checks=tuple(checks),
            env={"PYTHONPATH": "src", "PYTHONDONTWRITEBYTECODE": "1"},
        )
