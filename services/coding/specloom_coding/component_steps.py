"""Steps of the component workflows (ComponentTest, ComponentCoding), definition v2.

Built on the kernel's step library: the worktree Initialize checks the
component's inputs, the agent steps name what they write, and Finalize
commits exactly the component's files on the session's branch. Each judge
decides from the evidence the executor sent back (collected files, the test
report), never from the executor's opinion alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.rules import TEST_WRITER, UNIT_CODER
from specloom.workflow import Judgement, StepContext
from specloom.workflow.steps import (
    AgentStep,
    Commit,
    Found,
    Initialize,
    SessionState,
    context_of,
    loop_cap,
    profile_of,
    text_param,
)
from specloom_coding import prompts
from specloom_coding.state import RUN_TESTS, CodingState, component_of, files_of


def context_design_of(ctx: StepContext) -> str:
    """The context's design document path ("" when the session names no context)."""
    context = context_of(ctx)
    return profile_of(ctx).design_path(context) if context else ""


class InitializeComponent(Initialize):
    """The session's own worktree; its design (and, for code, its tests) must be there.

    The context's design is looked for too: when the worktree has it, the
    prompts point the agent at it (the seeds' test writer read the parent
    context's design); without it the session still runs.
    """

    def __init__(self, prefix: str, *, session_kind: str) -> None:
        super().__init__(prefix, session_kind=session_kind)
        # Code is written against tests written first.
        self.tests_required = session_kind == "code"

    def inputs(self, ctx: StepContext, state: SessionState) -> list[str]:
        files = files_of(ctx)  # InvalidArgument for a name that is not a module name
        needed = [files.design, files.test] if self.tests_required else [files.design]
        context_design = context_design_of(ctx)
        return [*needed, context_design] if context_design else needed

    def inspect(self, ctx: StepContext, state: SessionState, found: Found) -> Judgement:
        files = files_of(ctx)
        start = state.base or text_param(ctx, "base") or "the workspace's HEAD"
        if not found.written([files.design]):
            return Judgement.error(
                f"no design document at {files.design} on {start}: design the component first "
                "(a ComponentDesign session) and start from its branch (the `base` parameter), "
                "then Resume",
                fail=True,
            )
        path = context_design_of(ctx)
        context_design = path if path and found.written([path]) else ""
        if not self.tests_required:
            return Judgement.ok(state.to(replace(state, context_design=context_design)))
        if not found.written([files.test]):
            return Judgement.error(
                f"no tests at {files.test} on {start}: tests are written before the code "
                "(a ComponentTest session; start from its branch), then Resume",
                fail=True,
            )
        after = replace(state, files=state.with_files([files.test]), context_design=context_design)
        return Judgement.ok(state.to(after))


class GenerateTestsAndFixtures(AgentStep):
    """The agent writes the component's tests (and fixtures) from its design."""

    summary: ClassVar[str] = "agent writes the tests (and fixtures) from the design"
    runs_tests: ClassVar[bool] = True
    persona: ClassVar[str] = TEST_WRITER

    def outputs(self, ctx: StepContext) -> list[str]:
        files = files_of(ctx)
        return [files.test, files.fixtures]

    def required(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).test]

    def prompt(self, ctx: StepContext) -> str:
        return prompts.generate_tests(prompts.ComponentFacts.of(ctx, "test"))


class FixCompilationErrors(AgentStep):
    """The same conversation fixes tests that do not load, do not run or do not fail."""

    summary: ClassVar[str] = "agent fixes tests that do not compile, run, or fail first"
    runs_tests: ClassVar[bool] = True
    persona: ClassVar[str] = TEST_WRITER
    loop: ClassVar[str] = RUN_TESTS
    continues: ClassVar[bool] = True

    def outputs(self, ctx: StepContext) -> list[str]:
        files = files_of(ctx)
        return [files.test, files.fixtures]

    def required(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).test]

    def prompt(self, ctx: StepContext) -> str:
        state = CodingState.of(ctx)
        facts = prompts.ComponentFacts.of(ctx, "test")
        return prompts.fix_tests(
            facts, state.failure_reason, state.failure_summary, self.round(ctx), loop_cap(ctx)
        )


class GenerateImplementation(AgentStep):
    """The agent writes the code that makes the tests pass."""

    summary: ClassVar[str] = "agent writes the implementation from the design and tests"
    runs_tests: ClassVar[bool] = True
    persona: ClassVar[str] = UNIT_CODER

    def outputs(self, ctx: StepContext) -> list[str]:
        # The test is named too: the agent may change one that contradicts the design.
        files = files_of(ctx)
        return [files.code, files.test]

    def required(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).code]

    def prompt(self, ctx: StepContext) -> str:
        return prompts.generate_implementation(prompts.ComponentFacts.of(ctx, "code"))


class FixTestFailures(AgentStep):
    """The same conversation fixes the code against the failing tests."""

    summary: ClassVar[str] = "agent fixes the failing tests, continuing its conversation"
    runs_tests: ClassVar[bool] = True
    persona: ClassVar[str] = UNIT_CODER
    loop: ClassVar[str] = RUN_TESTS
    continues: ClassVar[bool] = True

    def outputs(self, ctx: StepContext) -> list[str]:
        files = files_of(ctx)
        return [files.code, files.test]

    def required(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).code]

    def prompt(self, ctx: StepContext) -> str:
        state = CodingState.of(ctx)
        facts = prompts.ComponentFacts.of(ctx, "code")
        return prompts.fix_failures(
            facts, state.failure_reason, state.failure_summary, self.round(ctx), loop_cap(ctx)
        )


class FinalizeComponent(Commit):
    """Commit the component's files on the session's branch: what it must deliver, and more."""

    summary: ClassVar[str] = "commit exactly the component's files on the session's branch"

    def __init__(self, verb: str, *, delivers: str) -> None:
        super().__init__()
        self.verb = verb
        self.delivers = delivers
        """Which of the component's files the session must have written (``test``, ``code``)."""

    def paths(self, ctx: StepContext, state: SessionState) -> list[str]:
        # The file this session exists to write is named even if the state
        # lost it: if it is not there, the commit fails naming it.
        must = getattr(files_of(ctx), self.delivers)
        return sorted({*state.files, must})

    def headline(self, ctx: StepContext, state: SessionState) -> str:
        return f"{self.verb} {component_of(ctx).module_name}"

    def body(self, ctx: StepContext, state: SessionState) -> str:
        return f"Components:\n- {component_of(ctx).module_name}"
