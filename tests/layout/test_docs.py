"""Generated documentation stays true to the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_config_docs.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_defaults_quoted_in_the_deploy_guide_are_the_code_s() -> None:
    # docs/deploy.md explains sizing with these defaults; they must not drift.
    import re

    from specloom_sessions.config import SessionsSettings

    text = " ".join((ROOT / "docs" / "deploy.md").read_text().split())
    defaults = SessionsSettings.model_fields
    for name in ("sessions_pool_size", "sessions_max_overflow"):
        variable = f"SPECLOOM_{name.upper()}"
        quoted = re.search(rf"`{variable}`, default (\d+)", text)
        assert quoted is not None, f"docs/deploy.md no longer quotes {variable}"
        assert int(quoted.group(1)) == defaults[name].default, variable
