"""Reading ``deploy/Dockerfile`` and ``.dockerignore`` as Docker does, for the checks.

Only what the tests need: instructions with continuation lines joined,
stages split at ``FROM``, ``ARG`` defaults substituted into ``FROM``, and
``.dockerignore`` matching (``*``, ``?``, ``**``, ``!`` exceptions, last
match wins, a matched directory excludes everything under it).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.deploy.manifests import ROOT

DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper-cased instruction (``RUN``, ``COPY``, ...)."""
    arguments: str
    """The rest of the line, continuation lines joined."""

    def exec_form(self) -> list[str]:
        """The JSON array of ``ENTRYPOINT ["a", "b"]``; fails on the shell form."""
        value = json.loads(self.arguments)
        assert isinstance(value, list), f"{self.keyword} is not in exec form: {self.arguments}"
        return [str(v) for v in value]


@dataclass
class Stage:
    base: str
    """The image after ``ARG`` substitution."""
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def instructions(text: str) -> list[Instruction]:
    """Instructions in order; comments and parser directives dropped."""
    result: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # comments inside a continued instruction are dropped
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, arguments = full.partition(" ")
        result.append(Instruction(keyword.upper(), arguments.strip()))
    return result


def stages(text: str) -> list[Stage]:
    """Build stages, with global ``ARG`` defaults substituted into ``FROM``."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "ARG" and not found:
            arg, _, default = instruction.arguments.partition("=")
            args[arg] = default
            continue
        if instruction.keyword == "FROM":
            parts = instruction.arguments.split()
            base = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            found.append(Stage(base, alias))
            continue
        assert found, f"{instruction.keyword} before the first FROM"
        found[-1].instructions.append(instruction)
    return found


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i : end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def ignore_rules(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """``(excludes, regex)`` per pattern line, in file order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line[1:] if include else line
        rules.append((not include, _pattern_regex(pattern.strip().strip("/"))))
    return rules


def is_ignored(rules: list[tuple[bool, re.Pattern[str]]], path: str) -> bool:
    """Whether the build context leaves out ``path`` (relative, ``/``-separated)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for excludes, regex in rules:
        if any(regex.match(prefix) for prefix in prefixes):
            ignored = excludes
    return ignored


def context_files(rules: list[tuple[bool, re.Pattern[str]]], source: Path) -> list[Path]:
    """Files under ``source`` (in the repository) that reach the build context."""
    paths = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    return [p for p in paths if not is_ignored(rules, p.relative_to(ROOT).as_posix())]
