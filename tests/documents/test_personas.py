"""Personas: the original's agent types as system prompts, and rules that extend or replace them."""

from __future__ import annotations

import pytest

from specloom.rules import (
    PERSONAS,
    TEST_WRITER,
    UNIT_CODER,
    Rule,
    RuleError,
    matching,
    parse_rule,
    persona,
    system_prompt,
)


def rule(front: str, body: str = "Do the thing.", source: str = "docs/rules/r.md") -> Rule:
    return parse_rule(f"---\n{front}\n---\n{body}\n", source=source)


def test_the_original_agent_types_are_the_personas_and_one_it_never_needed() -> None:
    assert list(PERSONAS) == [
        "context_designer",
        "component_designer",
        "context_reviewer",
        "component_design_reviewer",
        "test_writer",
        "unit_coder",
    ]
    for found in PERSONAS.values():
        assert found.text.startswith("You are ")
        assert "\n\nFocus on:\n- " in found.text
    assert "fix the problems you find" in persona("context_reviewer").text
    assert "You do not edit the designs" in persona("component_design_reviewer").text
    with pytest.raises(ValueError, match="no persona 'coder'; the personas are context_designer"):
        persona("coder")


def test_a_rule_naming_a_persona_extends_it_and_stays_out_of_the_prompt() -> None:
    extend = rule(
        "component_type: '*'\nsession_type: code\npersona: unit_coder\nname: House coder",
        "You write Python 3.12.",
    )
    assert extend.personas == ("unit_coder",)
    assert extend.persona_mode == "extend"
    assert Rule.from_dict(extend.to_dict()) == extend
    assert matching([extend], "module", "code") == []
    text = system_prompt(UNIT_CODER, [extend], "module")
    assert text == (
        f"{persona(UNIT_CODER).text}\n\n## From the project's rules\n\n"
        "### House coder\n\nYou write Python 3.12."
    )
    # Another persona, or a component type the rule does not name, is untouched.
    assert system_prompt(TEST_WRITER, [extend], "module") == persona(TEST_WRITER).text
    schema_only = rule("component_type: schema\nsession_type: code\npersona: '*'", "Ecto.")
    assert system_prompt(UNIT_CODER, [schema_only], "module") == persona(UNIT_CODER).text
    assert system_prompt(UNIT_CODER, [schema_only], "schema").endswith("### r\n\nEcto.")


def test_the_last_replacing_rule_takes_the_personas_place_and_extensions_follow_it() -> None:
    first = rule(
        "component_type: '*'\nsession_type: test\npersona: test_writer\npersona_mode: replace", "A."
    )
    extend = rule("component_type: '*'\nsession_type: test\npersona: '*'\nname: E", "More.")
    last = rule(
        "component_type: '*'\nsession_type: test\n"
        "persona: test_writer, unit_coder\npersona_mode: replace",
        "B.",
    )
    assert system_prompt(TEST_WRITER, [first, extend, last], "schema") == (
        "B.\n\n## From the project's rules\n\n### E\n\nMore."
    )
    assert system_prompt(UNIT_CODER, [first], "schema") == persona(UNIT_CODER).text
    plain = rule("component_type: '*'\nsession_type: test")
    assert plain.personas == ()
    assert "persona" not in plain.to_dict()  # states written before personas read the same


@pytest.mark.parametrize(
    ("front", "message"),
    [
        (
            "component_type: '*'\nsession_type: code\npersona: coder",
            "persona 'coder' is not one of context_designer, component_designer",
        ),
        (
            "component_type: '*'\nsession_type: code\npersona: unit_coder\npersona_mode: merge",
            "persona_mode 'merge' is not one of extend, replace",
        ),
        (
            "component_type: '*'\nsession_type: code\npersona_mode: replace",
            "'persona_mode' applies to a rule with a 'persona'",
        ),
        ("component_type: '*'\nsession_type: code\npersona:", "'persona' is empty"),
    ],
)
def test_malformed_persona_rules_are_clear_errors(front: str, message: str) -> None:
    with pytest.raises(RuleError, match=message) as caught:
        rule(front)
    assert str(caught.value).startswith("docs/rules/r.md: ")
