"""The analytics page's money in: card payments and code redemptions per period."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from payments import codes
from payments.figures import money_in, money_in_panel
from payments.models import CodeBatch, Order, RedemptionCode

pytestmark = pytest.mark.django_db


def _order(paid_at, price="20.00", currency="usd", credited=True):
    return Order.objects.create(
        token=uuid.uuid4(), sub_key_id=str(uuid.uuid4()), package_name="P", price=Decimal(price), currency=currency,
        amount_minor=2000, credit=Decimal(10), display_multiplier=Decimal(1), amount_usd=Decimal(10),
        state=Order.State.CREDITED if credited else Order.State.PAID, paid_at=paid_at,
        credited_at=paid_at if credited else None,
    )


def test_money_in_counts_payments_by_currency_and_redemptions_within_the_period(owner):
    now = timezone.now()
    _order(now)
    _order(now, price="15.50", currency="eur", credited=False)
    _order(now - datetime.timedelta(days=40))
    codes.create_batch(owner, 2, Decimal(5), CodeBatch.Unit.USD)
    first = RedemptionCode.objects.first()
    RedemptionCode.objects.filter(pk=first.pk).update(state="redeemed", redeemed_at=now, amount_usd=Decimal(5))

    class Period:
        start = (now - datetime.timedelta(days=6)).date()
        end = now.date()

    figures = money_in(Period)
    assert figures.payments == 2 and figures.paid_by_currency == {"EUR": Decimal("15.50"), "USD": Decimal("20.00")}
    assert figures.payments_credited_usd == Decimal(10) and figures.redemptions == 1
    assert figures.credited_usd == Decimal(15)


def test_the_analytics_page_shows_money_in(owner_client):
    _order(timezone.now())
    page = owner_client.get("/dashboard/analytics/").content.decode()
    assert "Money in" in page and "20.00 USD" in page


def test_the_panel_splits_this_period_from_the_one_before_at_midnight_utc(owner):
    from analytics.forms import Period

    today = timezone.now().date()
    period = Period(today - datetime.timedelta(days=6), today)
    midnight = datetime.datetime.combine(period.start, datetime.time(), tzinfo=datetime.UTC)
    _order(midnight, price="20.10")
    _order(midnight - datetime.timedelta(microseconds=1), price="7.25", credited=False)
    _order(midnight - datetime.timedelta(days=7), price="3.33", currency="eur")
    _order(midnight - datetime.timedelta(days=7, microseconds=1))  # before both periods
    refunded = _order(midnight - datetime.timedelta(days=30))
    Order.objects.filter(pk=refunded.pk).update(refunded_at=midnight + datetime.timedelta(hours=1))
    codes.create_batch(owner, 2, Decimal(5), CodeBatch.Unit.USD)
    first, second = RedemptionCode.objects.all()[:2]
    RedemptionCode.objects.filter(pk=first.pk).update(state="redeemed", redeemed_at=midnight, amount_usd=Decimal("5.1234"))
    RedemptionCode.objects.filter(pk=second.pk).update(
        state="redeemed", redeemed_at=midnight - datetime.timedelta(days=1), amount_usd=Decimal(5)
    )

    template_name, panel = money_in_panel(period)

    now, before = panel["now"], panel["before"]
    assert template_name == "payments/_money_in_figures.html"
    assert (now.payments, now.paid_by_currency, now.payments_credited_usd) == (1, {"USD": Decimal("20.10")}, Decimal(10))
    assert (now.refunds, now.redemptions, now.redeemed_usd) == (1, 1, Decimal("5.1234"))
    assert now.credited_usd == Decimal("15.1234")
    assert before.payments == 2 and before.paid_by_currency == {"EUR": Decimal("3.33"), "USD": Decimal("7.25")}
    assert (before.payments_credited_usd, before.refunds, before.redemptions) == (Decimal(10), 0, 1)
    assert money_in(period) == now
