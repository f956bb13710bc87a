"""Engine mechanics, driven through the in-memory simulator with a toy registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from specloom.errors import FailedPrecondition, InvalidArgument
from specloom.orchestration.simulate import Call, Script, Simulation, assert_golden, report
from specloom.v1 import common_pb2 as pb
from tests.orchestration.toy import REGISTRY

GOLDENS = Path(__file__).parent / "goldens"


def failing(fp: str) -> pb.Result:
    return report("error", data={"fingerprint": fp}, error=f"test failed ({fp})")


async def test_build_fail_fix_pass_golden() -> None:
    sim = Simulation(REGISTRY, Script({("", "Test"): [failing("a"), report("ok")]}))
    sim.start("Build", {})
    await sim.run()
    assert sim.status() == "complete"
    assert [i.step for i in sim.history()] == ["Compile", "Test", "Fix", "Test"]
    assert_golden(sim.trace, GOLDENS / "build_fail_fix_pass.json")


async def test_cap_fails_and_resume_continues_with_a_fresh_count() -> None:
    sim = Simulation(REGISTRY, Script({("", "Test"): [failing(f"f{n}") for n in range(10)]}))
    sim.start("Build", {"max_rounds": 2})
    await sim.run()
    assert sim.status() == "failed"
    assert "after 2 rounds" in sim.session().status_reason
    assert [i.step for i in sim.history()].count("Fix") == 2
    await sim.steer("", pb.CONTROL_ACTION_RESUME, reason="try again")
    await sim.run()
    assert sim.status() == "failed"
    # Two more fix rounds after the resume: the cap counts since the decision.
    assert [i.step for i in sim.history()].count("Fix") == 5


async def test_stuck_on_the_same_failure() -> None:
    sim = Simulation(REGISTRY, Script({("", "Test"): [failing("same")]}))
    sim.start("Build", {})
    await sim.run()
    assert sim.status() == "failed"
    assert sim.session().status_reason.startswith("stuck:")


def classified(kind: int, fp: str = "same") -> pb.Result:
    result = failing(fp)
    result.failure_class = kind  # type: ignore[assignment]
    return result


async def test_transient_provider_failures_are_never_stuck() -> None:
    # The same transient failure twice in a row (the provider down for longer
    # than the retries inside the step) is not "stuck": the round cap, not
    # stuck detection, bounds it — and the next round gets through.
    transient = classified(pb.FAILURE_CLASS_TRANSIENT)
    sim = Simulation(REGISTRY, Script({("", "Test"): [transient, transient, report("ok")]}))
    sim.start("Build", {})
    await sim.run()
    assert sim.status() == "complete", sim.session().status_reason
    assert [i.step for i in sim.history()] == ["Compile", "Test", "Fix", "Test", "Fix", "Test"]
    stored = sim.history()[1].result
    assert "fingerprint" not in stored.data.fields["judgement"].struct_value.fields


async def test_transient_failures_are_still_bounded_by_the_round_cap() -> None:
    sim = Simulation(REGISTRY, Script({("", "Test"): [classified(pb.FAILURE_CLASS_TRANSIENT)]}))
    sim.start("Build", {"max_rounds": 2})
    await sim.run()
    assert sim.status() == "failed"
    assert "after 2 rounds" in sim.session().status_reason


async def test_a_permanent_provider_failure_fails_the_session_at_once() -> None:
    permanent = classified(pb.FAILURE_CLASS_PERMANENT, "p")
    permanent.error_message = (
        "Not logged in · Please run /login — to fix: run `claude`, then /login"
    )
    sim = Simulation(REGISTRY, Script({("", "Test"): [permanent, report("ok")]}))
    sim.start("Build", {})
    await sim.run()
    assert sim.status() == "failed"
    assert [i.step for i in sim.history()] == ["Compile", "Test"]  # no fix round spent
    assert "Not logged in · Please run /login" in sim.session().status_reason
    assert "to fix:" in sim.session().status_reason
    # Once fixed, a resume runs the step again.
    await sim.steer("", pb.CONTROL_ACTION_RESUME, reason="logged in")
    await sim.run()
    assert sim.status() == "complete"


async def test_the_models_own_failure_is_a_normal_error() -> None:
    model = classified(pb.FAILURE_CLASS_MODEL)
    sim = Simulation(REGISTRY, Script({("", "Test"): [model]}))
    sim.start("Build", {})
    await sim.run()
    assert sim.session().status_reason.startswith("stuck:")  # the loop's own rules apply


async def test_children_are_spawned_once_and_revived_on_retry() -> None:
    # toy.b fails its first run; the parent's judge sees it, retries the
    # spawn, which revives toy.b instead of creating another child.
    sim = Simulation(
        REGISTRY,
        Script({("toy.b", "Work"): [report("error", data={"fatal": True}), report("ok")]}),
    )
    sim.start("Tree", {"parts": ["a", "b", "c"]})
    await sim.run()
    assert sim.status() == "complete"
    assert sim.session_keys() == ["", "toy.a", "toy.b", "toy.c"]  # no second toy.b
    assert [i.step for i in sim.history()].count("Spawn") == 2
    spawns = [i for i in sim.history() if i.step == "Spawn"]
    assert len(spawns[1].command.spawn_children.child_session_ids) == 3
    assert list(spawns[1].command.spawn_children.resumed_child_ids) == [sim.session("toy.b").id]
    assert_golden(sim.trace, GOLDENS / "tree_child_fails_then_retry.json")


async def test_cancelled_parent_cancels_children_and_takes_no_results() -> None:
    sim = Simulation(REGISTRY, Script({}))
    sim.start("Tree", {"parts": ["a", "b"]})
    await sim.run(max_steps=3, settle=False)  # prepare, the spawn, one child step
    sim.cancel("")
    assert {sim.status(k) for k in sim.session_keys()} <= {"cancelled", "complete"}
    assert sim.status("") == "cancelled"
    head = sim.session("")
    pending = [i for i in sim.history() if i.status == pb.INTERACTION_STATUS_ABANDONED]
    assert pending, "the spawn wait is abandoned"
    with pytest.raises(FailedPrecondition):
        await sim.engine.result(
            head,
            pending[0],
            report("ok"),
            lease_epoch=0,
            reported_digest=b"",
            advance=True,
            load_children=sim._loader(sim._sessions[head.id]),
        )


async def test_pause_during_a_step_takes_effect_after_it() -> None:
    paused: list[str] = []

    def respond(call: Call) -> pb.Result:
        if call.step == "Compile" and not paused:
            paused.append(call.step)
        return report("ok")

    sim = Simulation(REGISTRY, respond)
    sim.start("Build", {})
    await sim.steer("", pb.CONTROL_ACTION_PAUSE, reason="lunch")
    assert sim.status() == "paused"
    # Paused with Compile pending: the pause is not yet in the history.
    assert [i.step for i in sim.history()] == ["Compile"]
    await sim.steer("", pb.CONTROL_ACTION_RESUME)
    await sim.run()
    assert sim.status() == "complete"


async def test_retry_from_needs_a_known_step() -> None:
    sim = Simulation(REGISTRY, Script({("", "Test"): [failing("x"), failing("x")]}))
    sim.start("Build", {})
    await sim.run()
    with pytest.raises(InvalidArgument, match="no step 'Nope'"):
        await sim.steer("", pb.CONTROL_ACTION_RETRY_FROM, step="Nope")
    await sim.steer("", pb.CONTROL_ACTION_RETRY_FROM, step="Compile")
    assert sim.status() == "active"
    assert sim.history()[-1].step == "Compile"


def test_unknown_type_and_bad_params_are_invalid_argument() -> None:
    sim = Simulation(REGISTRY, Script({}))
    with pytest.raises(InvalidArgument, match="unknown session type 'Nope'"):
        sim.start("Nope", {})
    with pytest.raises(InvalidArgument, match="parameter 'parts' is required"):
        sim.start("Tree", {})
    with pytest.raises(InvalidArgument, match="unknown parameter"):
        sim.start("Build", {"colour": "red"})
    with pytest.raises(InvalidArgument, match="must be a list"):
        sim.start("Tree", {"parts": "a"})
    # An unknown profile is refused at start, not by the first step reading it.
    with pytest.raises(InvalidArgument, match="unknown profile 'ruby'; use one of: python, elixir"):
        sim.start("Build", {"profile": "ruby"})
    sim.start("Build", {"profile": "elixir"})
