"""Write docs/configuration.md from the settings classes (their field docstrings).

Run by `make docs`; tests/layout/test_docs.py fails when the file is stale,
so the reference can never drift from the code.
"""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "docs" / "configuration.md"

SECTIONS: list[tuple[str, str, str]] = [
    ("specloom.host", "HostSettings", "Every service process (`specloom serve`, `specloom up`)"),
    ("specloom_sessions.config", "SessionsSettings", "The Sessions service"),
    ("specloom_gateway.config", "GatewaySettings", "The gateway"),
    ("specloom_web.config", "WebSettings", "The web console (`specloom serve web`, `specloom up`)"),
    (
        "specloom.orchestration.config",
        "OrchestratorSettings",
        "The orchestrators (context_design, coding)",
    ),
    ("specloom.agent.config", "AgentSettings", "The executor agent (`specloom agent`)"),
]

INTRO = """\
# Configuration reference

Generated from the settings classes by `tools/gen_config_docs.py` (run
`make docs`); a test fails when this file is out of date.

Every setting is an environment variable; `specloom serve` and `specloom up`
also take the most common ones as flags. Lists and maps are JSON, e.g.
`SPECLOOM_ORCHESTRATOR_ADDRESSES='["dns:///coding:7420","dns:///context-design:7420"]'`.
Secrets (`*_SECRET`, `*_PEPPER`, `*_TOKEN`, keys) belong in a secret store,
never in a ConfigMap.
"""


def _docstrings(cls: type) -> dict[str, str]:
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass in (object, BaseSettings) or not issubclass(klass, BaseSettings):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        body = tree.body[0].body if isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, [*body[1:], None], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _default(field: Any) -> str:
    if field.default_factory is not None:
        return "(computed)"
    value = field.default
    if value is None:
        return "unset"
    if hasattr(value, "get_secret_value"):
        return "(secret)"
    if isinstance(value, str) and not value:
        return '""'
    return f"`{value}`"


def render() -> str:
    parts = [INTRO]
    for module, name, title in SECTIONS:
        cls = getattr(__import__(module, fromlist=[name]), name)
        prefix = cls.model_config.get("env_prefix", "")
        docs = _docstrings(cls)
        parts.append(f"\n## {title}\n\n`{module}.{name}`\n\n")
        parts.append("| variable | default | meaning |\n|---|---|---|\n")
        for field_name, field in cls.model_fields.items():
            env = f"{prefix}{field_name}".upper()
            meaning = docs.get(field_name, "").replace("|", "\\|")
            parts.append(f"| `{env}` | {_default(field)} | {meaning} |\n")
    return "".join(parts)


def main() -> int:
    text = render()
    if "--check" in sys.argv:
        current = TARGET.read_text() if TARGET.exists() else ""
        if current != text:
            print("docs/configuration.md is stale; run `make docs`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
