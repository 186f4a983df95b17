"""Form fields and wording shared by the console and the portal.

Money and counts as people type them (``PlainDecimalField``, ``PositiveMoneyField``), and our
own error wording: Django's stock messages ("This field is required.", "Enter a number.",
"Select a valid choice.") say that something is wrong but not what to type instead, so a
field given one sentence of what it expects answers every stock error with that sentence.
"""

import re
from datetime import date
from decimal import Decimal

from django import forms
from django.conf import settings
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy
from django.utils.translation import gettext_lazy as _
from lib.money import plain, usd

MONEY_DIGITS = 14
MONEY_PLACES = 4

# Counts are typed into text inputs (with a numeric keyboard on phones), like money: a browser
# empties a type=number input holding "abc" before sending it, so the server could only say
# "required" (or, for an optional field, silently use the default) instead of what is wrong.
WHOLE_NUMBER_INPUT = forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "spellcheck": "false"})

PLAIN_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
PLAIN_DECIMAL_MESSAGE = (
    _("Type a plain number such as 25 or 12.50: digits with at most one decimal point, "
    "without signs, spaces, commas, underscores or exponents.")
)


# The codes Django's fields and their validators raise for a missing value or one of the wrong shape or size.
STOCK_ERROR_CODES = (
    "required",
    "invalid",
    "invalid_choice",
    "invalid_list",
    "invalid_pk_value",
    "min_value",
    "max_value",
    "step_size",
    "min_length",
    "max_length",
    "max_digits",
    "max_decimal_places",
    "max_whole_digits",
    "invalid_date",
    "invalid_time",
    "overflow",
    "missing",
    "empty",
    "contradiction",
)


def expecting(message, **overrides):
    """``error_messages`` for a field: ``message`` for every stock error, ``overrides`` by code where it differs."""
    return {**dict.fromkeys(STOCK_ERROR_CODES, message), **overrides}


class ExpectedInputMixin:
    """A form whose fields in ``expected`` (field name: what to type) answer every stock error with that text."""

    expected: dict = {}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A form's fields are deep copies of the class's, so this changes this form's messages only.
        for name, message in self.expected.items():
            self.fields[name].error_messages.update(expecting(message))


class PlainDecimalField(forms.DecimalField):
    """A decimal typed as ASCII digits with one optional point, nothing else.

    Python's Decimal also reads "1e3", "1_000", "+5", ".5" and digits of other
    scripts; for money a person types, each of those is more likely a slip (or
    a trick) than what they meant, so only the plain spelling is accepted.
    """

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false"})

    def prepare_value(self, value):
        # A stored Decimal(50.0000) is shown as typed, "50", never with the column's padding zeros.
        if isinstance(value, Decimal):
            return f"{plain(value):f}"
        return value

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
        kwargs.setdefault("help_text", _("Moved from your available balance to the key. Digits and a point, at most 4 decimals."))
        kwargs.setdefault(
            "error_messages",
            expecting(
                f"Enter the {noun} in dollars, e.g. 25 or 12.50.",
                max_decimal_places=_("Use at most 4 decimals."),
                max_digits=f"That {noun} is too large.",
                max_whole_digits=f"That {noun} is too large.",
            ),
        )
        super().__init__(max_digits=MONEY_DIGITS, decimal_places=MONEY_PLACES, **kwargs)

    def validate(self, value):
        super().validate(value)
        if value is not None and value <= 0:
            raise forms.ValidationError(_("The %(noun)s must be more than $0.") % {"noun": self.noun})
        if value is not None and value > settings.MAX_KEY_BUDGET:
            raise forms.ValidationError(
                _("The %(noun)s must be at most %(limit)s, the most one move may add; split a larger amount.") % {"noun": self.noun, "limit": usd(settings.MAX_KEY_BUDGET)}
            )

class DayInput(forms.DateInput):
    """A date picker (``type=date``) that leaves out a typed value that is no real day.

    A date input may only hold YYYY-MM-DD of a real day: sent back with "2026-13-40" the page
    is invalid HTML and the browser shows the field empty anyway; the error message says what was wrong.
    """

    input_type = "date"

    def format_value(self, value):
        if isinstance(value, str):
            try:
                date.fromisoformat(value)
            except ValueError:
                return None
        return super().format_value(value)


# Days a filter, a period or a date in a form may name. Outside them no data can exist, and
# date arithmetic near the ends of the calendar (year 1, year 9999) overflows.
EARLIEST_DAY = date(2000, 1, 1)
LATEST_DAY = date(2100, 12, 31)
DAY_RANGE_MESSAGE = format_lazy(
    gettext_lazy("Choose a day between {earliest} and {latest}."),
    earliest=f"{EARLIEST_DAY:%Y-%m-%d}",
    latest=f"{LATEST_DAY:%Y-%m-%d}",
)


class BoundedDayField(forms.DateField):
    """A UTC day (YYYY-MM-DD) from EARLIEST_DAY to LATEST_DAY, in a date picker."""

    widget = DayInput

    def validate(self, value):
        super().validate(value)
        if value is not None and not EARLIEST_DAY <= value <= LATEST_DAY:
            raise forms.ValidationError(DAY_RANGE_MESSAGE, code="out_of_range")


def describe_refused_export(query_form):
    """Why a CSV export of a filter that was not understood is refused (a 400's message), naming each field."""
    problems = " ".join(f"{field.label}: {error}" for field in query_form for error in field.errors)
    return f"{gettext_lazy('The export was not made, as some filters were not understood.')} {problems}"
