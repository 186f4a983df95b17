"""Form fields shared by the console and the portal: money and counts as people type them."""

import re

from django import forms
from django.conf import settings

MONEY_DIGITS = 14
MONEY_PLACES = 4

# Counts are typed into text inputs (with a numeric keyboard on phones), like money: a browser
# empties a type=number input holding "abc" before sending it, so the server could only say
# "required" (or, for an optional field, silently use the default) instead of what is wrong.
WHOLE_NUMBER_INPUT = forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "spellcheck": "false"})

PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
PLAIN_DECIMAL_MESSAGE = (
    "Type a plain number such as 25 or 12.50: digits with at most one decimal point, "
    "without signs, spaces, commas, underscores or exponents."
)


class PlainDecimalField(forms.DecimalField):
    """A decimal typed as ASCII digits with one optional point, nothing else.

    Python's Decimal also reads "1e3", "1_000", "+5", ".5" and digits of other
    scripts; for money a person types, each of those is more likely a slip (or
    a trick) than what they meant, so only the plain spelling is accepted.
    """

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false"})

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if not PLAIN_DECIMAL.fullmatch(text):
            raise forms.ValidationError(PLAIN_DECIMAL_MESSAGE, code="invalid")
        return super().to_python(text)


class PositiveMoneyField(PlainDecimalField):
    """USD moved from the available balance to a key: more than $0, at most 4 decimals, at most MAX_KEY_BUDGET."""

    def __init__(self, *, noun, **kwargs):
        self.noun = noun
        kwargs.setdefault("help_text", "Moved from your available balance to the key. Digits and a point, at most 4 decimals.")
        kwargs.setdefault(
            "error_messages",
            {
                "required": f"Enter the {noun} in dollars, e.g. 25 or 12.50.",
                "max_decimal_places": "Use at most 4 decimals.",
                "max_digits": f"That {noun} is too large.",
                "max_whole_digits": f"That {noun} is too large.",
            },
        )
        super().__init__(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs)

    def validate(self, value):
        super().validate(value)
        if value is not None and value <= 0:
            raise forms.ValidationError(f"The {self.noun} must be more than $0.")
        if value is not None and value > settings.MAX_KEY_BUDGET:
            raise forms.ValidationError(
                f"The {self.noun} must be at most ${settings.MAX_KEY_BUDGET:,}; split a larger amount or raise MAX_KEY_BUDGET."
            )
