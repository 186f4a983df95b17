"""Shared by the card payment tests: Stripe set up against localstripe, a customer paying as Stripe.js would."""

import secrets
import warnings
from decimal import Decimal

import stripe
from django.conf import settings
from django.test import Client

from payments.models import Order, Package, StripeSettings

WEBHOOK_URL = "/payments/stripe/webhook/"
BUY_URL = "/portal/pay/"


def set_up_card_payments(daily_orders_per_key=5, credit="10", price="20.00", currency="usd"):
    """Card payments on, with fresh keys; returns (secret key, webhook secret, package)."""
    secret_key = "sk_test_" + secrets.token_hex(12)
    webhook_secret = "whsec_" + secrets.token_hex(16)
    row = StripeSettings.load()
    row.enabled = True
    row.publishable_key = "pk_test_" + secrets.token_hex(8)
    row.daily_orders_per_key = daily_orders_per_key
    row.set_secret_key(secret_key)
    row.set_webhook_secret(webhook_secret)
    row.save()
    package = Package.objects.create(name="Starter", price=Decimal(price), currency=currency, credit=Decimal(credit))
    return secret_key, webhook_secret, package


def stripe_client(secret_key):
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="stripe")
    return stripe.StripeClient(secret_key, base_addresses={"api": settings.STRIPE_API_BASE}, max_network_retries=0)


def pay(secret_key, order):
    """Pay the order's PaymentIntent with a test card, as the Payment Element would; returns the PaymentIntent."""
    client = stripe_client(secret_key)
    method = client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}}
    )
    client.v1.payment_intents.update(order.payment_intent_id, params={"payment_method": method.id})
    return client.v1.payment_intents.confirm(order.payment_intent_id)


def portal_for(key):
    browser = Client()
    assert browser.post("/portal/login/", {"client_key": key.secret.reveal()}).status_code == 302
    return browser


def buy(portal, package):
    """Start an order for the package in the portal; returns the Order."""
    response = portal.post(BUY_URL, {"package": package.pk})
    assert response.status_code == 302, response.content.decode()[:2000]
    return Order.objects.latest("created_at")
