"""The decision is a pure, incremental fold of the history (property tests)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from specloom.protoconv import dict_to_struct, struct_to_dict
from specloom.workflow import Control, Outcome, Progress, Record, apply, fold, initial
from tests.orchestration.toy import BUILD

STEPS = [row.name for row in BUILD.steps]

step_records = st.builds(
    Record,
    step=st.sampled_from(STEPS),
    outcome=st.sampled_from(list(Outcome)),
    reason=st.sampled_from(["", "boom", "assertion failed"]),
    fingerprint=st.sampled_from(["", "a", "b"]),
    fail=st.sampled_from([False, False, False, True]),
)
control_records = st.builds(
    Record,
    step=st.sampled_from([*STEPS, "NoSuchStep"]),
    control=st.sampled_from(list(Control)),
)
histories = st.lists(st.one_of(step_records, step_records, control_records), max_size=60)
params = st.fixed_dictionaries({}, optional={"max_rounds": st.integers(0, 4)})


@given(histories, params)
@settings(max_examples=300)
def test_same_history_same_decision(history: list[Record], p: dict[str, int]) -> None:
    assert fold(BUILD, p, history) == fold(BUILD, p, list(history))


@given(histories, params)
@settings(max_examples=300)
def test_incremental_equals_replay_through_storage(
    history: list[Record], p: dict[str, int]
) -> None:
    # What the orchestrator does: apply one record, store the progress as a
    # Struct, read it back for the next step. It must equal a full replay.
    stored = initial(BUILD)
    for index, record in enumerate(history, start=1):
        stored = apply(BUILD, p, stored, record)
        roundtrip = struct_to_dict(dict_to_struct(stored.to_dict()))
        stored = Progress.from_dict(roundtrip, BUILD)
        assert stored == fold(BUILD, p, history[:index])
    assert stored.records == len(history)


@given(histories, params)
@settings(max_examples=300)
def test_invariants(history: list[Record], p: dict[str, int]) -> None:
    cap = p.get("max_rounds", 3)
    progress = initial(BUILD)
    for record in history:
        before = progress
        progress = apply(BUILD, p, progress, record)
        assert (
            all(count <= cap for count in progress.rounds.values()) or progress.status == "failed"
        )
        if progress.status == "failed":
            assert progress.reason
        if before.status == "complete" and record.control is None:
            assert progress.status == "complete"
        restarted = (record.control is Control.RETRY_FROM and BUILD.has_step(record.step)) or (
            record.control is Control.RESUME and before.status in ("paused", "failed")
        )
        if restarted and before.status != "complete":
            assert progress.status == "running"
            assert progress.rounds == {}
            assert progress.fingerprints == {}
        decision = progress.decision()
        if decision.action == "run":
            assert BUILD.has_step(decision.step)


def ok(step: str) -> Record:
    return Record(step=step, outcome=Outcome.OK)


def err(step: str, fp: str = "", fail: bool = False) -> Record:
    return Record(
        step=step, outcome=Outcome.ERROR, reason="tests failed", fingerprint=fp, fail=fail
    )


def test_happy_path_completes() -> None:
    progress = fold(BUILD, {}, [ok("Compile"), ok("Test")])
    assert progress.decision().action == "complete"


def test_cap_then_resume_restarts_the_count() -> None:
    history = [ok("Compile")]
    for n in range(3):
        history += [err("Test", fp=f"f{n}"), ok("Fix")]
    assert fold(BUILD, {}, history).decision().step == "Test"
    failed = fold(BUILD, {}, [*history, err("Test", fp="f9")])
    assert failed.status == "failed"
    assert "after 3 rounds" in failed.reason
    resumed = apply(BUILD, {}, failed, Record(step="", control=Control.RESUME))
    assert resumed.status == "running"
    assert resumed.next_step == "Fix"
    assert resumed.rounds == {}


def test_same_failure_twice_is_stuck() -> None:
    progress = fold(BUILD, {}, [ok("Compile"), err("Test", "x"), ok("Fix"), err("Test", "x")])
    assert progress.status == "failed"
    assert progress.reason.startswith("stuck:")


def test_fail_flag_ends_at_once() -> None:
    progress = fold(BUILD, {}, [err("Compile", fail=True)])
    assert progress.status == "failed"
    assert progress.next_step == "Compile"  # where a Resume continues


def test_warning_retries_the_same_step_within_the_cap() -> None:
    warn = Record(step="Compile", outcome=Outcome.WARNING, reason="flaky")
    assert fold(BUILD, {}, [warn, warn, warn]).decision().step == "Compile"
    assert fold(BUILD, {}, [warn] * 4).status == "failed"


def test_pause_then_result_then_resume() -> None:
    pause = Record(step="", control=Control.PAUSE, reason="lunch")
    paused = fold(BUILD, {}, [pause, ok("Compile")])
    assert paused.status == "paused"
    assert paused.next_step == "Test"
    resumed = apply(BUILD, {}, paused, Record(step="", control=Control.RESUME))
    assert resumed.decision().step == "Test"


def test_retry_from_a_named_step() -> None:
    done = fold(BUILD, {}, [ok("Compile"), err("Test", "a")])
    retried = apply(BUILD, {}, done, Record(step="Compile", control=Control.RETRY_FROM))
    assert retried.decision().step == "Compile"
    assert retried.rounds == {}
