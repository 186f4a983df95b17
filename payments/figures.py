"""Money in per period, for the console's analytics: card payments and code redemptions beside spend and margin."""

import datetime
import functools
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection

from lib.sql import decimal_sum
from payments.models import Order, RedemptionCode

ZERO = Decimal(0)
CENTS = Decimal("0.01")
# The places of Order.amount_usd and RedemptionCode.amount_usd.
USD_PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class MoneyIn:
    """What came in over a period (UTC days): payments by currency, and the USD that payments and codes put on keys."""

    payments: int = 0
    paid_by_currency: dict = field(default_factory=dict)
    payments_credited_usd: Decimal = ZERO
    refunds: int = 0
    redemptions: int = 0
    redeemed_usd: Decimal = ZERO

    @property
    def credited_usd(self):
        return self.payments_credited_usd + self.redeemed_usd


@functools.cache
def _statements():
    """The statements of ``_sums`` (paid orders, refunds, redemptions), each grouped by ``moment >= split``.

    Plain SQL, the same on SQLite and PostgreSQL: built by the ORM as a dozen filtered sums,
    they took Django far longer to build than the database to run, on every analytics page.
    """
    orders = connection.ops.quote_name(Order._meta.db_table)
    codes = connection.ops.quote_name(RedemptionCode._meta.db_table)
    return (
        "SELECT currency, paid_at >= %s, COUNT(*), SUM(price), SUM(CASE WHEN credited_at IS NOT NULL THEN amount_usd END)"
        f" FROM {orders} WHERE paid_at >= %s AND paid_at < %s GROUP BY 1, 2",
        f"SELECT refunded_at >= %s, COUNT(*) FROM {orders}"
        " WHERE paid_at IS NOT NULL AND refunded_at >= %s AND refunded_at < %s GROUP BY 1",
        f"SELECT redeemed_at >= %s, COUNT(*), SUM(amount_usd) FROM {codes}"
        " WHERE state = %s AND redeemed_at >= %s AND redeemed_at < %s GROUP BY 1",
    )


def _moment(day):
    """The start of a UTC day, as the database compares it with a DateTimeField."""
    return connection.ops.adapt_datetimefield_value(datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC))


def _sums(first_day, split_day, last_day):
    """(MoneyIn of the days from ``first_day`` to before ``split_day``, MoneyIn from ``split_day`` to ``last_day``)."""
    split, start, end = _moment(split_day), _moment(first_day), _moment(last_day + datetime.timedelta(days=1))
    paid_sql, refunds_sql, codes_sql = _statements()
    # Keyed by "on or after the split", as the statements group their rows.
    figures = {later: defaultdict(int) for later in (False, True)}
    paid = {later: defaultdict(Decimal) for later in (False, True)}
    with connection.cursor() as cursor:
        cursor.execute(paid_sql, [split, start, end])
        for currency, later, payments, price_total, credited in cursor.fetchall():
            paid[bool(later)][currency.upper()] += decimal_sum(price_total, CENTS)
            figures[bool(later)]["payments"] += payments
            figures[bool(later)]["payments_credited_usd"] += decimal_sum(credited, USD_PLACES)
        cursor.execute(refunds_sql, [split, start, end])
        for later, refunds in cursor.fetchall():
            figures[bool(later)]["refunds"] = refunds
        cursor.execute(codes_sql, [split, RedemptionCode.State.REDEEMED.value, start, end])
        for later, redemptions, redeemed in cursor.fetchall():
            figures[bool(later)]["redemptions"] = redemptions
            figures[bool(later)]["redeemed_usd"] = decimal_sum(redeemed, USD_PLACES)
    return tuple(
        MoneyIn(
            payments=figures[later]["payments"],
            paid_by_currency=dict(sorted(paid[later].items())),
            payments_credited_usd=figures[later]["payments_credited_usd"] or ZERO,
            refunds=figures[later]["refunds"],
            redemptions=figures[later]["redemptions"],
            redeemed_usd=figures[later]["redeemed_usd"] or ZERO,
        )
        for later in (False, True)
    )


def money_in(period):
    """Payments paid, refunds made and codes redeemed within the period."""
    return _sums(period.start, period.start, period.end)[1]


def money_in_panel(period):
    """The analytics page's money-in panel: this period and the one before (three queries for both)."""
    before, now = _sums(period.previous().start, period.start, period.end)
    return "payments/_money_in_figures.html", {"now": now, "before": before}
