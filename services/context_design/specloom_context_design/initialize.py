"""Initialize of the design family (definition v2): the library's worktree Initialize.

Every session works in its own worktree on its own branch; the fan-out
(ContextComponentsDesign) reads the context design's components; a review
of all component designs brings the designs it reads into its worktree
(from its siblings' branches when its parent names them, else from the
context design on its base).
"""

from __future__ import annotations

from dataclasses import replace

from specloom.v1 import common_pb2 as pb
from specloom.workflow import Judgement, Outcome, StepContext, commands
from specloom.workflow.steps import ContextInitialize, Found, SessionState, profile_of
from specloom_context_design.state import SESSION_KIND, DesignRef, DesignState


class InitializeReview(ContextInitialize):
    """A component-design review's worktree, with the designs it reads in it."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix, session_kind=SESSION_KIND)

    def inputs(self, ctx: StepContext, state: SessionState) -> list[str]:
        # Designs named by the parent need no context design to find them.
        return [] if DesignState.of(ctx).designs else super().inputs(ctx, state)

    def gather(self, ctx: StepContext, state: SessionState) -> list[pb.BranchFiles]:
        return [
            commands.branch_files(d.branch, [d.path])
            for d in DesignState.of(ctx).designs
            if d.branch and d.path
        ]

    def inspect(self, ctx: StepContext, state: SessionState, found: Found) -> Judgement:
        design = DesignState.of(ctx)
        if design.designs:
            return Judgement.ok()
        verdict = super().inspect(ctx, state, found)
        if verdict.outcome is not Outcome.OK:
            return verdict
        profile = profile_of(ctx)
        # The components' designs are on this session's base already.
        designs = tuple(
            DesignRef(c.module_name, profile.design_path(c.module_name))
            for c in DesignState.read(verdict.state).components
        )
        return replace(
            verdict, state={**verdict.state, **design.to(replace(design, designs=designs))}
        )
