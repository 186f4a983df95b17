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
