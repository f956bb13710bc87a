"""What kind of failure a backend hit, and retrying the passing ones.

Three kinds, because each needs a different response:

- *transient* (a connection error, a timeout, 429, 5xx, overloaded): retried
  inside the step with capped exponential back-off and jitter, each retry a
  line in the step's output; when the retries run out the step fails with
  the class recorded, and stuck detection does not count it;
- *permanent* (not logged in, a bad key, the CLI missing, an unknown model,
  a request the provider refuses): retrying cannot help, so the step fails
  at once with the provider's own message and a hint of what to do;
- *the model's own* (it said it could not, it ran out of turns): a normal
  error for the step's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from specloom.v1 import common_pb2 as pb

__all__ = ["Failure", "FailureClass", "RetryPolicy", "back_off", "is_transient_status"]


class FailureClass(StrEnum):
    """The three kinds of failure (see the module docstring)."""

    TRANSIENT = "transient"
    PERMANENT = "permanent"
    MODEL = "model"

    def to_pb(self) -> pb.FailureClass.ValueType:
        """The contract's value."""
        return {
            FailureClass.TRANSIENT: pb.FAILURE_CLASS_TRANSIENT,
            FailureClass.PERMANENT: pb.FAILURE_CLASS_PERMANENT,
            FailureClass.MODEL: pb.FAILURE_CLASS_MODEL,
        }[self]


@dataclass(frozen=True)
class Failure:
    """One classified failure."""

    kind: FailureClass
    message: str
    """The provider's own words (what the API or the CLI said)."""
    hint: str = ""
    """What a person can do about it."""
    status: int | None = None
    """HTTP status, when there was one."""
    retry_after: float | None = None
    """Seconds the provider asked us to wait before trying again."""

    def describe(self) -> str:
        """The message with the hint, as one line for ``error_message``."""
        return f"{self.message} — to fix: {self.hint}" if self.hint else self.message


def is_transient_status(status: int) -> bool:
    """HTTP statuses worth retrying: timeouts, conflicts, rate limits and server errors."""
    return status in (408, 409, 429) or status >= 500


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried inside a step."""

    attempts: int = 5
    """Tries in all, the first included (1: never retry)."""
    initial_delay: float = 2.0
    """Seconds before the first retry; doubles for each one after."""
    max_delay: float = 60.0
    """Longest wait before one retry (a provider's retry-after is capped by it too)."""
    jitter: float = 0.25
    """Up to this fraction of each wait is taken off at random."""

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        ceiling = min(self.max_delay, self.initial_delay * 2.0 ** min(max(retry - 1, 0), 30))
        # Jitter keeps executors that failed together from retrying together.
        wait: float = ceiling * (1 - self.jitter * random.random())  # noqa: S311 - jitter
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


async def back_off(
    policy: RetryPolicy,
    retry: int,
    failure: Failure,
    transcript: Callable[[str], Awaitable[None]],
    cancel: asyncio.Event,
    who: str,
) -> bool:
    """Say so in the transcript and wait before retry ``retry``; False when cancelled."""
    wait = policy.delay(retry, failure.retry_after)
    await transcript(
        f"{who}: transient failure ({failure.message}); "
        f"retry {retry} of {policy.attempts - 1} in {wait:.1f}s"
    )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(cancel.wait(), timeout=wait)
    return not cancel.is_set()
