"""Template filters for money: ``{% load money %}{{ amount|usd }}`` shows "$1,234.50"."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()

FOUR_PLACES = Decimal("0.0001")


def _to_decimal(value):
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


@register.filter
def usd(amount):
    """Format an amount as US dollars: thousands separators, 2 decimals, up to 4 when they matter."""
    value = _to_decimal(amount)
    if value is None:
        return ""
    return _dollars(value.quantize(FOUR_PLACES, rounding=ROUND_HALF_UP), 2)


@register.filter
def exact_usd(amount):
    """Format a per-request cost exactly, with at least 4 decimals: 0.202901 as "$0.202901".

    ``usd`` rounds to 4 places, which is right for balances but hides part of
    a request's cost (the upstream sends six decimals), so rows stop adding up.
    """
    value = _to_decimal(amount)
    return "" if value is None else _dollars(value, 4)


@register.filter
def multiplier(value):
    """A display multiplier without padding zeros: 1.5 as "1.5", 4 as "4" (floatformat gives "1.5000")."""
    number = _to_decimal(value)
    if number is None:
        return ""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
