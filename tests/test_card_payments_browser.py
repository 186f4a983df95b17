"""A customer buys a package in headless Chromium: our page, localstripe's stripe.js, the return page, credited once."""

from decimal import Decimal

import pytest

from ledger.models import TopUp
from derouter import client as derouter_client
from payments.models import Order
from tests.helpers import budget_of, eventually
from tests.payment_helpers import WEBHOOK_URL, set_up_card_payments

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_customer_pays_on_our_page_and_is_credited_once(live_server, page, localstripe, make_key):
    created = make_key("1", label="Card Buyer Ltd")
    try:
        _, webhook_secret, _ = set_up_card_payments(credit="10", price="20.00")
        # Both roads at once: localstripe's signed webhook and the return page; the key is credited once.
        localstripe.register_webhook(f"{live_server.url}{WEBHOOK_URL}", webhook_secret, events=["payment_intent.succeeded"])
        problems = []
        page.on("console", lambda message: "Content Security Policy" in message.text and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"{live_server.url}/portal/login/")
        page.fill("#id_client_key", created.secret.reveal())
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{live_server.url}/portal/")
        page.click("nav >> text=Buy credit")
        page.click("button:has-text('Buy Starter')")
        page.wait_for_selector("#payment-element input[placeholder=number]")
        for field, value in (("number", "4242424242424242"), ("exp_month", "12"), ("exp_year", "35"), ("cvc", "123"),
                             ("postal_code", "12345")):
            page.fill(f"#payment-element input[placeholder={field}]", value)
        page.click("#pay-button")
        page.wait_for_selector("text=Thank you: your payment was received")
        eventually(lambda: Order.objects.get().state == Order.State.CREDITED, timeout=15)
        # Give the webhook time to arrive too.
        eventually(lambda: Order.objects.get().events.exists(), timeout=15)
        assert TopUp.objects.count() == 1 and budget_of(created.id) == Decimal("11")
        page.reload()
        page.click("text=Receipt #")
        assert "20.00 USD by card" in page.content()
        assert problems == []
    finally:
        derouter_client.delete_sub_key(created.id)
