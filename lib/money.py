"""How the console and the portal show money, counts and durations (``{% load money %}`` in templates).

The policy, in one place:

- ``usd``: amounts people compare (balances, budgets, spend, top-ups, statements, summaries) always
  with 2 decimals, rounded half up, with thousands separators: "$1,865.32". Every figure in a column
  then has the same decimals; the CSS gives money cells tabular figures (``font-variant-numeric``) so
  they line up. A non-zero amount under half a cent reads "<$0.01", never "$0.00": seven requests
  costing $0.003 are not nothing.
- ``exact_usd``: the amount with every decimal it has, at least 2: "$1,865.3215", "$0.000012".
  Pages show amounts with ``money``: ``usd`` text that, wherever it rounds, carries the exact
  amount as its hover title. Confirmations of money someone typed and the audit trail show it
  exactly; a figure the page also shows elsewhere (an available balance) is printed as ``usd``
  there too, so one figure reads the same way everywhere on a page.
- ``usd_cost``: per-request rows only, 6 decimals (the upstream's precision): "$0.202901",
  "$1.500000", so a cost column lines up and adds up.
- Exports (CSV) never use these: they carry the exact Decimal as plain text.
- ``count``: whole numbers with thousands separators: "12,345".
- ``duration``: milliseconds as people read them: "900 ms", "2.1 s", "6 min 10 s", "2 h 5 min".
- The portal shows money in the reseller's unit (branding): ``in_unit`` / ``money_in_unit`` /
  ``cost_in_unit`` follow the same rules with a symbol before the number ("€1,250.00") or a
  word after it ("1,250.00 credits").
"""

import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from lib.markup import format_row

CENTS = Decimal("0.01")
MICRO = Decimal("0.000001")
TENTHS = Decimal("0.1")


def to_decimal(value):
    """The value as a finite Decimal, or None for an empty or unreadable one."""
    if value is None or value == "":
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def plain(value):
    """A Decimal without the zeros a database column pads it with, never in exponent form: 12.500000 -> 12.5."""
    text = f"{value:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return Decimal(text)


def _dollars(value, min_places):
    """"$1,234.5" style text of a Decimal, padded to at least ``min_places`` decimals."""
    whole, _, fraction = f"{abs(value):,f}".partition(".")
    # Zeros past what the amount needs carry no information: $1.5000 reads as $1.50.
    fraction = fraction.rstrip("0").ljust(min_places, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}${whole}.{fraction}"


UNDER_A_CENT = "<$0.01"


def _cents(value):
    """A Decimal in dollars rounded half up to cents: usd's text ("<$0.01" when a non-zero amount rounds to nothing)."""
    rounded = value.quantize(CENTS, rounding=ROUND_HALF_UP)
    if not rounded and value:
        return "-" + UNDER_A_CENT if value < 0 else UNDER_A_CENT
    return _dollars(rounded, 2)


def usd(amount):
    """An amount in US dollars with 2 decimals, rounded half up: 1865.3215 as "$1,865.32"."""
    value = to_decimal(amount)
    return "" if value is None else _cents(value)


def exact_usd(amount):
    """An amount with every decimal it has, at least 2: 0.202901 as "$0.202901", 1135 as "$1,135.00"."""
    value = to_decimal(amount)
    return "" if value is None else _dollars(value, 2)


def usd_cost(amount):
    """A per-request cost with 6 decimals, the upstream's precision: 0.0023 as "$0.002300"."""
    value = to_decimal(amount)
    if value is None:
        return ""
    rounded = value.quantize(MICRO, rounding=ROUND_HALF_UP)
    whole, _, fraction = f"{abs(rounded):,f}".partition(".")
    sign = "-" if rounded < 0 else ""
    return f"{sign}${whole}.{fraction.ljust(6, '0')}"


def money(amount):
    """``usd`` as HTML for a page: when rounding dropped decimals, the exact amount is its hover title."""
    value = to_decimal(amount)
    if value is None:
        return ""
    # usd and exact_usd of the value, read once (pages show dozens of amounts).
    shown = _cents(value)
    exact = _dollars(value, 2)
    if shown == exact:
        return shown
    return format_row('<span class="money" title="{}">{}</span>', exact, shown)


def unit_is_symbol(unit):
    """A currency symbol ("$", "€", "US$") goes before the number; a word ("credits") after it."""
    return any(unicodedata.category(character) == "Sc" for character in unit) or not any(c.isalpha() for c in unit)


def _with_unit(dollars_text, unit):
    """Swap the "$" of a formatted amount for the unit, in the unit's place."""
    sign = "-" if dollars_text.startswith("-") else ""
    text = dollars_text.lstrip("-")
    under = "<" if text.startswith("<") else ""
    number = text.lstrip("<").removeprefix("$")
    if unit_is_symbol(unit):
        return f"{sign}{under}{unit}{number}"
    return f"{sign}{under}{number} {unit}"


def in_unit(amount, unit="$"):
    """``usd`` in a unit: 1250 in "credits" as "1,250.00 credits", in "€" as "€1,250.00"."""
    text = usd(amount)
    return _with_unit(text, unit) if text else ""


def money_in_unit(amount, unit="$"):
    """``money`` in a unit: rounded to 2 decimals, the exact amount as the hover title."""
    shown = in_unit(amount, unit)
    exact = exact_usd(amount)
    exact = _with_unit(exact, unit) if exact else ""
    if shown == exact:
        return shown
    return format_row('<span class="money" title="{}">{}</span>', exact, shown)


def exact_in_unit(amount, unit="$"):
    """``exact_usd`` in a unit, for statements (exact on paper): 0.202901 "credits" as "0.202901 credits"."""
    text = exact_usd(amount)
    return _with_unit(text, unit) if text else ""


def cost_in_unit(amount, unit="$"):
    """``usd_cost`` in a unit: 6 decimals."""
    text = usd_cost(amount)
    return _with_unit(text, unit) if text else ""


def multiplier(value):
    """A display multiplier without padding zeros: 1.5 as "1.5", 4 as "4" (floatformat gives "1.5000")."""
    number = to_decimal(value)
    if number is None:
        return ""
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def count(value):
    """A whole number with thousands separators: 12345 as "12,345"; anything else as it is."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else value


def duration(milliseconds):
    """A duration in milliseconds as people read it: "900 ms", "2.1 s", "6 min 10 s", "2 h 5 min"."""
    try:
        ms = int(milliseconds)
    except (TypeError, ValueError):
        return ""
    if ms < 1000:
        return f"{ms} ms"
    seconds = (Decimal(ms) / 1000).quantize(TENTHS, rounding=ROUND_HALF_UP)
    if seconds < 60:
        return format(seconds, "f").removesuffix(".0") + " s"
    # Whole seconds from here on, cut rather than rounded, as a stopwatch shows them.
    total_seconds = max(ms // 1000, 60)
    if total_seconds < 3600:
        minutes, seconds = divmod(total_seconds, 60)
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(total_seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


DATED_MODEL = re.compile(r"^(?P<name>.+?)-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


def model_alias(model):
    """The name customers send for a dated model name: "claude-sonnet-4-6-20250514" as "claude-sonnet-4-6"."""
    found = DATED_MODEL.match(model or "")
    return found.group("name") if found else (model or "")


def model_cell(model):
    """A log row's model: the name customers send, the dated name the log holds on hover."""
    alias = model_alias(model)
    if alias == model:
        return model or ""
    return format_row('<span title="{}">{}</span>', model, alias)


def is_running_low(remaining, budget):
    """True when less than LOW_BUDGET_THRESHOLD of a budget is left (the console and the portal agree)."""
    return remaining < settings.LOW_BUDGET_THRESHOLD * budget
