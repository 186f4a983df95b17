"""Reading the answers of plain SQL statements alike on SQLite and PostgreSQL.

Some pages run a statement of their own, built once per process, where Django would take
longer to build the query than the database to run it. Without the ORM's converters the
two databases answer differently: SQLite sums decimals through floating point and gives
dates and times as text, PostgreSQL gives Decimals, dates and aware datetimes.
"""

import datetime
from decimal import Decimal

from django.utils.dateparse import parse_datetime

ZERO = Decimal(0)


def placeholders(count):
    """``count`` parameter marks for a statement's list of values: "%s, %s, %s"."""
    return ", ".join(["%s"] * count)


def decimal_sum(total, places):
    """A sum of a decimal column as a Decimal of the column's places (None, a sum of no rows, is zero).

    SQLite's float is read through its shortest text, which is what was summed, not its
    binary expansion.
    """
    if total is None:
        return ZERO.quantize(places)
    return Decimal(str(total) if isinstance(total, float) else total).quantize(places)


def to_date(value):
    """A DateField's value as the database answered it (text on SQLite)."""
    return datetime.date.fromisoformat(value) if isinstance(value, str) else value


def to_moment(value):
    """A DateTimeField's value as an aware UTC datetime (naive UTC text on SQLite), or None."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value
