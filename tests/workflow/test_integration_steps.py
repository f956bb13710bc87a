"""The step library's integration pieces on their own: merge order, who waits on a failure,
the merge step's verdicts, the one-commit Finalize, and Initialize's dependency merges.

The coding family's workflows built on them are pinned by
``tests/coding/test_integration_goldens.py``; real git and real runs by
``tests/gateway/test_context_integration.py``.
"""

from __future__ import annotations

from typing import ClassVar

from specloom.protoconv import JsonValue
from specloom.workflow import (
    ChildSpec,
    ChildView,
    Judgement,
    Outcome,
    ReportedResult,
    StepContext,
)
from specloom.workflow.steps import (
    ChildRecord,
    Initialize,
    IntegrateChildren,
    SessionState,
    Spawn,
    SquashIntegrated,
    encode,
    integration_order,
)
from specloom.workflow.steps._spawn import blocked_children


def ctx(state: dict[str, JsonValue], *, step: str = "Step", parent: str = "") -> StepContext:
    return StepContext(
        session_id="00000000-0000-7000-8000-0000abcd1234",
        session_type="Whole",
        account_id="a",
        project_id="p",
        user_id="u",
        params={},
        state=state,
        parent_id=parent,
        name="whole",
        step=step,
    )


def record(key: str, *depends_on: str, status: str = "complete") -> ChildRecord:
    return ChildRecord(
        key=key, id=f"id-{key}", type="Part", status=status, branch=f"b-{key}",
        files=(f"{key}.txt",), depends_on=depends_on,
    )  # fmt: skip


def test_children_merge_after_what_they_depend_on_in_listed_order_otherwise() -> None:
    children = [record("c", "b"), record("x"), record("b", "a"), record("a"), record("y", "ext")]
    # "ext" is no sibling (another spawn's child): it does not hold "y" back.
    assert [c.key for c in integration_order(children)] == ["x", "a", "y", "b", "c"]
    # A stored cycle (refused at creation, so only hand-edited state) keeps
    # its members at the end rather than losing them.
    looped = [record("p", "q"), record("q", "p"), record("r")]
    assert [c.key for c in integration_order(looped)] == ["r", "p", "q"]


def view(key: str, status: str) -> ChildView:
    return ChildView(id=f"id-{key}", type="Part", key=key, status=status)


def test_children_waiting_on_a_failure_are_blocked_by_its_root_cause() -> None:
    specs = [
        ChildSpec(type="Part", key="a"),
        ChildSpec(type="Part", key="b", depends_on=("a",)),
        ChildSpec(type="Part", key="c", depends_on=("b",)),
        ChildSpec(type="Part", key="d", depends_on=("b", "e")),
        ChildSpec(type="Part", key="e"),
        ChildSpec(type="Part", key="f", depends_on=("e",)),
    ]
    children = {
        "a": view("a", "failed"),
        "b": view("b", "active"),
        "c": view("c", "active"),
        "d": view("d", "active"),
        "e": view("e", "cancelled"),
        "f": view("f", "active"),
    }
    blocked = {k: [c.key for c in v] for k, v in blocked_children(specs, children).items()}
    assert blocked == {"b": ["a"], "c": ["a"], "d": ["a", "e"], "f": ["e"]}
    children["a"] = view("a", "complete")
    children["e"] = view("e", "active")
    assert blocked_children(specs, children) == {}  # nobody waits on a failure now


def state_of(children: list[ChildRecord], **more: JsonValue) -> dict[str, JsonValue]:
    """A parent's stored state after its join recorded ``children``."""
    return {
        "branch": "whole-branch",
        "workdir": ".specloom/worktrees/w",
        "children": [encode(child) for child in children],
        **more,
    }


def test_the_merge_step_merges_in_dependency_order_and_names_a_conflict() -> None:
    step = IntegrateChildren("Part")
    state = state_of([record("b", "a"), record("a"), record("other")])
    plan = step.command(ctx(state, step="IntegrateChildren"))
    merge = plan.command.git.operations[0].merge
    assert list(merge.branches) == ["b-a", "b-other", "b-b"]
    assert plan.command.workdir == ".specloom/worktrees/w"
    conflict = ReportedResult(
        outcome=Outcome.ERROR,
        error_message="merging b-b into whole-branch conflicts in 2 files: ...",
        data={"conflicts": ["z.txt", "a.txt"], "merging": "b-b", "pending": []},
    )
    verdict = step.judge(ctx(state, step="IntegrateChildren"), conflict)
    assert verdict.outcome is Outcome.ERROR
    assert not verdict.fail
    assert verdict.reason == (
        "merging b (b-b) into whole-branch conflicts in 2 file(s): a.txt, z.txt; the merge is "
        "left in progress for the conflicts to be resolved"
    )
    assert verdict.state == {"merging": "b", "conflicts": ["a.txt", "z.txt"]}
    again = step.judge(ctx(state, step="IntegrateChildren"), conflict)
    assert again.fingerprint == verdict.fingerprint  # the same conflict twice: stuck
    # Any other git failure is for a person: no agent can bring back a branch.
    gone = ReportedResult(outcome=Outcome.ERROR, error_message="unknown revision 'b-b'")
    failed = step.judge(ctx(state, step="IntegrateChildren"), gone)
    assert failed.fail
    assert "unknown revision 'b-b'" in failed.reason
    done = ReportedResult(outcome=Outcome.OK, data={"merged": ["b-a", "b-other", "b-b"]})
    resolved = {**state, "merging": "b", "conflicts": ["a.txt"]}
    ok = step.judge(ctx(resolved, step="IntegrateChildren"), done)
    assert ok.outcome is Outcome.OK
    assert ok.state == {"merging": "", "conflicts": []}
    assert ok.facts["integrated"] == ["a", "other", "b"]


def test_finalize_squashes_every_childs_files_and_the_parents_onto_the_base_commit() -> None:
    class Deliver(SquashIntegrated):
        def headline(self, ctx: StepContext, state: SessionState) -> str:
            return "All parts"

    state = state_of([record("a"), record("b", "a")], base_commit="c0ffee", files=["fix.txt"])
    plan = Deliver().command(ctx(state, step="Finalize"))
    commit, push = (op for op in plan.command.git.operations)
    assert commit.commit.squash_onto == "c0ffee"
    assert list(commit.commit.paths) == ["a.txt", "b.txt", "fix.txt"]
    assert not commit.commit.gather  # the integrated worktree has it all
    assert commit.commit.expect_branch == push.push.branch == "whole-branch"
    # No base commit recorded: no commit is made, and the verdict says why.
    bare = state_of([record("a")])
    assert plan.command.WhichOneof("kind") == "git"
    assert Deliver().command(ctx(bare, step="Finalize")).command.WhichOneof("kind") == "noop"
    refused = Deliver().judge(ctx(bare, step="Finalize"), ReportedResult(outcome=Outcome.OK))
    assert refused.fail
    assert "no base commit" in refused.reason


class Setup(Initialize):
    summary: ClassVar[str] = "set up"


def test_a_dependent_childs_initialize_merges_its_dependencies_and_records_where_it_started() -> (
    None
):
    deps: list[JsonValue] = [
        {"key": "a", "session_id": "id-a", "branch": "b-a"},
        {"key": "b", "session_id": "id-b", "branch": "b-b"},
    ]
    child = ctx({"base": "whole-branch", "dependencies": deps}, step="Initialize", parent="p")
    plan = Setup("part", session_kind="code").command(child)
    worktree = plan.command.git.operations[0].add_worktree
    assert (worktree.base, list(worktree.merge)) == ("whole-branch", ["b-a", "b-b"])
    state = {**child.state, **{k: v for k, v in plan.state.items() if v is not None}}
    started = ReportedResult(outcome=Outcome.OK, data={"commit": "abc123", "merged": ["b-a"]})
    verdict = Setup("part", session_kind="code").judge(
        ctx(state, step="Initialize", parent="p"), started
    )
    assert verdict.outcome is Outcome.OK
    assert verdict.state == {"base_commit": "abc123"}
    # Recorded once: a retried Initialize on a worktree that moved on keeps it.
    moved = ReportedResult(outcome=Outcome.OK, data={"commit": "def456"})
    kept = Setup("part", session_kind="code").judge(
        ctx({**state, "base_commit": "abc123"}, step="Initialize", parent="p"), moved
    )
    assert kept.state == {}
    # Dependencies that conflict: the child fails at once, naming the files.
    conflict = ReportedResult(
        outcome=Outcome.ERROR,
        error_message="merging b-b into part conflicts in 1 file: shared.txt; ...",
        data={"conflicts": ["shared.txt"], "merging": "b-b"},
    )
    failed = Setup("part", session_kind="code").judge(
        ctx(state, step="Initialize", parent="p"), conflict
    )
    assert failed.fail
    assert failed.reason.startswith(
        "Initialize: the dependencies' branches conflict in 1 file(s): shared.txt; merging b-b"
    )


class Fan(Spawn):
    def specs(self, ctx: StepContext, state: SessionState) -> list[ChildSpec]:
        return [
            ChildSpec(type="Part", key="a"),
            ChildSpec(type="Part", key="b", depends_on=("a",)),
            ChildSpec(type="Part", key="c"),
        ]

    def expected_files(self, ctx: StepContext, spec: ChildSpec) -> list[str]:
        return [f"{spec.key}.txt"]


def test_a_partial_failure_names_the_failed_the_waiting_and_what_is_kept_where() -> None:
    children = (
        ChildView(id="id-a", type="Part", key="a", status="failed", status_reason="it broke"),
        ChildView(id="id-b", type="Part", key="b", status="active", state={"branch": "b-b"}),
        ChildView(
            id="id-c", type="Part", key="c", status="complete",
            state={"branch": "b-c", "files": ["c.txt"]},
        ),
    )  # fmt: skip
    parent = ctx({"branch": "whole-branch"}, step="Spawn")
    parent = StepContext(**{**parent.__dict__, "children": children})
    verdict: Judgement = Fan("Part").judge(parent, ReportedResult(outcome=Outcome.OK))
    assert verdict.reason == (
        "2 of 3 Part children not done: a: failed (it broke); not delivered: a.txt; "
        "b: waits for a (failed); kept, complete on their own branches (1): c (b-c); "
        "state.children lists their files; a retry or Resume runs only what did not finish"
    )
    # No child can move without a retry: the join is settled, so the same
    # failure again is "stuck".
    assert verdict.fingerprint
    assert verdict.facts["kept"] == ["c"]
    recorded = SessionState.read({k: v for k, v in verdict.state.items() if v is not None})
    assert [(c.key, c.status, c.depends_on) for c in recorded.children] == [
        ("a", "failed", ()),
        ("b", "active", ("a",)),
        ("c", "complete", ()),
    ]
    revived = Fan("Part").command(parent)
    assert revived.revive_children == ("id-a",)  # only the failed child runs again
