"""docs/reliability.md cites tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"


def test_every_cited_test_exists() -> None:
    cited: list[tuple[str, str]] = []
    current = ""
    for token in re.findall(r"`([^`]+)`", DOC.read_text()):
        if token.startswith("tests/") and "::" in token:
            current, name = token.split("::", 1)
            cited.append((current, name))
        elif token.startswith("::") and current:
            cited.append((current, token[2:]))
    assert len(cited) > 40
    missing = []
    for file, name in cited:
        path = ROOT / file
        if not path.exists() or not re.search(rf"def {re.escape(name)}\(", path.read_text()):
            missing.append(f"{file}::{name}")
    assert not missing, missing
