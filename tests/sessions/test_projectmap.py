"""The project map's facts in Sessions: RecordProjectScan and FetchProjectFacts."""

from __future__ import annotations

import asyncio

import grpc

from specloom.projectmap import files_digest
from specloom.protoconv import to_timestamp, utcnow
from specloom.v1 import common_pb2 as pb
from specloom.v1 import projectmap_pb2 as mpb
from specloom.v1 import sessions_pb2 as spb
from tests.fixtures.sessions_server import SessionsUnderTest
from tests.sessions.helpers import code_of, failure, ok, pending, scope, step

API = pb.WorkspaceRef(id="ws-0123456789ab", name="api")
WEB = pb.WorkspaceRef(id="ws-ba9876543210", name="web")


def _file(path: str, digest: str = "") -> mpb.FileFact:
    return mpb.FileFact(path=path, present=bool(digest), digest=digest)


def _component(module: str, *, code: str = "", test: str = "") -> mpb.ComponentFacts:
    context, _, name = module.rpartition(".")
    return mpb.ComponentFacts(
        module=module,
        type="module",
        context=context,
        design=_file(f"docs/design/{context}/{name}.md", "d" * 64),
        test=_file(f"tests/{context}/{name}_test.py", test),
        code=_file(f"src/{context}/{name}.py", code),
        description=f"The {name} part.",
    )


def _scan(*components: mpb.ComponentFacts, revision: str = "r1") -> mpb.ProjectScan:
    scan = mpb.ProjectScan(
        profile="python",
        branch="specloom/main",
        revision=revision,
        files_seen=10,
        files_read=3,
        duration_ms=12,
        scanned_at=to_timestamp(utcnow()),
    )
    context = mpb.ComponentFacts(
        module="ledger", type="context", design=_file("docs/design/ledger.md", "c" * 64)
    )
    scan.components.append(context)
    scan.components.extend(components)
    return scan


async def _record(
    service: SessionsUnderTest,
    where: pb.Scope,
    scan: mpb.ProjectScan,
    workspace: pb.WorkspaceRef = API,
    session_id: str = "",
) -> int:
    response = await service.stub.RecordProjectScan(
        spb.RecordProjectScanRequest(
            scope=where, workspace_id=workspace.id, scan=scan, session_id=session_id
        ),
        metadata=service.metadata,
    )
    return response.components_recorded


async def _facts(
    service: SessionsUnderTest, where: pb.Scope, workspace: pb.WorkspaceRef = API
) -> spb.FetchProjectFactsResponse:
    return await service.stub.FetchProjectFacts(
        spb.FetchProjectFactsRequest(scope=where, workspace_id=workspace.id),
        metadata=service.metadata,
    )


async def _session(
    service: SessionsUnderTest,
    where: pb.Scope,
    name: str,
    *,
    session_type: str = "ComponentCoding",
    workspace: pb.WorkspaceRef = API,
    module: str = "",
) -> pb.Session:
    response = await service.stub.CreateSession(
        spb.CreateSessionRequest(
            scope=where,
            type=session_type,
            execution_mode=pb.EXECUTION_MODE_AGENTIC,
            name=name,
            component=pb.Component(name=name, module_name=module) if module else None,
            definition_version=1,
            first=pending("Initialize"),
            workspace=workspace,
        ),
        metadata=service.metadata,
    )
    return response.session


async def test_a_scan_is_recorded_and_read_back_in_its_order(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    never = await _facts(sessions_service, where)
    assert not never.scanned
    assert not never.components

    scan = _scan(_component("ledger.accounts"), _component("ledger.entries"))
    assert await _record(sessions_service, where, scan) == 3
    facts = await _facts(sessions_service, where)
    assert facts.scanned
    assert facts.last_scan.revision == "r1"
    assert facts.last_scan.profile == "python"
    assert facts.last_scan.files_read == 3
    assert not facts.last_scan.components  # they come as `components`
    assert [c.facts.module for c in facts.components] == [
        "ledger",
        "ledger.accounts",
        "ledger.entries",
    ]
    assert facts.components[1].facts == scan.components[1]
    assert facts.components[1].observed_at == scan.scanned_at

    # The next scan replaces the facts whole: what it no longer finds is gone.
    again = _scan(_component("ledger.entries"), _component("ledger.audit"), revision="r2")
    assert await _record(sessions_service, where, again) == 3
    facts = await _facts(sessions_service, where)
    assert facts.last_scan.revision == "r2"
    assert [c.facts.module for c in facts.components] == [
        "ledger",
        "ledger.entries",
        "ledger.audit",
    ]

    # Another workspace of the project, and the same workspace id in another
    # project, are maps of their own.
    assert not (await _facts(sessions_service, where, WEB)).scanned
    assert not (await _facts(sessions_service, scope())).scanned


async def test_test_evidence_survives_a_scan_without_tests_while_the_files_are_the_same(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    coded = _component("ledger.accounts", code="a" * 64, test="b" * 64)
    coded.tests.CopyFrom(
        mpb.TestEvidence(
            passed=4,
            files_digest=files_digest(coded.code.digest, coded.test.digest),
            source="sess-1",
        )
    )
    await _record(sessions_service, where, _scan(coded), session_id="sess-1")

    plain = _component("ledger.accounts", code="a" * 64, test="b" * 64)
    await _record(sessions_service, where, _scan(plain))
    kept = (await _facts(sessions_service, where)).components[1].facts
    assert kept.tests.passed == 4
    assert kept.tests.source == "sess-1"

    # The code changed: the old run says nothing about it, so it is dropped.
    changed = _component("ledger.accounts", code="e" * 64, test="b" * 64)
    await _record(sessions_service, where, _scan(changed))
    assert not (await _facts(sessions_service, where)).components[1].facts.HasField("tests")

    # A scan that ran the tests says so itself, failing or not.
    ran = _component("ledger.accounts", code="e" * 64, test="b" * 64)
    ran.tests.CopyFrom(mpb.TestEvidence(failed=1, failures=["t: boom"], source="scan"))
    await _record(sessions_service, where, _scan(ran))
    assert (await _facts(sessions_service, where)).components[1].facts.tests.failed == 1


async def test_touches_are_the_workspaces_sessions_on_each_subject_newest_first(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    await _record(sessions_service, where, _scan(_component("ledger.accounts")))
    context_design = await _session(sessions_service, where, "Ledger", session_type="ContextDesign")
    await step(
        sessions_service, where, context_design, ok(), finish=(pb.SESSION_STATUS_COMPLETE, "")
    )
    made = [await _session(sessions_service, where, "ledger.accounts") for _ in range(11)]
    # A child's name is the component's short one; its component names the module.
    made.append(await _session(sessions_service, where, "accounts", module="ledger.accounts"))
    await _session(sessions_service, where, "ledger.accounts", workspace=WEB)
    await _session(sessions_service, scope(), "ledger.accounts")
    paused = await _session(sessions_service, where, "ledger.other")
    await step(sessions_service, where, paused, ok(), finish=(pb.SESSION_STATUS_FAILED, "x"))

    facts = await _facts(sessions_service, where)
    context, accounts = facts.components
    # The context's session names it as its params did ("Ledger").
    assert [t.session_id for t in context.touched_by] == [context_design.id]
    assert context.touched_by[0].status == "COMPLETE"
    assert context.touched_by[0].type == "ContextDesign"
    # At most ten, newest first, only this workspace's.
    assert [t.session_id for t in accounts.touched_by] == [s.id for s in reversed(made)][:10]
    assert {t.status for t in accounts.touched_by} == {"ACTIVE"}
    assert {t.subject for t in accounts.touched_by} == {"ledger.accounts"}
    # Unfinished: the twelve active ones (any subject); not the complete or failed.
    assert {t.session_id for t in facts.unfinished} == {s.id for s in made}


async def test_concurrent_scans_of_one_workspace_all_land(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    scans = [
        _scan(*(_component(f"ledger.c{i}_{n}") for n in range(20)), revision=f"r{i}")
        for i in range(6)
    ]
    counts = await asyncio.gather(*(_record(sessions_service, where, s) for s in scans))
    assert counts == [21] * 6
    facts = await _facts(sessions_service, where)
    # One of them, whole: never a mix.
    revision = facts.last_scan.revision
    index = int(revision[1:])
    assert [c.facts.module for c in facts.components] == [c.module for c in scans[index].components]


async def test_bad_scans_are_refused_naming_the_problem(
    sessions_service: SessionsUnderTest,
) -> None:
    where = scope()
    stub, md = sessions_service.stub, sessions_service.metadata
    invalid = grpc.StatusCode.INVALID_ARGUMENT

    async def refused(request: spb.RecordProjectScanRequest) -> str:
        error = await failure(stub.RecordProjectScan(request, metadata=md))
        assert error.code() == invalid, error.details()
        return error.details() or ""

    good = _scan(_component("ledger.accounts"))
    message = await refused(
        spb.RecordProjectScanRequest(scope=where, workspace_id="api", scan=good)
    )
    assert "workspace_id" in message
    message = await refused(spb.RecordProjectScanRequest(scope=where, workspace_id=API.id))
    assert "scan is required" in message
    twice = _scan(_component("ledger.accounts"), _component("ledger.accounts"))
    message = await refused(
        spb.RecordProjectScanRequest(scope=where, workspace_id=API.id, scan=twice)
    )
    assert "appears twice" in message
    nameless = _scan(mpb.ComponentFacts(type="module"))
    message = await refused(
        spb.RecordProjectScanRequest(scope=where, workspace_id=API.id, scan=nameless)
    )
    assert "components[1].module is required" in message
    no_profile = _scan()
    no_profile.profile = ""
    message = await refused(
        spb.RecordProjectScanRequest(scope=where, workspace_id=API.id, scan=no_profile)
    )
    assert "scan.profile" in message
    huge = _scan(*(_component(f"ledger.c{n}") for n in range(10_001)))
    message = await refused(
        spb.RecordProjectScanRequest(scope=where, workspace_id=API.id, scan=huge)
    )
    assert "at most 10000" in message
    assert (
        await code_of(
            stub.FetchProjectFacts(spb.FetchProjectFactsRequest(scope=where), metadata=md)
        )
        == invalid
    )
    # Nothing was written by any of them.
    assert not (await _facts(sessions_service, where)).scanned
