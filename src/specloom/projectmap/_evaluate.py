"""The judge: recorded facts against the declared requirements, one sentence each.

Pure: the same facts give the same map. A requirement that is there is
met whatever else is missing (files are facts); one that is not there is
BLOCKED while a requirement it needs is unmet, else MISSING or FAILING. A
component is done when every requirement is met or not needed; a context
when its own are, which cover its components' designs, tests and code, and
the contexts it depends on being done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from specloom.documents import CONTEXT
from specloom.projectmap._order import dependencies_first
from specloom.projectmap._requirements import Requirement, not_needed, requirements_of
from specloom.projectmap._testrun import SCAN_SOURCE, files_digest
from specloom.v1 import projectmap_pb2 as pb
from specloom.v1 import sessions_pb2 as spb

MET = pb.REQUIREMENT_STATE_MET
MISSING = pb.REQUIREMENT_STATE_MISSING
FAILING = pb.REQUIREMENT_STATE_FAILING
STALE = pb.REQUIREMENT_STATE_STALE
BLOCKED = pb.REQUIREMENT_STATE_BLOCKED
NOT_NEEDED = pb.REQUIREMENT_STATE_NOT_NEEDED

SETTLED = frozenset({MET, NOT_NEEDED})
"""States that count as done."""

_Verdict = tuple["pb.RequirementState.ValueType", str]


def project_map(workspace_id: str, facts: spb.FetchProjectFactsResponse) -> pb.ProjectMap:
    """The map of a workspace from its recorded facts."""
    result = pb.ProjectMap(workspace_id=workspace_id)
    if facts.scanned:
        result.branch = facts.last_scan.branch
        result.revision = facts.last_scan.revision
        result.scanned_at.CopyFrom(facts.last_scan.scanned_at)
        result.problems.extend(facts.last_scan.problems)
    stored = list(facts.components)
    children: dict[str, list[pb.ComponentFacts]] = {}
    for item in stored:
        if item.facts.type != CONTEXT and item.facts.context:
            children.setdefault(item.facts.context.casefold(), []).append(item.facts)
    statuses: dict[str, pb.ComponentStatus] = {}
    for item in stored:
        if item.facts.type != CONTEXT:
            statuses[item.facts.module] = _status(item, judge_component(item.facts))
    contexts = {i.facts.module.casefold(): i for i in stored if i.facts.type == CONTEXT}
    done: dict[str, bool] = {}
    for item in dependencies_first(contexts, lambda c: c.facts.dependencies):
        key = item.facts.module.casefold()
        mine = children.get(key, [])
        judged = judge_context(
            item.facts,
            [statuses[c.module] for c in mine if c.module in statuses],
            done,
        )
        status = _status(item, judged)
        done[key] = status.done
        statuses[item.facts.module] = status
    result.components.extend(statuses[item.facts.module] for item in stored)
    return result


def _status(
    item: spb.StoredComponent, judged: Sequence[pb.RequirementStatus]
) -> pb.ComponentStatus:
    status = pb.ComponentStatus(
        facts=item.facts,
        requirements=judged,
        touched_by=item.touched_by,
        done=all(r.state in SETTLED for r in judged),
    )
    if item.HasField("observed_at"):
        status.observed_at.CopyFrom(item.observed_at)
    return status


def judge_component(facts: pb.ComponentFacts) -> list[pb.RequirementStatus]:
    """A (non-context) component's requirements, in their declared order."""
    verdicts: dict[str, _Verdict] = {}
    for requirement in _in_need_order(requirements_of(facts.type)):
        if not_needed(facts.type, requirement.key):
            verdicts[requirement.key] = (NOT_NEEDED, _why_not_needed(requirement.key))
            continue
        verdicts[requirement.key] = _judged(
            requirement, verdicts, _component_verdict(requirement.key, facts)
        )
    return _statuses(facts.type, verdicts)


def _why_not_needed(key: str) -> str:
    if key == "tests":
        return "a schema has no test file of its own: its context's tests exercise it"
    return "a schema's tests are its context's: they pass when the context's do"


def _component_verdict(key: str, facts: pb.ComponentFacts) -> _Verdict:
    if key == "design":
        return design_verdict(facts)
    if key == "tests":
        return _file_verdict(facts.test, "test file")
    if key == "implementation":
        return _file_verdict(facts.code, "code")
    return tests_pass_verdict(facts)


def design_verdict(facts: pb.ComponentFacts) -> _Verdict:
    """The design document: absent, invalid, or valid."""
    if not facts.design.present:
        return MISSING, f"{facts.design.path or 'the design document'} is absent"
    if facts.design_errors:
        count = len(facts.design_errors)
        noun = "problem" if count == 1 else "problems"
        return FAILING, f"{facts.design.path} is invalid ({count} {noun}): {facts.design_errors[0]}"
    return MET, f"{facts.design.path} is valid"


def _file_verdict(fact: pb.FileFact, what: str) -> _Verdict:
    if fact.present and fact.skeleton:
        return MISSING, f"{fact.path} is a skeleton: scaffolded, not written yet"
    if fact.present:
        return MET, f"{fact.path} is there"
    return MISSING, f"{fact.path or what} is absent"


def tests_pass_verdict(facts: pb.ComponentFacts) -> _Verdict:
    """The last known test run, if it ran on the files as they are now."""
    for fact in (facts.test, facts.code):
        if not fact.present:
            return MISSING, f"nothing to run: {fact.path} is absent"
        if fact.skeleton:
            return MISSING, f"nothing to run: {fact.path} is a skeleton"
    if not facts.HasField("tests"):
        return STALE, "no test run is known for these files (`specloom status --tests` runs them)"
    run = facts.tests
    if run.files_digest != files_digest(facts.code.digest, facts.test.digest):
        return STALE, "the code or tests changed since their tests last ran"
    total = run.passed + run.failed
    if run.failed:
        first = f": {run.failures[0]}" if run.failures else ""
        return FAILING, f"{run.failed} of {total} tests fail{first}"
    if not run.passed:
        if run.source != SCAN_SOURCE:
            return MET, f"tests passed in session {run.source} on these files"
        return FAILING, f"no test in {facts.test.path} ran"
    return MET, f"{run.passed} test{'s' if run.passed != 1 else ''} pass"


def judge_context(
    facts: pb.ComponentFacts,
    components: Sequence[pb.ComponentStatus],
    done: Mapping[str, bool],
) -> list[pb.RequirementStatus]:
    """A context's requirements, from its own facts, its components' and which contexts are done."""
    verdicts: dict[str, _Verdict] = {}
    for requirement in _in_need_order(requirements_of(CONTEXT)):
        verdicts[requirement.key] = _judged(
            requirement, verdicts, _context_verdict(requirement.key, facts, components, done)
        )
    return _statuses(CONTEXT, verdicts)


def _context_verdict(
    key: str,
    facts: pb.ComponentFacts,
    components: Sequence[pb.ComponentStatus],
    done: Mapping[str, bool],
) -> _Verdict:
    if key == "design":
        return design_verdict(facts)
    if key == "reviewed":
        return _file_verdict(facts.review, "the design review")
    if key == "dependencies":
        return _dependencies_verdict(facts, done)
    if not components:
        return MISSING, "the context design lists no components"
    wanted = {
        "components_designed": ("design",),
        "tests": ("tests",),
        "implemented": ("implementation", "tests_pass"),
    }[key]
    return _worst(components, wanted, key)


def _worst(components: Sequence[pb.ComponentStatus], keys: Sequence[str], what: str) -> _Verdict:
    """The components' states of ``keys`` together: the first unmet, counted."""
    unmet: dict[int, list[str]] = {}
    for status in components:
        for requirement in status.requirements:
            if requirement.key in keys and requirement.state not in SETTLED:
                unmet.setdefault(requirement.state, []).append(
                    f"{status.facts.module} ({requirement.detail})"
                )
                break
    total = len(components)
    for state in (FAILING, MISSING, BLOCKED, STALE):
        names = unmet.get(state)
        if names:
            count = sum(len(v) for v in unmet.values())
            shown = "; ".join(names[:3]) + (
                f"; and {len(names) - 3} more" if len(names) > 3 else ""
            )
            judged = MISSING if state == BLOCKED else state
            return judged, f"{count} of {total} components not yet: {shown}"
    return MET, f"all {total} components: {_done_phrase(what)}"


def _done_phrase(key: str) -> str:
    return {
        "components_designed": "designs valid",
        "tests": "test files there (or not needed)",
        "implemented": "code there and tests passing",
    }[key]


def _dependencies_verdict(facts: pb.ComponentFacts, done: Mapping[str, bool]) -> _Verdict:
    if not facts.dependencies:
        return MET, "depends on no other context"
    waiting = [name for name in facts.dependencies if not done.get(name.casefold(), False)]
    if waiting:
        return BLOCKED, f"waits for {', '.join(waiting)} to be done"
    return MET, f"{', '.join(facts.dependencies)} done"


def _judged(requirement: Requirement, verdicts: Mapping[str, _Verdict], seen: _Verdict) -> _Verdict:
    """What the files say; BLOCKED instead when it is unmet and a requirement it needs is too."""
    if seen[0] in SETTLED:
        return seen
    waiting = [key for key in requirement.needs if verdicts[key][0] not in SETTLED]
    if not waiting:
        return seen
    return BLOCKED, f"waits for {', '.join(waiting)} ({seen[1]})"


def _in_need_order(requirements: Sequence[Requirement]) -> list[Requirement]:
    """The requirements each after those it needs (the table's order otherwise)."""
    by_key = {r.key: r for r in requirements}
    order: list[Requirement] = []

    def visit(requirement: Requirement) -> None:
        if requirement in order:
            return
        for key in requirement.needs:
            visit(by_key[key])
        order.append(requirement)

    for requirement in requirements:
        visit(requirement)
    return order


def _statuses(component_type: str, verdicts: Mapping[str, _Verdict]) -> list[pb.RequirementStatus]:
    return [
        pb.RequirementStatus(
            key=r.key,
            title=r.title,
            state=verdicts[r.key][0],
            detail=verdicts[r.key][1],
            satisfied_by=r.satisfied_by or "",
        )
        for r in requirements_of(component_type)
    ]
