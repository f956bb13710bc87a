"""Agent prompts of a context's integration phase (ContextTesting, ContextCoding).

After the children, the parent's own agent works on the integrated branch:
it resolves merge conflicts between children (ResolveConflicts) and fixes
what fails only when every component is in place (FixIntegration). As the
component prompts do, each names the project, the context, the exact files,
the failing tests and the fix round with its cap; agents read the documents
themselves, so a prompt stays small whatever their size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from specloom.profiles import ComponentFiles, Profile
from specloom.workflow import ComponentView, StepContext
from specloom.workflow.steps import context_of, profile_of, rules_text
from specloom_coding.prompts import project_line, round_text
from specloom_coding.state import CodingState

SessionKind = Literal["test", "code"]

TEST_FILES = "<the test files listed above>"
"""How the whole-suite command shows its (long) list of test files."""


@dataclass(frozen=True)
class ContextFacts:
    """Everything an integration prompt says about the context and the project."""

    context: str
    project: str
    profile: Profile
    components: tuple[ComponentView, ...]
    files: tuple[ComponentFiles, ...]
    """Each component's files, in the order of ``components``."""
    branch: str
    """The session's branch: where the integrated work is."""
    rules: str
    test_command: str

    @staticmethod
    def of(ctx: StepContext, kind: SessionKind) -> ContextFacts:
        """The facts of ``ctx``'s context for a ``kind`` ("test" or "code") prompt."""
        state = CodingState.of(ctx)
        profile = profile_of(ctx)
        invocation = profile.test_invocation([TEST_FILES], "<report>")
        return ContextFacts(
            context=context_of(ctx),
            project=project_line(ctx),
            profile=profile,
            components=state.components,
            files=tuple(profile.files(c.module_name) for c in state.components),
            branch=state.branch,
            rules=rules_text(state.rules, "context", kind),
            test_command=" ".join(invocation.shown()),
        )

    def test_files(self) -> list[str]:
        """Every component's test file, in component order."""
        return [f.test for f in self.files]

    def code_files(self) -> list[str]:
        """Every component's code file, in component order."""
        return [f.code for f in self.files]


def _header(facts: ContextFacts) -> list[str]:
    lines = []
    if facts.project:
        lines.append(f"Project: {facts.project}")
    count = len(facts.components)
    lines.append(
        f"Context: {facts.context}, {count} component{'s' if count != 1 else ''}, "
        f"a {facts.profile.language} project"
    )
    lines.append(f"The integrated work is on branch {facts.branch}, in this worktree.")
    return lines


def _components(facts: ContextFacts, kind: SessionKind) -> list[str]:
    lines = ["", "## Components", ""]
    for component, files in zip(facts.components, facts.files, strict=True):
        needs = ""
        if component.dependencies:
            needs = f"; depends on {', '.join(component.dependencies)}"
        if kind == "code":
            where = f"code {files.code}, tests {files.test}"
        else:
            where = f"tests {files.test}, fixtures {files.fixtures}"
        lines.append(
            f"- {component.module_name} ({component.type or 'other'}): {where}; "
            f"design {files.design}{needs}"
        )
    return lines


def _rules(facts: ContextFacts) -> list[str]:
    if not facts.rules:
        return []
    return ["", "## Rules", "", "Follow these rules:", "", facts.rules]


def resolve_conflicts(
    facts: ContextFacts,
    kind: SessionKind,
    merging: str,
    conflicts: Sequence[str],
    round_: int,
    cap: int,
) -> str:
    """ResolveConflicts: finish a merge of one child's branch that stopped on conflicts."""
    who = merging or "a component's branch"
    return "\n".join(
        [
            f"Resolve the merge conflicts in the context {facts.context} "
            f"({round_text(round_, cap)}).",
            "",
            *_header(facts),
            f"Merging the work of {who} into {facts.branch} stopped: it and the work "
            "already integrated changed the same files in ways git cannot combine. The merge "
            "is in progress.",
            "",
            "The conflicted files, each holding conflict markers (<<<<<<<, =======, >>>>>>>):",
            *[f"- {path}" for path in conflicts],
            *_components(facts, kind),
            "",
            "Edit each conflicted file so that it keeps what both sides meant, as the "
            "components' designs describe it, and remove every conflict marker.",
            "Do not run git: do not commit, abort or restart the merge. The next step "
            "concludes it once no conflict marker is left, then merges the remaining "
            "components.",
            f"The context's tests are run with: {facts.test_command}",
            *_rules(facts),
        ]
    )


def fix_integration(
    facts: ContextFacts,
    kind: SessionKind,
    problem: str,
    summary: str,
    round_: int,
    cap: int,
) -> str:
    """FixIntegration: make the context's whole suite behave on the integrated branch."""
    if kind == "code":
        opening = (
            f"The tests of the context {facts.context} fail with every component integrated "
            f"({round_text(round_, cap)})."
        )
        expected = [
            "Each component's tests passed on its own branch; run together on the "
            "integrated branch, they must all pass.",
        ]
        what = [
            "Fix the implementations so that every test of the context passes with every "
            "component in place. Change a test only where it contradicts its component's "
            "design, and say so.",
            "Do not delete or skip tests.",
        ]
    else:
        opening = (
            f"The tests of the context {facts.context} do not behave together as tests "
            f"written before the code should ({round_text(round_, cap)})."
        )
        expected = [
            "Each component's tests loaded and failed on their own branch; run together on "
            "the integrated branch they must too: every test file loads next to the others, "
            "and each test fails only because the code does not exist yet.",
        ]
        what = [
            "Fix the test files (and fixtures) so that every file loads next to the others "
            "and every test fails only because its component's code is missing.",
            facts.profile.test_guidance,
            f"Do not write any code file ({', '.join(facts.code_files())}).",
        ]
    return "\n".join(
        [
            opening,
            "",
            *_header(facts),
            *expected,
            *_components(facts, kind),
            "",
            f"Problem: {problem}",
            "",
            summary,
            "",
            *what,
            f"The whole suite is run with: {facts.test_command}",
            *_rules(facts),
        ]
    )
