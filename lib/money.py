"""Money as people read it: parse anything to a Decimal, format dollars and multipliers.

Used by templates (through the ``money`` filters), messages, the audit trail and
the ledger, so an amount reads the same wherever it appears.
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings

FOUR_PLACES = Decimal("0.0001")


def to_decimal(value):
    """The value as a finite Decimal, or None for an empty or unreadable one."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _dollars(value, min_places):
    """"$1,234.5" style text of a Decimal, padded to at least ``min_places`` decimals."""
    whole, _, fraction = f"{abs(value):,f}".partition(".")
    # Zeros past what the amount needs carry no information: $1.5000 reads as $1.50.
    fraction = fraction.rstrip("0").ljust(min_places, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}${whole}.{fraction}"


def usd(amount):
    """An amount as US dollars: thousands separators, 2 decimals, up to 4 when they matter."""
    value = to_decimal(amount)
    if value is None:
        return ""
    return _dollars(value.quantize(FOUR_PLACES, rounding=ROUND_HALF_UP), 2)


def exact_usd(amount):
    """A per-request cost exactly, with at least 4 decimals: 0.202901 as "$0.202901".

    ``usd`` rounds to 4 places, which is right for balances but hides part of
    a request's cost (the upstream sends six decimals), so rows stop adding up.
    """
    value = to_decimal(amount)
    return "" if value is None else _dollars(value, 4)


def multiplier(value):
    """A display multiplier without padding zeros: 1.5 as "1.5", 4 as "4" (floatformat gives "1.5000")."""
    number = to_decimal(value)
    if number is None:
        return ""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def is_running_low(remaining, budget):
    """True when less than LOW_BUDGET_THRESHOLD of a budget is left (the console and the portal agree)."""
    return remaining < settings.LOW_BUDGET_THRESHOLD * budget
