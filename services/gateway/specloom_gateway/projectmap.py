"""The project map at the gateway: scans reported by clients and by executors' results.

A client (``specloom status``) reports a scan of a workspace's line; an
executor attaches one to the result of a session's Finalize (after it
landed the session's work on the line). The result is stored as reported
(its scan stays in the session's history: what the line looked like when
the session finished), and the scan is recorded on the map on the side,
after the result is acknowledged: a map that cannot be recorded never
fails nor delays a session's step; it is logged, and the next scan puts the
map right.
"""

from __future__ import annotations

import asyncio
import logging

from specloom.errors import SpecloomError
from specloom.logs import log_context
from specloom.projectmap import with_session_evidence
from specloom.v1 import common_pb2 as pb
from specloom.v1 import projectmap_pb2 as mpb
from specloom.v1 import sessions_pb2 as spb
from specloom_gateway.upstream import Upstream

log = logging.getLogger("specloom.gateway.projectmap")

CODING = frozenset({"ComponentCoding", "ContextCoding"})
"""Session types whose Finalize follows a passing run of their components' tests."""

_recording: set[asyncio.Task[None]] = set()
"""Scans being recorded (held here: the loop keeps only weak references to tasks)."""


def _evidence(session: pb.Session, result: pb.Result) -> mpb.ProjectScan:
    scan = result.project_scan
    if session.type not in CODING:
        return scan
    # A warning is a Finalize that committed and landed but could not do
    # something after (push to a remote): its tests had passed all the same.
    passed = result.status in (pb.RESULT_STATUS_OK, pb.RESULT_STATUS_WARNING)
    return with_session_evidence(scan, session.type, session.name, passed, session_id=session.id)


async def _record(
    upstream: Upstream,
    scope: pb.Scope,
    session: pb.Session,
    result: pb.Result,
) -> None:
    with log_context(session.id, ""):
        workspace_id = session.workspace.id
        if not workspace_id:
            log.info("a project scan came with a session of no workspace; not recorded")
            return
        try:
            recorded = _evidence(session, result)
            answer = await upstream.call(
                upstream.sessions.RecordProjectScan,
                spb.RecordProjectScanRequest(
                    scope=scope, workspace_id=workspace_id, scan=recorded, session_id=session.id
                ),
            )
        except SpecloomError as exc:
            log.warning("the project scan of workspace %s was not recorded: %s", workspace_id, exc)
        except Exception:
            # Whatever goes wrong here must not reach the stream's reporter.
            log.exception("the project scan of workspace %s was not recorded", workspace_id)
        else:
            log.debug(
                "project scan of %s recorded: %d components",
                workspace_id,
                answer.components_recorded,
            )


def record_later(
    upstream: Upstream,
    scope: pb.Scope,
    session: pb.Session,
    result: pb.Result,
) -> asyncio.Task[None]:
    """Record the scan ``session``'s ``result`` carries, in the background; errors are logged."""
    task = asyncio.create_task(_record(upstream, scope, session, result))
    _recording.add(task)
    task.add_done_callback(_recording.discard)
    return task
