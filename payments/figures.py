"""Money in per period, for the console's analytics: card payments and code redemptions beside spend and margin."""

import datetime
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q, Sum

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


def _bounds(period):
    start = datetime.datetime.combine(period.start, datetime.time(), tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=(period.end - period.start).days + 1)


def _sums(periods):
    """{name: MoneyIn} for named periods, in two queries whatever their number (one over orders, one over codes)."""
    order_sums, code_sums = {}, {}
    for name, period in periods.items():
        start, end = _bounds(period)
        paid = Q(paid_at__gte=start, paid_at__lt=end)
        order_sums |= {
            f"{name}_payments": Count("pk", filter=paid),
            f"{name}_paid": Sum("price", filter=paid),
            f"{name}_credited": Sum("amount_usd", filter=paid & Q(credited_at__isnull=False)),
            f"{name}_refunds": Count("pk", filter=Q(refunded_at__gte=start, refunded_at__lt=end)),
        }
        code_sums |= {
            f"{name}_redemptions": Count("pk", filter=Q(redeemed_at__gte=start, redeemed_at__lt=end)),
            f"{name}_redeemed": Sum("amount_usd", filter=Q(redeemed_at__gte=start, redeemed_at__lt=end)),
        }
    by_currency = Order.objects.exclude(paid_at=None).values("currency").annotate(**order_sums).order_by()
    redeemed = RedemptionCode.objects.filter(state=RedemptionCode.State.REDEEMED).aggregate(**code_sums)
    figures = {}
    for name in periods:
        paid, payments, credited, refunds = defaultdict(Decimal), 0, ZERO, 0
        for row in by_currency:
            if row[f"{name}_payments"]:
                paid[row["currency"].upper()] += Decimal(row[f"{name}_paid"])
            payments += row[f"{name}_payments"]
            credited += Decimal(row[f"{name}_credited"] or 0)
            refunds += row[f"{name}_refunds"]
        figures[name] = MoneyIn(
            payments=payments,
            # Prices have two decimals; SQLite sums them through floating point.
            paid_by_currency={currency: total.quantize(CENTS) for currency, total in sorted(paid.items())},
            payments_credited_usd=credited,
            refunds=refunds,
            redemptions=redeemed[f"{name}_redemptions"],
            redeemed_usd=Decimal(redeemed[f"{name}_redeemed"] or 0),
        )
    return figures


def money_in(period):
    """Payments paid, refunds made and codes redeemed within the period."""
    return _sums({"period": period})["period"]


def money_in_panel(period):
    """The analytics page's money-in panel: this period and the one before (two queries)."""
    figures = _sums({"now": period, "before": period.previous()})
    return "payments/_money_in_figures.html", figures
