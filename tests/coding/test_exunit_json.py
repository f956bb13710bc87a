"""ExUnit JSON parsing: samples of real runs, and a real ``mix test`` when Elixir is installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from specloom.profiles import get_profile
from specloom_coding.testruns import (
    ReportError,
    RunOutcome,
    failure_summary,
    fingerprint,
    parse_exunit_json,
    read_test_run,
)

SAMPLES = Path(__file__).parent / "fixtures" / "exunit"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_tests_first_run_every_test_fails_on_the_missing_module() -> None:
    parsed = parse_exunit_json(sample("tests_first.json"))
    assert (parsed.passed, parsed.failed, parsed.errors, parsed.skipped) == (0, 3, 0, 0)
    first = parsed.failures[0]
    assert first.title == "Inventory.StockTest: test level/2 a new product has level 0"
    assert first.message == (
        "** (UndefinedFunctionError) function Inventory.Stock.new/0 is undefined "
        "(module Inventory.Stock is not available)"
    )
    assert first.location == "test/inventory/stock_test.exs:6"
    assert parsed.duration_ms > 0


def test_failing_assertions_keep_code_left_and_right() -> None:
    parsed = parse_exunit_json(sample("two_failing.json"))
    assert (parsed.passed, parsed.failed) == (1, 2)
    by_title = {f.title: f for f in parsed.failures}
    receive = by_title[
        "Inventory.StockTest: test receive/3 receiving units raises the level by that many"
    ]
    assert receive.message.splitlines() == [
        "Assertion with == failed",
        'code:  assert Inventory.Stock.level(stock, "apple") == 5',
        "left:  6",
        "right: 5",
    ]
    assert receive.location == "test/inventory/stock_test.exs:14"


def test_mixed_results_count_invalid_tests_as_errors() -> None:
    parsed = parse_exunit_json(sample("mixed_results.json"))
    assert (parsed.passed, parsed.failed, parsed.errors, parsed.skipped) == (2, 2, 1, 1)
    invalid = next(f for f in parsed.failures if f.kind == "error")
    assert invalid.title == "Exproj.SetupTest: test needs db"
    assert invalid.message == "setup_all failed: ** (RuntimeError) no database"
    quoted = next(f for f in parsed.failures if "quoted" in f.title)
    assert quoted.title == 'ExprojTest: test adds "quoted" numbers'


def test_all_passing_sample() -> None:
    run = read_test_run(sample("all_passing.json"), "exunit-json", command=["mix"], exit_code=0)
    assert run.all_passed
    assert run.passed == 3


def test_the_event_stream_shape() -> None:
    parsed = parse_exunit_json(sample("event_stream.jsonl"))
    assert (parsed.passed, parsed.failed, parsed.duration_ms) == (1, 1, 14)
    (failure,) = parsed.failures
    assert failure.location == "test/inventory/stock_test.exs:21"
    assert failure.message.startswith("match (=) failed")


def test_an_event_stream_cut_before_its_end_is_an_error() -> None:
    cut = b"\n".join(sample("event_stream.jsonl").splitlines()[:3])
    with pytest.raises(ReportError, match="no 'end' event"):
        parse_exunit_json(cut)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (sample("two_failing.json")[:700], "not valid JSON"),
        (b"\x00\x01\x02\xff binary", "binary data"),
        (b"\xfe\xed\xfa\xce", "not UTF-8"),
        (b"   ", "empty"),
        (b"[1, 2, 3]", "not an [event, object] pair"),
        (b'{"tests": []}', "no 'stats' object"),
        (b'{"stats": {}}', "lists no tests"),
        (b'{"stats": {}, "failures": {"a": 1}}', "not a list of tests"),
        (b'"just a string"', "does not start with"),
        (b"[" * 100_000, "nests too deeply"),
        (b'{"a":' + b"[" * 50_000, "nests too deeply"),
    ],
)
def test_reports_that_are_not_reports_are_clear_errors(content: bytes, expected: str) -> None:
    with pytest.raises(ReportError) as raised:
        parse_exunit_json(content)
    assert expected in str(raised.value)


def test_deep_nesting_is_refused_not_a_crash() -> None:
    deep = b'{"stats": {}, "failures": [' + b"[" * 5000 + b"]" * 5000 + b"]}"
    with pytest.raises(ReportError, match="nests too deeply"):
        parse_exunit_json(deep)


def test_a_truncated_report_becomes_a_bad_report_run() -> None:
    run = read_test_run(
        sample("two_failing.json")[:500],
        "exunit-json",
        command=["mix", "test"],
        exit_code=2,
        stderr="** (exit) something\n",
    )
    assert run.outcome is RunOutcome.BAD_REPORT
    assert "may be truncated" in run.problem
    assert "something" in failure_summary(run)


# -- a real mix test -------------------------------------------------------------------

HAVE_MIX = shutil.which("mix") is not None and shutil.which("elixir") is not None

STOCK_TEST = """\
defmodule Inventory.StockTest do
  use ExUnit.Case, async: true

  test "a new product has level 0" do
    assert Inventory.Stock.level(Inventory.Stock.new(), "apple") == 0
  end

  test "receiving units raises the level" do
    stock = Inventory.Stock.new() |> Inventory.Stock.receive("apple", 5)
    assert Inventory.Stock.level(stock, "apple") == 5
  end
end
"""

STOCK = """\
defmodule Inventory.Stock do
  def new, do: %{}
  def level(stock, product), do: Map.get(stock, product, 0)
  def receive(stock, product, units), do: Map.update(stock, product, units, &(&1 + units))
end
"""

MIX_EXS = """\
defmodule Inventory.MixProject do
  use Mix.Project

  def project do
    [app: :inventory, version: "0.1.0", elixir: "~> 1.14", deps: []]
  end
end
"""


def mix_test(project: Path, run: int) -> tuple[int, bytes | None, str]:
    profile = get_profile("elixir")
    files = profile.files("Inventory.Stock")
    invocation = profile.test_invocation([files.test], f".specloom/reports/run-{run}.json")
    env = {**os.environ, **invocation.env}
    done = subprocess.run(
        list(invocation.argv),
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    report = project / invocation.report_path
    return (
        done.returncode,
        report.read_bytes() if report.exists() else None,
        done.stdout + done.stderr,
    )


@pytest.mark.skipif(not HAVE_MIX, reason="elixir/mix not installed (apt-get install -y elixir)")
def test_real_mix_test_through_the_elixir_profile(tmp_path: Path) -> None:
    profile = get_profile("elixir")
    files = profile.files("Inventory.Stock")
    (tmp_path / "mix.exs").write_text(MIX_EXS)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test_helper.exs").write_text("ExUnit.start()\n")
    test_file = tmp_path / files.test
    test_file.parent.mkdir(parents=True)
    test_file.write_text(STOCK_TEST)

    # Tests first: the module is missing, every test fails on its own.
    code, report, output = mix_test(tmp_path, 1)
    assert code in profile.test_invocation([], "x").ok_exit_codes, output
    run = read_test_run(report, "exunit-json", command=["mix", "test"], exit_code=code)
    assert run.outcome is RunOutcome.REPORTED, run.problem
    assert (run.passed, run.failed) == (0, 2)
    assert "module Inventory.Stock is not available" in run.failures[0].message

    # With the code: all pass.
    code_file = tmp_path / files.code
    code_file.parent.mkdir(parents=True)
    code_file.write_text(STOCK)
    code, report, output = mix_test(tmp_path, 2)
    assert code == 0, output
    run = read_test_run(report, "exunit-json", command=["mix", "test"], exit_code=code)
    assert run.all_passed
    assert run.passed == 2

    # A compile error in the test file: no report at all, the output says why.
    test_file.write_text(STOCK_TEST.replace('"apple") == 0', '"apple" == 0'))
    code, report, output = mix_test(tmp_path, 3)
    assert report is None
    run = read_test_run(
        report, "exunit-json", command=["mix", "test"], exit_code=code, stderr=output
    )
    assert run.outcome is RunOutcome.NO_REPORT
    assert "stock_test.exs" in run.output_tail
    assert fingerprint(run).startswith("tests:")
