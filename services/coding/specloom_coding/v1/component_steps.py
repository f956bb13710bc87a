"""Steps of the component workflows (ComponentTest, ComponentCoding).

Each step is a small class: ``command`` builds what to run, ``judge``
decides what the result means from the evidence the executor sent back
(collected files, the test report), never from the executor's opinion
alone.
"""

from __future__ import annotations

from typing import ClassVar

from specloom.protoconv import JsonObject
from specloom.rules import RULE_GLOBS, RuleError
from specloom.workflow import (
    CommandKind,
    CommandPlan,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
    commands,
    max_rounds_of,
)
from specloom_coding.v1 import prompts
from specloom_coding.v1.common import (
    WORKTREES,
    agent_metadata,
    agent_problem,
    component_of,
    conversation_state,
    existing,
    files_of,
    profile_of,
    project_rules,
    recorded_files,
    session_branch,
    text_param,
    text_state,
    with_files,
    workdir_of,
)

RUN_TESTS = "RunTests"
"""The loop step both component workflows share; fix rounds are counted on it."""


def loop_cap(ctx: StepContext) -> int:
    """The fix-round cap of this session (the kernel applies it; prompts quote it)."""
    return max_rounds_of(ctx.params)


def git_failed(result: ReportedResult, step: str) -> Judgement:
    """ERROR for a git step that failed, as the executor said why; the same
    git failure twice in a row is stuck (retrying will not change it)."""
    problem = f"{step}: git failed: {result.error_message.strip() or 'no reason given'}"
    return Judgement.error(problem, fingerprint=f"git:{problem}")


class InitializeComponent:
    """Put the session on its own branch and check that its inputs exist.

    A top-level session creates its branch in the main checkout; a child
    gets its own worktree on its own branch, based on its parent's branch,
    so parallel children never share a checkout.
    """

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "create the session branch (a worktree for a child); check inputs"
    needs_children: ClassVar[bool] = False

    def __init__(self, branch_prefix: str, *, session_kind: str) -> None:
        self.branch_prefix = branch_prefix
        # "test" or "code", as rules name sessions; code is written against tests.
        self.session_kind = session_kind
        self.tests_required = session_kind == "code"

    def command(self, ctx: StepContext) -> CommandPlan:
        component = component_of(ctx)
        files = files_of(ctx)  # InvalidArgument for a name that is not a module name
        branch = session_branch(ctx, self.branch_prefix, component.module_name)
        if ctx.parent_id:
            workdir = f"{WORKTREES}/{ctx.session_id}"
            operation = commands.add_worktree(workdir, branch, text_state(ctx, "base_branch"))
        else:
            workdir = ""
            operation = commands.create_branch(branch, text_param(ctx, "base"))
        # The command runs at the workspace root (the worktree does not exist
        # before it), so what it collects is named from the root.
        prefix = f"{workdir}/" if workdir else ""
        collect = [prefix + files.design]
        if self.tests_required:
            collect.append(prefix + files.test)
        if not ctx.parent_id:
            collect.extend(RULE_GLOBS)  # a child inherits its parent's rules
        metadata = {"session_type": ctx.session_type, "component": component.module_name}
        return CommandPlan(
            commands.git(ctx.step, [operation], metadata=metadata, collect=collect),
            state={"branch": branch, "workdir": workdir},
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failed(result, ctx.step)
        files = files_of(ctx)
        prefix = f"{workdir_of(ctx)}/" if workdir_of(ctx) else ""
        if not existing(result, [prefix + files.design]):
            return Judgement.error(
                f"no design document at {files.design}: design the component first "
                "(a ComponentDesign session), then Resume",
                fail=True,
            )
        state: JsonObject = {}
        if self.tests_required:
            if not existing(result, [prefix + files.test]):
                return Judgement.error(
                    f"no tests at {files.test}: tests are written before the code "
                    "(a ComponentTest session), then Resume",
                    fail=True,
                )
            state["files"] = with_files(ctx, [files.test])
        if not ctx.parent_id:
            try:
                state["rules"] = project_rules(ctx, result, self.session_kind)
            except RuleError as exc:
                # A broken rule file is the project's to fix; no retry can help.
                return Judgement.error(f"rules: {exc}; fix the file, then Resume", fail=True)
        return Judgement.ok(state=state)


class _AgentStep:
    """An agent writes files; the judge checks they exist and keeps the conversation."""

    kind: ClassVar[CommandKind] = CommandKind.AGENT
    summary: ClassVar[str] = ""
    needs_children: ClassVar[bool] = False
    continues_conversation: ClassVar[bool] = False

    def outputs(self, ctx: StepContext) -> list[str]:
        raise NotImplementedError

    def required(self, ctx: StepContext) -> list[str]:
        """Outputs that must exist afterwards (the rest are optional)."""
        return self.outputs(ctx)

    def prompt(self, ctx: StepContext) -> str:
        raise NotImplementedError

    def round(self, ctx: StepContext) -> int:
        return ctx.rounds.get(RUN_TESTS, 0) if self.continues_conversation else 0

    def command(self, ctx: StepContext) -> CommandPlan:
        outputs = self.outputs(ctx)
        resume = text_state(ctx, "conversation_id") if self.continues_conversation else ""
        command = commands.agent(
            ctx.step,
            self.prompt(ctx),
            output_paths=outputs,
            model=text_param(ctx, "model"),
            resume_conversation_id=resume,
            allowed_commands=profile_of(ctx).agent_commands,
            metadata=agent_metadata(ctx, self.round(ctx)),
            workdir=workdir_of(ctx),
            collect=outputs,
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            problem = agent_problem(result, ctx.step)
            return Judgement.error(problem, fingerprint=f"agent:{problem}")
        missing = [p for p in self.required(ctx) if not existing(result, [p])]
        if missing:
            problem = f"{ctx.step}: the agent finished but wrote nothing at {', '.join(missing)}"
            return Judgement.error(problem, fingerprint=f"agent:{problem}")
        written = existing(result, self.outputs(ctx))
        state = {"files": with_files(ctx, written), **conversation_state(result)}
        return Judgement.ok(state=state)


class GenerateTestsAndFixtures(_AgentStep):
    """The agent writes the component's tests (and fixtures) from its design."""

    summary: ClassVar[str] = "agent writes the tests (and fixtures) from the design"

    def outputs(self, ctx: StepContext) -> list[str]:
        files = files_of(ctx)
        return [files.test, files.fixtures]

    def required(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).test]

    def prompt(self, ctx: StepContext) -> str:
        return prompts.generate_tests(prompts.ComponentFacts.of(ctx, "test"))


class FixCompilationErrors(_AgentStep):
    """The same conversation fixes tests that do not load, do not run or do not fail."""

    summary: ClassVar[str] = "agent fixes tests that do not compile, run, or fail first"
    continues_conversation: ClassVar[bool] = True

    def outputs(self, ctx: StepContext) -> list[str]:
        files = files_of(ctx)
        return [files.test, files.fixtures]

    def required(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).test]

    def prompt(self, ctx: StepContext) -> str:
        problem, summary = prompts.last_failure(ctx)
        facts = prompts.ComponentFacts.of(ctx, "test")
        return prompts.fix_tests(facts, problem, summary, self.round(ctx), loop_cap(ctx))


class GenerateImplementation(_AgentStep):
    """The agent writes the code that makes the tests pass."""

    summary: ClassVar[str] = "agent writes the implementation from the design and tests"

    def outputs(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).code]

    def prompt(self, ctx: StepContext) -> str:
        return prompts.generate_implementation(prompts.ComponentFacts.of(ctx, "code"))


class FixTestFailures(_AgentStep):
    """The same conversation fixes the code against the failing tests."""

    summary: ClassVar[str] = "agent fixes the failing tests, continuing its conversation"
    continues_conversation: ClassVar[bool] = True

    def outputs(self, ctx: StepContext) -> list[str]:
        files = files_of(ctx)
        return [files.code, files.test]

    def required(self, ctx: StepContext) -> list[str]:
        return [files_of(ctx).code]

    def prompt(self, ctx: StepContext) -> str:
        problem, summary = prompts.last_failure(ctx)
        facts = prompts.ComponentFacts.of(ctx, "code")
        return prompts.fix_failures(facts, problem, summary, self.round(ctx), loop_cap(ctx))


class FinalizeComponent:
    """Commit exactly the files the session produced, on its branch."""

    kind: ClassVar[CommandKind] = CommandKind.GIT
    summary: ClassVar[str] = "commit exactly the component's files"
    needs_children: ClassVar[bool] = False

    def __init__(self, verb: str) -> None:
        self.verb = verb

    def command(self, ctx: StepContext) -> CommandPlan:
        module = component_of(ctx).module_name
        message = (
            f"{self.verb} {module}\n\nComponents:\n- {module}\n\n"
            f"specloom {ctx.session_type} session {ctx.session_id}"
        )
        # allow_empty: a finalize retried after its commit landed has
        # nothing left to commit, and that is success, not an error.
        operation = commands.commit(recorded_files(ctx), message, allow_empty=True)
        metadata = {"session_type": ctx.session_type, "component": module}
        return CommandPlan(
            commands.git(ctx.step, [operation], metadata=metadata, workdir=workdir_of(ctx))
        )

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        if result.outcome is Outcome.ERROR:
            return git_failed(result, ctx.step)
        commit = result.data.get("commit")
        committed = result.data.get("committed_files")
        return Judgement.ok(
            state={
                "commit": commit if isinstance(commit, str) else "",
                "committed_files": committed if isinstance(committed, list) else [],
            }
        )


__all__ = [
    "RUN_TESTS",
    "FinalizeComponent",
    "FixCompilationErrors",
    "FixTestFailures",
    "GenerateImplementation",
    "GenerateTestsAndFixtures",
    "InitializeComponent",
    "git_failed",
    "loop_cap",
]
