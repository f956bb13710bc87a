"""The executors page and workspaces over HTTP, with real agents on real repositories.

A real in-process ``specloom up`` (gateway, Sessions, orchestrators, console),
real executor agents (``AgentLoop``) serving git repositories, and the toy
``Build`` workflow, whose ``make compile`` waits while a ``block`` file
exists: so a command stays running, or a session stays waiting, while the
pages are read.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from specloom.workspaces import identify, label
from tests.gateway.conftest import MAKEFILE, make_repo
from tests.web.conftest import AgentsConsole
from tests.web.test_console import events

BLOCKING = MAKEFILE.replace(
    "compile:\n\t@echo compiled\n",
    "compile:\n\t@echo compiling; while [ -f block ]; do sleep 0.05; done; echo compiled\n",
)


def blocking_repo(path: Path) -> Path:
    repo = make_repo(path, {"Makefile": BLOCKING})
    (repo / "block").write_text("")
    return repo


async def next_replace(
    stream: AsyncIterator[tuple[str, str]], check: Callable[[str], bool], timeout: float = 15
) -> str:
    """The first ``replace`` event whose HTML passes ``check``."""

    async def wait() -> str:
        async for name, data in stream:
            if name == "replace" and check(data):
                return data
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(wait(), timeout)


async def test_the_executors_page_shows_each_agent_and_what_it_runs_live(
    agents_console: AgentsConsole, tmp_path: Path
) -> None:
    console = agents_console
    repo = blocking_repo(tmp_path / "shop")
    workspace = identify(repo)
    async with console.browser(console.token) as web:
        idle = await web.get("/executors")
        assert idle.status_code == 200
        assert "No executor is connected" in idle.text
        assert 'data-live="/live/executors"' in idle.text

        async with web.stream("GET", "/live/executors") as response:
            stream = events(response)
            await console.agent(repo, "laptop")
            joined = await next_replace(stream, lambda html: "laptop" in html)
            assert "idle: no command running" in joined
            assert f'href="/sessions?workspace={workspace.id}&amp;show=all"' in joined
            assert f'{label(workspace)}</a> <span class="muted">(default)</span>' in joined
            assert "alice&#39;s own sessions" in joined

            async with console.client() as client:
                started = await client.start_session("Build", {}, mode="agentic")
            session_id = started.session.id
            # The agent holds Compile: the page names it, and links its session.
            running = await next_replace(stream, lambda html: "running-command" in html)
            row = re.search(r'<tr class="running-command"[^>]*>.*?</tr>', running, re.S)
            assert row is not None
            assert f'data-session="{session_id}"' in row[0]
            assert f'<a href="/sessions/{session_id}">Build · Build</a>' in row[0]
            assert "<td>Compile</td>" in row[0]
            assert "1 of 2 slots busy" in running

            page = await web.get("/executors")
            assert f'<a href="/sessions/{session_id}">' in page.text, "the page itself, too"
            assert (await web.get(f"/sessions/{session_id}")).status_code == 200

            (repo / "block").unlink()
            done = await next_replace(stream, lambda html: "running-command" not in html)
            assert "laptop" in done
            assert "idle: no command running" in done

    # The scope wall: another project's token sees no executor, live or not.
    async with console.browser(console.other_token) as web:
        page = await web.get("/executors")
        assert page.status_code == 200
        assert "No executor is connected" in page.text
        assert "laptop" not in page.text
        async with web.stream("GET", "/live/executors") as response:
            first = await next_replace(events(response), lambda html: True)
        assert "No executor is connected" in first
        assert "laptop" not in first


async def test_a_session_waiting_for_its_workspace_says_so_until_an_agent_takes_it(
    agents_console: AgentsConsole, tmp_path: Path
) -> None:
    console = agents_console
    repo = blocking_repo(tmp_path / "shop")
    other = make_repo(tmp_path / "web")
    workspace = identify(repo)
    waiting_for = f"waiting for an executor of workspace {label(workspace)}"
    async with console.client() as client:
        started = await client.start_session("Build", {}, mode="agentic", workspace=workspace)
        elsewhere = await client.start_session(
            "Build", {}, mode="manual", workspace=identify(other)
        )
        session = await client.get_session(started.session.id)
    session_id = session.id
    assert session.waiting_for, "no executor serves the workspace yet"

    async with console.browser(console.token) as web:
        listing = await web.get("/sessions")
        row = re.search(rf'<tr data-session="{session_id}".*?</tr>', listing.text, re.S)
        assert row is not None
        assert "data-waiting" in row[0]
        assert "status-waiting" in row[0]
        assert waiting_for in row[0]
        assert f'href="/sessions?workspace={workspace.id}&amp;show=all"' in row[0]

        page = await web.get(f"/sessions/{session_id}")
        header = re.search(r'<section id="session-header".*?</section>', page.text, re.S)
        assert header is not None
        assert waiting_for in header[0]
        assert ">waiting<" in page.text, "the pending step says waiting, not running"
        live = re.search(r'data-live="([^"]+)"', page.text)
        assert live is not None
        assert live[1].endswith("&amp;w=1")

        # By workspace: only its sessions; a malformed id is refused by name.
        mine = await web.get(f"/sessions?workspace={workspace.id}")
        assert session_id in mine.text
        assert elsewhere.session.id not in mine.text
        bad = await web.get("/sessions?workspace=shop")
        assert bad.status_code == 400
        assert "is not a workspace id" in bad.text

        # An agent of the workspace connects and takes the step (which then
        # runs on, blocked): the open list and page stop saying waiting,
        # although taking a step changes nothing recorded in the session.
        async with (
            web.stream(
                "GET", f"/live/sessions/{session_id}?v={session.version}&w=1"
            ) as page_events,
            web.stream("GET", "/live/sessions") as list_events,
        ):
            on_page, on_list = events(page_events), events(list_events)
            first = await next_replace(on_list, lambda html: session_id in html)
            assert waiting_for in first
            await console.agent(repo, "laptop")
            taken = await next_replace(on_page, lambda html: 'id="session-header"' in html)
            assert "data-waiting" not in taken
            assert waiting_for not in taken
            assert 'data-status="active"' in taken
            listed = await next_replace(on_list, lambda html: waiting_for not in html)
            assert f'data-session="{session_id}" data-status="active">' in listed
        async with console.client() as client:
            head = await client.get_session(session_id)
        assert head.version == session.version, "nothing was recorded in the session meanwhile"
        (repo / "block").unlink()
