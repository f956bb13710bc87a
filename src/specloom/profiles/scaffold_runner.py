"""Carries out a scaffolding plan in the current directory (run on the executor).

Run as ``python3 -c <this source> <plan JSON>`` by a shell command the
server builds (``specloom.profiles._scaffold``); standard library only, so
any Python 3 runs it. In order:

1. Every planned file is looked at first. One that exists with exactly the
   planned content was scaffolded before (``unchanged``: a retry is
   idempotent); one that exists with other content is a ``conflict``, unless
   the plan says any existing file will do there (``keep_existing``: it is
   ``kept`` untouched). If
   there is any conflict nothing is written at all, so a person or the fix
   step sees the tree as it was.
2. The other files are created (never overwriting: ``open(..., "x")``).
3. Each generator runs unless the file it ``creates`` exists (it ran
   before); the files it created or changed are found with ``git status``.
4. Each check runs. The first generator or check that fails stops the run,
   and its own output is the report's ``failed.output``.

Exactly one line of JSON goes to stdout (the report); the tools' output is
passed on to stderr as they print it. Exit status: 0 all done, 1 a conflict
or a failed command (the report says which), 2 a plan it cannot read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

OUTPUT_TAIL = 8000


def _inside(root: Path, relative: str) -> Path:
    path = Path(relative)
    if path.is_absolute() or ".." in path.parts or not relative:
        raise ValueError(f"refusing path {relative!r}: not relative to the worktree")
    return root / path


def _changed(root: Path) -> set[tuple[str, str]]:
    try:
        done = subprocess.run(
            ["git", "status", "--porcelain=v1", "-z", "--untracked-files=all"],
            cwd=root,
            capture_output=True,
            check=False,
        )
    except OSError:
        return set()
    if done.returncode != 0:
        return set()
    found: set[tuple[str, str]] = set()
    entries = done.stdout.decode("utf-8", "replace").split("\0")
    skip = False
    for entry in entries:
        if skip:
            skip = False
            continue
        if len(entry) < 4:
            continue
        found.add((entry[:2], entry[3:]))
        if entry[0] in "RC":
            skip = True  # the next entry is the rename's source
    return found


def _run(argv: list[str], root: Path, env: dict[str, str]) -> tuple[int, str]:
    try:
        proc = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    except OSError as exc:
        return 127, f"cannot run {argv[0]!r}: {exc}"
    chunks: list[bytes] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stderr.buffer.write(line)
        sys.stderr.flush()
        chunks.append(line)
    code = proc.wait()
    return code, b"".join(chunks).decode("utf-8", "replace")[-OUTPUT_TAIL:]


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: scaffold_runner <plan JSON>", file=sys.stderr)
        return 2
    try:
        plan = json.loads(argv[1])
        files = [
            (str(f["path"]), str(f["content"]), f.get("keep_existing") is True)
            for f in plan.get("files", [])
        ]
        generators = [
            (list(g["argv"]), str(g.get("creates", ""))) for g in plan.get("generators", [])
        ]
        checks = [list(c) for c in plan.get("checks", [])]
        env = {**os.environ, **{str(k): str(v) for k, v in plan.get("env", {}).items()}}
        root = Path.cwd()
        targets = [(rel, _inside(root, rel), content, keep) for rel, content, keep in files]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        print(f"scaffold_runner: bad plan: {exc}", file=sys.stderr)
        return 2
    created: list[str] = []
    unchanged: list[str] = []
    kept: list[str] = []
    conflicts: list[str] = []
    generated: set[str] = set()
    skipped: list[str] = []

    def done(code: int, failed: dict[str, object] | None = None) -> int:
        report = {
            "created": created,
            "unchanged": unchanged,
            "kept": kept,
            "conflicts": conflicts,
            "generated": sorted(generated),
            "skipped": skipped,
            "failed": failed,
        }
        print(json.dumps(report, sort_keys=True))
        return code

    to_write: list[tuple[str, Path, str]] = []
    for relative, path, content, keep in targets:
        if path.is_file() and path.read_bytes() == content.encode("utf-8"):
            unchanged.append(relative)
        elif keep and path.is_file():
            kept.append(relative)
        elif path.exists() or path.is_symlink():
            conflicts.append(relative)
        else:
            to_write.append((relative, path, content))
    if conflicts:
        return done(1)
    for relative, path, content in to_write:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8", newline="\n") as handle:
            handle.write(content)
        created.append(relative)

    for command, creates in generators:
        if creates and _inside(root, creates).exists():
            skipped.append(" ".join(command))
            continue
        before = _changed(root)
        code, output = _run(command, root, env)
        generated.update(path for _, path in _changed(root) - before)
        if code != 0:
            return done(1, {"argv": command, "exit_code": code, "output": output})
    for command in checks:
        code, output = _run(command, root, env)
        if code != 0:
            return done(1, {"argv": command, "exit_code": code, "output": output, "check": True})
    return done(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
