"""``make demo``'s web console shows the demo's sessions (the demo's own run, in process)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from rich.console import Console

from specloom.demo.run import DemoOutcome, run_demo, summary

pytestmark = pytest.mark.slow


async def test_the_demo_serves_a_console_showing_its_sessions(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    async def look(outcome: DemoOutcome) -> None:
        # While the demo still runs, as `make demo` leaves it for a person to look.
        async with httpx.AsyncClient(
            base_url=outcome.console_url, cookies={"specloom_token": outcome.token}
        ) as web:
            listing = await web.get("/sessions")
            seen["list"] = listing.text
            _, session_id, _ = outcome.sessions[-1]
            seen["session"] = (await web.get(f"/sessions/{session_id}")).text

    with (tmp_path / "demo.log").open("w") as log:
        outcome = await run_demo(
            tmp_path / "demo", console=Console(file=log), web_listen="127.0.0.1:0", linger=look
        )
    assert outcome.ok
    assert outcome.console_url.startswith("http://127.0.0.1:")
    assert any(line.startswith("console:  http://") for line in summary(outcome, "scripted"))
    for session_type, session_id, _ in outcome.sessions:
        assert f'data-session="{session_id}"' in seen["list"], session_type
    assert seen["list"].count('data-status="complete"') == 3
    assert "ComponentCoding" in seen["session"], "the children tree of ContextCoding"
