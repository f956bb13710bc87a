"""Test evidence a finished session gives: its tests passed on the files it delivered.

A coding session's Finalize runs only after its RunTests judged the tests
passing; the scan that follows its landing did not run them again. So the
components the session delivered get evidence from the session itself: the
tests passed at the files as they are now (the digests this scan saw). A
component whose code or test file is absent gets none: there was nothing
to pass on.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from specloom.documents import CONTEXT
from specloom.projectmap._requirements import COMPONENT_CODING, CONTEXT_CODING
from specloom.projectmap._testrun import files_digest
from specloom.v1 import projectmap_pb2 as pb

CODING_SESSIONS = frozenset({COMPONENT_CODING, CONTEXT_CODING})
"""Session types whose finishing says their components' tests pass."""


def with_session_evidence(
    scan: pb.ProjectScan,
    session_type: str,
    subject: str,
    passed: bool,
    *,
    session_id: str = "",
) -> pb.ProjectScan:
    """A copy of ``scan`` whose components delivered by the session carry its test verdict.

    ``subject`` is the session's context (ContextCoding: every component of
    it) or component (ComponentCoding). ``passed`` false records nothing:
    a session that did not pass leaves what the scan saw. Evidence the scan
    itself gathered (it ran the tests) is kept: it is the fresher.
    """
    result = pb.ProjectScan()
    result.CopyFrom(scan)
    if not passed or session_type not in CODING_SESSIONS:
        return result
    folded = subject.casefold()
    ran_at = Timestamp()
    ran_at.GetCurrentTime()
    for facts in result.components:
        if facts.type == CONTEXT or facts.HasField("tests"):
            continue
        mine = (
            facts.context.casefold() == folded
            if session_type == CONTEXT_CODING
            else facts.module.casefold() == folded
        )
        if not mine or not facts.code.present or not facts.test.present:
            continue
        if facts.code.skeleton or facts.test.skeleton:
            continue
        facts.tests.CopyFrom(
            # No counts: the session says its tests passed, not how many there were.
            pb.TestEvidence(
                files_digest=files_digest(facts.code.digest, facts.test.digest),
                source=session_id or session_type,
                ran_at=ran_at,
            )
        )
    return result
