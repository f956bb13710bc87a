"""The ``python`` profile: a src-layout package tested with pytest.

``inventory.stock`` ->
``docs/design/inventory/stock.md``, ``src/inventory/stock.py``,
``tests/inventory/stock_test.py`` (pytest collects ``*_test.py`` by default),
fixtures in ``tests/inventory/stock_fixtures.py``. CamelCase segments are
underscored (``MyApp.Inventory`` -> ``my_app/inventory``).
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
