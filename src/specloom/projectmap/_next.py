"""The planner: from a map's unmet requirements to the sessions that meet them.

Per context, in dependency order (a context after those it depends on), the
chain its unmet requirements call for, each session after those it needs:
ContextDesign → ContextComponentsDesign → ContextDesignReview →
ContextTesting → ContextCoding, the last also after the coding of the
contexts it depends on. Context scope wins: one ContextTesting beats N
ComponentTests; a component session is proposed only when exactly one
component of its context needs that work. A subject with an unfinished
session of the planned type gets an entry naming it (``running_session_id``:
start nothing, wait for it), so later entries can still wait for it.
Requirements only a test run can settle (tests not run on these files) give
no session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from specloom.documents import CONTEXT, folded_name
from specloom.projectmap._order import dependencies_first
from specloom.projectmap._project import ProjectFile
from specloom.projectmap._requirements import (
    COMPONENT_CODING,
    COMPONENT_DESIGN,
    COMPONENT_TEST,
    CONTEXT_DESIGN,
    CONTEXT_DESIGN_REVIEW,
    CONTEXT_SESSION_OF,
)
from specloom.protoconv import JsonObject, JsonValue, dict_to_struct, struct_to_dict
from specloom.v1 import projectmap_pb2 as pb

Running = Callable[[str, str], str]
"""(session type, subject) -> id of an unfinished session of that type on it, or ""."""

_WORK = (pb.REQUIREMENT_STATE_MISSING, pb.REQUIREMENT_STATE_FAILING, pb.REQUIREMENT_STATE_BLOCKED)
"""States a session can change (STALE needs a test run, not a session)."""


@dataclass
class _Plan:
    entries: list[pb.NextSession] = field(default_factory=list)
    coding: dict[str, int] = field(default_factory=dict)
    """Context (folded) -> index of the entry that codes it."""

    def add(
        self,
        session_type: str,
        params: JsonObject,
        satisfies: Sequence[str],
        reason: str,
        after: Iterable[int],
        running: str,
    ) -> int:
        self.entries.append(
            pb.NextSession(
                type=session_type,
                params=dict_to_struct(params),
                satisfies=satisfies,
                reason=reason,
                after=sorted(set(after)),
                running_session_id=running,
            )
        )
        return len(self.entries) - 1


def next_sessions(
    project_map: pb.ProjectMap,
    unfinished: Sequence[pb.SessionTouch],
    project: ProjectFile | None,
    limit: int,
) -> list[pb.NextSession]:
    """The sessions that move the project on, each after the entries it waits for.

    ``unfinished`` are the workspace's sessions that have not ended;
    ``project`` adds user stories, the profile and declared dependencies;
    ``limit`` caps the list (0: all). A cut list keeps only entries whose
    ``after`` points inside it.
    """
    contexts = [c for c in project_map.components if c.facts.type == CONTEXT]
    members: dict[str, list[pb.ComponentStatus]] = {}
    for status in project_map.components:
        if status.facts.type != CONTEXT:
            members.setdefault(status.facts.context.casefold(), []).append(status)
    running = {(t.type, t.subject.casefold()): t.session_id for t in unfinished}
    done = {c.facts.module.casefold(): c.done for c in contexts}
    plan = _Plan()
    for context in _in_dependency_order(contexts, project):
        _plan_context(
            plan,
            context,
            members.get(context.facts.module.casefold(), []),
            _depends_on(context, project),
            running,
            project,
            done,
        )
    entries = plan.entries
    if limit > 0 and len(entries) > limit:
        entries = [e for e in entries[:limit] if all(i < limit for i in e.after)]
    return entries


def _depends_on(context: pb.ComponentStatus, project: ProjectFile | None) -> list[str]:
    names = list(context.facts.dependencies)
    entry = project.context(context.facts.module) if project else None
    if entry is not None:
        names += [d for d in entry.depends_on if d.casefold() not in {n.casefold() for n in names}]
    return names


def _in_dependency_order(
    contexts: Sequence[pb.ComponentStatus], project: ProjectFile | None
) -> list[pb.ComponentStatus]:
    by_key = {c.facts.module.casefold(): c for c in contexts}
    return dependencies_first(by_key, lambda status: _depends_on(status, project))


def _state(status: pb.ComponentStatus, key: str) -> pb.RequirementStatus:
    found = next((r for r in status.requirements if r.key == key), None)
    return found if found is not None else pb.RequirementStatus(key=key)


def _unmet(status: pb.ComponentStatus, key: str) -> bool:
    return _state(status, key).state in _WORK


def _plan_context(
    plan: _Plan,
    context: pb.ComponentStatus,
    components: Sequence[pb.ComponentStatus],
    depends_on: Sequence[str],
    running: Mapping[tuple[str, str], str],
    project: ProjectFile | None,
    done: Mapping[str, bool],
) -> None:
    module = context.facts.module
    base: JsonObject = {"context": module}
    if project is not None and project.profile:
        base["profile"] = project.profile
    entry = project.context(module) if project else None
    stories: list[JsonValue] = list(entry.stories) if entry is not None else []
    last: list[int] = []

    def run(kind: str, subject: str) -> str:
        return running.get((kind, subject.casefold()), "")

    if _unmet(context, "design"):
        params = {**base, "user_stories": stories} if stories else dict(base)
        detail = _state(context, "design").detail
        last = [
            plan.add(
                CONTEXT_DESIGN,
                params,
                [f"{module}: design"],
                f"{module} has no valid design: {detail}",
                [],
                run(CONTEXT_DESIGN, module),
            )
        ]
    designed_unmet = _unmet(context, "components_designed")
    if designed_unmet:
        last = _component_or_context(
            plan,
            module,
            base,
            [c for c in components if _unmet(c, "design")],
            "design",
            COMPONENT_DESIGN,
            last,
            run,
            designed_whole=not components or bool(last),
        )
    if _unmet(context, "reviewed"):
        params = {**base, "user_stories": stories} if stories else dict(base)
        last = [
            plan.add(
                CONTEXT_DESIGN_REVIEW,
                params,
                [f"{module}: reviewed"],
                f"{module}'s designs have not been reviewed together against its stories",
                last,
                run(CONTEXT_DESIGN_REVIEW, module),
            )
        ]
    if _unmet(context, "tests"):
        last = _component_or_context(
            plan,
            module,
            base,
            [c for c in components if _unmet(c, "tests")],
            "tests",
            COMPONENT_TEST,
            last,
            run,
            designed_whole=designed_unmet,
        )
    if _unmet(context, "implemented"):
        waits = [plan.coding[d.casefold()] for d in depends_on if d.casefold() in plan.coding]
        coded = _component_or_context(
            plan,
            module,
            base,
            [c for c in components if _unmet(c, "implementation") or _unmet(c, "tests_pass")],
            "implemented",
            COMPONENT_CODING,
            [*last, *waits],
            run,
            designed_whole=designed_unmet,
        )
        plan.coding[module.casefold()] = coded[0]
        unplanned = [
            d
            for d in depends_on
            if d.casefold() not in plan.coding and not done.get(d.casefold(), False)
        ]
        if unplanned:
            # No session of this list codes them (their tests have not run on the
            # files as they are): say so rather than wait for nothing.
            plan.entries[coded[0]].reason += (
                f"; {', '.join(unplanned)} not done yet but no session is due there "
                "(`specloom status --tests` runs their tests)"
            )


def _component_or_context(
    plan: _Plan,
    module: str,
    base: JsonObject,
    needing: Sequence[pb.ComponentStatus],
    key: str,
    component_type: str,
    after: Sequence[int],
    running: Callable[[str, str], str],
    *,
    designed_whole: bool,
) -> list[int]:
    """One context-scope session, or a component's when exactly one component needs the work."""
    context_type = CONTEXT_SESSION_OF[component_type]
    context_running = running(context_type, module)
    what = {"design": "designed", "tests": "tests written", "implemented": "implemented"}[key]
    if len(needing) == 1 and not designed_whole and not context_running:
        status = needing[0]
        facts = status.facts
        params: JsonObject = {k: v for k, v in base.items() if k != "context"}
        params["component"] = {
            "name": facts.module.rsplit(".", 1)[-1],
            "module_name": facts.module,
            "type": facts.type,
            "description": facts.description,
            "dependencies": list(facts.dependencies),
        }
        parent = facts.module.rsplit(".", 1)[0]
        if component_type == COMPONENT_DESIGN or folded_name(parent) != folded_name(module):
            # Sessions without a subject rule are named for a given context; the
            # component's own name is what its touches are looked up by.
            params["context"] = module
        own_keys = ("implementation", "tests_pass") if key == "implemented" else (key,)
        satisfies = [f"{facts.module}: {k}" for k in own_keys if _unmet(status, k)]
        satisfies.append(f"{module}: {_context_key(key)}")
        reason = f"{facts.module} is the one component of {module} not yet {what}: " + "; ".join(
            _state(status, k).detail for k in own_keys if _unmet(status, k)
        )
        return [
            plan.add(
                component_type,
                params,
                satisfies,
                reason,
                after,
                running(component_type, facts.module),
            )
        ]
    names = [c.facts.module for c in needing]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    reason = (
        f"{len(names)} components of {module} are not yet {what}: {shown}"
        if names
        else f"{module}'s components are not yet {what}"
    )
    own_keys = ("implementation", "tests_pass") if key == "implemented" else (key,)
    satisfies = [f"{module}: {_context_key(key)}"]
    satisfies += [f"{c.facts.module}: {k}" for c in needing for k in own_keys if _unmet(c, k)]
    return [plan.add(context_type, dict(base), satisfies, reason, after, context_running)]


def _context_key(key: str) -> str:
    return "components_designed" if key == "design" else key


STORY_SESSIONS = frozenset({CONTEXT_DESIGN, CONTEXT_DESIGN_REVIEW})
"""Session types that take the context's ``user_stories``."""


def with_project_params(
    entries: Sequence[pb.NextSession], project: ProjectFile | None
) -> list[pb.NextSession]:
    """Copies of ``entries`` with what only the project file knows added to their params.

    The gateway plans without the project file (it is on the user's machine):
    before starting an entry, the CLI adds the context's user stories (design
    and review sessions) and the profile, where the entry does not have them.
    """
    result: list[pb.NextSession] = []
    for entry in entries:
        copy = pb.NextSession()
        copy.CopyFrom(entry)
        result.append(copy)
        if project is None:
            continue
        params = struct_to_dict(copy.params)
        if project.profile and "profile" not in params:
            params["profile"] = project.profile
        context = params.get("context")
        declared = project.context(context) if isinstance(context, str) else None
        if copy.type in STORY_SESSIONS and declared and declared.stories:
            params.setdefault("user_stories", list(declared.stories))
        copy.params.CopyFrom(dict_to_struct(params))
    return result
