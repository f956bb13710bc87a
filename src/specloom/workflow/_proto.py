"""Adapters between the workflow kernel's plain values and the protobuf contract."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from specloom.protoconv import JsonValue, dict_to_struct, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow._context import (
    ChildView,
    CollectedFile,
    ComponentView,
    Judgement,
    ReportedResult,
    StepContext,
)
from specloom.workflow._model import Outcome, Workflow
from specloom.workflow._progress import Control, Record

OUTCOME_OF_STATUS: Mapping[int, Outcome] = {
    pb.RESULT_STATUS_OK: Outcome.OK,
    pb.RESULT_STATUS_WARNING: Outcome.WARNING,
    pb.RESULT_STATUS_ERROR: Outcome.ERROR,
}
STATUS_OF_OUTCOME: Mapping[Outcome, int] = {v: k for k, v in OUTCOME_OF_STATUS.items()}

SESSION_STATUS_NAMES: Mapping[int, str] = {
    pb.SESSION_STATUS_ACTIVE: "active",
    pb.SESSION_STATUS_PAUSED: "paused",
    pb.SESSION_STATUS_COMPLETE: "complete",
    pb.SESSION_STATUS_FAILED: "failed",
    pb.SESSION_STATUS_CANCELLED: "cancelled",
}
EXECUTION_MODE_NAMES: Mapping[int, str] = {
    pb.EXECUTION_MODE_UNSPECIFIED: "manual",
    pb.EXECUTION_MODE_MANUAL: "manual",
    pb.EXECUTION_MODE_AUTO: "auto",
    pb.EXECUTION_MODE_AGENTIC: "agentic",
}
EXECUTOR_DRIVEN = frozenset({pb.EXECUTION_MODE_AUTO, pb.EXECUTION_MODE_AGENTIC})
"""Modes whose commands connected executors run (MANUAL: a person does)."""


def child_execution_mode(parent_mode: int) -> pb.ExecutionMode.ValueType:
    """A child's mode: executors always run children, as free as the parent allows.

    An agentic parent's children are agentic; an auto parent's are auto; a
    manual parent's are auto too — nobody drives them by hand, and a person
    who chose to drive the parent did not choose an unconfined agent.
    """
    if parent_mode == pb.EXECUTION_MODE_AGENTIC:
        return pb.EXECUTION_MODE_AGENTIC
    return pb.EXECUTION_MODE_AUTO


CONTROL_OF_ACTION: Mapping[int, Control] = {
    pb.CONTROL_ACTION_PAUSE: Control.PAUSE,
    pb.CONTROL_ACTION_RESUME: Control.RESUME,
    pb.CONTROL_ACTION_RETRY_FROM: Control.RETRY_FROM,
}

JUDGEMENT_KEY = "judgement"
"""Key under ``Result.data`` where the judge's verdict is recorded."""


def result_digest(result: pb.Result) -> bytes:
    """SHA-256 of a result's deterministic serialization (recognises exact repeats)."""
    return hashlib.sha256(result.SerializeToString(deterministic=True)).digest()


def component_from_pb(component: pb.Component) -> ComponentView | None:
    """Plain component, or ``None`` when the message is empty."""
    if not component.module_name and not component.name:
        return None
    return ComponentView(
        name=component.name,
        module_name=component.module_name,
        type=component.type,
        description=component.description,
        dependencies=tuple(component.dependencies),
    )


def component_to_pb(component: ComponentView | None) -> pb.Component:
    """Protobuf component (empty for ``None``)."""
    if component is None:
        return pb.Component()
    return pb.Component(
        name=component.name,
        module_name=component.module_name,
        type=component.type,
        description=component.description,
        dependencies=list(component.dependencies),
    )


def reported_from_pb(result: pb.Result) -> ReportedResult:
    """A reported result in plain values (``ValueError`` for an unset status)."""
    outcome = OUTCOME_OF_STATUS.get(result.status)
    if outcome is None:
        raise ValueError("result.status must be OK, WARNING or ERROR")
    return ReportedResult(
        outcome=outcome,
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        data=struct_to_dict(result.data),
        error_message=result.error_message,
        duration_ms=result.duration_ms,
        files=tuple(
            CollectedFile(path=f.path, exists=f.exists, content=f.content, truncated=f.truncated)
            for f in result.files
        ),
    )


def judged_result(reported: pb.Result, judgement: Judgement) -> pb.Result:
    """The result to store: the report, with the judge's verdict applied and recorded.

    The reported status is kept under ``data.judgement.reported_status`` so
    the audit trail shows both what the executor said and what was decided.
    """
    stored = pb.Result()
    stored.CopyFrom(reported)
    reported_outcome = OUTCOME_OF_STATUS.get(reported.status, Outcome.ERROR)
    stored.status = STATUS_OF_OUTCOME[judgement.outcome]  # type: ignore[assignment]
    if judgement.reason:
        stored.error_message = judgement.reason
    verdict: dict[str, JsonValue] = {"reported_status": reported_outcome.value}
    if judgement.fingerprint:
        verdict["fingerprint"] = judgement.fingerprint
    if judgement.fail:
        verdict["fail"] = True
    if judgement.facts:
        verdict["facts"] = dict(judgement.facts)
    data = struct_to_dict(reported.data)
    data[JUDGEMENT_KEY] = verdict
    dict_to_struct(data, stored.data)
    return stored


def record_of(interaction: pb.Interaction) -> Record:
    """What the fold sees of a completed interaction."""
    command = interaction.command
    if command.WhichOneof("kind") == "control":
        control = CONTROL_OF_ACTION.get(command.control.action)
        if control is None:
            raise ValueError(f"interaction {interaction.seq} has an unknown control action")
        return Record(step=command.control.step, control=control, reason=command.control.reason)
    result = interaction.result
    outcome = OUTCOME_OF_STATUS.get(result.status, Outcome.ERROR)
    verdict: Any = {}
    if JUDGEMENT_KEY in result.data.fields:
        verdict = struct_to_dict(result.data).get(JUDGEMENT_KEY) or {}
    return Record(
        step=interaction.step,
        outcome=outcome,
        reason=result.error_message,
        fingerprint=str(verdict.get("fingerprint", "")) if isinstance(verdict, dict) else "",
        fail=bool(verdict.get("fail", False)) if isinstance(verdict, dict) else False,
    )


def child_view_from_pb(session: pb.Session) -> ChildView:
    """A child as its parent's judge sees it."""
    return ChildView(
        id=session.id,
        type=session.type,
        key=session.idempotency_key,
        status=SESSION_STATUS_NAMES.get(session.status, "active"),
        status_reason=session.status_reason,
        state=struct_to_dict(session.state),
        component=component_from_pb(session.component),
    )


def context_from_pb(
    session: pb.Session,
    *,
    step: str,
    rounds: Mapping[str, int] | None = None,
    state: Mapping[str, JsonValue] | None = None,
    children: tuple[ChildView, ...] = (),
    params: Mapping[str, JsonValue] | None = None,
) -> StepContext:
    """The step context for ``session`` (``state``/``params`` override the stored ones)."""
    return StepContext(
        session_id=session.id,
        session_type=session.type,
        account_id=session.scope.account_id,
        project_id=session.scope.project_id,
        user_id=session.scope.user_id,
        params=dict(params) if params is not None else struct_to_dict(session.params),
        state=dict(state) if state is not None else struct_to_dict(session.state),
        execution_mode=EXECUTION_MODE_NAMES.get(session.execution_mode, "manual"),
        parent_id=session.parent_id,
        component=component_from_pb(session.component),
        name=session.name,
        step=step,
        rounds=dict(rounds or {}),
        children=children,
        definition_version=session.definition_version,
    )


def describe(workflow: Workflow) -> pb.WorkflowDescription:
    """The step graph of a workflow, for Describe."""
    description = pb.WorkflowDescription(
        type=workflow.type,
        version=workflow.version,
        first_step=workflow.first,
        child_types=list(workflow.child_types),
    )
    for name, spec in workflow.all_params().items():
        description.params[name] = spec.description + (" (required)" if spec.required else "")
    for row in workflow.steps:
        description.steps.append(
            pb.StepDescription(
                name=row.name,
                kind=row.step.kind.value,
                transition=pb.StepTransition(
                    on_ok=row.on_ok,
                    on_warning=row.target(row.on_warning),
                    on_error=row.target(row.on_error),
                ),
                max_rounds=row.max_rounds or 0,
                summary=row.step.summary,
            )
        )
    return description
