"""Money in, three ways: Stripe's payments and refunds <-> orders and codes <-> ledger rows, with a one-click retry."""

import datetime
import uuid
from decimal import Decimal

import pytest

from ledger.models import Outcome, TopUp
from derouter import client as derouter_client
from payments import orders, reconcile
from payments.models import MoneyInProblem, Order
from tests.helpers import budget_of, free_port
from tests.payment_helpers import buy, pay, portal_for, set_up_card_payments, stripe_client

pytestmark = pytest.mark.django_db
Kind = MoneyInProblem.Kind


@pytest.fixture
def key(make_key):
    created = make_key("1", label="Acme Corp")
    yield created
    try:
        derouter_client.delete_sub_key(created.id)
    except derouter_client.NotFound:
        pass


def _kinds(check):
    return sorted(problem.kind for problem in check.problems.all())


def _age(order, minutes=20):
    delta = datetime.timedelta(minutes=minutes)
    Order.objects.filter(pk=order.pk).update(created_at=order.created_at - delta)
    if order.paid_at:
        Order.objects.filter(pk=order.pk).update(paid_at=order.paid_at - delta)


def test_a_payment_stripe_took_but_nobody_credited_is_listed_and_retried_in_one_click(key, localstripe, owner_client):
    secret_key, _, package = set_up_card_payments()
    order = buy(portal_for(key), package)
    pay(secret_key, order)
    _age(order)
    check = reconcile.check()
    assert check.stripe_asked and check.payments_checked >= 1
    problem = check.problems.get()
    assert problem.kind == Kind.PAID_NOT_CREDITED and problem.can_retry and problem.amount_usd == Decimal("10")
    page = owner_client.get("/dashboard/reconciliation/").content.decode()
    assert "Paid, not credited" in page and "Retry the credit" in page
    response = owner_client.post(f"/dashboard/money-in/orders/{order.pk}/retry/", {"next": "/dashboard/reconciliation/"})
    assert response.status_code == 302 and response["Location"] == "/dashboard/reconciliation/"
    assert Order.objects.get().state == Order.State.CREDITED and budget_of(key.id) == Decimal("11")
    assert _kinds(reconcile.check()) == []


def test_a_credit_no_order_or_code_accounts_for_is_listed(key):
    TopUp.objects.create(
        token=uuid.uuid4(), actor=None, actor_name="card payment", sub_key_id=key.id, key_label="Acme Corp",
        amount=Decimal("5"), note="card payment, receipt #99", outcome=Outcome.OK,
    )
    problem = reconcile.check().problems.get()
    assert problem.kind == Kind.CREDIT_WITHOUT_PAYMENT and problem.amount_usd == Decimal("5")


def test_a_refund_made_at_stripe_but_not_recorded_here_is_listed(key, localstripe):
    secret_key, _, package = set_up_card_payments()
    portal = portal_for(key)
    order = buy(portal, package)
    pay(secret_key, order)
    portal.get(f"/portal/pay/{order.token}/return/")
    stripe_client(secret_key).v1.refunds.create(params={"payment_intent": order.payment_intent_id})
    assert _kinds(reconcile.check()) == [Kind.REFUND_NOT_RECORDED]


def test_a_refunded_order_whose_credit_stayed_on_the_key_is_listed(key, localstripe):
    secret_key, _, package = set_up_card_payments()
    portal = portal_for(key)
    order = buy(portal, package)
    pay(secret_key, order)
    portal.get(f"/portal/pay/{order.token}/return/")
    orders.refund(Order.objects.get(), None)
    problem = reconcile.check().problems.get()
    assert problem.kind == Kind.REFUND_NOT_TAKEN_BACK and problem.amount_usd == Decimal("10")


def test_stripe_down_is_said_and_the_rest_still_checked(key, localstripe, settings):
    set_up_card_payments()
    TopUp.objects.create(
        token=uuid.uuid4(), actor=None, actor_name="redemption code", sub_key_id=key.id, amount=Decimal("2"),
        note="code …ABCD", outcome=Outcome.OK,
    )
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    settings.STRIPE_NETWORK_RETRIES = 0
    check = reconcile.check()
    assert not check.stripe_asked and "Stripe could not be read" in check.error
    assert _kinds(check) == [Kind.CREDIT_WITHOUT_PAYMENT]


def test_staff_cannot_ask_for_a_check(staff_client):
    assert staff_client.post("/dashboard/money-in/check/").status_code == 403


def test_an_owner_asks_for_a_check(owner_client):
    response = owner_client.post("/dashboard/money-in/check/")
    assert response.status_code == 302
    # Tasks run at once in the tests.
    assert reconcile.latest() is not None and reconcile.latest().requested_by == "olivia"
