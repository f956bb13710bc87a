"""The agent step: an AI agent writes files; the judge checks they exist.

One behaviour for both families: the prompt names the exact paths; the
command collects them back; the judge refuses an agent that finished but
wrote nothing where it had to (an ERROR naming the paths, fingerprinted so
the same emptiness twice is stuck), records what it wrote in ``files`` and
keeps its conversation for the fix or revise step that continues it. Model,
turn limit and time limit come from params; the loop round a fix belongs to
goes into the command's metadata (the scripted backend matches on it).

Each agent works as a persona (:data:`specloom.rules.PERSONAS`): a step
names it (``persona = UNIT_CODER``, or :meth:`AgentStep.persona_of` when it
depends on the session) and the command carries it as the system prompt,
changed by the session's rules that name it. The prompt says what to do
now; the persona says who does it, for the whole conversation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

from specloom.documents import CONTEXT
from specloom.rules import system_prompt
from specloom.workflow import commands
from specloom.workflow._context import CommandPlan, Judgement, ReportedResult, StepContext
from specloom.workflow._model import CommandKind, Outcome
from specloom.workflow.steps._found import Found
from specloom.workflow.steps._initialize import step_metadata
from specloom.workflow.steps._params import agent_options, profile_of
from specloom.workflow.steps._state import SessionState
from specloom.workflow.steps._verdicts import agent_failed, fingerprint

__all__ = ["AgentStep"]


class AgentStep:
    """Base of every agent step; a family fills in the outputs and the prompt."""

    kind: ClassVar[CommandKind] = CommandKind.AGENT
    summary: ClassVar[str] = "an agent writes files"
    needs_children: ClassVar[bool] = False
    loop: ClassVar[str] = ""
    """The step whose ERROR rounds this one fixes or revises ("": not a loop step);
    its round count is this step's round."""
    continues: ClassVar[bool] = False
    """Resume the session's agent conversation instead of starting a new one."""
    runs_tests: ClassVar[bool] = False
    """The agent may run the profile's test commands."""
    persona: ClassVar[str] = ""
    """The persona the agent works as (a name in :data:`specloom.rules.PERSONAS`;
    "" sends no system prompt)."""

    # -- hooks -------------------------------------------------------------------------

    def outputs(self, ctx: StepContext) -> list[str]:
        """Paths (in the session's worktree) the agent may write."""
        raise NotImplementedError

    def required(self, ctx: StepContext) -> list[str]:
        """Outputs that must exist afterwards; by default all of them."""
        return self.outputs(ctx)

    def prompt(self, ctx: StepContext) -> str:
        """What the agent is asked."""
        raise NotImplementedError

    def check(self, ctx: StepContext, found: Found) -> Judgement | None:
        """A further verdict on what was written (``None``: it is fine)."""
        return None

    def resumes(self, ctx: StepContext, state: SessionState) -> str:
        """The conversation to continue ("" starts a new one)."""
        return state.conversation_id if self.continues else ""

    def persona_of(self, ctx: StepContext) -> str:
        """The persona of this session's agent (by default :attr:`persona`)."""
        return self.persona

    def component_type(self, ctx: StepContext) -> str:
        """The component type rules are matched against: the component's, else a context's."""
        if ctx.component is None:
            return CONTEXT
        return ctx.component.type or "other"

    def system_prompt(self, ctx: StepContext) -> str:
        """The persona as the session's rules extend or replace it ("" without one)."""
        name = self.persona_of(ctx)
        if not name:
            return ""
        return system_prompt(name, SessionState.of(ctx).rules, self.component_type(ctx))

    def round(self, ctx: StepContext) -> int:
        """Which round of its loop this is (0: not a loop step, or the first after a Resume)."""
        return ctx.rounds.get(self.loop, 0) if self.loop else 0

    # -- the step ------------------------------------------------------------------------

    def command(self, ctx: StepContext) -> CommandPlan:
        state = SessionState.of(ctx)
        options = agent_options(ctx)
        outputs = self.outputs(ctx)
        command = commands.agent(
            ctx.step,
            self.prompt(ctx),
            output_paths=outputs,
            system_prompt=self.system_prompt(ctx),
            model=options.model,
            max_turns=options.max_turns,
            resume_conversation_id=self.resumes(ctx, state),
            allowed_commands=profile_of(ctx).agent_commands if self.runs_tests else (),
            metadata={**step_metadata(ctx), "round": self.round(ctx)},
            timeout_seconds=options.timeout_seconds,
            workdir=state.workdir,
            collect=outputs,
        )
        return CommandPlan(command)

    def judge(self, ctx: StepContext, result: ReportedResult) -> Judgement:
        state = SessionState.of(ctx)
        conversation = result.data.get("conversation_id")
        if isinstance(conversation, str) and conversation:
            state_after = replace(state, conversation_id=conversation)
        else:
            state_after = state
        if result.outcome is not Outcome.OK:
            return agent_failed(result, ctx.step, state.to(state_after))
        found = Found(result)
        missing = [path for path in self.required(ctx) if not found.written([path])]
        if missing:
            problem = f"{ctx.step}: the agent finished but wrote nothing at {', '.join(missing)}"
            return Judgement.error(
                problem, fingerprint=fingerprint("agent", problem), state=state.to(state_after)
            )
        state_after = replace(state_after, files=state.with_files(found.written(self.outputs(ctx))))
        changes = state.to(state_after)
        verdict = self.check(ctx, found)
        if verdict is None:
            return Judgement.ok(changes)
        return replace(verdict, state={**changes, **verdict.state})
