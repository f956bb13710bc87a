"""Rules: front matter, matching, composition, and malformed files as clear errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from specloom.rules import (
    MAX_COMPOSED_CHARS,
    MAX_RULE_BYTES,
    SESSION_KINDS,
    Rule,
    RuleError,
    builtin_rules,
    compose,
    matching,
    parse_rule,
)


def rule(front: str, body: str = "Do the thing.") -> str:
    return f"---\n{front}\n---\n{body}\n"


def test_a_rule_reads_its_front_matter() -> None:
    parsed = parse_rule(
        rule(
            "# applies to data modules\ncomponent_type: [schema, 'repository']  # both\n"
            'session_type: "design"\nname: Fields first'
        ),
        source=".specloom/rules/fields.md",
    )
    assert parsed == Rule(
        name="Fields first",
        source=".specloom/rules/fields.md",
        component_types=("schema", "repository"),
        session_types=("design",),
        body="Do the thing.",
    )
    assert parsed.matches("schema", "design")
    assert not parsed.matches("schema", "code")
    assert not parsed.matches("context", "design")


def test_star_matches_anything_and_the_name_defaults_to_the_file() -> None:
    parsed = parse_rule(
        rule("component_type: *\nsession_type: design, code").encode().replace(b"\n", b"\r\n"),
        source="docs/rules/general.md",
    )
    assert parsed.name == "general"
    assert parsed.matches("liveview", "code")
    assert not parsed.matches("liveview", "test")
    assert Rule.from_dict(parsed.to_dict()) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Just advice.", "a rule starts with front matter"),
        ("---\ncomponent_type: *\nsession_type: design\n", "never closed (add a line '---')"),
        (rule("component_type *\nsession_type: design"), "front matter line 2 is not 'key: value'"),
        (
            rule("component_type: *\nsesion_type: design"),
            "unknown front matter key 'sesion_type' at line 3",
        ),
        (rule("component_type: *"), "the front matter has no 'session_type' (use * for any)"),
        (
            rule("component_type: *\nsession_type: desing"),
            "session_type 'desing' is not one of design, test, code, or *",
        ),
        (
            rule("component_type: widget\nsession_type: code"),
            "component_type 'widget' is not one of context, schema",
        ),
        (rule("component_type:\nsession_type: code"), "'component_type' is empty"),
        (
            rule("component_type: *\ncomponent_type: schema\nsession_type: code"),
            "'component_type' is given twice (line 3)",
        ),
        (
            rule("component_type: *\nsession_type: code", body=""),
            "the rule has no text after its front matter",
        ),
        (b"\xff\xfe---", "not UTF-8 text"),
        ("x" * (MAX_RULE_BYTES + 1), "longer than"),
        (b"x" * (MAX_RULE_BYTES + 1), "bytes; a rule may have"),
    ],
)
def test_malformed_rules_say_what_is_wrong_and_where(text: str | bytes, message: str) -> None:
    with pytest.raises(RuleError, match=re.escape(message)) as caught:
        parse_rule(text, source="docs/rules/bad.md")
    assert str(caught.value).startswith("docs/rules/bad.md: ")


@given(st.text(max_size=400))
def test_parsing_any_text_gives_a_rule_or_a_rule_error(text: str) -> None:
    try:
        parse_rule(text, source="fuzz.md")
    except RuleError as exc:
        message = str(exc)
    else:
        return
    assert message.startswith("fuzz.md: ")


def test_builtin_rules_cover_every_session_kind() -> None:
    rules = builtin_rules()
    assert all(r.source.startswith("builtin:") for r in rules)
    for kind in SESSION_KINDS:
        assert matching(rules, "module", kind), f"no built-in rule for {kind} sessions"
    context_only = [r.name for r in matching(rules, "context", "design")]
    assert "Contexts have clear boundaries" in context_only
    assert "Contexts have clear boundaries" not in [
        r.name for r in matching(rules, "schema", "design")
    ]


def test_compose_keeps_order_and_names_what_does_not_fit() -> None:
    assert compose([]) == ""
    small = Rule("A", "a.md", ("*",), ("*",), "alpha")
    big = Rule("B", "b.md", ("*",), ("*",), "b" * MAX_COMPOSED_CHARS)
    last = Rule("C", "c.md", ("*",), ("*",), "gamma")
    text = compose([small, big, last])
    assert text.startswith("### A\n\nalpha\n\n### C\n\ngamma")
    assert text.endswith("Also read these rules, left out here for length: B (b.md)")
