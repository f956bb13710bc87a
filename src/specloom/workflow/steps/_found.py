"""Files a command collected, as the session sees them: relative to its worktree.

Initialize runs at the workspace root (the worktree does not exist before
it), so what it collects is named ``<worktree>/<path>``; every later command
runs in the worktree and names paths as they are. :class:`Found` hides the
difference, so a judge asks for ``docs/design/x.md`` either way.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

from specloom.workflow._context import CollectedFile, ReportedResult

__all__ = ["Found", "under"]


def under(workdir: str, path: str) -> str:
    """``path`` (relative to ``workdir``) relative to the workspace root."""
    return f"{workdir}/{path}" if workdir else path


@dataclass(frozen=True)
class Found:
    """The collected files of one result, read relative to the session's worktree."""

    result: ReportedResult
    workdir: str = ""
    """Non-empty when the command ran at the workspace root (Initialize)."""

    def file(self, path: str) -> CollectedFile | None:
        """The collected file at ``path``, if it was asked for."""
        return self.result.file(under(self.workdir, path))

    def content(self, path: str) -> bytes | None:
        """Content of ``path``; ``None`` when it does not exist."""
        found = self.file(path)
        return found.content if found is not None and found.exists else None

    def written(self, paths: Iterable[str]) -> list[str]:
        """Those of ``paths`` that exist and are not blank, in the order given."""
        return [p for p in paths if (content := self.content(p)) is not None and content.strip()]

    def matching(self, globs: Iterable[str]) -> list[tuple[str, CollectedFile]]:
        """Existing files matching any of ``globs``, as (path in the worktree, file), sorted."""
        prefix = f"{self.workdir}/" if self.workdir else ""
        wanted = [prefix + glob for glob in globs]
        hits = [
            (item.path.removeprefix(prefix), item)
            for item in self.result.existing_files()
            if any(fnmatch.fnmatchcase(item.path, glob) for glob in wanted)
        ]
        return sorted(hits, key=lambda hit: hit[0])
