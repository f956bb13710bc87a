"""Project rules: read once by a top-level Initialize, inherited by children, composed per prompt.

One behaviour for both families: a top-level session reads the rule files
of its worktree (:data:`~specloom.rules.RULE_GLOBS`) and ``params.rules``,
keeps those of its session kind (``design``, ``test``, ``code``) in its
state, and hands them to its children at creation; a prompt composes the
built-in and kept rules matching its component type, and an agent step's
system prompt is its persona as the kept rules that name it change it
(:meth:`AgentStep.system_prompt <specloom.workflow.steps.AgentStep.system_prompt>`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from specloom.rules import (
    ANY,
    RULE_GLOBS,
    Rule,
    RuleError,
    builtin_rules,
    compose,
    matching,
    parse_rule,
)
from specloom.workflow._context import StepContext
from specloom.workflow.steps._found import Found

__all__ = ["project_rules", "rules_text"]


def project_rules(ctx: StepContext, found: Found, kind: str) -> tuple[Rule, ...]:
    """The project's rules of session kind ``kind``: rule files found, then ``params.rules``.

    Raises :class:`RuleError` naming the file (or param) of a malformed rule:
    the project's to fix, so the session stops.
    """
    rules = [parse_rule(item.content, source=path) for path, item in found.matching(RULE_GLOBS)]
    given = ctx.params.get("rules")
    for n, raw in enumerate(given if isinstance(given, list) else []):
        if not isinstance(raw, str):
            raise RuleError(f"params.rules[{n}] must be a markdown string with front matter")
        rules.append(parse_rule(raw, source=f"params.rules[{n}]"))
    # The component type is matched per prompt; here only the session kind.
    return tuple(rule for rule in rules if ANY in rule.session_types or kind in rule.session_types)


def rules_text(rules: Sequence[Rule], component_type: str | Iterable[str], kind: str) -> str:
    """Built-in and project ``rules`` for a ``kind`` prompt on ``component_type``, composed.

    Several component types (a review that may edit designs of each) take
    every rule matching any of them, once each, in rule order.
    """
    types = [component_type] if isinstance(component_type, str) else list(component_type)
    chosen: list[Rule] = []
    for rule in [*builtin_rules(), *rules]:
        if rule not in chosen and any(matching([rule], t, kind) for t in types):
            chosen.append(rule)
    return compose(chosen)
