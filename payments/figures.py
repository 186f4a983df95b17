"""Money in per period, for the console's analytics: card payments and code redemptions beside spend and margin."""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Sum

from payments.models import Order, RedemptionCode

ZERO = Decimal(0)
CENTS = Decimal("0.01")


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

    @property
    def is_empty(self):
        return not (self.payments or self.redemptions or self.refunds)


def _bounds(period):
    start = datetime.datetime.combine(period.start, datetime.time(), tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=(period.end - period.start).days + 1)


def money_in(period):
    """Payments paid, refunds made and codes redeemed within the period (three aggregate queries)."""
    start, end = _bounds(period)
    paid = Order.objects.filter(paid_at__gte=start, paid_at__lt=end)
    by_currency = defaultdict(Decimal)
    payments = 0
    for currency, count, total in paid.values_list("currency").annotate(count=Count("pk"), total=Sum("price")).order_by():
        by_currency[currency.upper()] += Decimal(total)
        payments += count
    credited = paid.exclude(credited_at=None).aggregate(total=Sum("amount_usd"))["total"] or ZERO
    refunds = Order.objects.filter(refunded_at__gte=start, refunded_at__lt=end).count()
    redeemed = RedemptionCode.objects.filter(
        state=RedemptionCode.State.REDEEMED, redeemed_at__gte=start, redeemed_at__lt=end
    ).aggregate(count=Count("pk"), total=Sum("amount_usd"))
    # Prices have two decimals; SQLite sums them through floating point.
    paid_by_currency = {currency: total.quantize(CENTS) for currency, total in sorted(by_currency.items())}
    return MoneyIn(
        payments=payments, paid_by_currency=paid_by_currency, payments_credited_usd=Decimal(credited),
        refunds=refunds, redemptions=redeemed["count"], redeemed_usd=Decimal(redeemed["total"] or ZERO),
    )
