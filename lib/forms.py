"""Our own error wording for form fields: every error says what the field expects.

Django's stock messages ("This field is required.", "Enter a number.", "Select a valid
choice.") say that something is wrong but not what to type instead. A field given one
sentence of what it expects answers every stock error with that sentence.
"""

from datetime import date

from django import forms

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
