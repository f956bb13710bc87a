"""What every ``specloom`` command pays before it does anything."""

from __future__ import annotations

import subprocess
import sys


def test_the_cli_imports_no_model_sdk_until_a_step_calls_one() -> None:
    # The Anthropic SDK alone took most of a second to import, and every
    # command paid it (``status`` and ``next`` reach the agent package):
    # only a step that calls the API may load it.
    probe = (
        "import sys, specloom.cli, specloom.agent, specloom.cli._projectmap;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('anthropic', 'httpx')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stdout
