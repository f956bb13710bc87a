"""Whatever the executor reports, the design workflows settle and no judge crashes.

Hypothesis plays the executor: agents fail or warn, documents come back as
junk, half-valid or missing, rule files are malformed. Every session must end
complete or failed (never stuck running), a judge must never raise (the
engine would record "internal error while judging"), and a complete parent
means complete children.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from specloom.orchestration.simulate import Call, Responder, Simulation, report
from specloom.protoconv import JsonValue
from specloom.v1 import common_pb2 as pb
from specloom_context_design.workflows import REGISTRY
from tests.context_design.world import GOOD_REVIEW
from tests.documents.samples import (
    VALID_COMPONENT,
    VALID_CONTEXT,
    component,
    context_with_components,
)

DOCUMENTS = [
    VALID_CONTEXT,
    VALID_COMPONENT,
    context_with_components(component("Stock")),
    context_with_components(component("Inventory.Stock", "bar")),
    "# nothing\n",
    "",
    GOOD_REVIEW,
    "| type | schema\n```\n## Components\n",
]
JUNK = [b"\x00\x01\x02binary", b"\xff\xfe\xfd", b"x" * 600_000]
RULES = [
    "---\ncomponent_type: '*'\nsession_type: design\n---\nBe brief.\n",
    "---\ncomponent_type: schema\nsession_type: design\n",
    "no front matter",
]


def player(data: st.DataObject) -> Responder:
    def respond(call: Call) -> pb.Result:
        kind = call.command.WhichOneof("kind")
        # Mostly OK, so runs get deep enough to reach the children and the loops.
        status = data.draw(st.sampled_from(["ok"] * 8 + ["error", "warning"]), label="status")
        files: dict[str, str | bytes | None] = {}
        for path in call.command.collect_files:
            if path.endswith("*.md"):
                if data.draw(st.integers(0, 5), label="has rules") == 0:
                    files[path.replace("*", "r")] = data.draw(st.sampled_from(RULES))
                continue
            good: str = VALID_COMPONENT
            if path.endswith("inventory.md"):
                good = VALID_CONTEXT
            elif "/review/" in path:
                good = GOOD_REVIEW
            choices: list[str | bytes | None] = [*([good] * 6), *DOCUMENTS, *JUNK, None]
            files[path] = data.draw(st.sampled_from(choices), label=path)
        extra: dict[str, str] = {}
        if kind == "agent" and data.draw(st.booleans(), label="conversation"):
            extra["conversation_id"] = f"c{call.attempt}"
        return report(status, files=files, data=extra, error="" if status == "ok" else "boom")

    return respond


async def _play(
    session_type: str, params: Mapping[str, JsonValue], data: st.DataObject
) -> Simulation:
    sim = Simulation(REGISTRY, player(data))
    sim.start(session_type, params)
    await sim.run(max_steps=3000)
    return sim


def _check(sim: Simulation) -> None:
    statuses = {key: sim.status(key) for key in sim.session_keys()}
    assert set(statuses.values()) <= {"complete", "failed"}, statuses
    for key in sim.session_keys():
        for interaction in sim.history(key):
            assert "internal error while judging" not in interaction.result.error_message
    if statuses[""] == "complete":
        assert set(statuses.values()) == {"complete"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.data(), st.sampled_from(["ContextDesign", "ContextDesignReview", "ComponentDesignReview"])
)
def test_single_sessions_always_settle(data: st.DataObject, session_type: str) -> None:
    sim = asyncio.run(_play(session_type, {"context": "Inventory", "max_rounds": 2}, data))
    _check(sim)
    event(f"{session_type} {sim.status()}")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_fan_out_always_settles(data: st.DataObject) -> None:
    sim = asyncio.run(
        _play("ContextComponentsDesign", {"context": "Inventory", "max_rounds": 1}, data)
    )
    _check(sim)
    children = len(sim.session_keys()) - 1
    event(f"root {sim.status()}, {'with' if children else 'no'} children")
