"""What pages show, from the API's messages: tests, documents, diagrams, rounds, workspaces."""

from __future__ import annotations

import datetime as dt

import pytest

from specloom.protoconv import dict_to_struct, to_timestamp
from specloom.v1 import common_pb2 as pb
from specloom_web import render
from specloom_web.diagram import edges_of
from specloom_web.diagram import render as diagram
from specloom_web.documents import documents_of, render_markdown
from specloom_web.executors import section_html, views_of
from specloom_web.listing import ListQuery, rows_html
from specloom_web.present import header, headline, progress_of, result_view, steps_of
from specloom_web.testruns import run_table
from specloom_web.usage import session_usage, step_usage

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)

JUNIT = b"""<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.stock_test" name="test_add" time="0.001"/>
<testcase classname="tests.stock_test" name="test_remove" time="0.002">
  <failure message="assert 1 == 2">long traceback</failure></testcase>
<testcase classname="tests.stock_test" name="test_later" time="0">
  <skipped message="not yet"/></testcase>
</testsuite></testsuites>"""


def run_tests_interaction(files: list[pb.FileContent]) -> pb.Interaction:
    interaction = pb.Interaction(seq=3, step="RunTests", status=pb.INTERACTION_STATUS_COMPLETED)
    interaction.command.shell.argv.extend(["python", "-m", "pytest"])
    interaction.result.status = pb.RESULT_STATUS_ERROR
    interaction.result.files.extend(files)
    failure = {
        "title": "tests.stock_test::test_remove",
        "message": "AssertionError: assert 1 == 2",
        "file": "tests/stock_test.py",
        "line": 12,
        "kind": "failure",
    }
    facts = {"passed": 1, "failed": 1, "skipped": 1, "failures": [failure], "outcome": "reported"}
    dict_to_struct({"judgement": {"facts": {"test_run": facts}}}, interaction.result.data)
    return interaction


def test_a_junit_report_lists_every_test_with_the_judges_failure_message_and_place() -> None:
    report = pb.FileContent(path=".specloom/reports/run-1.xml", exists=True, content=JUNIT)
    table = run_table(run_tests_interaction([report]))
    assert table is not None
    assert table.listed_all
    assert [(c.name, c.outcome) for c in table.cases] == [
        ("tests.stock_test::test_remove", "failed"),
        ("tests.stock_test::test_add", "passed"),
        ("tests.stock_test::test_later", "skipped"),
    ]
    failed = table.cases[0]
    assert failed.message == "AssertionError: assert 1 == 2"
    assert failed.location == "tests/stock_test.py:12"


def test_without_a_report_the_judges_failures_are_the_table() -> None:
    broken = pb.FileContent(path="run.xml", exists=True, content=b"<not xml")
    table = run_table(run_tests_interaction([broken]))
    assert table is not None
    assert not table.listed_all
    assert [(c.name, c.location) for c in table.cases] == [
        ("tests.stock_test::test_remove", "tests/stock_test.py:12")
    ]
    assert run_table(pb.Interaction(step="GenerateImplementation")) is None


def test_markdown_never_carries_html_or_script_links() -> None:
    html = str(
        render_markdown(
            "# Title\n\n<script>alert(1)</script>\n\n[click](javascript:alert(1)) "
            "<img src=x onerror=alert(1)>\n\n| a | b |\n|---|---|\n| 1 | 2 |"
        )
    )
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert 'href="javascript:' not in html
    assert "<img" not in html
    assert "<table>" in html
    assert "<h1>Title</h1>" in html


def test_a_design_step_shows_its_document_and_the_validators_problems() -> None:
    interaction = pb.Interaction(
        seq=3, step="ValidateDesign", status=pb.INTERACTION_STATUS_COMPLETED
    )
    interaction.command.noop.SetInParent()
    interaction.result.status = pb.RESULT_STATUS_ERROR
    interaction.result.error_message = (
        "The design document docs/design/inventory.md is not valid (2 problems):\n"
        "- Missing required sections: test assertions\n- Component stock has no description"
    )
    interaction.result.files.extend(
        [
            pb.FileContent(path=".specloom/rules/a.md", exists=True, content=b"# rule"),
            pb.FileContent(path="docs/design/inventory.md", exists=True, content=b"# Inventory"),
        ]
    )
    shown = documents_of(interaction)
    assert shown is not None
    assert not shown.valid
    assert [d.path for d in shown.documents] == ["docs/design/inventory.md"]
    assert shown.problems == (
        "Missing required sections: test assertions",
        "Component stock has no description",
    )


def test_the_diagram_draws_every_step_and_each_loop() -> None:
    workflow = pb.WorkflowDescription(type="ComponentCoding", first_step="RunTests")
    for name, ok, error in (
        ("RunTests", "Finalize", "FixTestFailures"),
        ("FixTestFailures", "RunTests", "FixTestFailures"),
        ("Finalize", "done", "Finalize"),
    ):
        workflow.steps.append(
            pb.StepDescription(
                name=name, kind="shell", transition=pb.StepTransition(on_ok=ok, on_error=error)
            )
        )
    svg = str(diagram(workflow))
    for name in ("RunTests", "FixTestFailures", "Finalize", "done"):
        assert f">{name}</text>" in svg
    kinds = {(e.source, e.target, e.kind) for e in edges_of(workflow)}
    assert ("RunTests", "FixTestFailures", "error") in kinds
    assert ("FixTestFailures", "RunTests", "ok") in kinds
    assert 'class="edge error"' in svg
    assert 'class="edge ok skip"' in svg
    evil = pb.WorkflowDescription(type="<script>", steps=[pb.StepDescription(name="<b>x</b>")])
    assert "<script>" not in str(diagram(evil))
    assert "<b>" not in str(diagram(evil))


def test_rounds_count_loop_runs_and_restart_after_a_retry() -> None:
    def step(seq: int, name: str) -> pb.Interaction:
        interaction = pb.Interaction(seq=seq, step=name, status=pb.INTERACTION_STATUS_COMPLETED)
        interaction.command.shell.SetInParent()
        interaction.result.status = pb.RESULT_STATUS_OK
        return interaction

    control = pb.Interaction(seq=4, step="control", status=pb.INTERACTION_STATUS_COMPLETED)
    control.command.control.action = pb.CONTROL_ACTION_RETRY_FROM
    control.command.control.step = "RunTests"
    rows = steps_of(
        [step(1, "RunTests"), step(2, "Fix"), step(3, "RunTests"), control, step(5, "RunTests")],
        NOW,
    )
    assert [(r.step, r.round) for r in rows] == [
        ("RunTests", 0),
        ("Fix", 0),
        ("RunTests", 2),
        ("Retry", 0),
        ("RunTests", 0),
    ]
    assert rows[3].summary == "retry from RunTests"


def test_progress_says_where_a_session_is() -> None:
    session = pb.Session(status=pb.SESSION_STATUS_ACTIVE)
    dict_to_struct({"next_step": "RunTests", "rounds": {"RunTests": 1}}, session.progress)
    assert progress_of(session) == "at RunTests · round 2"
    session.status = pb.SESSION_STATUS_COMPLETE
    assert progress_of(session) == "done"


API = pb.WorkspaceRef(id="ws-0123456789ab", name="api", remote="git@example.com:shop/api")
WAITING = "an executor of workspace api (ws-0123456789ab)"


def test_a_session_shows_its_workspace_and_what_it_waits_for_instead_of_running() -> None:
    session = pb.Session(
        id="s-1", type="ContextDesign", status=pb.SESSION_STATUS_ACTIVE, workspace=API
    )
    session.waiting_for = WAITING
    running = pb.Interaction(seq=1, step="Initialize", status=pb.INTERACTION_STATUS_PENDING)
    running.command.git.SetInParent()
    session.interactions.append(running)

    head = headline(session)
    assert (head.workspace, head.workspace_id, head.state) == (
        "api (ws-0123456789ab)",
        "ws-0123456789ab",
        "waiting",
    )
    rows = rows_html([session], ListQuery())
    assert 'href="/sessions?workspace=ws-0123456789ab&amp;show=all"' in rows
    assert f"waiting for {WAITING}" in rows
    assert "status-waiting" in rows
    top = render.fragment("header", header(session, NOW))
    assert f"waiting for {WAITING}" in top
    assert 'data-status="active" data-waiting' in top
    (step,) = steps_of(session.interactions, NOW, session.waiting_for)
    row = render.fragment("step_row", session.id, step)
    assert ">waiting<" in row
    assert ">running<" not in row

    # Claimed: running again; and a session of no workspace says so.
    session.waiting_for = ""
    session.ClearField("workspace")
    assert headline(session).state == "active"
    (step,) = steps_of(session.interactions, NOW, session.waiting_for)
    assert ">running<" in render.fragment("step_row", session.id, step)
    assert ">none<" in rows_html([session], ListQuery())


def test_the_executors_section_shows_each_agent_and_links_what_it_runs() -> None:
    laptop = pb.ExecutorPresence(
        connection_id="c-1",
        executor_id="e-1",
        scope=pb.Scope(account_id="a", project_id="p", user_id="alice"),
        name="alice-laptop <b>",
        workspaces=[API, pb.WorkspaceRef(id="ws-ba9876543210", name="web")],
        serve=pb.EXECUTOR_SERVE_PROJECT,
        capabilities=["shell", "git", "agent:scripted"],
        slots=4,
        running=2,
        labels={"os": "linux"},
    )
    since = dt.datetime(2026, 12, 1, 10, 4, 5, tzinfo=dt.UTC)
    laptop.running_commands.extend(
        [
            pb.RunningCommand(
                session_id="s-1", interaction_id="i-1", step="RunTests", since=to_timestamp(since)
            ),
            pb.RunningCommand(session_id="s-2", interaction_id="i-2", step="Initialize"),
        ]
    )
    html = section_html([laptop], {"s-1": ("ComponentCoding", "inventory.stock")})
    assert "alice-laptop &lt;b&gt;" in html
    assert "2 of 4 slots busy" in html
    assert "every user&#39;s sessions in the project" in html
    assert 'href="/sessions?workspace=ws-0123456789ab&amp;show=all"' in html
    assert 'api (ws-0123456789ab)</a> <span class="muted">(default)</span>' in html
    assert "web (ws-ba9876543210)" in html
    assert '<a href="/sessions/s-1">ComponentCoding · inventory.stock</a>' in html
    assert '<a href="/sessions/s-2">s-2</a>' in html, "a session it could not name: its id"
    assert "2026-12-01 10:04:05" in html
    assert "shell, git, agent:scripted" in html

    (view,) = views_of([pb.ExecutorPresence(scope=pb.Scope(user_id="bob"), slots=1)])
    assert view.serves == "bob's own sessions"
    assert view.commands == ()
    assert "none: it runs only sessions of no workspace" in section_html(
        [pb.ExecutorPresence(scope=pb.Scope(user_id="bob"), slots=1)], {}
    )
    assert "No executor is connected" in section_html([], {})


def test_usage_per_step_per_session_and_with_children() -> None:
    step = pb.Interaction(step="GenerateImplementation", status=pb.INTERACTION_STATUS_COMPLETED)
    step.result.status = pb.RESULT_STATUS_ERROR
    step.result.failure_class = pb.FAILURE_CLASS_PERMANENT
    step.result.failure_hint = "run `claude /login`"
    step.result.usage.CopyFrom(
        pb.Usage(
            model="claude-x",
            input_tokens=1200,
            output_tokens=340,
            cost_usd=0.0123,
            turns=3,
            agent_steps=1,
        )
    )
    shown = step_usage(step)
    assert shown is not None
    assert ("tokens", "1,200 in · 340 out") in shown.items
    assert ("cost (est.)", "$0.0123") in shown.items
    result = result_view(step)
    assert result is not None
    assert result.failure_class.startswith("permanent")
    assert result.failure_hint == "run `claude /login`"

    session = pb.Session(id="s")
    session.usage.CopyFrom(pb.Usage(agent_steps=2, input_tokens=10, output_tokens=5))
    session.total_usage.CopyFrom(
        pb.Usage(agent_steps=5, input_tokens=40, output_tokens=9, unpriced_steps=1)
    )
    own, total = session_usage(session)
    assert own is not None
    assert ("agent steps", "2") in own.items
    assert total is not None
    assert ("cost (est.)", "$0.0000 (+1 unpriced step)") in total.items
    session.total_usage.CopyFrom(session.usage)
    assert session_usage(session)[1] is None, "no children's usage: shown once"
    assert session_usage(pb.Session(id="none")) == (None, None)


def test_list_filters_are_checked() -> None:
    assert ListQuery.parse({"status": "failed", "type": "ContextDesign"}).filtered
    with pytest.raises(Exception, match="status 'nope' is not one of"):
        ListQuery.parse({"status": "nope"})
    query = ListQuery.parse({"status": "active", "page": "abc"})
    assert query.url(page="") == "/sessions?status=active"
    by_workspace = ListQuery.parse({"workspace": "ws-0123456789ab"})
    assert by_workspace.filtered
    assert by_workspace.url() == "/sessions?workspace=ws-0123456789ab"
    with pytest.raises(Exception, match="workspace 'api' is not a workspace id"):
        ListQuery.parse({"workspace": "api"})


async def test_live_streams_are_capped_and_all_end_at_shutdown() -> None:
    from specloom_web.sse import StreamLimit, message

    limit = StreamLimit(2)
    assert limit.acquire()
    assert limit.acquire()
    assert not limit.acquire(), "past the cap a browser is told to retry"
    limit.release()
    ended: list[str] = []
    unregister = limit.on_close(lambda: ended.append("a"))
    limit.on_close(lambda: ended.append("b"))
    unregister()
    limit.close()
    assert ended == ["b"]
    assert not limit.acquire(), "no new stream once shutting down"
    assert message("replace", "<p>a</p>\n<p>b</p>") == (
        "event: replace\ndata: <p>a</p>\ndata: <p>b</p>\n\n"
    )
