"""What a model call costs: a price table per model, overridable per agent.

Prices are US dollars per million tokens (input, output). A model the table does not
know costs 0 (and the report says so with ``priced: false``); set ``prices=`` on the agent
to budget a model by cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from treadle.agents.messages import Usage
from treadle.core.errors import ConfigurationError
from treadle.core.storable import finite


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for value in (self.input_per_mtok, self.output_per_mtok):
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not finite(value) or value < 0:
                raise ConfigurationError("prices must be finite numbers >= 0 (USD per "
                                         "million tokens)")

    def cost(self, usage: Usage) -> float:
        return (usage.input_tokens * self.input_per_mtok
                + usage.output_tokens * self.output_per_mtok) / 1_000_000


# List prices at the time of writing; deployments override them (prices change).
DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "claude-sonnet-4-5": Price(3.00, 15.00),
    "claude-haiku-4-5": Price(1.00, 5.00),
    "claude-opus-4-1": Price(15.00, 75.00),
}


class PriceTable:
    def __init__(self, overrides: Mapping[str, Price | tuple[float, float]] | None = None,
                 *, base: Mapping[str, Price] = DEFAULT_PRICES) -> None:
        self._prices = dict(base)
        if overrides is not None and not isinstance(overrides, Mapping):
            raise ConfigurationError("prices must map model names to (input, output) prices")
        for model, price in (overrides or {}).items():
            if not isinstance(model, str) or not model.isprintable():
                raise ConfigurationError("a price's model name must be printable text")
            if not isinstance(price, Price) and not (isinstance(price, tuple | list)
                                                     and len(price) == 2):
                raise ConfigurationError(f"the price of {model!r} must be a Price or an "
                                         "(input, output) pair")
            self._prices[model] = price if isinstance(price, Price) else Price(*price)

    def price(self, model: str) -> Price | None:
        """The price of ``model``; a dated name (``gpt-4.1-mini-2025-04-14``) falls back
        to the longest known prefix."""
        if model in self._prices:
            return self._prices[model]
        best = max((m for m in self._prices if model.startswith(m)), key=len, default=None)
        return self._prices[best] if best is not None else None

    def cost(self, model: str, usage: Usage) -> float:
        price = self.price(model)
        return price.cost(usage) if price is not None else 0.0
