"""Rules and personas: markdown guidance and system prompts composed for agents.

Rules (:mod:`._rules`) are what a prompt tells an agent about the task,
selected by component type and session kind; personas (:mod:`._personas`)
are who the agent is, its system prompt, which rules naming a persona may
extend or replace (:func:`system_prompt`).
"""

from specloom.rules._personas import (
    COMPONENT_DESIGN_REVIEWER,
    COMPONENT_DESIGNER,
    CONTEXT_DESIGNER,
    CONTEXT_REVIEWER,
    PERSONAS,
    TEST_WRITER,
    UNIT_CODER,
    Persona,
    persona,
)
from specloom.rules._rules import (
    ANY,
    EXTEND,
    MAX_COMPOSED_CHARS,
    MAX_RULE_BYTES,
    PERSONA_MODES,
    REPLACE,
    RULE_GLOBS,
    SESSION_KINDS,
    Rule,
    RuleError,
    builtin_rules,
    compose,
    matching,
    parse_rule,
    persona_rules,
    system_prompt,
)

__all__ = [
    "ANY",
    "COMPONENT_DESIGNER",
    "COMPONENT_DESIGN_REVIEWER",
    "CONTEXT_DESIGNER",
    "CONTEXT_REVIEWER",
    "EXTEND",
    "MAX_COMPOSED_CHARS",
    "MAX_RULE_BYTES",
    "PERSONAS",
    "PERSONA_MODES",
    "REPLACE",
    "RULE_GLOBS",
    "SESSION_KINDS",
    "TEST_WRITER",
    "UNIT_CODER",
    "Persona",
    "Rule",
    "RuleError",
    "builtin_rules",
    "compose",
    "matching",
    "parse_rule",
    "persona",
    "persona_rules",
    "system_prompt",
]
