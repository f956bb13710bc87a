"""What an agent step consumed, and what that is estimated to cost.

Backends count tokens per model as the provider reports them
(:class:`UsageMeter`); the executor prices the count with a
:class:`PriceTable` and puts it in ``Result.usage``. Prices are data, not
code: ``prices.toml`` beside this module holds the defaults, and a file named
by ``SPECLOOM_AGENT_PRICES_FILE`` replaces them model by model. A model the
table does not know is counted but not priced, and the usage says so
(``unpriced_steps``) instead of guessing.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from specloom.v1 import common_pb2 as pb

__all__ = ["ModelPrice", "PriceTable", "PricesError", "UsageMeter", "load_prices"]

KINDS = ("input", "output", "cache_write", "cache_read")
"""Token kinds, as the price table and the metrics name them."""


class PricesError(ValueError):
    """A price file that cannot be used; the message names the file and entry."""


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million tokens of each kind."""

    input: float
    output: float
    cache_write: float
    cache_read: float


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name or ``prefix*``."""

    prices: Mapping[str, ModelPrice] = field(default_factory=dict)

    def price(self, model: str) -> ModelPrice | None:
        """The exact entry, else the longest ``prefix*`` entry matching ``model``."""
        found = self.prices.get(model)
        if found is not None:
            return found
        best: tuple[int, ModelPrice] | None = None
        for key, price in self.prices.items():
            matches = key.endswith("*") and model.startswith(key[:-1])
            if matches and (best is None or len(key) > best[0]):
                best = (len(key), price)
        return best[1] if best else None


def _price(entry: Any, where: str) -> ModelPrice:
    if not isinstance(entry, dict) or set(entry) != set(KINDS):
        raise PricesError(f"{where}: needs exactly {', '.join(KINDS)} (USD per million tokens)")
    values: dict[str, float] = {}
    for kind in KINDS:
        value = entry[kind]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PricesError(f"{where}: {kind} must be a number")
        if not math.isfinite(value) or value < 0:
            raise PricesError(f"{where}: {kind} must be a finite number >= 0")
        values[kind] = float(value)
    return ModelPrice(**values)


def _parse(text: str, source: str) -> dict[str, ModelPrice]:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PricesError(f"{source}: not valid TOML: {exc}") from None
    models = raw.get("models", {})
    if not isinstance(models, dict) or set(raw) - {"models"}:
        raise PricesError(f'{source}: expected only [models."<name or prefix*>"] tables')
    return {
        str(name): _price(entry, f'{source}: [models."{name}"]') for name, entry in models.items()
    }


def load_prices(path: Path | None = None) -> PriceTable:
    """The default table, with ``path``'s entries replacing or adding models."""
    defaults = resources.files("specloom.agent").joinpath("prices.toml").read_text("utf-8")
    prices = _parse(defaults, "prices.toml")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PricesError(f"cannot read the price file {path}: {exc}") from None
        prices.update(_parse(text, str(path)))
    return PriceTable(prices)


@dataclass
class _Tokens:
    input: int = 0
    output: int = 0
    cache_write: int = 0
    cache_read: int = 0


@dataclass
class UsageMeter:
    """Counts one agent step's tokens per model, its turns and its retries."""

    model: str = ""
    """The model the command ran."""
    turns: int = 0
    retries: int = 0
    note: str = ""
    tokens: dict[str, _Tokens] = field(default_factory=dict)

    def add(
        self,
        model: str,
        *,
        input: int = 0,
        output: int = 0,
        cache_write: int = 0,
        cache_read: int = 0,
    ) -> None:
        """Add one answer's (or one run's) tokens for ``model``."""
        counted = self.tokens.setdefault(model or self.model or "unknown", _Tokens())
        counted.input += max(0, int(input))
        counted.output += max(0, int(output))
        counted.cache_write += max(0, int(cache_write))
        counted.cache_read += max(0, int(cache_read))

    def add_api_usage(self, model: str, usage: Mapping[str, Any] | None) -> None:
        """Add a Messages API ``usage`` object (as returned with each message)."""
        if not usage:
            return

        def number(key: str) -> int:
            value = usage.get(key)
            return (
                int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
            )

        self.add(
            model,
            input=number("input_tokens"),
            output=number("output_tokens"),
            cache_write=number("cache_creation_input_tokens"),
            cache_read=number("cache_read_input_tokens"),
        )

    def to_pb(self, prices: PriceTable, duration_ms: int) -> pb.Usage:
        """The step's ``Usage``, priced with ``prices``."""
        usage = pb.Usage(
            model=self.model,
            turns=self.turns,
            duration_ms=max(0, duration_ms),
            retries=self.retries,
            agent_steps=1,
            note=self.note,
        )
        unpriced = False
        for model in sorted(self.tokens):
            counted = self.tokens[model]
            price = prices.price(model)
            cost = 0.0
            if price is not None:
                cost = (
                    counted.input * price.input
                    + counted.output * price.output
                    + counted.cache_write * price.cache_write
                    + counted.cache_read * price.cache_read
                ) / 1_000_000
            elif counted.input or counted.output or counted.cache_write or counted.cache_read:
                unpriced = True
            usage.models.append(
                pb.ModelUsage(
                    model=model,
                    input_tokens=counted.input,
                    output_tokens=counted.output,
                    cache_creation_input_tokens=counted.cache_write,
                    cache_read_input_tokens=counted.cache_read,
                    cost_usd=cost,
                    priced=price is not None,
                )
            )
            usage.input_tokens += counted.input
            usage.output_tokens += counted.output
            usage.cache_creation_input_tokens += counted.cache_write
            usage.cache_read_input_tokens += counted.cache_read
            usage.cost_usd += cost
        usage.unpriced_steps = 1 if unpriced else 0
        return usage
