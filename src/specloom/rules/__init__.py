"""Rules: markdown guidance composed into agent prompts (see :mod:`._rules`)."""

from specloom.rules._rules import (
    ANY,
    MAX_COMPOSED_CHARS,
    MAX_RULE_BYTES,
    RULE_GLOBS,
    SESSION_KINDS,
    Rule,
    RuleError,
    builtin_rules,
    compose,
    matching,
    parse_rule,
)

__all__ = [
    "ANY",
    "MAX_COMPOSED_CHARS",
    "MAX_RULE_BYTES",
    "RULE_GLOBS",
    "SESSION_KINDS",
    "Rule",
    "RuleError",
    "builtin_rules",
    "compose",
    "matching",
    "parse_rule",
]
