"""SessionsService: check the request, call the store, answer in protos.

Thin on purpose: the rules live in :mod:`specloom_sessions.store`; errors
are :mod:`specloom.errors` exceptions that the shared interceptor turns
into status codes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from specloom.errors import Aborted, InvalidArgument, ResourceExhausted, SpecloomError
from specloom.logs import log_context
from specloom.protoconv import from_timestamp, to_timestamp
from specloom.rpc.batching import fit_answer
from specloom.v1 import common_pb2 as pb
from specloom.v1 import sessions_pb2 as spb
from specloom.v1 import sessions_pb2_grpc as spb_grpc
from specloom.validate import require_id, require_scope, require_workspace, require_workspace_id
from specloom_sessions import validation as check
from specloom_sessions.config import SessionsSettings
from specloom_sessions.database import Database
from specloom_sessions.metrics import count_usage
from specloom_sessions.rows import bare
from specloom_sessions.store import advance as steps
from specloom_sessions.store import batch, leases, outputs, presence, projectmap, retention
from specloom_sessions.store import sessions as store
from specloom_sessions.watch import SessionWatch, work_signals

MAX_FETCH_BYTES = 8 * 1024 * 1024
MAX_STALLED = 1000
MAX_LEASE_REFS = 1000
DIGEST_BYTES = 32
MAX_RETENTION_DAYS = 100 * 366
MAX_BATCH = 1000

log = logging.getLogger("specloom.sessions.servicer")


def _item_error(error: SpecloomError) -> spb.AdvanceSessionsOutcome:
    return spb.AdvanceSessionsOutcome(error=pb.ItemError(code=error.code, message=error.message))


def _left_out() -> spb.AdvanceSessionsOutcome:
    # ABORTED, as for a lost version race: the caller reads the session again
    # and finds its write made (a repeated report is then an exact repeat).
    return _item_error(
        Aborted("written, but its answer did not fit in this batch's message; read it again")
    )


def _log_written(done: steps.Advanced) -> None:
    """One DEBUG line per step written, tagged with the session and the completed interaction."""
    completed = done.completed.id if done.completed is not None else ""
    with log_context(done.session.id, completed):
        log.debug(
            "step written%s: version %d, appended %s",
            " (a repeat)" if done.replayed else "",
            done.session.version,
            ", ".join(f"{i.step} {i.id}" for i in done.appended) or "nothing",
        )


def _version(field: str, value: int, *, required: bool) -> int:
    if value < 0 or (required and value == 0):
        raise InvalidArgument(f"{field} must be {'at least 1' if required else 'positive or 0'}")
    return value


def _digest(field: str, value: bytes) -> bytes:
    if value and len(value) != DIGEST_BYTES:
        raise InvalidArgument(f"{field} must be a {DIGEST_BYTES}-byte SHA-256 digest")
    return value


def _epoch(field: str, value: int) -> int:
    if value < 0:
        raise InvalidArgument(f"{field} must not be negative")
    return value


class SessionsServicer(spb_grpc.SessionsServiceServicer):
    """The SessionsService contract over one database."""

    def __init__(self, db: Database, settings: SessionsSettings) -> None:
        self.db = db
        self.settings = settings
        self.limits = check.Limits.of(settings)

    # -- sessions ----------------------------------------------------------------

    async def CreateSession(
        self, request: spb.CreateSessionRequest, context: Any
    ) -> spb.CreateSessionResponse:
        require_scope(request.scope)
        check.name("type", request.type)
        if request.execution_mode not in check.EXECUTION_MODES:
            raise InvalidArgument(
                f"execution_mode must be MANUAL, AUTO or AGENTIC, got {request.execution_mode}"
            )
        check.optional_id("parent_id", request.parent_id)
        check.text("name", request.name)
        check.component("component", request.component, self.limits)
        check.struct("params", request.params, self.limits)
        check.struct("state", request.state, self.limits)
        check.struct("progress", request.progress, self.limits)
        if request.definition_version < 1:
            raise InvalidArgument("definition_version must be at least 1")
        check.idempotency_key("idempotency_key", request.idempotency_key)
        if request.HasField("first"):
            check.new_interaction("first", request.first, self.limits)
        if request.HasField("workspace"):
            if request.parent_id:
                raise InvalidArgument(
                    "workspace: a child session takes its parent's workspace; leave it unset"
                )
            require_workspace("workspace", request.workspace)
        check.optional_id("id", request.id)
        if request.HasField("first_state"):
            if not (request.id and request.HasField("first")):
                raise InvalidArgument("first_state is the state after first: it needs first and id")
            check.struct("first_state", request.first_state, self.limits)
        offer = check.offer(request) if request.HasField("claim") else None
        session, created = await store.create_session(self.db, request, offer)
        return spb.CreateSessionResponse(session=session, created=created)

    async def FetchSession(
        self, request: spb.FetchSessionRequest, context: Any
    ) -> spb.FetchSessionResponse:
        check.scope_and_id(request.scope, request.session_id)
        view = check.view("view", request.view)
        session = await store.fetch_session(
            self.db,
            request.scope,
            request.session_id,
            view,
            total_usage=request.include_total_usage,
            explain=request.explain_waiting,
        )
        return spb.FetchSessionResponse(session=session)

    async def QuerySessions(
        self, request: spb.QuerySessionsRequest, context: Any
    ) -> spb.QuerySessionsResponse:
        require_scope(request.scope)
        where = request.filter
        check.count("filter.statuses", where.statuses, check.MAX_LIST)
        check.count("filter.types", where.types, check.MAX_LIST)
        for index, status in enumerate(where.statuses):
            check.session_status(f"filter.statuses[{index}]", status)
        for index, kind in enumerate(where.types):
            check.name(f"filter.types[{index}]", kind)
        check.optional_id("filter.parent_id", where.parent_id)
        if where.parent_id and where.top_level_only:
            raise InvalidArgument("filter.parent_id and filter.top_level_only exclude each other")
        check.name("filter.user_id", where.user_id, required=False)
        if where.workspace_id:
            require_workspace_id("filter.workspace_id", where.workspace_id)
        if where.HasField("created_after"):
            check.timestamp("filter.created_after", where.created_after)
        if where.HasField("created_before"):
            check.timestamp("filter.created_before", where.created_before)
        check.in_range("page_size", request.page_size, 0, store.MAX_PAGE)
        check.text("page_token", request.page_token, 512)
        page = await store.query_sessions(
            self.db,
            request.scope,
            where,
            request.page_size,
            request.page_token,
            explain=request.explain_waiting,
        )
        return spb.QuerySessionsResponse(sessions=page.sessions, next_page_token=page.next_token)

    async def FetchChildren(
        self, request: spb.FetchChildrenRequest, context: Any
    ) -> spb.FetchChildrenResponse:
        check.scope_and_id(request.scope, request.parent_id, "parent_id")
        view = check.view("view", request.view)
        children = await store.fetch_children(
            self.db, request.scope, request.parent_id, view, explain=request.explain_waiting
        )
        return spb.FetchChildrenResponse(children=children)

    async def CancelSessionTree(
        self, request: spb.CancelSessionTreeRequest, context: Any
    ) -> spb.CancelSessionTreeResponse:
        check.scope_and_id(request.scope, request.session_id)
        check.text("reason", request.reason)
        session, descendants = await store.cancel_tree(
            self.db, request.scope, request.session_id, request.reason
        )
        return spb.CancelSessionTreeResponse(session=session, cancelled_descendant_ids=descendants)

    async def StreamSessionEvents(
        self, request: spb.StreamSessionEventsRequest, context: Any
    ) -> AsyncIterator[spb.StreamSessionEventsResponse]:
        check.scope_and_id(request.scope, request.session_id)
        watch = SessionWatch(
            self.db,
            request.scope,
            request.session_id,
            include_children=request.include_children,
            include_output=request.include_output,
            explain_waiting=request.explain_waiting,
        )
        async for event in watch.events():
            yield spb.StreamSessionEventsResponse(event=event)

    # -- steps ---------------------------------------------------------------------

    async def AppendInteraction(
        self, request: spb.AppendInteractionRequest, context: Any
    ) -> spb.AppendInteractionResponse:
        check.scope_and_id(request.scope, request.session_id)
        _version("expected_version", request.expected_version, required=False)
        if not request.HasField("interaction"):
            raise InvalidArgument("interaction is required")
        check.new_interaction("interaction", request.interaction, self.limits)
        done = await steps.advance(
            self.db,
            steps.Step(
                scope=request.scope,
                session_id=request.session_id,
                expected_version=request.expected_version,
                append=[request.interaction],
            ),
        )
        return spb.AppendInteractionResponse(session=done.session, interaction=done.appended[0])

    async def CompleteInteraction(
        self, request: spb.CompleteInteractionRequest, context: Any
    ) -> spb.CompleteInteractionResponse:
        check.scope_and_id(request.scope, request.session_id)
        require_id("interaction_id", request.interaction_id)
        _version("expected_version", request.expected_version, required=False)
        if not request.HasField("result"):
            raise InvalidArgument("result is required")
        check.result("result", request.result, self.limits)
        done = await steps.advance(
            self.db,
            steps.Step(
                scope=request.scope,
                session_id=request.session_id,
                expected_version=request.expected_version,
                complete=steps.completion(
                    request.interaction_id,
                    request.result,
                    _epoch("lease_epoch", request.lease_epoch),
                    _digest("reported_digest", request.reported_digest),
                ),
            ),
        )
        assert done.completed is not None
        if not done.replayed:
            count_usage(done.completed.result)
        return spb.CompleteInteractionResponse(
            session=bare(done.session), interaction=done.completed, replayed=done.replayed
        )

    def _step_of(self, request: spb.AdvanceSessionRequest) -> steps.Step:
        """A validated AdvanceSession request as the store's Step."""
        check.scope_and_id(request.scope, request.session_id)
        _version("expected_version", request.expected_version, required=True)
        completion = None
        if request.HasField("complete"):
            part = request.complete
            require_id("complete.interaction_id", part.interaction_id)
            if not part.HasField("result"):
                raise InvalidArgument("complete.result is required")
            check.result("complete.result", part.result, self.limits)
            completion = steps.completion(
                part.interaction_id,
                part.result,
                _epoch("complete.lease_epoch", part.lease_epoch),
                _digest("complete.reported_digest", part.reported_digest),
            )
        state = (
            check.struct("state", request.state, self.limits) if request.HasField("state") else None
        )
        progress = (
            check.struct("progress", request.progress, self.limits)
            if request.HasField("progress")
            else None
        )
        check.append_list("append", request.append, self.limits)
        finish = None
        if request.HasField("finish"):
            check.finish("finish", request.finish)
            finish = request.finish
        check.children(request.create_children, request.revive_children, self.limits)
        # After the parts' own caps, whose refusals name the part.
        check.write_size("the write", request, self.limits)
        return steps.Step(
            scope=request.scope,
            session_id=request.session_id,
            expected_version=request.expected_version,
            complete=completion,
            state=state,
            progress=progress,
            append=list(request.append),
            finish=finish,
            create_children=list(request.create_children),
            revive_children=list(request.revive_children),
        )

    @staticmethod
    def _advanced(done: steps.Advanced) -> spb.AdvanceSessionResponse:
        if log.isEnabledFor(logging.DEBUG):
            _log_written(done)
        if done.completed is not None and not done.replayed:
            count_usage(done.completed.result)
        response = spb.AdvanceSessionResponse(
            session=bare(done.session), appended=done.appended, replayed=done.replayed
        )
        if done.completed is not None:
            response.completed.CopyFrom(done.completed)
        if done.children is not None:
            response.children.extend(done.children)
        return response

    async def AdvanceSession(
        self, request: spb.AdvanceSessionRequest, context: Any
    ) -> spb.AdvanceSessionResponse:
        return self._advanced(await batch.advance_one(self.db, self._step_of(request)))

    async def AdvanceSessions(
        self, request: spb.AdvanceSessionsRequest, context: Any
    ) -> spb.AdvanceSessionsResponse:
        if len(request.items) > MAX_BATCH:
            raise ResourceExhausted(
                f"items holds {len(request.items)} writes; a batch takes at most {MAX_BATCH}"
            )
        seen: set[str] = set()
        for index, item in enumerate(request.items):
            if item.session_id in seen:
                raise InvalidArgument(
                    f"items[{index}].session_id {item.session_id} appears twice; "
                    "a batch writes each session at most once"
                )
            seen.add(item.session_id)
        outcomes: list[spb.AdvanceSessionsOutcome | None] = [None] * len(request.items)
        valid: list[tuple[int, steps.Step]] = []
        for index, item in enumerate(request.items):
            try:
                valid.append((index, self._step_of(item)))
            except SpecloomError as exc:
                outcomes[index] = _item_error(exc)
        done = await batch.advance_many(self.db, [step for _, step in valid])
        for (index, _), outcome in zip(valid, done, strict=True):
            if isinstance(outcome, SpecloomError):
                outcomes[index] = _item_error(outcome)
            else:
                outcomes[index] = spb.AdvanceSessionsOutcome(response=self._advanced(outcome))
        return spb.AdvanceSessionsResponse(
            outcomes=fit_answer(
                [o for o in outcomes if o is not None],
                spb.AdvanceSessionsOutcome.ByteSize,
                _left_out,
            )
        )

    # -- output --------------------------------------------------------------------

    async def AppendOutput(
        self, request: spb.AppendOutputRequest, context: Any
    ) -> spb.AppendOutputResponse:
        check.scope_and_id(request.scope, request.session_id)
        require_id("interaction_id", request.interaction_id)
        for index, part in enumerate(request.parts):
            if part.stream not in check.OUTPUT_STREAMS:
                raise InvalidArgument(f"parts[{index}].stream {part.stream} is not a known stream")
        kept = await outputs.append_output(
            self.db,
            request.scope,
            request.session_id,
            request.interaction_id,
            request.parts,
            self.settings.sessions_max_output_bytes,
        )
        return spb.AppendOutputResponse(stored_bytes=kept.stored_bytes, truncated=kept.truncated)

    async def FetchOutput(
        self, request: spb.FetchOutputRequest, context: Any
    ) -> spb.FetchOutputResponse:
        check.scope_and_id(request.scope, request.session_id)
        check.optional_id("interaction_id", request.interaction_id)
        after = request.after_index if request.HasField("after_index") else -1
        if after < -1:
            raise InvalidArgument("after_index must be -1 or more")
        if after >= 0 and not request.interaction_id:
            raise InvalidArgument("after_index needs interaction_id")
        check.in_range("max_bytes", int(request.max_bytes), 0, MAX_FETCH_BYTES)
        chunks, more = await outputs.fetch_output(
            self.db,
            request.scope,
            request.session_id,
            request.interaction_id,
            after,
            request.max_bytes,
        )
        return spb.FetchOutputResponse(chunks=chunks, more=more)

    # -- executors -----------------------------------------------------------------

    async def ClaimCommands(
        self, request: spb.ClaimCommandsRequest, context: Any
    ) -> spb.ClaimCommandsResponse:
        require_scope(request.scope)
        require_id("executor_id", request.executor_id)
        capabilities = check.capabilities("capabilities", request.capabilities)
        check.in_range("max_commands", request.max_commands, 1, check.MAX_BATCH)
        check.in_range("lease_ttl_seconds", request.lease_ttl_seconds, 1, check.MAX_LEASE_TTL)
        claimed = await leases.claim_commands(
            self.db,
            request.scope,
            request.executor_id,
            capabilities,
            request.max_commands,
            request.lease_ttl_seconds,
            check.claimant(request),
        )
        return spb.ClaimCommandsResponse(
            assignments=[
                spb.Assignment(session=a.session, interaction=a.interaction) for a in claimed
            ]
        )

    async def RenewLeases(
        self, request: spb.RenewLeasesRequest, context: Any
    ) -> spb.RenewLeasesResponse:
        require_id("executor_id", request.executor_id)
        if len(request.leases) > MAX_LEASE_REFS:
            raise InvalidArgument(f"leases lists more than {MAX_LEASE_REFS} leases")
        refs: list[leases.LeaseKey] = []
        for index, lease in enumerate(request.leases):
            require_id(f"leases[{index}].interaction_id", lease.interaction_id)
            if lease.epoch < 1:
                raise InvalidArgument(f"leases[{index}].epoch must be at least 1")
            expires = from_timestamp(lease.expires_at) if lease.HasField("expires_at") else None
            refs.append((lease.interaction_id, lease.epoch, expires))
        check.in_range("ttl_seconds", request.ttl_seconds, 1, check.MAX_LEASE_TTL)
        renewed, lost, expires = await leases.renew_leases(
            self.db, request.executor_id, refs, request.ttl_seconds
        )
        stamp = to_timestamp(expires)
        return spb.RenewLeasesResponse(
            renewed=[spb.LeaseRef(interaction_id=i, epoch=e, expires_at=stamp) for i, e in renewed],
            lost=[spb.LeaseRef(interaction_id=i, epoch=e) for i, e in lost],
        )

    async def ReleaseLeases(
        self, request: spb.ReleaseLeasesRequest, context: Any
    ) -> spb.ReleaseLeasesResponse:
        require_id("executor_id", request.executor_id)
        if len(request.interaction_ids) > MAX_LEASE_REFS or len(request.leases) > MAX_LEASE_REFS:
            raise InvalidArgument(f"a release lists at most {MAX_LEASE_REFS} leases")
        for index, interaction_id in enumerate(request.interaction_ids):
            require_id(f"interaction_ids[{index}]", interaction_id)
        exact: list[leases.LeaseKey] = []
        for index, lease in enumerate(request.leases):
            require_id(f"leases[{index}].interaction_id", lease.interaction_id)
            expires = from_timestamp(lease.expires_at) if lease.HasField("expires_at") else None
            exact.append((lease.interaction_id, lease.epoch, expires))
        released = await leases.release_leases(
            self.db, request.executor_id, list(request.interaction_ids), exact
        )
        return spb.ReleaseLeasesResponse(released=released)

    async def ClaimJoins(
        self, request: spb.ClaimJoinsRequest, context: Any
    ) -> spb.ClaimJoinsResponse:
        require_id("claimer_id", request.claimer_id)
        check.in_range("max_joins", request.max_joins, 1, check.MAX_BATCH)
        check.in_range("lease_ttl_seconds", request.lease_ttl_seconds, 1, check.MAX_LEASE_TTL)
        joins = await leases.claim_joins(
            self.db, request.claimer_id, request.max_joins, request.lease_ttl_seconds
        )
        return spb.ClaimJoinsResponse(
            joins=[spb.Assignment(session=a.session, interaction=a.interaction) for a in joins]
        )

    async def FindStalledSessions(
        self, request: spb.FindStalledSessionsRequest, context: Any
    ) -> spb.FindStalledSessionsResponse:
        if request.idle_ms < 0:
            raise InvalidArgument("idle_ms must not be negative")
        check.in_range("limit", request.limit, 1, MAX_STALLED)
        stalled = await leases.find_stalled(self.db, request.idle_ms, request.limit)
        return spb.FindStalledSessionsResponse(sessions=stalled)

    async def FindUnclaimedCommands(
        self, request: spb.FindUnclaimedCommandsRequest, context: Any
    ) -> spb.FindUnclaimedCommandsResponse:
        check.in_range("waited_ms", int(request.waited_ms), 1, 10 * 365 * 86_400_000)
        check.in_range("limit", request.limit, 1, MAX_STALLED)
        found = await leases.find_unclaimed(self.db, int(request.waited_ms), request.limit)
        return spb.FindUnclaimedCommandsResponse(
            unclaimed=[spb.Assignment(session=a.session, interaction=a.interaction) for a in found]
        )

    async def WatchWork(
        self, request: spb.WatchWorkRequest, context: Any
    ) -> AsyncIterator[spb.WatchWorkResponse]:
        async for signal in work_signals(self.db, self.settings.sessions_work_nudge_seconds):
            yield signal

    # -- presence ------------------------------------------------------------------

    async def RecordExecutor(
        self, request: spb.RecordExecutorRequest, context: Any
    ) -> spb.RecordExecutorResponse:
        check.presence("executor", request.executor)
        check.in_range("live_seconds", request.live_seconds, 1, check.MAX_LEASE_TTL)
        await presence.record_executor(
            self.db, request.executor, request.live_seconds, refresh_only=request.refresh_only
        )
        return spb.RecordExecutorResponse()

    async def ForgetExecutor(
        self, request: spb.ForgetExecutorRequest, context: Any
    ) -> spb.ForgetExecutorResponse:
        require_id("connection_id", request.connection_id)
        removed = await presence.forget_executor(self.db, request.connection_id)
        return spb.ForgetExecutorResponse(removed=removed)

    async def QueryExecutors(
        self, request: spb.QueryExecutorsRequest, context: Any
    ) -> spb.QueryExecutorsResponse:
        require_scope(request.scope)
        found = await presence.query_executors(self.db, request.scope)
        return spb.QueryExecutorsResponse(executors=found)

    # -- project map ---------------------------------------------------------------

    async def RecordProjectScan(
        self, request: spb.RecordProjectScanRequest, context: Any
    ) -> spb.RecordProjectScanResponse:
        require_scope(request.scope)
        require_workspace_id("workspace_id", request.workspace_id)
        if not request.HasField("scan"):
            raise InvalidArgument("scan is required")
        check.project_scan("scan", request.scan, self.limits)
        check.optional_id("session_id", request.session_id)
        written = await projectmap.record_scan(
            self.db, request.scope, request.workspace_id, request.scan, request.session_id
        )
        return spb.RecordProjectScanResponse(components_recorded=written)

    async def FetchProjectFacts(
        self, request: spb.FetchProjectFactsRequest, context: Any
    ) -> spb.FetchProjectFactsResponse:
        require_scope(request.scope)
        require_workspace_id("workspace_id", request.workspace_id)
        return await projectmap.fetch_facts(self.db, request.scope, request.workspace_id)

    # -- retention -----------------------------------------------------------------

    async def PruneSessions(
        self, request: spb.PruneSessionsRequest, context: Any
    ) -> spb.PruneSessionsResponse:
        check.in_range("older_than_days", request.older_than_days, 1, MAX_RETENTION_DAYS)
        pruned = await retention.prune_sessions(
            self.db, request.older_than_days, dry_run=request.dry_run
        )
        return spb.PruneSessionsResponse(
            sessions=pruned.sessions,
            interactions=pruned.interactions,
            output_chunks=pruned.output_chunks,
        )
