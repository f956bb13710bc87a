"""Rules: markdown guidance selected by component type and session kind.

A rule file starts with front matter naming what it applies to::

    ---
    component_type: schema, repository   # or *
    session_type: design                 # design, test, code, or *
    ---
    Every schema lists its fields with their types ...

Matching rules are composed into agent prompts. Rules come from the package
(built-in defaults), the project's workspace (:data:`RULE_GLOBS`, collected
by a workflow's Initialize step) and session params. A malformed file is a
:class:`RuleError` naming the file and the line, never a crash.

A rule that names a persona (:mod:`._personas`) is about who the agent is,
not about the task: it goes into the system prompt, never the prompt::

    ---
    component_type: "*"
    session_type: code
    persona: unit_coder          # or a comma list, or * for every persona
    persona_mode: extend         # extend (the default) or replace
    ---
    You write Python 3.12 for a team that reads code more than it writes it.

``extend`` adds the body after the persona's text; ``replace`` puts the body
in its place (the last replacing rule wins, in rule order: project files by
path, then ``params.rules``; extensions follow whichever text is in place).
Component and session types select persona rules exactly as they select
prompt rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

from specloom.documents import COMPONENT_TYPES
from specloom.rules._personas import PERSONAS, persona

ANY = "*"
"""Front-matter value that matches anything."""

SESSION_KINDS: tuple[str, ...] = ("design", "test", "code")
"""What a session does, as rules name it."""

RULE_GLOBS: tuple[str, ...] = (".specloom/rules/*.md", "docs/rules/*.md")
"""Where a project keeps its rules, relative to the repository root."""

MAX_RULE_BYTES = 16 * 1024
"""Largest single rule; rules are guidance, not documentation dumps."""

MAX_COMPOSED_CHARS = 48 * 1024
"""Most rule text put into one prompt; past it the remaining rules are named, not inlined."""

EXTEND = "extend"
"""``persona_mode``: the rule's body follows the persona's text."""

REPLACE = "replace"
"""``persona_mode``: the rule's body takes the place of the persona's text."""

PERSONA_MODES: tuple[str, ...] = (EXTEND, REPLACE)

_KEYS = ("component_type", "session_type", "name", "description", "persona", "persona_mode")
_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*)$")


class RuleError(ValueError):
    """A rule that cannot be read; the message names the source and the problem."""


@dataclass(frozen=True)
class Rule:
    """One rule."""

    name: str
    """Display name (front-matter ``name``, else the file name without ``.md``)."""
    source: str
    """Where it came from: ``builtin:<file>``, a workspace path or ``params.rules[<n>]``."""
    component_types: tuple[str, ...]
    """Component types it applies to; ``("*",)`` for any."""
    session_types: tuple[str, ...]
    """Session kinds it applies to; ``("*",)`` for any."""
    body: str
    """The guidance (markdown)."""
    personas: tuple[str, ...] = ()
    """Personas it extends or replaces (``("*",)``: all); empty for a prompt rule."""
    persona_mode: str = EXTEND
    """How it changes the personas it names: :data:`EXTEND` or :data:`REPLACE`."""

    @property
    def for_persona(self) -> bool:
        """Whether it belongs in the system prompt rather than the prompt."""
        return bool(self.personas)

    def matches(self, component_type: str, session_type: str) -> bool:
        """Whether the rule applies to a ``session_type`` session on a ``component_type``."""
        return (ANY in self.component_types or component_type in self.component_types) and (
            ANY in self.session_types or session_type in self.session_types
        )

    def to_dict(self) -> dict[str, str | list[str]]:
        """Plain form, as kept in session state."""
        plain: dict[str, str | list[str]] = {
            "name": self.name,
            "source": self.source,
            "component_type": list(self.component_types),
            "session_type": list(self.session_types),
            "body": self.body,
        }
        if self.personas:
            plain["persona"] = list(self.personas)
            plain["persona_mode"] = self.persona_mode
        return plain

    @staticmethod
    def from_dict(data: Mapping[str, object]) -> Rule:
        """Read the plain form (as written by :meth:`to_dict`)."""

        def names(value: object) -> tuple[str, ...]:
            if isinstance(value, list | tuple):
                return tuple(str(v) for v in value) or (ANY,)
            return (str(value),) if value else (ANY,)

        given = data.get("persona")
        return Rule(
            name=str(data.get("name", "")),
            source=str(data.get("source", "")),
            component_types=names(data.get("component_type")),
            session_types=names(data.get("session_type")),
            body=str(data.get("body", "")),
            personas=names(given) if given else (),
            persona_mode=str(data.get("persona_mode") or EXTEND),
        )


def _values(raw: str) -> tuple[str, ...]:
    text = raw.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    parts = [p.strip().strip("'\"").strip().lower() for p in text.split(",")]
    return tuple(p for p in parts if p)


def _check(source: str, key: str, values: tuple[str, ...], known: Sequence[str]) -> None:
    if not values:
        raise RuleError(f"{source}: '{key}' is empty; give one or more of {', '.join(known)}, or *")
    for value in values:
        if value != ANY and value not in known:
            raise RuleError(
                f"{source}: {key} '{value}' is not one of {', '.join(known)}, or * (any)"
            )


def parse_rule(text: str | bytes, *, source: str) -> Rule:
    """Read a rule file (:class:`RuleError` if it is malformed)."""
    if isinstance(text, bytes):
        if len(text) > MAX_RULE_BYTES:
            raise RuleError(f"{source}: {len(text):,} bytes; a rule may have {MAX_RULE_BYTES:,}")
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise RuleError(f"{source}: not UTF-8 text") from None
    if len(text.encode()) > MAX_RULE_BYTES:
        raise RuleError(f"{source}: longer than {MAX_RULE_BYTES:,} bytes; shorten it")
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not lines or lines[0].strip() != "---":
        raise RuleError(
            f"{source}: a rule starts with front matter: a line '---', then "
            "'component_type: ...' and 'session_type: ...', then '---'"
        )
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
    except StopIteration:
        raise RuleError(
            f"{source}: the front matter opened at line 1 is never closed (add a line '---')"
        ) from None
    fields: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        content = line.split(" #", 1)[0].strip() if not line.lstrip().startswith("#") else ""
        if not content:
            continue
        match = _LINE.match(content)
        if match is None:
            raise RuleError(f"{source}: front matter line {number} is not 'key: value': {line!r}")
        key = match.group(1).lower()
        if key not in _KEYS:
            raise RuleError(
                f"{source}: unknown front matter key '{key}' at line {number}; "
                f"known keys: {', '.join(_KEYS)}"
            )
        if key in fields:
            raise RuleError(f"{source}: '{key}' is given twice (line {number})")
        fields[key] = match.group(2)
    for key in ("component_type", "session_type"):
        if key not in fields:
            raise RuleError(f"{source}: the front matter has no '{key}' (use * for any)")
    component_types = _values(fields["component_type"])
    session_types = _values(fields["session_type"])
    _check(source, "component_type", component_types, list(COMPONENT_TYPES))
    _check(source, "session_type", session_types, SESSION_KINDS)
    personas, mode = _persona_fields(source, fields)
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        raise RuleError(f"{source}: the rule has no text after its front matter")
    default_name = source.rsplit("/", 1)[-1].removesuffix(".md")
    return Rule(
        name=fields.get("name", "").strip().strip("'\"") or default_name,
        source=source,
        component_types=component_types,
        session_types=session_types,
        body=body,
        personas=personas,
        persona_mode=mode,
    )


def _persona_fields(source: str, fields: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    if "persona" not in fields:
        if "persona_mode" in fields:
            raise RuleError(
                f"{source}: 'persona_mode' applies to a rule with a 'persona'; name the "
                f"persona it changes ({', '.join(PERSONAS)}, or *)"
            )
        return (), EXTEND
    personas = _values(fields["persona"])
    _check(source, "persona", personas, list(PERSONAS))
    modes = _values(fields.get("persona_mode", EXTEND))
    if len(modes) != 1 or modes[0] not in PERSONA_MODES:
        raise RuleError(
            f"{source}: persona_mode {fields['persona_mode'].strip()!r} is not one of "
            f"{', '.join(PERSONA_MODES)}"
        )
    return personas, modes[0]


@cache
def builtin_rules() -> tuple[Rule, ...]:
    """The rules shipped with specloom, sorted by file name."""
    folder = resources.files("specloom.rules").joinpath("builtin")
    found = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".md")),
        key=lambda entry: entry.name,
    )
    return tuple(
        parse_rule(entry.read_text("utf-8"), source=f"builtin:{entry.name}") for entry in found
    )


def matching(rules: Iterable[Rule], component_type: str, session_type: str) -> list[Rule]:
    """The prompt rules that apply, in the order given (persona rules are never prompt rules)."""
    return [
        rule
        for rule in rules
        if not rule.for_persona and rule.matches(component_type, session_type)
    ]


def persona_rules(
    rules: Iterable[Rule], name: str, component_type: str, session_type: str = ANY
) -> list[Rule]:
    """The rules that change persona ``name`` for this component type, in the order given.

    ``session_type`` ``*`` skips the session kind (a session's kept rules
    are of its kind already).
    """
    return [
        rule
        for rule in rules
        if (ANY in rule.personas or name in rule.personas)
        and (ANY in rule.component_types or component_type in rule.component_types)
        and (session_type == ANY or rule.matches(component_type, session_type))
    ]


def system_prompt(name: str, rules: Iterable[Rule], component_type: str) -> str:
    """Persona ``name``'s text as ``rules`` change it: the agent's system prompt.

    The last replacing rule takes the place of the persona's text; every
    extending rule follows that text, each under its name, in rule order.
    ``ValueError`` for an unknown persona.
    """
    text = persona(name).text
    extensions: list[Rule] = []
    for rule in persona_rules(rules, name, component_type):
        if rule.persona_mode == REPLACE:
            text = rule.body
        else:
            extensions.append(rule)
    if not extensions:
        return text
    added = "\n\n".join(f"### {rule.name}\n\n{rule.body}" for rule in extensions)
    return f"{text}\n\n## From the project's rules\n\n{added}"


def compose(rules: Sequence[Rule]) -> str:
    """Rules as one markdown block for a prompt ("" when there are none)."""
    if not rules:
        return ""
    parts: list[str] = []
    used = 0
    left_out: list[str] = []
    for rule in rules:
        block = f"### {rule.name}\n\n{rule.body}"
        if used + len(block) > MAX_COMPOSED_CHARS:
            left_out.append(f"{rule.name} ({rule.source})")
            continue
        parts.append(block)
        used += len(block)
    if left_out:
        parts.append("Also read these rules, left out here for length: " + "; ".join(left_out))
    return "\n\n".join(parts)
