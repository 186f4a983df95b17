"""row_date gives the text Django's date filter gives, in the active time zone, only quicker."""

import datetime
import zoneinfo

import pytest
from django.template import Context, Template
from django.utils import timezone

FORMATS = ["Y-m-d", "Y-m-d H:i:s T", "Y-m-d H:i T", r"Y-m-d\TH:i:sO", "H:i:s", "c", "F Y", "Y-m"]
ZONES = ["UTC", "Asia/Kolkata", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]
MOMENTS = [
    datetime.datetime(2026, 12, 4, 20, 5, 9, tzinfo=datetime.UTC),
    datetime.datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=datetime.UTC),
    # Around clock changes: New York's and Berlin's repeated hour, Lord Howe's half-hour shift.
    datetime.datetime(2026, 11, 1, 5, 30, tzinfo=datetime.UTC),
    datetime.datetime(2026, 11, 1, 6, 30, tzinfo=datetime.UTC),
    datetime.datetime(2026, 10, 25, 0, 30, tzinfo=datetime.UTC),
    datetime.datetime(2026, 10, 25, 1, 30, tzinfo=datetime.UTC),
    datetime.datetime(2026, 4, 4, 14, 45, tzinfo=datetime.UTC),
    datetime.datetime(999, 3, 2, 1, 0, tzinfo=datetime.UTC),
]


def _render(filter_name, value, format_string):
    template = Template("{% load times %}{{ value|" + filter_name + ":format }}")
    return template.render(Context({"value": value, "format": format_string}))


@pytest.mark.parametrize("zone", ZONES)
def test_row_date_says_what_date_says_for_aware_times_in_every_zone(zone):
    with timezone.override(zoneinfo.ZoneInfo(zone)):
        for moment in MOMENTS:
            for format_string in FORMATS:
                assert _render("row_date", moment, format_string) == _render("date", moment, format_string)


def test_row_date_says_what_date_says_for_days_naive_times_and_nothing():
    for format_string in ["Y-m-d", "F Y", "Y-m", r"\Y Y"]:
        day = datetime.date(2026, 2, 3)
        assert _render("row_date", day, format_string) == _render("date", day, format_string)
    for value in [datetime.datetime(2026, 2, 3, 4, 5, 6), None, ""]:
        for format_string in FORMATS:
            assert _render("row_date", value, format_string) == _render("date", value, format_string)
