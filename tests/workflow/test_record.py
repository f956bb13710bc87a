"""Typed state records: read from and written to a session's Struct, with clear errors."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from specloom.protoconv import JsonObject, dict_to_struct, struct_to_dict
from specloom.rules import Rule
from specloom.workflow import ComponentView
from specloom.workflow._record import StateError, changes, decode, encode


@dataclass(frozen=True)
class Child:
    key: str = ""
    files: tuple[str, ...] = ()


@dataclass(frozen=True)
class State:
    branch: str = ""
    rounds: int = 0
    ratio: float = 0.0
    passed: bool | None = None
    files: tuple[str, ...] = ()
    children: tuple[Child, ...] = ()
    components: tuple[ComponentView, ...] = ()
    rules: tuple[Rule, ...] = ()
    run: JsonObject | None = None
    note: str | None = None


STOCK = ComponentView("Stock", "inventory.stock", "module", "Keeps stock.", ("inventory.bins",))
RULE = Rule("style", "docs/rules/style.md", ("*",), ("code",), "Be brief.")


def test_a_record_round_trips_through_a_struct() -> None:
    state = State(
        branch="b",
        rounds=2,
        ratio=0.5,
        passed=True,
        files=("a.py", "b.py"),
        children=(Child("inventory.stock", ("a.py",)),),
        components=(STOCK,),
        rules=(RULE,),
        run={"passed": 3, "failures": [{"title": "t"}]},
        note="n",
    )
    stored = struct_to_dict(dict_to_struct(encode(state)))
    assert decode(State, stored) == state
    assert stored["components"] == [STOCK.to_dict()]
    assert stored["rules"] == [RULE.to_dict()]


def test_absent_and_null_keys_read_as_defaults_and_unknown_keys_are_ignored() -> None:
    assert decode(State, {}) == State()
    assert decode(State, {"branch": None, "someone_elses": [1, 2]}) == State()


def test_changes_name_only_what_changed_and_none_deletes() -> None:
    before = State(branch="b", files=("a.py",), note="n")
    after = replace(before, files=("a.py", "b.py"), note=None, children=(Child("k"),))
    assert changes(before, after) == {
        "files": ["a.py", "b.py"],
        "children": [{"key": "k", "files": []}],
        "note": None,
    }
    assert changes(before, before) == {}


@pytest.mark.parametrize(
    ("stored", "error"),
    [
        ({"branch": 3}, "state.branch must be a string, found 3"),
        ({"rounds": "2"}, "state.rounds must be an integer, found '2'"),
        ({"rounds": True}, "state.rounds must be an integer, found True"),
        ({"passed": "yes"}, "state.passed must be true or false, found 'yes'"),
        ({"files": "a.py"}, "state.files must be a list, found 'a.py'"),
        ({"files": ["a.py", 2]}, "state.files[1] must be a string, found 2"),
        ({"children": {"k": {}}}, "state.children must be a list, found {'k': {}}"),
        ({"children": [{"key": 1}]}, "state.children[0].key must be a string, found 1"),
        ({"components": ["x"]}, "state.components[0] must be an object, found 'x'"),
    ],
)
def test_a_value_of_the_wrong_shape_is_an_error_naming_the_field(
    stored: JsonObject, error: str
) -> None:
    with pytest.raises(StateError) as caught:
        decode(State, stored)
    assert caught.value.message == error
