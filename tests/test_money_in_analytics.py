"""The analytics page's money in: card payments and code redemptions per period."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from payments import codes
from payments.figures import money_in
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
