"""What a project profile is: the layout and test runner of one kind of project."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from specloom.errors import InvalidArgument
from specloom.profiles._scaffold import ScaffoldComponent, ScaffoldPlan

ReportFormat = Literal["junit", "exunit-json"]

_SEGMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL_1 = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_2 = re.compile(r"([a-z\d])([A-Z])")


def module_segments(module_name: str) -> list[str]:
    """The segments of a module name, each a plain identifier.

    Module names come from people and from AI-written design documents and
    end up in paths, branch names and argv. Anything but identifiers joined
    by dots (quotes, ``$()``, backticks, ``;``, ``/``, newlines, ``..``) is
    refused here, so no later step has to wonder what a name might do.
    """
    parts = module_name.strip().split(".")
    if not module_name.strip() or any(not _SEGMENT.fullmatch(part) for part in parts):
        raise InvalidArgument(
            f"{module_name!r} is not a module name: expected identifiers joined by dots, "
            "e.g. 'inventory.stock' or 'MyApp.Inventory.Stock'"
        )
    return parts


def underscore(segment: str) -> str:
    """``MyApp`` -> ``my_app``, ``HTTPClient`` -> ``http_client`` (as ``Macro.underscore``)."""
    return _CAMEL_2.sub(r"\1_\2", _CAMEL_1.sub(r"\1_\2", segment)).lower()


@dataclass(frozen=True)
class ComponentFiles:
    """The files of one component, relative to the repository root."""

    design: str
    """Design document (markdown)."""
    code: str
    """Implementation."""
    test: str
    """Unit tests."""
    fixtures: str
    """Test fixtures/factories, written with the tests when the tests need them."""

    def all(self) -> tuple[str, str, str, str]:
        """Design, code, test and fixtures paths."""
        return (self.design, self.code, self.test, self.fixtures)


@dataclass(frozen=True)
class TestInvocation:
    """How to run some tests and where the machine-readable report lands."""

    __test__ = False  # not a pytest test class, despite the name

    argv: tuple[str, ...]
    """Program and arguments (run without a shell)."""
    env: Mapping[str, str]
    """Extra environment."""
    report_path: str
    """Where the runner writes its report (collected after the run)."""
    report_format: ReportFormat
    """How to parse the report."""
    ok_exit_codes: tuple[int, ...] = (0,)
    """Exit codes of a run that finished (tests may have failed): the executor
    reports these as OK and leaves the verdict to the report's judge."""

    def shown(self) -> tuple[str, ...]:
        """The argv for people and prompts: inline programs (the elixir formatter's
        source) are replaced by a placeholder."""
        return tuple("<inline program>" if "\n" in arg else arg for arg in self.argv)


class Profile(Protocol):
    """A kind of project: file layout from module names, and the test runner."""

    name: str
    """Profile name, as given in the ``profile`` session parameter."""
    language: str
    """Language name for prompts ("Python", "Elixir")."""
    report_format: ReportFormat
    """The format of the test reports its runner writes."""
    agent_commands: tuple[str, ...]
    """Programs an agent may run for this project (to run the tests itself)."""
    test_guidance: str
    """What a tests-first prompt must say for this language (how to refer to
    a module that does not exist yet so each test fails on its own)."""

    def module_path(self, module_name: str) -> str:
        """The path stem of a module: ``inventory.stock`` -> ``inventory/stock``.

        Raises ``InvalidArgument`` for a name that is not a module name.
        """
        ...

    def files(self, module_name: str) -> ComponentFiles:
        """Design, code, test and fixtures paths of a component."""
        ...

    def design_path(self, module_name: str) -> str:
        """Design document path of a context or component."""
        ...

    def test_invocation(self, test_paths: Sequence[str], report_path: str) -> TestInvocation:
        """The command that runs ``test_paths`` and writes a report to ``report_path``."""
        ...

    def scaffold(self, context: str, components: Sequence[ScaffoldComponent]) -> ScaffoldPlan:
        """The scaffolding of a validated context design: files to create, the
        project's generators to run, and the checks that the result builds.

        Raises ``InvalidArgument`` for a module name that is not one.
        """
        ...
