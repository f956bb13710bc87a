"""AI usage and cost, as the API records them (issue 14): per step, per session, with children.

Pure: label → value pairs for the templates, from ``Result.usage``,
``Session.usage`` (its own agent steps) and ``Session.total_usage`` (with
every descendant). An unset or empty record reads as None, so a session
without agent steps shows no usage at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from specloom.v1 import common_pb2 as pb


@dataclass(frozen=True)
class Usage:
    """Tokens, cost and the like, as label → value pairs in reading order."""

    items: tuple[tuple[str, str], ...]
    note: str = ""

    def __bool__(self) -> bool:
        return bool(self.items)


def _count(n: int) -> str:
    return f"{n:,}"


def usage_view(usage: pb.Usage) -> Usage | None:
    """What a page shows of one usage record; None when nothing was recorded."""
    if not (usage.agent_steps or usage.input_tokens or usage.output_tokens or usage.note):
        return None
    items: list[tuple[str, str]] = []
    if usage.model:
        items.append(("model", usage.model))
    items.append(("tokens", f"{_count(usage.input_tokens)} in · {_count(usage.output_tokens)} out"))
    if usage.cache_creation_input_tokens or usage.cache_read_input_tokens:
        items.append(
            (
                "cache",
                f"{_count(usage.cache_creation_input_tokens)} written · "
                f"{_count(usage.cache_read_input_tokens)} read",
            )
        )
    cost = f"${usage.cost_usd:.4f}"
    if usage.unpriced_steps:
        cost += f" (+{usage.unpriced_steps} unpriced step{'s' if usage.unpriced_steps > 1 else ''})"
    items.append(("cost (est.)", cost))
    if usage.turns:
        items.append(("turns", _count(usage.turns)))
    if usage.agent_steps > 1:
        items.append(("agent steps", _count(usage.agent_steps)))
    if usage.retries:
        items.append(("retries", _count(usage.retries)))
    return Usage(tuple(items), usage.note)


def step_usage(interaction: pb.Interaction) -> Usage | None:
    """The usage an agent step's result recorded."""
    if not interaction.HasField("result") or not interaction.result.HasField("usage"):
        return None
    return usage_view(interaction.result.usage)


def session_usage(session: pb.Session) -> tuple[Usage | None, Usage | None]:
    """(its own agent steps, with its children) — the second only when it differs."""
    own = usage_view(session.usage) if session.HasField("usage") else None
    total = usage_view(session.total_usage) if session.HasField("total_usage") else None
    if total is not None and session.total_usage == session.usage:
        total = None
    return own, total


FAILURE_CLASSES: dict[int, str] = {
    pb.FAILURE_CLASS_TRANSIENT: "transient (the provider or network; retried in the step)",
    pb.FAILURE_CLASS_PERMANENT: "permanent (a person must act first)",
    pb.FAILURE_CLASS_MODEL: "the model's own",
}
