"""JUnit XML parsing, on reports real pytest runs write in the test itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from specloom.profiles import get_profile
from specloom_coding.testruns import ReportError, RunOutcome, parse_junit, read_test_run

FIXTURES = Path(__file__).parent / "fixtures"

STOCK = """\
_levels = {}


def level(product):
    return _levels.get(product, 0)


def receive(product, units):
    _levels[product] = level(product) + units + 1  # one too many
    return _levels[product]
"""

STOCK_TESTS = """\
import importlib

import pytest


@pytest.fixture
def stock():
    return importlib.import_module("inventory.stock")


@pytest.fixture
def warehouse():
    raise RuntimeError("no warehouse configured")


def test_new_product_has_level_zero(stock):
    assert stock.level("apple") == 0


def test_receive_raises_the_level(stock):
    assert stock.receive("pear", 5) == 5


def test_needs_a_warehouse(warehouse):
    pass


@pytest.mark.skip(reason="reservations come later")
def test_reserve():
    pass


class TestTake:
    def test_take_is_refused_when_empty(self, stock):
        assert stock.take("plum", 1) == "refused"
"""


def run_pytest(project: Path, test_paths: list[str]) -> tuple[int, bytes | None, str]:
    """Run the python profile's test command in ``project``; (exit code, report, output)."""
    invocation = get_profile("python").test_invocation(test_paths, "reports/run-1.xml")
    argv = [sys.executable, *invocation.argv[1:]]
    assert invocation.argv[0] == "python"
    # The scratch project needs none of this environment's pytest plugins.
    env = {
        **os.environ,
        **invocation.env,
        "PYTEST_ADDOPTS": "",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }
    done = subprocess.run(argv, cwd=project, env=env, capture_output=True, text=True, timeout=120)
    report = project / invocation.report_path
    return done.returncode, report.read_bytes() if report.exists() else None, done.stdout


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src" / "inventory").mkdir(parents=True)
    (tmp_path / "src" / "inventory" / "stock.py").write_text(STOCK)
    (tmp_path / "tests" / "inventory").mkdir(parents=True)
    (tmp_path / "tests" / "inventory" / "stock_test.py").write_text(STOCK_TESTS)
    return tmp_path


def test_a_real_pytest_report_is_read_test_by_test(project: Path) -> None:
    code, report, output = run_pytest(project, ["tests/inventory/stock_test.py"])
    assert code == 1, output
    assert report is not None
    parsed = parse_junit(report)
    assert (parsed.passed, parsed.failed, parsed.errors, parsed.skipped) == (1, 2, 1, 0 + 1)
    by_title = {f.title: f for f in parsed.failures}
    receive = by_title["tests.inventory.stock_test::test_receive_raises_the_level"]
    assert receive.kind == "failure"
    assert receive.message.startswith("AssertionError: assert 6 == 5\n")
    assert (receive.file, receive.line) == ("tests/inventory/stock_test.py", 21)
    take = by_title["tests.inventory.stock_test.TestTake::test_take_is_refused_when_empty"]
    assert "has no attribute 'take'" in take.message
    assert take.location == "tests/inventory/stock_test.py:35"
    setup = by_title["tests.inventory.stock_test::test_needs_a_warehouse"]
    assert setup.kind == "error"
    assert "no warehouse configured" in setup.message
    assert parsed.duration_ms >= 0


def test_a_collection_error_is_a_test_file_that_did_not_load(project: Path) -> None:
    broken = project / "tests" / "inventory" / "broken_test.py"
    broken.write_text("import inventory.missing_module\n\n\ndef test_x():\n    pass\n")
    code, report, _ = run_pytest(project, ["tests/inventory/broken_test.py"])
    assert code == 2
    assert report is not None
    parsed = parse_junit(report)
    assert (parsed.passed, parsed.failed, parsed.errors, parsed.load_errors) == (0, 0, 0, 1)
    (failure,) = parsed.failures
    assert failure.kind == "load"
    assert failure.message == "ModuleNotFoundError: No module named 'inventory.missing_module'"
    assert failure.location == "tests/inventory/broken_test.py:1"


def test_a_file_without_tests_reports_nothing_ran(project: Path) -> None:
    empty = project / "tests" / "inventory" / "empty_test.py"
    empty.write_text("VALUE = 1\n")
    code, report, _ = run_pytest(project, ["tests/inventory/empty_test.py"])
    assert code == 5
    assert report is not None
    run = read_test_run(report, "junit", command=["pytest"], exit_code=code)
    assert run.outcome is RunOutcome.REPORTED
    assert (run.passed, run.failed, run.ran) == (0, 0, 0)
    assert not run.all_passed


def test_all_passing(project: Path) -> None:
    fixed = (project / "src" / "inventory" / "stock.py").read_text().replace(" + 1  #", "  #")
    (project / "src" / "inventory" / "stock.py").write_text(
        fixed + "\n\ndef take(product, units):\n    return 'refused'\n"
    )
    tests = project / "tests" / "inventory" / "stock_test.py"
    tests.write_text(tests.read_text().replace("(warehouse)", "()"))
    code, report, output = run_pytest(project, ["tests/inventory/stock_test.py"])
    assert code == 0, output
    run = read_test_run(report, "junit", command=["pytest"], exit_code=code)
    assert run.all_passed
    assert (run.passed, run.skipped) == (4, 1)


def test_mix_junit_formatter_layout() -> None:
    parsed = parse_junit((FIXTURES / "junit" / "mix_junit_formatter.xml").read_bytes())
    assert (parsed.passed, parsed.failed) == (2, 1)
    (failure,) = parsed.failures
    assert failure.title == (
        "Inventory.StockTest::test receive/3 receiving units raises the level by that many"
    )
    assert failure.message == "error: Assertion with == failed"
    assert failure.location == "test/inventory/stock_test.exs:14"
    assert parsed.duration_ms == 15


def test_namespaced_and_single_suite_reports() -> None:
    xml = (
        b'<testsuite xmlns="urn:x" name="s" tests="2" time="1.5">'
        b'<testcase name="a"/><testcase name="b"><skipped/></testcase></testsuite>'
    )
    parsed = parse_junit(xml)
    assert (parsed.passed, parsed.skipped, parsed.duration_ms) == (1, 1, 1500)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<testsuites><testsuite><testcase name="&lol3;"/></testsuite></testsuites>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE t [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<testsuites><testsuite><testcase name="&secret;"/></testsuite></testsuites>"""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (BILLION_LAUGHS, "refused (possible XML bomb)"),
        (EXTERNAL_ENTITY, "refused (possible XML bomb)"),
        (b'<testsuites><testsuite name="x"><testcase name=', "not well-formed XML"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary data"),
        (b"\xff\xfe<\x00t\x00", "binary data"),
        (b"\xc3\x28 not utf-8", "not UTF-8"),
        (b"", "empty"),
        (b"<html><body>502 Bad Gateway</body></html>", "root element is <html>"),
    ],
)
def test_reports_that_are_not_reports_are_clear_errors(content: bytes, expected: str) -> None:
    with pytest.raises(ReportError, match=None) as raised:
        parse_junit(content)
    assert expected in str(raised.value)


def test_an_unreadable_report_becomes_a_bad_report_run_with_the_output_tail() -> None:
    run = read_test_run(
        BILLION_LAUGHS, "junit", command=["pytest"], exit_code=1, stdout="line\n" * 200
    )
    assert run.outcome is RunOutcome.BAD_REPORT
    assert "XML bomb" in run.problem
    assert run.output_tail.endswith("line")
    assert run.output_tail.count("\n") < 70
