"""The gateway's pure parts: join results, executor ids, dispatch grouping, settings."""

from __future__ import annotations

from specloom.protoconv import struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow._proto import result_digest
from specloom_gateway.config import GatewaySettings
from specloom_gateway.hub import Executor, ExecutorHub, executor_id_for
from specloom_gateway.joins import join_result

SCOPE = pb.Scope(account_id="acme", project_id="alpha", user_id="alice")


def _executor(
    name: str,
    caps: tuple[str, ...] = ("shell",),
    capacity: int = 2,
    *,
    workspaces: tuple[pb.WorkspaceRef, ...] = (),
    scope: pb.Scope = SCOPE,
    serve: int = pb.EXECUTOR_SERVE_OWN,
) -> Executor:
    return Executor(
        executor_id=executor_id_for(scope, name),
        name=name,
        scope=scope,
        capabilities=caps,
        capacity=capacity,
        labels={},
        workspaces=workspaces,
        serve=serve,
    )


def test_a_join_result_is_the_same_bytes_every_time() -> None:
    command = pb.Command(step="Spawn")
    command.spawn_children.child_session_ids.extend(["c1", "c2", "c3"])
    first, second = join_result(command), join_result(command)
    # Two replicas reporting one join send an exact repeat, which Sessions
    # recognises by this digest and turns into a no-op.
    assert result_digest(first) == result_digest(second)
    assert first.status == pb.RESULT_STATUS_OK
    assert struct_to_dict(first.data) == {"children": ["c1", "c2", "c3"]}
    assert not first.duration_ms


def test_executor_ids_are_stable_per_user_and_name() -> None:
    same = executor_id_for(SCOPE, "laptop")
    assert executor_id_for(SCOPE, "laptop") == same
    assert executor_id_for(SCOPE, "desktop") != same
    other_user = pb.Scope(account_id="acme", project_id="alpha", user_id="bob")
    assert executor_id_for(other_user, "laptop") != same
    other_project = pb.Scope(account_id="acme", project_id="beta", user_id="alice")
    assert executor_id_for(other_project, "laptop") != same
    assert len(same) <= 64


def test_dispatch_groups_rotate_and_skip_full_or_draining_executors() -> None:
    hub = ExecutorHub()
    a, b, c = _executor("a"), _executor("b"), _executor("c")
    agent = _executor("d", ("shell", "agent"))
    full = _executor("e", capacity=1)
    full.running["i"] = None  # type: ignore[assignment]
    draining = _executor("f")
    draining.draining = True
    for executor in (a, b, c, agent, full, draining):
        hub.add(executor)
    groups = {key.capabilities: members for key, members in hub.groups(("acme", "alpha"))}
    assert set(groups) == {frozenset({"shell"}), frozenset({"shell", "agent"})}
    assert [e.name for e in groups[frozenset({"shell"})]] == ["a", "b", "c"]
    rotated = {k.capabilities: m for k, m in hub.groups(("acme", "alpha"))}[frozenset({"shell"})]
    assert [e.name for e in rotated] == ["b", "c", "a"]
    assert hub.groups(("acme", "beta")) == []
    for executor in (a, b, c, agent, full, draining):
        hub.remove(executor)
    assert hub.scopes() == []


def test_dispatch_groups_part_executors_that_may_claim_different_work() -> None:
    """One empty claim ends a group's pass, so a group must only hold executors that
    could claim the same commands: same workspaces and same user filter too."""
    hub = ExecutorHub()
    api = pb.WorkspaceRef(id="ws-0123456789ab", name="api")
    web = pb.WorkspaceRef(id="ws-ba9876543210", name="web")
    bob = pb.Scope(account_id="acme", project_id="alpha", user_id="bob")
    members = [
        _executor("api-1", workspaces=(api,)),
        _executor("api-2", workspaces=(api,)),
        _executor("web", workspaces=(web,)),
        _executor("bob", workspaces=(api,), scope=bob),
        _executor("bob-project", workspaces=(api,), scope=bob, serve=pb.EXECUTOR_SERVE_PROJECT),
    ]
    for executor in members:
        hub.add(executor)
    grouped = sorted(sorted(e.name for e in m) for _, m in hub.groups(("acme", "alpha")))
    assert grouped == [["api-1", "api-2"], ["bob"], ["bob-project"], ["web"]]
    for executor in members:
        hub.remove(executor)


def test_the_idle_timeout_defaults_to_three_heartbeats() -> None:
    assert GatewaySettings(heartbeat_interval_seconds=4).idle_timeout() == 12.0
    assert GatewaySettings(stream_idle_timeout_seconds=5).idle_timeout() == 5.0
