"""Card payments against localstripe and the live simulator: orders, the payment page, crediting once, receipts, limits."""

import datetime
import uuid
from decimal import Decimal

import pytest

from ledger.models import Outcome, TopUp
from derouter import client as derouter_client
from payments import orders
from payments.models import Order
from lib.stored_text import read_in_english
from tests.helpers import budget_of
from tests.payment_helpers import BUY_URL, buy, pay, portal_for, set_up_card_payments

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(make_key):
    created = make_key("1", label="Acme Corp")
    yield created
    try:
        derouter_client.delete_sub_key(created.id)
    except derouter_client.NotFound:
        pass


def test_a_customer_buys_a_package_and_the_return_page_credits_it_once(key, localstripe, settings):
    secret_key, _, package = set_up_card_payments(credit="10", price="20.00")
    portal = portal_for(key)
    assert "Starter" in portal.get(BUY_URL).content.decode()
    order = buy(portal, package)
    assert order.state == Order.State.CREATED and order.amount_minor == 2000 and order.amount_usd == Decimal("10")
    page = portal.get(f"{BUY_URL}{order.token}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert f'src="{settings.STRIPE_JS_URL}"' in body and "payment-element" in body
    policy = page["Content-Security-Policy"]
    assert settings.STRIPE_JS_URL in policy.split("script-src")[1].split(";")[0]
    assert secret_key not in body
    intent = pay(secret_key, order)
    assert intent.status == "succeeded"
    for _ in range(3):
        response = portal.get(f"{BUY_URL}{order.token}/return/", follow=True)
    assert "your key was credited" in response.content.decode()
    order.refresh_from_db()
    assert order.state == Order.State.CREDITED and order.receipt_number is not None
    assert budget_of(key.id) == Decimal("11")
    topup = TopUp.objects.get()
    assert topup.outcome == Outcome.OK and read_in_english(topup.note).startswith("card payment, receipt #")


def test_the_receipt_carries_the_number_and_the_sellers_details(key, localstripe):
    from branding.models import Branding

    Branding(product_name="Acme AI", legal_name="Acme AI Ltd", postal_address="1 Main St\nSpringfield", tax_id="DE123").save()
    secret_key, _, package = set_up_card_payments()
    portal = portal_for(key)
    order = buy(portal, package)
    assert portal.get(f"{BUY_URL}{order.token}/receipt/").status_code == 404
    pay(secret_key, order)
    portal.get(f"{BUY_URL}{order.token}/return/")
    order.refresh_from_db()
    receipt = portal.get(f"{BUY_URL}{order.token}/receipt/").content.decode()
    for text in (f"Receipt #{order.receipt_number}", "Acme AI Ltd", "Springfield", "DE123", "20.00 USD"):
        assert text in receipt
    second = buy(portal, package)
    pay(secret_key, second)
    portal.get(f"{BUY_URL}{second.token}/return/")
    second.refresh_from_db()
    assert second.receipt_number == order.receipt_number + 1


def test_another_keys_order_is_not_found(key, make_key, localstripe):
    _, _, package = set_up_card_payments()
    order = buy(portal_for(key), package)
    other = make_key("1", label="Other")
    try:
        stranger = portal_for(other)
        for suffix in ("", "return/", "receipt/"):
            assert stranger.get(f"{BUY_URL}{order.token}/{suffix}").status_code == 404
    finally:
        derouter_client.delete_sub_key(other.id)


def test_the_daily_limit_per_key_refuses_more_orders(key, localstripe):
    _, _, package = set_up_card_payments(daily_orders_per_key=1)
    portal = portal_for(key)
    buy(portal, package)
    response = portal.post(BUY_URL, {"package": package.pk})
    assert response.status_code == 429 and "orders a day" in response.content.decode()
    assert Order.objects.count() == 1


def test_a_package_the_available_balance_cannot_fund_is_refused(key, localstripe):
    available = derouter_client.get_balance().available
    _, _, package = set_up_card_payments(credit=str(available + 1))
    response = portal_for(key).post(BUY_URL, {"package": package.pk})
    assert response.status_code == 409 and "cannot be bought right now" in response.content.decode()
    assert not Order.objects.exists()


def test_nothing_is_offered_until_an_owner_turns_card_payments_on(key, localstripe):
    portal = portal_for(key)
    assert "not offered here" in portal.get(BUY_URL).content.decode()
    assert portal.post(BUY_URL, {"package": "1"}).status_code == 400


def test_a_credit_derouter_refused_is_retried_by_the_job(key, localstripe, simulator):
    secret_key, _, package = set_up_card_payments()
    portal = portal_for(key)
    order = buy(portal, package)
    pay(secret_key, order)
    simulator.inject("error", path="/sub-keys/", method="PUT", status=400)
    portal.get(f"{BUY_URL}{order.token}/return/")
    order.refresh_from_db()
    assert order.state == Order.State.FAILED and order.credit_attempts == 1
    simulator.clear_faults()
    Order.objects.filter(pk=order.pk).update(paid_at=order.paid_at - datetime.timedelta(minutes=5))
    assert orders.check_stuck_orders()["credited"] == 1
    order.refresh_from_db()
    assert order.state == Order.State.CREDITED and budget_of(key.id) == Decimal("11")
    assert TopUp.objects.filter(outcome=Outcome.OK).count() == 1


def test_the_job_credits_a_payment_nobody_came_back_from(key, localstripe):
    secret_key, _, package = set_up_card_payments()
    order = buy(portal_for(key), package)
    pay(secret_key, order)
    Order.objects.filter(pk=order.pk).update(created_at=order.created_at - datetime.timedelta(minutes=11))
    orders.check_stuck_orders()
    order.refresh_from_db()
    assert order.state == Order.State.CREDITED and budget_of(key.id) == Decimal("11")


def test_the_job_expires_an_order_left_unpaid(key, localstripe, settings):
    _, _, package = set_up_card_payments()
    order = buy(portal_for(key), package)
    Order.objects.filter(pk=order.pk).update(created_at=order.created_at - datetime.timedelta(days=2))
    assert orders.check_stuck_orders()["expired"] == 1
    order.refresh_from_db()
    assert order.state == Order.State.EXPIRED


def test_derouter_down_leaves_the_order_paid_and_the_job_credits_it_later(key, localstripe, simulator):
    secret_key, _, package = set_up_card_payments()
    portal = portal_for(key)
    order = buy(portal, package)
    pay(secret_key, order)
    # derouter does not answer reads: neither the key nor the account's balance can be read before the top-up.
    for path in ("/sub-key", "/balance"):
        simulator.inject("error", path=path, method="GET", status=503, times=20)
    portal.get(f"{BUY_URL}{order.token}/return/")
    order.refresh_from_db()
    assert order.state == Order.State.PAID and not TopUp.objects.exists()
    simulator.clear_faults()
    assert "being credited" in portal.get(f"{BUY_URL}{order.token}/").content.decode()
    orders.check_stuck_orders()
    order.refresh_from_db()
    assert order.state == Order.State.CREDITED and budget_of(key.id) == Decimal("11")


def test_a_crash_between_paid_and_credited_neither_loses_nor_doubles_the_credit(key, localstripe):
    secret_key, _, package = set_up_card_payments()
    portal = portal_for(key)
    order = buy(portal, package)
    intent = pay(secret_key, order).to_dict()
    # The process recorded the payment, then died before crediting.
    orders.record_payment(order, intent)
    assert Order.objects.get().state == Order.State.PAID
    # The job, the return page and a second job run all finish it: one credit.
    orders.check_stuck_orders()
    portal.get(f"{BUY_URL}{order.token}/return/")
    orders.check_stuck_orders()
    assert Order.objects.get().state == Order.State.CREDITED
    assert TopUp.objects.count() == 1 and budget_of(key.id) == Decimal("11")


def test_an_order_whose_unknown_credit_landed_before_its_key_was_deleted_is_credited(key, simulator, owner):
    """Found by the money harness: the key's delete settled the credit as landed, then a second delivery failed the order."""
    from dashboard import keywrites

    order = Order.objects.create(
        token=uuid.uuid4(), sub_key_id=key.id, key_label=key.label, key_id_short=key.key_id, package_name="Starter",
        price=Decimal("20.00"), currency="usd", amount_minor=2000, credit=Decimal("10"), display_multiplier=Decimal(1),
        amount_usd=Decimal("10"), payment_intent_id="pi_landed_then_deleted",
    )
    intent = {"id": order.payment_intent_id, "status": "succeeded", "amount": 2000, "currency": "usd",
              "metadata": {"order": str(order.token)}}
    simulator.inject("applied-then-drop", path="/sub-keys/", method="PUT")
    assert orders.fulfil(order, intent).state == Order.State.PAID  # the credit's outcome is unknown
    listed = next(sub_key for sub_key in derouter_client.list_sub_keys() if sub_key.id == key.id)
    assert keywrites.delete_key(owner, listed).is_ok  # its moves settled first: the credit landed

    order = orders.fulfil(order, intent)  # the webhook and the return page both come

    assert order.state == Order.State.CREDITED
    assert order.topup.outcome == Outcome.OK and order.topup.amount == Decimal("10")
