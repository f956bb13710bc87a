"""Request checks: every refusal names the field (and the cap, for sizes).

Shapes and ranges are INVALID_ARGUMENT; payloads over a configured cap are
RESOURCE_EXHAUSTED. Nothing a client sends may reach the database
unchecked, so a bad request never turns into INTERNAL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Sized
from dataclasses import dataclass

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from specloom.errors import InvalidArgument, ResourceExhausted
from specloom.ids import MAX_ID_LENGTH
from specloom.protoconv import MAX_STRUCT_DEPTH
from specloom.v1 import common_pb2 as pb
from specloom.v1 import projectmap_pb2 as mpb
from specloom.v1 import sessions_pb2 as spb
from specloom.validate import (
    MAX_WORKSPACES,
    require_id,
    require_scope,
    require_workspace,
    require_workspaces,
)
from specloom.workspaces import is_workspace_id
from specloom_sessions.config import SessionsSettings
from specloom_sessions.store.leases import Claimant, Offer

MAX_NAME = 200
"""Session types, step names, token names, idempotency keys (bytes)."""
MAX_TEXT = 4000
"""Reasons and display names."""
MAX_LEASE_TTL = 3600
MAX_BATCH = 256
"""Claims and joins per call."""
MAX_LIST = 100
"""Entries of a filter list or a capability list."""
MAX_RUNNING_COMMANDS = 1000
"""Commands one presence record lists (256 slots, and leases carried over a reconnect)."""
MAX_COMPONENTS = 10_000
"""Components one project scan may report."""
MAX_PROBLEMS = 1000
"""Problems one project scan may report."""
MAX_PATH = 1000
"""A repository-relative path, a branch or a revision."""
MIN_SECONDS = -62_135_596_800
MAX_SECONDS = 253_402_300_799

SESSION_STATUSES = frozenset(pb.SessionStatus.values()) - {pb.SESSION_STATUS_UNSPECIFIED}
FAILURE_CLASSES = frozenset(pb.FailureClass.values())
MAX_USAGE_COUNT = 10**12
"""Largest token count (or turns, milliseconds...) one result may report."""
MAX_USAGE_COST = 1e6
"""Largest estimated cost in US dollars one result may report."""
EXECUTION_MODES = frozenset(pb.ExecutionMode.values()) - {pb.EXECUTION_MODE_UNSPECIFIED}
RESULT_STATUSES = frozenset(pb.ResultStatus.values()) - {pb.RESULT_STATUS_UNSPECIFIED}
VIEWS = frozenset(pb.InteractionView.values())
DISPATCHES = frozenset(spb.Dispatch.values())
OUTPUT_STREAMS = frozenset(pb.OutputStream.values())

__all__ = ["Limits", "require_id", "require_scope"]


@dataclass(frozen=True)
class Limits:
    """Payload caps, from :class:`~specloom_sessions.config.SessionsSettings`."""

    struct_bytes: int
    command_bytes: int
    result_bytes: int
    children_per_write: int
    write_bytes: int

    @classmethod
    def of(cls, settings: SessionsSettings) -> Limits:
        return cls(
            struct_bytes=settings.sessions_max_struct_bytes,
            command_bytes=settings.sessions_max_command_bytes,
            result_bytes=settings.sessions_max_result_bytes,
            children_per_write=settings.sessions_max_children_per_write,
            write_bytes=settings.sessions_max_write_bytes,
        )


def optional_id(field: str, value: str) -> str:
    """An id that may be empty."""
    return require_id(field, value) if value else value


def text(field: str, value: str, limit: int = MAX_TEXT) -> str:
    """Free text up to ``limit`` characters (PostgreSQL text cannot hold NUL)."""
    if len(value) > limit:
        raise InvalidArgument(f"{field} is {len(value)} characters; at most {limit}")
    if "\x00" in value:
        raise InvalidArgument(f"{field} contains a NUL character")
    return value


def timestamp(field: str, value: timestamp_pb2.Timestamp) -> timestamp_pb2.Timestamp:
    """A Timestamp within the range protobuf defines (years 1 to 9999)."""
    if not MIN_SECONDS <= value.seconds <= MAX_SECONDS or not 0 <= value.nanos < 10**9:
        raise InvalidArgument(f"{field} is not a valid timestamp (years 1 to 9999)")
    return value


def count(field: str, items: Sized, limit: int) -> None:
    """A repeated field with at most ``limit`` entries."""
    if len(items) > limit:
        raise InvalidArgument(f"{field} lists {len(items)} entries; at most {limit}")


def name(field: str, value: str, *, required: bool = True) -> str:
    """A short printable name (session type, step, capability)."""
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required")
        return value
    if len(value) > MAX_NAME or not value.isprintable():
        raise InvalidArgument(f"{field} must be printable and at most {MAX_NAME} characters")
    return value


def in_range(field: str, value: int, low: int, high: int) -> int:
    """An integer within [low, high]."""
    if not low <= value <= high:
        raise InvalidArgument(f"{field} must be between {low} and {high}, got {value}")
    return value


def session_status(field: str, value: int) -> int:
    """A stored session status (not UNSPECIFIED)."""
    if value not in SESSION_STATUSES:
        raise InvalidArgument(f"{field} {value} is not a known session status")
    return value


def _size(field: str, message: Message, cap: int) -> None:
    size = message.ByteSize()
    if size > cap:
        raise ResourceExhausted(f"{field} is {size} bytes; the cap is {cap} bytes")


def write_size(field: str, value: Message, limits: Limits) -> None:
    """A whole write within the aggregate cap (its parts have caps of their own)."""
    size = value.ByteSize()
    if size > limits.write_bytes:
        raise ResourceExhausted(
            f"{field} is {size} bytes; one write carries at most {limits.write_bytes} bytes"
        )


def _depth(field: str, struct: struct_pb2.Struct) -> None:
    # Same counting as protoconv: a Struct's own values are at depth 1.
    stack: list[tuple[struct_pb2.Value, int]] = [(v, 1) for v in struct.fields.values()]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_STRUCT_DEPTH:
            raise InvalidArgument(f"{field} is nested deeper than {MAX_STRUCT_DEPTH} levels")
        kind = value.WhichOneof("kind")
        if kind == "struct_value":
            stack.extend((v, depth + 1) for v in value.struct_value.fields.values())
        elif kind == "list_value":
            stack.extend((v, depth + 1) for v in value.list_value.values)


def struct(field: str, value: struct_pb2.Struct, limits: Limits) -> struct_pb2.Struct:
    """A caller's Struct within the size cap and the nesting limit."""
    _size(field, value, limits.struct_bytes)
    _depth(field, value)
    return value


def command(field: str, value: pb.Command, limits: Limits) -> pb.Command:
    """A command with a kind, within the size cap."""
    _size(field, value, limits.command_bytes)
    if value.WhichOneof("kind") is None:
        raise InvalidArgument(f"{field}.kind is required (shell, agent, git, ...)")
    _depth(f"{field}.metadata", value.metadata)
    if value.timeout_seconds < 0:
        raise InvalidArgument(f"{field}.timeout_seconds must not be negative")
    return value


def result(field: str, value: pb.Result, limits: Limits) -> pb.Result:
    """A result with a status, within the size cap."""
    _size(field, value, limits.result_bytes)
    if value.status not in RESULT_STATUSES:
        raise InvalidArgument(f"{field}.status must be OK, WARNING or ERROR")
    _depth(f"{field}.data", value.data)
    if value.failure_class not in FAILURE_CLASSES:
        raise InvalidArgument(f"{field}.failure_class {value.failure_class} is not a known class")
    if value.HasField("usage"):
        usage(f"{field}.usage", value.usage)
    return value


def usage(field: str, value: pb.Usage) -> None:
    """Counts that are whole and bounded, a cost that is a finite amount."""
    counts = {
        "input_tokens": value.input_tokens,
        "output_tokens": value.output_tokens,
        "cache_creation_input_tokens": value.cache_creation_input_tokens,
        "cache_read_input_tokens": value.cache_read_input_tokens,
        "turns": value.turns,
        "duration_ms": value.duration_ms,
        "retries": value.retries,
        "agent_steps": value.agent_steps,
        "unpriced_steps": value.unpriced_steps,
    }
    for name, count in counts.items():
        if not 0 <= count <= MAX_USAGE_COUNT:
            raise InvalidArgument(f"{field}.{name} must be between 0 and {MAX_USAGE_COUNT}")
    if not (math.isfinite(value.cost_usd) and 0 <= value.cost_usd <= MAX_USAGE_COST):
        raise InvalidArgument(
            f"{field}.cost_usd must be a finite amount between 0 and {MAX_USAGE_COST:g}"
        )
    if len(value.models) > MAX_LIST:
        raise InvalidArgument(f"{field}.models has {len(value.models)} entries; at most {MAX_LIST}")


def scope_and_id(scope: pb.Scope, session_id: str, field: str = "session_id") -> None:
    """The two things every per-session request carries."""
    require_scope(scope)
    require_id(field, session_id)


def lease_grant(field: str, grant: spb.LeaseGrant) -> None:
    require_id(f"{field}.executor_id", grant.executor_id)
    in_range(f"{field}.ttl_seconds", grant.ttl_seconds, 1, MAX_LEASE_TTL)


def new_interaction(field: str, value: spb.NewInteraction, limits: Limits) -> None:
    """One interaction to append."""
    name(f"{field}.step", value.step)
    if not value.HasField("command"):
        raise InvalidArgument(f"{field}.command is required")
    command(f"{field}.command", value.command, limits)
    if value.dispatch not in DISPATCHES:
        raise InvalidArgument(f"{field}.dispatch {value.dispatch} is not a known dispatch")
    if value.required_capability and (
        len(value.required_capability) > MAX_ID_LENGTH
        or not value.required_capability.isprintable()
    ):
        raise InvalidArgument(
            f"{field}.required_capability must be printable and at most {MAX_ID_LENGTH} characters"
        )
    if value.HasField("lease"):
        if value.HasField("immediate_result"):
            raise InvalidArgument(f"{field}: a completed record (immediate_result) takes no lease")
        lease_grant(f"{field}.lease", value.lease)
    if value.HasField("immediate_result"):
        result(f"{field}.immediate_result", value.immediate_result, limits)


def append_list(field: str, items: Sequence[spb.NewInteraction], limits: Limits) -> None:
    """Interactions to append: at most one pending command, and it comes last."""
    for index, item in enumerate(items):
        new_interaction(f"{field}[{index}]", item, limits)
        if not item.HasField("immediate_result") and index != len(items) - 1:
            raise InvalidArgument(
                f"{field}[{index}] is a pending command; only the last interaction "
                "appended may be pending"
            )


def finish(field: str, value: spb.Finish) -> None:
    """A status change a step may make (cancelling has its own call)."""
    if value.status not in (
        pb.SESSION_STATUS_ACTIVE,
        pb.SESSION_STATUS_PAUSED,
        pb.SESSION_STATUS_COMPLETE,
        pb.SESSION_STATUS_FAILED,
    ):
        raise InvalidArgument(
            f"{field}.status must be ACTIVE, PAUSED, COMPLETE or FAILED "
            "(cancel with CancelSessionTree)"
        )
    text(f"{field}.reason", value.reason)


def component(field: str, value: pb.Component, limits: Limits) -> None:
    _size(field, value, limits.struct_bytes)


def new_child(field: str, value: spb.NewChild, limits: Limits) -> None:
    """One child to create."""
    require_id(f"{field}.id", value.id)
    name(f"{field}.type", value.type)
    text(f"{field}.name", value.name)
    name(f"{field}.key", value.key, required=False)
    component(f"{field}.component", value.component, limits)
    struct(f"{field}.params", value.params, limits)
    struct(f"{field}.state", value.state, limits)
    struct(f"{field}.progress", value.progress, limits)
    if value.definition_version < 1:
        raise InvalidArgument(f"{field}.definition_version must be at least 1")
    if value.HasField("first"):
        new_interaction(f"{field}.first", value.first, limits)
    if len(value.depends_on) > limits.children_per_write:
        raise ResourceExhausted(
            f"{field}.depends_on lists {len(value.depends_on)} sessions; the cap is "
            f"{limits.children_per_write}"
        )
    for index, dependency in enumerate(value.depends_on):
        require_id(f"{field}.depends_on[{index}]", dependency)
        if dependency == value.id:
            raise InvalidArgument(f"{field}.depends_on[{index}]: a child cannot wait for itself")


def revived_child(field: str, value: spb.RevivedChild, limits: Limits) -> None:
    """One failed child to resume."""
    require_id(f"{field}.session_id", value.session_id)
    if value.record.action not in (pb.CONTROL_ACTION_RESUME, pb.CONTROL_ACTION_RETRY_FROM):
        # Reviving makes the child active again; a PAUSE record would contradict it.
        raise InvalidArgument(f"{field}.record.action must be RESUME or RETRY_FROM")
    text(f"{field}.record.reason", value.record.reason)
    name(f"{field}.record.step", value.record.step, required=False)
    struct(f"{field}.progress", value.progress, limits)


def children(
    create: Sequence[spb.NewChild], revive: Sequence[spb.RevivedChild], limits: Limits
) -> None:
    """The children part of an AdvanceSession."""
    if len(create) > limits.children_per_write:
        raise ResourceExhausted(
            f"create_children lists {len(create)} children; the cap is "
            f"{limits.children_per_write} per write"
        )
    if len(revive) > limits.children_per_write:
        raise ResourceExhausted(
            f"revive_children lists {len(revive)} children; the cap is "
            f"{limits.children_per_write} per write"
        )
    ids: set[str] = set()
    keys: set[str] = set()
    for index, child in enumerate(create):
        new_child(f"create_children[{index}]", child, limits)
        if child.id in ids:
            raise InvalidArgument(f"create_children[{index}].id {child.id} is listed twice")
        if child.key and child.key in keys:
            raise InvalidArgument(f"create_children[{index}].key {child.key!r} is listed twice")
        ids.add(child.id)
        keys.add(child.key)
    _no_cycle(create)
    revived: set[str] = set()
    for index, item in enumerate(revive):
        revived_child(f"revive_children[{index}]", item, limits)
        if item.session_id in revived:
            raise InvalidArgument(
                f"revive_children[{index}].session_id {item.session_id} is listed twice"
            )
        revived.add(item.session_id)


def _no_cycle(create: Sequence[spb.NewChild]) -> None:
    """Refuse children of one request that wait for each other in a circle.

    Children created earlier cannot wait for new ones (their rows are
    written), so a cycle can only close among the request's own children.
    """
    new = {child.id for child in create}
    waits = {child.id: [d for d in child.depends_on if d in new] for child in create}
    done: set[str] = set()
    for start in waits:
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, int]] = [(start, 0)]
        path.append(start)
        on_path.add(start)
        while stack:
            node, position = stack[-1]
            targets = waits[node]
            if position == len(targets):
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            stack[-1] = (node, position + 1)
            target = targets[position]
            if target in on_path:
                cycle = [*path[path.index(target) :], target]
                raise InvalidArgument(
                    "create_children: depends_on forms a cycle: " + " -> ".join(cycle)
                )
            if target not in done:
                path.append(target)
                on_path.add(target)
                stack.append((target, 0))


def idempotency_key(field: str, value: str) -> str:
    """A client key, at most :data:`MAX_NAME` bytes."""
    size = len(value.encode())
    if size > MAX_NAME:
        raise InvalidArgument(f"{field} is {size} bytes; at most {MAX_NAME}")
    if value and not value.isprintable():
        raise InvalidArgument(f"{field} contains control characters")
    return value


def view(field: str, value: int) -> int:
    if value not in VIEWS:
        raise InvalidArgument(f"{field} {value} is not a known interaction view")
    return value


def claimant(request: spb.ClaimCommandsRequest | pb.ClaimOffer) -> Claimant:
    """Where and for whom a claim may take work (the workspace and user fields
    of ClaimCommands, and of a create's ClaimOffer)."""
    count("workspace_ids", request.workspace_ids, MAX_WORKSPACES)
    for index, workspace_id in enumerate(request.workspace_ids):
        if not is_workspace_id(workspace_id):
            raise InvalidArgument(
                f"workspace_ids[{index}] {workspace_id[:80]!r} is not a workspace id"
            )
    pin_to = None
    if request.HasField("default_workspace"):
        pin_to = require_workspace("default_workspace", request.default_workspace)
        if pin_to.id not in request.workspace_ids:
            raise InvalidArgument(f"default_workspace {pin_to.id} is not one of workspace_ids")
    return Claimant(
        workspace_ids=tuple(request.workspace_ids),
        pin_to=pin_to,
        owner=request.scope.user_id if request.own_user_only else None,
    )


def capabilities(field: str, values: Sequence[str]) -> list[str]:
    """An executor's capability names."""
    count(field, values, MAX_LIST)
    for index, capability in enumerate(values):
        name(f"{field}[{index}]", capability)
    return list(values)


def offer(request: spb.CreateSessionRequest) -> Offer:
    """A create's ClaimOffer: a first command it may lease, to an executor named in full."""
    value = request.claim
    if not request.HasField("first"):
        raise InvalidArgument("claim: offers an executor the first command, but first is unset")
    if request.first.HasField("lease"):
        raise InvalidArgument("claim: first already carries a lease; send one or the other")
    require_scope(value.scope, "claim.scope")
    require_id("claim.executor_id", value.executor_id)
    in_range("claim.lease_ttl_seconds", value.lease_ttl_seconds, 1, MAX_LEASE_TTL)
    try:
        where = claimant(value)
    except InvalidArgument as exc:
        raise InvalidArgument(f"claim.{exc.message}") from None
    return Offer(
        executor_id=value.executor_id,
        account_id=value.scope.account_id,
        project_id=value.scope.project_id,
        capabilities=frozenset(capabilities("claim.capabilities", value.capabilities)),
        ttl_seconds=value.lease_ttl_seconds,
        claimant=where,
    )


def presence(field: str, value: pb.ExecutorPresence) -> None:
    """An executor stream's presence record."""
    require_id(f"{field}.connection_id", value.connection_id)
    require_id(f"{field}.executor_id", value.executor_id)
    require_scope(value.scope, f"{field}.scope")
    name(f"{field}.name", value.name)
    require_workspaces(f"{field}.workspaces", value.workspaces)
    if value.serve not in pb.ExecutorServe.values():
        raise InvalidArgument(f"{field}.serve {value.serve} is not a known value")
    count(f"{field}.capabilities", value.capabilities, MAX_LIST)
    for index, capability in enumerate(value.capabilities):
        name(f"{field}.capabilities[{index}]", capability)
    count(f"{field}.labels", value.labels, MAX_LIST)
    for key, item in value.labels.items():
        text(f"{field}.labels[{key[:40]!r}]", key + item, MAX_TEXT)
    in_range(f"{field}.slots", value.slots, 0, 256)
    in_range(f"{field}.running", value.running, 0, 100_000)
    count(f"{field}.running_commands", value.running_commands, MAX_RUNNING_COMMANDS)
    for index, command in enumerate(value.running_commands):
        where = f"{field}.running_commands[{index}]"
        # The session may be unknown to the gateway (a lease carried over a
        # reconnect); Sessions names it from the interaction.
        optional_id(f"{where}.session_id", command.session_id)
        require_id(f"{where}.interaction_id", command.interaction_id)
        name(f"{where}.step", command.step, required=False)
        if command.HasField("since"):
            timestamp(f"{where}.since", command.since)
    require_id(f"{field}.gateway_id", value.gateway_id)
    name(f"{field}.agent_version", value.agent_version, required=False)


def _file_fact(field: str, value: mpb.FileFact) -> None:
    text(f"{field}.path", value.path, MAX_PATH)
    if value.digest and (len(value.digest) > 128 or not value.digest.isalnum()):
        raise InvalidArgument(f"{field}.digest must be a hex digest")


def _texts(field: str, values: Sequence[str], limit: int) -> None:
    count(field, values, limit)
    for index, item in enumerate(values):
        text(f"{field}[{index}]", item)


def _evidence(field: str, value: mpb.TestEvidence) -> None:
    in_range(f"{field}.passed", value.passed, 0, 10**9)
    in_range(f"{field}.failed", value.failed, 0, 10**9)
    _texts(f"{field}.failures", value.failures, MAX_LIST)
    text(f"{field}.files_digest", value.files_digest, 128)
    text(f"{field}.source", value.source, MAX_NAME)
    if value.HasField("ran_at"):
        timestamp(f"{field}.ran_at", value.ran_at)


def component_facts(field: str, value: mpb.ComponentFacts) -> None:
    """One component of a project scan: a module name, short names, bounded lists."""
    name(f"{field}.module", value.module)
    name(f"{field}.type", value.type, required=False)
    name(f"{field}.context", value.context, required=False)
    count(f"{field}.dependencies", value.dependencies, MAX_LIST)
    for index, dependency in enumerate(value.dependencies):
        name(f"{field}.dependencies[{index}]", dependency)
    _texts(f"{field}.design_errors", value.design_errors, MAX_LIST)
    text(f"{field}.description", value.description)
    for part in ("design", "test", "code", "review"):
        if value.HasField(part):
            _file_fact(f"{field}.{part}", getattr(value, part))
    if value.HasField("tests"):
        _evidence(f"{field}.tests", value.tests)


def project_scan(field: str, value: mpb.ProjectScan, limits: Limits) -> mpb.ProjectScan:
    """A scan to record: its profile, at most :data:`MAX_COMPONENTS` distinct modules."""
    name(f"{field}.profile", value.profile)
    text(f"{field}.branch", value.branch, MAX_PATH)
    text(f"{field}.revision", value.revision, MAX_PATH)
    count(f"{field}.components", value.components, MAX_COMPONENTS)
    seen: set[str] = set()
    for index, component in enumerate(value.components):
        where = f"{field}.components[{index}]"
        component_facts(where, component)
        if component.module in seen:
            raise InvalidArgument(f"{where}.module {component.module!r} appears twice")
        seen.add(component.module)
    in_range(f"{field}.files_seen", value.files_seen, 0, 2**31 - 1)
    in_range(f"{field}.files_read", value.files_read, 0, 2**31 - 1)
    if value.duration_ms < 0:
        raise InvalidArgument(f"{field}.duration_ms must not be negative")
    if value.HasField("scanned_at"):
        timestamp(f"{field}.scanned_at", value.scanned_at)
    _texts(f"{field}.problems", value.problems, MAX_PROBLEMS)
    write_size(field, value, limits)
    return value
