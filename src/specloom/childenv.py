"""The environment every child process gets: ours, without specloom's own settings.

``SPECLOOM_*`` variables configure specloom itself, and one of them is the
bearer token (``SPECLOOM_TOKEN``, ``SPECLOOM_AGENT_TOKEN``). A program we
start — a test suite, the Claude CLI, git, a pull-request command — is code
the token's owner did not write, so none of them may see those variables.
Every process the agent or the CLI starts takes its environment from here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SCRUBBED_PREFIXES = ("SPECLOOM_",)
"""Variables with these prefixes never reach a child process."""

__all__ = ["SCRUBBED_PREFIXES", "child_environment"]


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without ``SPECLOOM_*``, plus ``extra``.

    ``extra`` (a command's own variables) is filtered the same way: a
    variable named like a specloom setting is not passed on from anywhere.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update({k: v for k, v in (extra or {}).items() if not k.startswith(SCRUBBED_PREFIXES)})
    return env
