"""Stripe's webhook against localstripe: signed events only, each credit once, whatever arrives and however often."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from ledger.models import AuditEvent, TopUp
from derouter import client as derouter_client
from payments.models import Order, StripeEvent
from lib.stored_text import read_in_english
from tests.helpers import budget_of, eventually
from tests.payment_helpers import WEBHOOK_URL, buy, pay, portal_for, set_up_card_payments, stripe_client
from tests.stripe_helpers import signed_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(make_key):
    created = make_key("1", label="Acme Corp")
    yield created
    try:
        derouter_client.delete_sub_key(created.id)
    except derouter_client.NotFound:
        pass


@pytest.fixture
def paid_order(key, localstripe):
    """An order paid at localstripe, its key not credited yet; (order, secret key, webhook secret, the PaymentIntent)."""
    secret_key, webhook_secret, package = set_up_card_payments(credit="10", price="20.00")
    order = buy(portal_for(key), package)
    intent = pay(secret_key, order).to_dict()
    return order, secret_key, webhook_secret, intent


def _deliver(body, signature, client=None):
    headers = {"Stripe-Signature": signature} if signature else {}
    return (client or Client()).post(WEBHOOK_URL, body, content_type="application/json", headers=headers)


def test_a_signed_payment_event_credits_the_order_once(paid_order, key):
    order, _, webhook_secret, intent = paid_order
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret)
    assert _deliver(body, signature).status_code == 200
    order.refresh_from_db()
    assert order.state == Order.State.CREDITED and budget_of(key.id) == Decimal("11")
    # Replayed: the same event id is not acted on again; a new event of the same payment credits nothing either.
    assert _deliver(body, signature).json() == {"received": True, "duplicate": True}
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret)
    assert _deliver(body, signature).status_code == 200
    assert TopUp.objects.count() == 1 and budget_of(key.id) == Decimal("11")


@pytest.mark.parametrize("signature", [None, "t=1,v1=deadbeef", "forged"])
def test_unsigned_or_forged_events_are_refused_and_credit_nothing(paid_order, key, signature):
    order, _, _, intent = paid_order
    if signature == "forged":
        body, signature = signed_event("payment_intent.succeeded", intent, "whsec_not_ours")
    else:
        body, _ = signed_event("payment_intent.succeeded", intent, "whsec_not_ours")
    assert _deliver(body, signature).status_code == 400
    order.refresh_from_db()
    assert order.state == Order.State.CREATED and not TopUp.objects.exists() and not StripeEvent.objects.exists()


def test_an_old_signature_is_refused_as_a_replay(paid_order):
    _, _, webhook_secret, intent = paid_order
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret, timestamp=int(time.time()) - 3600)
    assert _deliver(body, signature).status_code == 400
    assert not TopUp.objects.exists()


def test_without_a_webhook_secret_no_event_is_accepted(paid_order):
    from payments.models import StripeSettings

    order, _, webhook_secret, intent = paid_order
    StripeSettings.objects.filter(pk=1).update(webhook_secret_encrypted="")
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret)
    assert _deliver(body, signature).status_code == 400
    assert not TopUp.objects.exists()


def test_an_event_for_another_amount_currency_or_order_credits_nothing(paid_order, key):
    order, _, webhook_secret, intent = paid_order
    for changed in ({"amount": 100}, {"currency": "eur"}, {"metadata": {**intent["metadata"], "order": "0" * 32}},
                    {"id": "pi_someone_elses"}, {"status": "processing"}):
        body, signature = signed_event("payment_intent.succeeded", {**intent, **changed}, webhook_secret)
        assert _deliver(body, signature).status_code == 200
    order.refresh_from_db()
    assert order.state == Order.State.CREATED and not TopUp.objects.exists()
    assert budget_of(key.id) == Decimal("1")


def test_an_event_for_another_stripe_account_is_refused(paid_order):
    from payments.models import StripeSettings

    _, _, webhook_secret, intent = paid_order
    StripeSettings.objects.filter(pk=1).update(account_id="acct_ours")
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret, account="acct_theirs")
    assert _deliver(body, signature).status_code == 400
    assert not TopUp.objects.exists()


def test_a_refund_that_arrives_before_the_payment_means_it_is_never_credited(paid_order, key):
    order, _, webhook_secret, intent = paid_order
    charge = {"id": "ch_x", "object": "charge", "payment_intent": intent["id"], "amount": 2000,
              "amount_refunded": 2000, "refunded": True, "refunds": {"data": [{"id": "re_x"}]}}
    body, signature = signed_event("charge.refunded", charge, webhook_secret)
    assert _deliver(body, signature).status_code == 200
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret)
    assert _deliver(body, signature).status_code == 200
    order.refresh_from_db()
    assert order.state == Order.State.REFUNDED and not TopUp.objects.exists()
    assert AuditEvent.objects.filter(action=AuditEvent.Action.REFUND).exists()


def test_a_charge_refunded_event_marks_a_credited_order_refunded_and_says_what_stays(paid_order, key):
    order, _, webhook_secret, intent = paid_order
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret)
    _deliver(body, signature)
    charge = {"id": "ch_x", "object": "charge", "payment_intent": intent["id"], "amount": 2000,
              "amount_refunded": 2000, "refunded": True, "refunds": {"data": [{"id": "re_x"}]}}
    body, signature = signed_event("charge.refunded", charge, webhook_secret)
    _deliver(body, signature)
    order.refresh_from_db()
    assert order.state == Order.State.REFUNDED and order.refund_id == "re_x"
    assert "$10.00 still unspent" in read_in_english(order.message)


def test_an_owner_refunds_an_order_at_stripe_once(paid_order, key, owner_client):
    order, secret_key, webhook_secret, intent = paid_order
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret)
    _deliver(body, signature)
    response = owner_client.post(f"/dashboard/money-in/orders/{Order.objects.get().pk}/refund/", follow=True)
    assert "Refunded 20.00 USD" in response.content.decode()
    assert "no way to lower a key" in response.content.decode()
    order.refresh_from_db()
    assert order.state == Order.State.REFUNDED and order.refund_id.startswith("re_")
    refunds = stripe_client(secret_key).v1.refunds.list(params={"payment_intent": intent["id"]})
    assert len(refunds.data) == 1
    again = owner_client.post(f"/dashboard/money-in/orders/{order.pk}/refund/", follow=True)
    assert "nothing to refund" in again.content.decode()


def test_staff_cannot_refund(paid_order, staff_client):
    order = paid_order[0]
    assert staff_client.post(f"/dashboard/money-in/orders/{order.pk}/refund/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_twenty_deliveries_of_one_paid_event_credit_once(paid_order, key):
    order, _, webhook_secret, intent = paid_order
    body, signature = signed_event("payment_intent.succeeded", intent, webhook_secret)
    statuses = []
    start = threading.Barrier(20)

    def deliver():
        try:
            start.wait()
            statuses.append(_deliver(body, signature).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 20
    assert TopUp.objects.count() == 1 and budget_of(key.id) == Decimal("11")
    assert Order.objects.get().state == Order.State.CREDITED


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_its_signed_event_to_our_endpoint(key, localstripe, live_server):
    secret_key, webhook_secret, package = set_up_card_payments(credit="10", price="20.00")
    localstripe.register_webhook(f"{live_server.url}{WEBHOOK_URL}", webhook_secret, events=["payment_intent.succeeded"])
    order = buy(portal_for(key), package)
    pay(secret_key, order)
    eventually(lambda: Order.objects.get(pk=order.pk).state == Order.State.CREDITED, timeout=15)
    assert StripeEvent.objects.filter(event_type="payment_intent.succeeded", order=order).exists()
    assert budget_of(key.id) == Decimal("11")
