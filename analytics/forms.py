"""Query-string forms of the analytics pages. They validate only: no database, no upstream."""

import re
from dataclasses import dataclass
from datetime import date, timedelta

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from lib.forms import BoundedDayField, ExpectedInputMixin

DAY_EXPECTED = _("Enter the day as YYYY-MM-DD, e.g. 2026-10-01.")

# A custom range may span at most two years (731 days covers one leap day).
MAX_RANGE_DAYS = 731
DEFAULT_PERIOD = "30d"
PERIOD_CHOICES = [
    ("7d", _("Last 7 days")),
    ("30d", _("Last 30 days")),
    ("90d", _("Last 90 days")),
    ("this-month", _("This month")),
    ("last-month", _("Last month")),
    ("custom", _("Custom range")),
]
ROLLING_DAYS = {"7d": 7, "30d": 30, "90d": 90}

CLIENT_SORT_COLUMNS = {
    "label": _("Client"),
    "requests": _("Requests"),
    "tokens": _("Tokens"),
    "spend": _("Spend"),
    "billed": _("Billed"),
    "margin": _("Margin"),
}
DEFAULT_CLIENT_SORT = "-billed"
CLIENT_SORT_CHOICES = [
    (f"{prefix}{column}", format_lazy(direction, title=title))
    for column, title in CLIENT_SORT_COLUMNS.items()
    for prefix, direction in (("", _("{title}, ascending")), ("-", _("{title}, descending")))
]

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class Period:
    """UTC days from ``start`` to ``end``, both included."""

    start: date
    end: date

    @property
    def days(self):
        return (self.end - self.start).days + 1

    def previous(self):
        """The period of the same length that ends the day before this one starts."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def each_day(self):
        return [self.start + timedelta(days=offset) for offset in range(self.days)]


def first_of_month(day):
    return day.replace(day=1)


def last_of_month(day):
    return (first_of_month(day) + timedelta(days=32)).replace(day=1) - timedelta(days=1)


def get_period(name, today, start=None, end=None):
    """The days a named period covers, counted back from ``today`` (UTC)."""
    if name in ROLLING_DAYS:
        return Period(today - timedelta(days=ROLLING_DAYS[name] - 1), today)
    if name == "this-month":
        return Period(first_of_month(today), today)
    if name == "last-month":
        end_of_last = first_of_month(today) - timedelta(days=1)
        return Period(first_of_month(end_of_last), end_of_last)
    return Period(start, end)


class PeriodForm(ExpectedInputMixin, forms.Form):
    """The analytics period (a named one or a custom range) and the client table's sort and page."""

    period = forms.ChoiceField(label=_("Period"), required=False, choices=PERIOD_CHOICES)
    start = BoundedDayField(label=_("From"), required=False, help_text=_("UTC day, included."))
    end = BoundedDayField(label=_("To"), required=False, help_text=_("UTC day, included."))
    sort = forms.ChoiceField(label=_("Sort clients by"), required=False, choices=CLIENT_SORT_CHOICES)
    page = forms.IntegerField(required=False, min_value=1, max_value=1_000_000)

    expected = {
        "period": _("Choose one of the periods in the list."),
        "start": DAY_EXPECTED,
        "end": DAY_EXPECTED,
        "sort": _("Choose one of the sort orders in the list."),
        "page": _("A page number from 1 up."),
    }

    def __init__(self, data, *, today):
        # Without a period, dates mean a custom range, and no dates the default period:
        # filled in here so the picker shows what the page shows.
        data = data.copy()
        if not data.get("period"):
            data["period"] = "custom" if data.get("start") or data.get("end") else DEFAULT_PERIOD
        super().__init__(data)
        self.today = today

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        start, end = cleaned.get("start"), cleaned.get("end")
        name = cleaned["period"]
        if name == "custom":
            if not start or not end:
                raise forms.ValidationError(gettext("A custom range needs both a first and a last day."))
            if start > end:
                raise forms.ValidationError(gettext("The range starts after it ends."))
            if end > self.today:
                raise forms.ValidationError(
                    gettext("The range ends in the future: the last day can be %(day)s at most.") % {"day": f"{self.today:%Y-%m-%d}"}
                )
            if (end - start).days + 1 > MAX_RANGE_DAYS:
                raise forms.ValidationError(gettext("The range is longer than two years; choose a shorter one."))
        cleaned["period"] = name
        cleaned["range"] = get_period(name, self.today, start, end)
        cleaned["sort"] = cleaned.get("sort") or DEFAULT_CLIENT_SORT
        cleaned["page"] = cleaned.get("page") or 1
        return cleaned


def parse_month(text):
    """The first day of a "YYYY-MM" month, or None when the text is not one."""
    match = MONTH_PATTERN.match(text)
    if not match:
        return None
    year, month = int(match[1]), int(match[2])
    if not 1 <= month <= 12 or year < 2000:
        return None
    return date(year, month, 1)
