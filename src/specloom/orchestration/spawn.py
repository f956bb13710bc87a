"""The order a spawn creates its children in, and what each dependent child is told.

Children that build on siblings' work (``ChildSpec.depends_on``) are created
after those siblings, in one write: a dependent child's first command is
built when it is created and must already name its dependencies' branches,
which come from the siblings' own initial state. Sessions then keeps the
dependent's commands unclaimable until its dependencies are complete.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from specloom.errors import InvalidArgument
from specloom.v1 import common_pb2 as pb
from specloom.workflow import BRANCH_STATE_KEY, ChildSpec, Dependency


def creation_order(
    step: str, specs: Sequence[ChildSpec], existing: Mapping[str, pb.Session]
) -> list[ChildSpec]:
    """``specs`` in the order to create them: longest chain of dependents first.

    A child's *height* is the number of children on the longest chain from
    it through its dependents (1 for a child nobody waits for). Sorting by
    height, highest first, puts every child after the siblings it depends
    on (a dependency is always higher than its dependents) and — since
    claims go oldest first — lets the critical path claim its executors
    before independent work that can wait, as a list scheduler would.
    Equal heights keep the spec order, so a spawn without dependencies
    creates its children exactly as listed.

    ``existing`` (by key) are children made by an earlier attempt: they may
    be depended on and are not created again. ``InvalidArgument`` names a
    dependency on no sibling, on itself, or a cycle.
    """
    listed = {spec.key: spec for spec in specs}
    for spec in specs:
        for key in spec.depends_on:
            if key == spec.key:
                raise InvalidArgument(f"step {step}: child {spec.key!r} depends on itself")
            if key not in listed and key not in existing:
                raise InvalidArgument(
                    f"step {step}: child {spec.key!r} depends on {key!r}, which is no child "
                    "of this spawn"
                )
    topological = _topological(step, list(listed.values()), existing)
    height = {key: 1 for key in listed}
    for spec in reversed(topological):
        for key in spec.depends_on:
            if key in listed:
                height[key] = max(height[key], height[spec.key] + 1)
    position = {id(spec): index for index, spec in enumerate(specs)}
    return sorted(specs, key=lambda spec: (-height[spec.key], position[id(spec)]))


def _topological(
    step: str, specs: Sequence[ChildSpec], existing: Mapping[str, pb.Session]
) -> list[ChildSpec]:
    """``specs`` with each after its dependencies (``InvalidArgument`` naming a cycle)."""
    order: list[ChildSpec] = []
    placed: set[str] = set(existing) - {spec.key for spec in specs}
    remaining = list(specs)
    while remaining:
        ready = [s for s in remaining if all(k in placed for k in s.depends_on)]
        if not ready:
            raise InvalidArgument(f"step {step}: {_cycle(remaining)}")
        # One pass places everything ready now: a chain of n children takes
        # n passes, each a scan of what is left.
        order.extend(ready)
        placed.update(spec.key for spec in ready)
        remaining = [s for s in remaining if s.key not in placed]
    return order


def _cycle(waiting: Sequence[ChildSpec]) -> str:
    """Name one cycle among children none of which is ready."""
    waits = {spec.key: list(spec.depends_on) for spec in waiting}
    path = [waiting[0].key]
    while True:
        # Every waiting child waits for another waiting child; follow the
        # first such edge until a child repeats.
        current = path[-1]
        following = next(k for k in waits[current] if k in waits)
        if following in path:
            cycle = [*path[path.index(following) :], following]
            return "children wait for each other: " + " -> ".join(cycle)
        path.append(following)


def branch_of(session: pb.Session) -> str:
    """The branch a session records in its state ("" if none)."""
    value = session.state.fields.get(BRANCH_STATE_KEY)
    return value.string_value if value is not None else ""


def dependencies_for(spec: ChildSpec, siblings: Mapping[str, pb.Session]) -> list[Dependency]:
    """What ``spec``'s child is told of its dependencies, in its declared order."""
    found: list[Dependency] = []
    for key in dict.fromkeys(spec.depends_on):
        sibling = siblings[key]
        found.append(Dependency(key=key, session_id=sibling.id, branch=branch_of(sibling)))
    return found
