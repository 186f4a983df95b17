"""Model price table and exact cost arithmetic for the simulated upstream.

Prices are US dollars per million tokens. A dollar per million tokens is exactly
one micro-dollar per token, so a request's cost in micro-dollars is the plain
sum of tokens x price, rounded once at the end.
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal


@dataclass(frozen=True)
class ModelPrice:
    """What one model costs, and the dated name the upstream logs it under."""

    alias: str
    logged_name: str
    created: int
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal


MODELS = {
    price.alias: price
    for price in (
        ModelPrice("claude-sonnet-4-6", "claude-sonnet-4-6-20250514", 1747180800,
                   Decimal("3"), Decimal("15"), Decimal("0.30"), Decimal("3.75")),
        ModelPrice("claude-opus-4-1", "claude-opus-4-1-20250805", 1754352000,
                   Decimal("15"), Decimal("75"), Decimal("1.50"), Decimal("18.75")),
        ModelPrice("claude-haiku-4-5", "claude-haiku-4-5-20251001", 1759276800,
                   Decimal("1"), Decimal("5"), Decimal("0.10"), Decimal("1.25")),
        ModelPrice("gpt-4o-mini", "gpt-4o-mini-2024-07-18", 1721260800,
                   Decimal("0.15"), Decimal("0.60"), Decimal("0.075"), Decimal("0.15")),
        ModelPrice("deepseek-v3", "deepseek-v3", 1735084800,
                   Decimal("0.27"), Decimal("1.10"), Decimal("0.07"), Decimal("0.27")),
    )
}

# Clients may ask for either the alias or the dated name.
_BY_ANY_NAME = {**{p.logged_name: p for p in MODELS.values()}, **MODELS}


def find_model(name):
    """Return the ModelPrice for an alias or dated model name, or None."""
    return _BY_ANY_NAME.get(name)


def cost_micro(price, input_tokens, output_tokens, cache_read_tokens=0, cache_write_tokens=0):
    """Return the exact cost of a request in integer micro-dollars (half-up rounding)."""
    total = (
        price.input * input_tokens
        + price.output * output_tokens
        + price.cache_read * cache_read_tokens
        + price.cache_write * cache_write_tokens
    )
    return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))
