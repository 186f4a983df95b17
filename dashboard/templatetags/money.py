"""Template filters for money: ``{% load money %}{{ amount|usd }}`` shows "$1,234.50"."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()

FOUR_PLACES = Decimal("0.0001")


@register.filter
def usd(amount):
    """Format an amount as US dollars: thousands separators, 2 decimals, up to 4 when they matter."""
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(str(amount)).quantize(FOUR_PLACES, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return ""
    whole, fraction = f"{abs(value):,.4f}".split(".")
    # Zeros past the cents carry no information: $1.5000 reads as $1.50.
    fraction = fraction.rstrip("0").ljust(2, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}${whole}.{fraction}"


@register.filter
def exact_usd(amount):
    """Format a per-request cost exactly, with at least 4 decimals: 0.202901 as "$0.202901".

    ``usd`` rounds to 4 places, which is right for balances but hides part of
    a request's cost (the upstream sends six decimals), so rows stop adding up.
    """
    if amount is None or amount == "":
        return ""
    try:
        value = Decimal(str(amount))
    except (InvalidOperation, ValueError):
        return ""
    if not value.is_finite():
        return ""
    whole, _, fraction = f"{abs(value):,f}".partition(".")
    fraction = fraction.rstrip("0").ljust(4, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}${whole}.{fraction}"


@register.filter
def multiplier(value):
    """A display multiplier without padding zeros: 1.5 as "1.5", 4 as "4" (floatformat gives "1.5000")."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return ""
    if not number.is_finite():
        return ""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
