"""Running git from the kernel's own code (the CLI, workspaces, the line, clean-up).

One place decides how git is run outside the executor: in the given
directory, with the scrubbed environment (git runs hooks and credential
helpers, and neither may see a token the caller holds in ``SPECLOOM_*``), no
terminal prompt, C locale so messages can be read, and no stdin.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from specloom.childenv import child_environment


def run_git(
    cwd: Path, *args: str, error: type[Exception] | None = None
) -> subprocess.CompletedProcess[str]:
    """``git -C cwd args…``; with ``error``, a non-zero exit raises it naming the command."""
    done = subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        check=False,
        env=child_environment({"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}),
        stdin=subprocess.DEVNULL,
    )
    if error is not None and done.returncode != 0:
        raise error(f"git {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done
