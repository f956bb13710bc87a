"""Agent prompts of the coding family.

Each prompt names the exact paths to read and write, the component and its
context, the project, the matching rules, and for fix steps the failure
summary of the last test run. Agents read the design and test files
themselves: the paths are given, not the contents, so a prompt stays small
whatever the size of the documents. Who the agent is (a test writer, a
unit coder) is its persona, sent as the system prompt by the steps.

What the seeds fix, and these prompts say: tests are written before the
code and only the cases the design's Test Assertions list, one test each
(a case the design lacks goes into the design first, not into the tests);
the code is then written until those tests pass, and a fix changes the
implementation or, where a test contradicts the design, that test — saying
so — never deleting or skipping one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from specloom.profiles import ComponentFiles, Profile
from specloom.workflow import ComponentView, StepContext
from specloom.workflow.steps import context_of, profile_of, rules_text
from specloom_coding.state import CodingState, component_of

SessionKind = Literal["test", "code"]


@dataclass(frozen=True)
class ComponentFacts:
    """Everything a component prompt says about the component and the project."""

    component: ComponentView
    context: str
    profile: Profile
    files: ComponentFiles
    project: str
    rules: str
    test_command: str
    context_design: str = ""
    """The context's design document, when the session's worktree has it."""

    @staticmethod
    def of(ctx: StepContext, kind: SessionKind) -> ComponentFacts:
        """The facts of ``ctx``'s component for a ``kind`` ("test" or "code") prompt."""
        component = component_of(ctx)
        profile = profile_of(ctx)
        files = profile.files(component.module_name)
        invocation = profile.test_invocation([files.test], "<report>")
        state = CodingState.of(ctx)
        return ComponentFacts(
            component=component,
            context=context_of(ctx),
            profile=profile,
            files=files,
            project=project_line(ctx),
            rules=rules_text(state.rules, component.type or "other", kind),
            test_command=" ".join(invocation.shown()),
            context_design=state.context_design,
        )


def project_line(ctx: StepContext) -> str:
    """``name: description`` of the ``project`` param ("" when not given)."""
    project = ctx.params.get("project")
    if not isinstance(project, Mapping):
        return ""
    name = str(project.get("name") or "").strip()
    description = str(project.get("description") or "").strip()
    return f"{name}: {description}" if name and description else name or description


def _header(facts: ComponentFacts) -> list[str]:
    c = facts.component
    lines = []
    if facts.project:
        lines.append(f"Project: {facts.project}")
    lines.append(
        f"Component: {c.module_name} ({c.type or 'other'}), a {facts.profile.language} module"
    )
    if facts.context:
        lines.append(f"Context: {facts.context}")
    if c.description:
        lines.append(f"What it does: {c.description}")
    if c.dependencies:
        lines.append(f"It depends on: {', '.join(c.dependencies)}")
    return lines


def _reading(facts: ComponentFacts) -> list[str]:
    lines = [f"Read the design document: {facts.files.design}"]
    if facts.context_design:
        lines.append(
            f"Read the context design, for how {facts.component.module_name} fits its "
            f"context: {facts.context_design}"
        )
    return lines


def _rules(facts: ComponentFacts) -> list[str]:
    if not facts.rules:
        return []
    return ["", "## Rules", "", "Follow these rules:", "", facts.rules]


def generate_tests(facts: ComponentFacts) -> str:
    """GenerateTestsAndFixtures: write the tests before any code exists."""
    f = facts.files
    return "\n".join(
        [
            f"Write the unit tests for {facts.component.module_name} before its code exists.",
            "",
            *_header(facts),
            "",
            *_reading(facts),
            f"Write the tests to: {f.test}",
            f"If the tests need fixtures or factories, write them to: {f.fixtures}",
            f"The implementation will live at {f.code}. Do not create it.",
            "",
            "Write exactly the tests listed in the design's Test Assertions section: one "
            "test per assertion, named after it, and no others. If a case you think needs "
            "a test is not listed, do not write it; say so in your reply, so the design "
            "can be changed first.",
            "Group the tests as the assertions are grouped (per function, for example), and "
            "assert on behaviour (return values, state changes, errors), not on "
            "implementation details.",
            facts.profile.test_guidance,
            "Right now every test must fail because the implementation is missing; none may pass.",
            f"The tests are run with: {facts.test_command}",
            *_rules(facts),
        ]
    )


def round_text(round_: int, cap: int) -> str:
    """Which fix round this is, as a prompt says it."""
    if round_ == 0:
        # A Resume restarted the count; this fix is not one of the capped rounds.
        return f"a fix after the session was resumed; then up to {cap} more rounds"
    return f"fix round {round_} of {cap}"


def fix_tests(facts: ComponentFacts, problem: str, summary: str, round_: int, cap: int) -> str:
    """FixCompilationErrors: make tests-first tests load, run and fail properly."""
    f = facts.files
    return "\n".join(
        [
            f"The tests for {facts.component.module_name} do not behave as tests written "
            f"before the code should ({round_text(round_, cap)}).",
            "",
            f"Problem: {problem}",
            "",
            summary,
            "",
            f"Fix {f.test} (and {f.fixtures} if you use it) so that the file loads, every "
            f"test runs, and each test fails only because {f.code} does not exist yet.",
            "If the tests passed, they do not test the component: make them assert the "
            f"behaviour described in {f.design}.",
            "If no test ran, the file defines no tests the runner can find: write them.",
            "Keep to the tests the design's Test Assertions list, one test each.",
            facts.profile.test_guidance,
            f"Do not write {f.code}.",
            *_rules(facts),
        ]
    )


CHANGING_TESTS = (
    "Make the tests pass by changing the implementation. Change a test only where it "
    "contradicts the design (the design decides), say which test and why, and never "
    "delete or skip a test."
)
"""What a coding agent may do to a test: the seeds' "fixing implementation or tests
based on failure analysis", bounded by the design (the built-in code rule says the same)."""


def generate_implementation(facts: ComponentFacts) -> str:
    """GenerateImplementation: write the code that makes the tests pass."""
    f = facts.files
    return "\n".join(
        [
            f"Implement {facts.component.module_name}.",
            "",
            *_header(facts),
            "",
            *_reading(facts),
            f"Read the tests, which were written first and define done: {f.test}",
            f"Write the implementation to: {f.code}",
            "",
            "Implement every function of the design's Public API with the signature it "
            "gives, and handle every failure the design names.",
            CHANGING_TESTS,
            f"The tests are run with: {facts.test_command}",
            *_rules(facts),
        ]
    )


def fix_failures(facts: ComponentFacts, problem: str, summary: str, round_: int, cap: int) -> str:
    """FixTestFailures: continue the implementation conversation with the failures."""
    f = facts.files
    return "\n".join(
        [
            f"The tests for {facts.component.module_name} still fail ({round_text(round_, cap)}).",
            "",
            f"Problem: {problem}",
            "",
            summary,
            "",
            f"Fix the implementation in {f.code} so that every test in {f.test} passes.",
            CHANGING_TESTS,
            *_rules(facts),
        ]
    )
