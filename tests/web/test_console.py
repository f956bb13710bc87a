"""The console over HTTP against a real in-process ``specloom up``.

Sign-in, CSRF, the scope wall, live streams: with the gateway and every service real.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx

from specloom.client import status_name
from specloom.v1 import common_pb2 as pb
from specloom_web.auth import csrf_for
from tests.web.conftest import Console

PARAMS = {"context": "Inventory", "profile": "python"}


async def manual_session(console: Console) -> str:
    """A session no executor runs: it waits, active, for a person."""
    async with console.client() as client:
        started = await client.start_session("ContextDesign", PARAMS, mode="manual")
    return started.session.id


async def status_of(console: Console, session_id: str) -> str:
    async with console.client() as client:
        session = await client.get_session(session_id, pb.INTERACTION_VIEW_NONE)
    return status_name(session.status)


async def test_signing_in_sets_a_strict_http_only_cookie(console: Console) -> None:
    async with console.browser() as web:
        form = await web.get("/signin")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce is not None
        assert "HttpOnly" in form.headers["set-cookie"]
        bad = await web.post("/signin", data={"token": "slm_nope", "nonce": nonce[1]})
        assert bad.status_code == 401
        assert "does not accept that token" in bad.text
        form = await web.get("/signin")
        nonce = re.search(r'name="nonce" value="([^"]+)"', form.text)
        assert nonce is not None
        good = await web.post(
            "/signin", data={"token": console.token, "nonce": nonce[1], "next": "//evil.example"}
        )
        assert good.status_code == 303
        assert good.headers["location"] == "/sessions", "never sent to another site"
        cookie = next(v for v in good.headers.get_list("set-cookie") if "specloom_token=" in v)
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Secure" not in cookie, "plain HTTP on loopback: no Secure attribute"
        page = await web.get("/sessions")
        assert page.status_code == 200
        assert "alice · default" in page.text
        assert page.headers["server-timing"].startswith("app;dur=")
        assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_sign_in_without_the_forms_own_value_is_refused(console: Console) -> None:
    async with console.browser() as web:
        response = await web.post("/signin", data={"token": console.token, "nonce": "guess"})
    assert response.status_code == 403
    assert "specloom_token" not in response.headers.get("set-cookie", "")


async def test_pages_without_a_token_go_to_sign_in(console: Console) -> None:
    async with console.browser() as web:
        page = await web.get("/sessions?status=failed")
        assert page.status_code == 303
        assert page.headers["location"] == "/signin?next=/sessions%3Fstatus%3Dfailed"
        live = await web.get("/live/sessions")
        assert "event: signedout" in live.text
    async with console.browser("slm_revoked_or_made_up") as web:
        page = await web.get("/sessions")
        assert page.status_code == 303
        assert 'specloom_token=""' in page.headers["set-cookie"], "a bad cookie is cleared"


async def test_an_action_without_the_csrf_token_is_refused(console: Console) -> None:
    session_id = await manual_session(console)
    async with console.browser(console.token) as web:
        missing = await web.post(f"/sessions/{session_id}/cancel", data={"reason": "x"})
        assert missing.status_code == 403
        wrong = await web.post(
            f"/sessions/{session_id}/cancel", data={"csrf": csrf_for("another token")}
        )
        assert wrong.status_code == 403
        cross_site = await web.post(
            f"/sessions/{session_id}/cancel",
            data={"csrf": csrf_for(console.token)},
            headers={"Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
        assert await status_of(console, session_id) == "active"
        done = await web.post(
            f"/sessions/{session_id}/cancel",
            data={"csrf": csrf_for(console.token), "reason": "not needed"},
            headers={"Origin": console.url},
        )
        assert done.status_code == 303
    assert await status_of(console, session_id) == "cancelled"


async def test_another_projects_token_sees_nothing(console: Console) -> None:
    session_id = await manual_session(console)
    async with console.browser(console.other_token) as web:
        listing = await web.get("/sessions")
        assert listing.status_code == 200
        assert "No sessions yet" in listing.text
        assert session_id not in listing.text
        for path in (
            f"/sessions/{session_id}",
            f"/sessions/{session_id}/steps/1",
            f"/sessions/{session_id}/steps/1/detail",
            f"/sessions/{session_id}/steps/1/output.txt",
        ):
            assert (await web.get(path)).status_code == 404, path
        steer = await web.post(
            f"/sessions/{session_id}/cancel", data={"csrf": csrf_for(console.other_token)}
        )
        assert steer.status_code == 404
    assert await status_of(console, session_id) == "active"


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream."""
    name, data = "", []
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif not line and name:
            yield name, "\n".join(data)
            name, data = "", []


async def test_the_live_list_sends_a_new_session(console: Console) -> None:
    async with (
        console.browser(console.token) as web,
        web.stream("GET", "/live/sessions") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = events(response)
        first = await anext(stream)
        assert first[0] == "replace"
        assert "No sessions yet" in first[1]
        session_id = await manual_session(console)

        async def next_replace() -> str:
            async for name, data in stream:
                if name == "replace":
                    return data
            raise AssertionError("stream ended")

        update = await asyncio.wait_for(next_replace(), 10)
        assert f'data-session="{session_id}"' in update
        assert 'id="session-rows"' in update


async def test_the_live_session_page_sends_changes_and_ends(console: Console) -> None:
    session_id = await manual_session(console)
    async with console.client() as client:
        session = await client.get_session(session_id)
    async with (
        console.browser(console.token) as web,
        web.stream("GET", f"/live/sessions/{session_id}?v={session.version}") as response,
    ):
        stream = events(response)
        await asyncio.sleep(0.3)  # the watch is open: the page at this version sends nothing
        async with console.client() as client:
            await client.pause(session_id, "lunch")
        seen: list[tuple[str, str]] = []

        async def until_end() -> None:
            async for name, data in stream:
                seen.append((name, data))
                if name == "end":
                    return
                if name == "replace" and 'data-status="paused"' in data:
                    async with console.client() as client:
                        await client.cancel(session_id, "done")

        await asyncio.wait_for(until_end(), 15)
    headers = [data for name, data in seen if name == "replace" and "session-header" in data]
    assert any("lunch" in h for h in headers), "the pause and its reason arrived"
    assert any('data-status="cancelled"' in h for h in headers)
    assert seen[-1][0] == "end"


async def test_a_running_steps_output_streams_to_its_open_page(console: Console) -> None:
    import grpc

    from specloom.v1 import gateway_pb2 as gpb
    from specloom.v1.gateway_pb2_grpc import GatewayServiceStub

    async with console.client() as client:
        started = await client.start_session("ContextDesign", PARAMS, mode="agentic")
    session_id = started.session.id
    outbox: asyncio.Queue[gpb.ConnectRequest] = asyncio.Queue()
    outbox.put_nowait(
        gpb.ConnectRequest(
            register=gpb.Register(name="streamer", capabilities=["git"], max_parallel=1)
        )
    )

    async def requests() -> AsyncIterator[gpb.ConnectRequest]:
        while True:
            yield await outbox.get()

    async with grpc.aio.insecure_channel(console.host.address) as channel:
        # An executor speaking Connect: it takes Initialize and streams output
        # without reporting, so the step stays running while the page reads it.
        call = GatewayServiceStub(channel).Connect(
            requests(), metadata=(("authorization", f"Bearer {console.token}"),)
        )
        assignment = None
        async for message in call:
            if message.WhichOneof("message") == "assignment":
                assignment = message.assignment
                break
        assert assignment is not None

        def chunk(text: str) -> gpb.ConnectRequest:
            return gpb.ConnectRequest(
                output=gpb.CommandOutput(
                    session_id=session_id,
                    interaction_id=assignment.interaction.id,
                    lease_epoch=assignment.interaction.lease.epoch,
                    stream=pb.OUTPUT_STREAM_STDOUT,
                    data=text.encode(),
                )
            )

        outbox.put_nowait(chunk("stored before the page opened\n"))
        await asyncio.sleep(0.6)  # flushed to Sessions
        async with console.browser(console.token) as web:
            page = await web.get(f"/sessions/{session_id}")
            assert "stored before the page opened" in page.text, "a running step opens with output"
            async with web.stream("GET", f"/live/sessions/{session_id}") as response:
                stream = events(response)
                outbox.put_nowait(chunk("streamed while open\n"))
                texts: list[str] = []

                async def until_streamed() -> None:
                    async for name, data in stream:
                        if name == "output":
                            texts.append(data)
                            if "streamed while open" in data:
                                return

                await asyncio.wait_for(until_streamed(), 10)
        call.cancel()
    assert any(assignment.interaction.id in text for text in texts)
    async with console.client() as client:
        await client.cancel(session_id, "done")


async def test_a_console_of_its_own_says_when_the_gateway_is_unreachable() -> None:
    # The Kubernetes shape: `specloom serve web`, configured with a gateway address.
    import socket

    from specloom.host import HostSettings, discover
    from specloom.process import start_host

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens once closed
    host = await start_host(
        [discover()["web"]],
        HostSettings(listen="127.0.0.1:0"),
        {"web_listen": "127.0.0.1:0", "web_gateway_address": dead, "web_call_timeout_seconds": 3},
    )
    try:
        async with httpx.AsyncClient(
            base_url=host.endpoints["web"], cookies={"specloom_token": "slm_x"}, timeout=15
        ) as web:
            assert (await web.get("/healthz")).text == "ok"
            page = await web.get("/sessions")
        assert page.status_code == 503
        assert "The gateway is unreachable" in page.text
    finally:
        await host.stop(1)


async def test_a_change_right_after_the_page_loaded_still_reaches_it(console: Console) -> None:
    # The page was rendered at version V; a change lands while its stream
    # starts. The first update then carries V+1 and must not be held back as
    # "what the page already shows".
    for _ in range(3):
        session_id = await manual_session(console)
        async with console.client() as client:
            session = await client.get_session(session_id)
        async with (
            console.browser(console.token) as web,
            web.stream("GET", f"/live/sessions/{session_id}?v={session.version}") as response,
        ):
            stream = events(response)
            async with console.client() as client:
                await client.pause(session_id, "right away")

            async def paused_header(stream: AsyncIterator[tuple[str, str]]) -> None:
                async for name, data in stream:
                    if name == "replace" and 'data-status="paused"' in data:
                        return

            await asyncio.wait_for(paused_header(stream), 10)
