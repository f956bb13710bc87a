"""The project-scan benchmark at its quick size (the figures mean nothing at this size).

It keeps ``python -m bench.project_scan`` from rotting, and checks what the
benchmark claims: the generated workspace is valid throughout, and a scan
after one change reads one file.
"""

from __future__ import annotations

import pytest

from bench.project_scan import context_sizes, main, run


def test_context_sizes_cycle_and_add_up() -> None:
    assert context_sizes(500)[:5] == [10, 15, 20, 25, 10]
    assert sum(context_sizes(500)) == 500
    assert all(10 <= size <= 34 for size in context_sizes(500))
    assert context_sizes(40) == [10, 15, 15]


def test_a_quick_run_scans_every_file_cold_and_one_after_a_change() -> None:
    workspace, (cold, warm), table = run(40, runs=2)
    assert (workspace.components, workspace.contexts) == (40, 3)
    # 3 context designs; per component a design and code; tests for the 32 non-schemas.
    assert cold.files_seen == cold.files_read == 3 + 40 * 2 + 32
    assert warm.files_seen == cold.files_seen
    assert warm.files_read == 1
    assert len(cold.runs_ms) == len(warm.runs_ms) == 2
    assert "| one file changed |" in table


def test_the_command_line_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--quick"])
    out = capsys.readouterr().out
    assert out.startswith("40 components in 3 contexts")
    assert "| cold (no cache) |" in out
