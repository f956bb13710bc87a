"""The orchestrator's decisions, free of I/O.

Given a session head (the session row with its pending or newest
interaction) the engine decides what one step's write is: judge a result,
fold it into the progress, build the next command, create or revive
children. The only thing it may ask for is the session's children, through
an injected loader, and only when a step declares ``needs_children``.

The gRPC servicer and the in-memory simulator behind the golden tests both
drive this module, so what the goldens pin is what production does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from specloom.errors import FailedPrecondition, InvalidArgument
from specloom.ids import new_id
from specloom.orchestration.params import component_of, subject_of, validate_params
from specloom.orchestration.spawn import creation_order, dependencies_for

# The data a decision writes, and its helpers, live in .writes; re-exported
# here because every caller of the engine needs them beside it.
from specloom.orchestration.writes import (
    MAX_CHILDREN_PER_STEP,
    TERMINAL,
    Completion,
    Decoded,
    Done,
    LeaseOffer,
    NewStep,
    PlannedChild,
    Revival,
    Write,
    control_step,
    finish_of,
    merge_state,
    new_step,
    pending_of,
    record_of_control,
    stopped_before,
    without_next_step,
)
from specloom.protoconv import JsonObject, JsonValue, dict_to_struct, struct_to_dict
from specloom.v1 import common_pb2 as pb
from specloom.workflow import (
    DEPENDENCIES_STATE_KEY,
    ChildSpec,
    CommandPlan,
    Dependency,
    Judgement,
    Outcome,
    Progress,
    Registry,
    Workflow,
    apply,
    initial,
)
from specloom.workflow._proto import (
    child_execution_mode,
    child_view_from_pb,
    component_to_pb,
    context_from_pb,
    judged_result,
    record_of,
    reported_from_pb,
)
from specloom.workflow._record import StateError
from specloom.workflow.commands import kind_of

log = logging.getLogger("specloom.orchestration")

ChildrenLoader = Callable[[], Awaitable[Sequence[pb.Session]]]

__all__ = [
    "ChildrenLoader",
    "Completion",
    "Decoded",
    "Done",
    "Engine",
    "LeaseOffer",
    "NewStep",
    "PlannedChild",
    "Revival",
    "Write",
    "control_step",
    "merge_state",
    "pending_of",
    "without_next_step",
]


class Engine:
    """Decisions for every workflow of a registry."""

    def __init__(self, registry: Registry, ids: Callable[[], str] = new_id) -> None:
        self.registry = registry
        self._ids = ids

    def workflow_of(self, head: pb.Session) -> Workflow:
        """The definition a session runs under."""
        return self.registry.get(head.type, head.definition_version or 1)

    def decode(self, head: pb.Session, known: Decoded | None = None) -> Decoded:
        """``known`` when it is of this head's version, else decoded from the head."""
        if known is not None and known.version == head.version:
            return known
        return Decoded(
            version=head.version,
            params=struct_to_dict(head.params),
            state=struct_to_dict(head.state),
            progress=self.progress_of(head),
        )

    def progress_of(self, head: pb.Session) -> Progress:
        """The stored fold of a session."""
        return Progress.from_dict(struct_to_dict(head.progress), self.workflow_of(head))

    # -- opening ---------------------------------------------------------------

    def open(
        self,
        session_type: str,
        scope: pb.Scope,
        execution_mode: int,
        params: Mapping[str, JsonValue],
        *,
        version: int = 0,
    ) -> pb.Session:
        """A new top-level session, without its first interaction (see :meth:`begin`).

        Sessions chooses a top-level session's id, and the first step's command
        names it (the session's worktree and branch), so that step is planned
        once the session exists. ``version`` opens an older definition (tests
        of definitions kept for running sessions); 0 is the newest.
        """
        workflow = (
            self.registry.get(session_type, version)
            if version
            else self.registry.latest(session_type)
        )
        validate_params(workflow, params)
        mode = execution_mode or pb.EXECUTION_MODE_AGENTIC  # as StartSession
        session = pb.Session(
            type=workflow.type,
            status=pb.SESSION_STATUS_ACTIVE,
            execution_mode=mode,  # type: ignore[arg-type]
            scope=scope,
            name=subject_of(workflow, params),
            component=component_to_pb(component_of(params)),
            definition_version=workflow.version,
        )
        dict_to_struct(params, session.params)
        dict_to_struct(initial(workflow).to_dict(), session.progress)
        return session

    def begin(self, head: pb.Session) -> Write:
        """The write that issues a just-created session's first step.

        The same command :meth:`next_step` would plan, without the children
        loader: a first step has no children to read.
        """
        if not head.id:
            raise ValueError("begin needs the session's id")
        workflow = self.workflow_of(head)
        state = struct_to_dict(head.state)
        first, after = self._first_step(workflow, head, state, lease=None)
        return Write(append=[first], state=after if after != state else None)

    def _first_step(
        self,
        workflow: Workflow,
        session: pb.Session,
        state: Mapping[str, JsonValue],
        lease: LeaseOffer | None,
    ) -> tuple[NewStep, JsonObject]:
        row = workflow.steps[0]
        # A new session has no children yet, so a first step that reads them
        # sees none; it cannot create any (CreateSession writes one session).
        ctx = context_from_pb(session, step=row.name, state=state)
        plan = row.step.command(ctx)
        if plan.create_children or plan.revive_children:
            raise ValueError(f"{workflow.type}: the first step cannot spawn children")
        return new_step(row.name, plan.command, session.execution_mode, lease), merge_state(
            state, plan.state
        )

    # -- planning a step -----------------------------------------------------------

    async def _plan(
        self,
        head: pb.Session,
        params: JsonObject,
        progress: Progress,
        state: JsonObject,
        step: str,
        load_children: ChildrenLoader,
        lease: LeaseOffer | None,
        write: Write,
    ) -> None:
        workflow = self.workflow_of(head)
        row = workflow.step(step)
        children = tuple(await load_children()) if row.step.needs_children else ()
        ctx = context_from_pb(
            head,
            step=step,
            rounds=progress.rounds,
            state=state,
            params=params,
            children=tuple(child_view_from_pb(c) for c in children),
        )
        plan = row.step.command(ctx)
        command = plan.command
        if plan.create_children or plan.revive_children:
            self._plan_children(head, plan, children, command, write)
        write.append.append(new_step(step, command, head.execution_mode, lease))
        if plan.state:
            write.state = merge_state(state, plan.state)

    def _plan_children(
        self,
        head: pb.Session,
        plan: CommandPlan,
        existing: Sequence[pb.Session],
        command: pb.Command,
        write: Write,
    ) -> None:
        if len(plan.create_children) > MAX_CHILDREN_PER_STEP:
            raise InvalidArgument(
                f"step {command.step} asked for {len(plan.create_children)} children; "
                f"the limit is {MAX_CHILDREN_PER_STEP}"
            )
        by_key = {child.idempotency_key: child for child in existing}
        # Dependencies first: a dependent child's first command names their
        # branches, read from their own initial state.
        for spec in creation_order(command.step, plan.create_children, by_key):
            if spec.key in by_key:
                # A retried spawn reuses the children it made the first time.
                continue
            planned = self._child(head, spec, dependencies_for(spec, by_key))
            write.children.append(planned)
            by_key[spec.key] = planned.session
        ids = list(dict.fromkeys(by_key[spec.key].id for spec in plan.create_children))
        revived: list[str] = []
        by_id = {child.id: child for child in existing}
        for child_id in plan.revive_children:
            child = by_id.get(child_id)
            if child is None or child.status != pb.SESSION_STATUS_FAILED:
                continue
            record = pb.ControlRecord(
                action=pb.CONTROL_ACTION_RESUME,
                reason=f"parent {head.id} retried {command.step}",
            )
            child_workflow = self.workflow_of(child)
            progress = apply(
                child_workflow,
                struct_to_dict(child.params),
                self.progress_of(child),
                record_of_control(record),
            )
            write.revive.append(Revival(child.id, record, progress))
            revived.append(child.id)
        if kind_of(command) == "spawn_children":
            spawn = command.spawn_children
            if not spawn.child_session_ids:
                spawn.child_session_ids.extend(ids or [c.id for c in existing])
            if not spawn.resumed_child_ids:
                spawn.resumed_child_ids.extend(revived)

    def _child(
        self, parent: pb.Session, spec: ChildSpec, dependencies: Sequence[Dependency] = ()
    ) -> PlannedChild:
        workflow = self.registry.child(self.workflow_of(parent), spec.type)
        validate_params(workflow, spec.params)
        child = pb.Session(
            id=self._ids(),
            type=workflow.type,
            status=pb.SESSION_STATUS_ACTIVE,
            execution_mode=child_execution_mode(parent.execution_mode),
            parent_id=parent.id,
            scope=parent.scope,
            name=spec.name or subject_of(workflow, spec.params),
            component=component_to_pb(spec.component or component_of(spec.params)),
            definition_version=workflow.version,
            idempotency_key=spec.key,
        )
        dict_to_struct(spec.params, child.params)
        given: JsonObject = dict(spec.state)
        if dependencies:
            given[DEPENDENCIES_STATE_KEY] = [d.to_dict() for d in dependencies]
        first, state = self._first_step(workflow, child, given, lease=None)
        dict_to_struct(state, child.state)
        progress = initial(workflow)
        dict_to_struct(progress.to_dict(), child.progress)
        return PlannedChild(
            child, first, progress, depends_on=tuple(d.session_id for d in dependencies)
        )

    # -- the three decisions ---------------------------------------------------------

    async def next_step(
        self,
        head: pb.Session,
        load_children: ChildrenLoader,
        lease: LeaseOffer | None = None,
        known: Decoded | None = None,
    ) -> pb.Interaction | Done | Write:
        """The pending interaction, Done, or the write that appends the next one."""
        if head.status in TERMINAL:
            return Done(head.status, head.status_reason)
        pending = pending_of(head)
        if pending is not None:
            return pending
        if head.status in (pb.SESSION_STATUS_PAUSED, pb.SESSION_STATUS_FAILED):
            return Done(head.status, head.status_reason)
        decoded = self.decode(head, known)
        progress = decoded.progress
        decision = progress.decision()
        write = Write()
        if decision.action == "run":
            await self._plan(
                head,
                decoded.params,
                progress,
                decoded.state,
                decision.step,
                load_children,
                lease,
                write,
            )
            return write
        if decision.action == "wait":
            return Done(pb.SESSION_STATUS_PAUSED, decision.reason)
        # The stored fold says finished but the row does not: finish it now
        # (only reachable after a crash between two separate writes).
        write.finish = finish_of(progress)
        return write

    async def result(
        self,
        head: pb.Session,
        pending: pb.Interaction,
        reported: pb.Result,
        *,
        lease_epoch: int,
        reported_digest: bytes,
        advance: bool,
        load_children: ChildrenLoader,
        lease: LeaseOffer | None = None,
        known: Decoded | None = None,
    ) -> Write:
        """The write recording ``reported`` for ``pending`` (and the next step if ``advance``)."""
        if head.status in TERMINAL:
            state_name = pb.SessionStatus.Name(head.status).removeprefix("SESSION_STATUS_").lower()
            raise FailedPrecondition(f"session {head.id} is {state_name}; it takes no results")
        workflow = self.workflow_of(head)
        try:
            reported_view = reported_from_pb(reported)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        row = workflow.step(pending.step)
        children = tuple(await load_children()) if row.step.needs_children else None
        decoded = self.decode(head, known)
        params = decoded.params
        progress = decoded.progress
        ctx = context_from_pb(
            head,
            step=row.name,
            rounds=progress.rounds,
            state=decoded.state,
            params=params,
            children=tuple(child_view_from_pb(c) for c in children or ()),
        )
        judgement = self._judge(row.name, row.step.judge, ctx, reported_view)
        judgement = classified(judgement, reported)
        judged = judged_result(reported, judgement)
        completed = pb.Interaction()
        completed.CopyFrom(pending)
        completed.result.CopyFrom(judged)
        completed.status = pb.INTERACTION_STATUS_COMPLETED
        progress = apply(workflow, params, progress, record_of(completed))
        # Unchanged state is not sent (it is the largest part of a write).
        state = merge_state(decoded.state, judgement.state) if judgement.state else decoded.state
        write = Write(
            complete=Completion(pending.id, judged, lease_epoch, reported_digest),
            state=state if judgement.state else None,
        )
        decision = progress.decision()
        if decision.action == "run" and head.status == pb.SESSION_STATUS_PAUSED:
            # The pause asked for while this step ran takes effect now: it is
            # recorded after the step, where it happened in the history.
            record = pb.ControlRecord(action=pb.CONTROL_ACTION_PAUSE, reason=head.status_reason)
            progress = apply(workflow, params, progress, record_of_control(record))
            write.append.append(control_step(record))
        elif decision.action == "run" and advance and head.status == pb.SESSION_STATUS_ACTIVE:
            loader = _cached(children, load_children)
            try:
                await self._plan(head, params, progress, state, decision.step, loader, lease, write)
            except InvalidArgument as exc:
                # The next step cannot be issued as asked (more children than
                # allowed, say). Refusing this result would only have the
                # executor run its step again, forever: record it, and stop
                # the session saying why (a resume asks again, and is refused
                # with the same reason).
                write.progress = progress
                return stopped_before(write, decision.step, exc.message)
        write.finish = finish_of(progress)
        write.progress = progress
        return write

    def unrecordable(
        self,
        head: pb.Session,
        pending: pb.Interaction,
        reported: pb.Result,
        reason: str,
        *,
        lease_epoch: int,
        reported_digest: bytes,
        known: Decoded | None = None,
    ) -> Write:
        """The write for an executor's result that cannot be stored as it is.

        A result over Sessions' caps can never be written, and refusing it
        only has the command run again once its lease lapses — forever. In
        its place goes a small ERROR result saying why, judged final: the
        session fails with the reason, the executor's report is answered,
        and nothing runs again until a person resumes it. The digest stays
        the reported one, so a resend of the same report is an exact repeat.
        """
        workflow = self.workflow_of(head)
        decoded = self.decode(head, known)
        stand_in = pb.Result(
            status=reported.status,
            exit_code=reported.exit_code,
            duration_ms=reported.duration_ms,
            log_ref=reported.log_ref,
            output_truncated=reported.output_truncated,
        )
        message = f"its result could not be recorded: {reason}"
        judged = judged_result(stand_in, Judgement.error(message, fail=True))
        completed = pb.Interaction()
        completed.CopyFrom(pending)
        completed.result.CopyFrom(judged)
        completed.status = pb.INTERACTION_STATUS_COMPLETED
        progress = apply(workflow, decoded.params, decoded.progress, record_of(completed))
        return Write(
            complete=Completion(pending.id, judged, lease_epoch, reported_digest),
            progress=progress,
            finish=finish_of(progress),
        )

    @staticmethod
    def _judge(
        step: str,
        judge: Callable[..., Judgement],
        ctx: object,
        reported: object,
    ) -> Judgement:
        try:
            return judge(ctx, reported)
        except StateError as exc:
            # Stored state of the wrong shape: no retry can fix it. Naming
            # the field keeps it inspectable (and fixable by hand).
            return Judgement.error(f"{step}: unreadable session state: {exc.message}", fail=True)
        except Exception:
            # A judge that raises is our bug. Failing the session with a
            # reason keeps it inspectable and resumable once fixed; an
            # INTERNAL answer would make the executor retry forever.
            ref = new_id()
            log.exception("judge of %s raised (ref %s)", step, ref)
            return Judgement.error(f"internal error while judging {step} (ref {ref})", fail=True)

    async def steer(
        self,
        head: pb.Session,
        action: int,
        step: str,
        reason: str,
        load_children: ChildrenLoader,
    ) -> Write | None:
        """The write for a person's decision (None: nothing to change)."""
        workflow = self.workflow_of(head)
        decoded = self.decode(head)
        params = decoded.params
        status = head.status
        pending = pending_of(head)
        if status in TERMINAL:
            name = pb.SessionStatus.Name(status).removeprefix("SESSION_STATUS_").lower()
            raise FailedPrecondition(f"session {head.id} is {name}; it cannot be steered")
        progress = decoded.progress
        record = pb.ControlRecord(action=action, step=step, reason=reason)  # type: ignore[arg-type]
        write = Write()
        if action == pb.CONTROL_ACTION_PAUSE:
            if status != pb.SESSION_STATUS_ACTIVE:
                return None  # already paused or failed: pausing changes nothing
            write.finish = (pb.SESSION_STATUS_PAUSED, reason or "paused")
            if pending is None:
                write.append.append(control_step(record))
                write.progress = apply(workflow, params, progress, record_of_control(record))
            return write
        if action == pb.CONTROL_ACTION_RESUME:
            if status == pb.SESSION_STATUS_ACTIVE:
                return None
            write.finish = (pb.SESSION_STATUS_ACTIVE, "")
            if pending is not None:
                return write  # paused mid-step: the pause never took effect in the history
            write.append.append(control_step(record))
        elif action == pb.CONTROL_ACTION_RETRY_FROM:
            workflow.step(step)  # InvalidArgument for an unknown step
            if pending is not None:
                raise FailedPrecondition(
                    f"session {head.id} is running {pending.step}; "
                    "wait for its result (a paused session still takes it) before retrying "
                    "from another step"
                )
            if status != pb.SESSION_STATUS_ACTIVE:
                write.finish = (pb.SESSION_STATUS_ACTIVE, "")
            write.append.append(control_step(record))
        else:
            raise InvalidArgument("action must be PAUSE, RESUME or RETRY_FROM")
        progress = apply(workflow, params, progress, record_of_control(record))
        write.progress = progress
        decision = progress.decision()
        if decision.action == "run":
            await self._plan(
                head,
                params,
                progress,
                decoded.state,
                decision.step,
                load_children,
                None,
                write,
            )
        return write


def classified(judgement: Judgement, reported: pb.Result) -> Judgement:
    """The judge's ERROR, adjusted to the executor's class of the failure.

    Whatever the step, a provider failure means the same thing: a
    *transient* one (retries inside the step ran out) carries no fingerprint,
    so two in a row are never "stuck" — the loop's round cap still bounds
    them; a *permanent* one ends the session at once (fail), since no revise
    or fix round can log a CLI in or repair a key, and a resume retries it
    once a person has. The model's own failure is left to the judge.
    """
    if judgement.outcome is not Outcome.ERROR:
        return judgement
    if reported.failure_class == pb.FAILURE_CLASS_TRANSIENT and judgement.fingerprint:
        return replace(judgement, fingerprint="")
    if reported.failure_class == pb.FAILURE_CLASS_PERMANENT and not judgement.fail:
        return replace(judgement, fail=True)
    return judgement


def _cached(children: Sequence[pb.Session] | None, load_children: ChildrenLoader) -> ChildrenLoader:
    async def load() -> Sequence[pb.Session]:
        if children is not None:
            return children
        return await load_children()

    return load
