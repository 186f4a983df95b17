"""Owners set up card payments: Stripe's keys checked and never shown again, packages, orders listed, retries."""

import pytest

from ledger.models import AuditEvent
from payments.models import Order, Package, StripeSettings

pytestmark = pytest.mark.django_db

SETTINGS_URL = "/dashboard/money-in/cards/"


def _save(client, **fields):
    data = {"enabled": "on", "publishable_key": "pk_test_abc", "secret_key": "sk_test_" + "s" * 24,
            "webhook_secret": "whsec_" + "w" * 24, "daily_orders_per_key": "5", **fields}
    return client.post(SETTINGS_URL, data)


def test_saved_secrets_are_never_shown_or_audited(owner_client, localstripe):
    response = _save(owner_client)
    assert response.status_code == 302
    row = StripeSettings.load()
    assert row.is_ready and row.get_secret_key() == "sk_test_" + "s" * 24
    assert "s" * 24 not in row.secret_key_encrypted and "w" * 24 not in row.webhook_secret_encrypted
    page = owner_client.get(SETTINGS_URL).content.decode()
    assert "s" * 24 not in page and "w" * 24 not in page and "Secret key saved" in page
    event = AuditEvent.objects.get(action=AuditEvent.Action.MONEY_IN)
    assert "s" * 24 not in str(event.changes) and "w" * 24 not in str(event.changes)
    # Saving again with the secrets left empty keeps them.
    assert _save(owner_client, secret_key="", webhook_secret="", daily_orders_per_key="7").status_code == 302
    row = StripeSettings.load()
    assert row.get_webhook_secret() == "whsec_" + "w" * 24 and row.daily_orders_per_key == 7


def test_card_payments_cannot_be_turned_on_without_the_webhook_secret(owner_client, localstripe):
    response = _save(owner_client, webhook_secret="")
    assert response.status_code == 400 and "without it no payment is credited" in response.content.decode()
    assert not StripeSettings.load().is_ready


def test_a_key_of_the_wrong_kind_is_refused_before_asking_stripe(owner_client):
    response = _save(owner_client, secret_key="pk_test_oops")
    assert response.status_code == 400 and "never paste the publishable key" in response.content.decode()
    assert "pk_test_oops" not in response.content.decode()


def test_a_secret_key_stripe_refuses_is_not_saved(owner_client, localstripe):
    # localstripe accepts any sk_ key; a key it cannot be reached with stands for one Stripe refuses.
    response = _save(owner_client, secret_key="sk_")
    assert response.status_code == 400
    assert not StripeSettings.load().secret_key_encrypted


def test_packages_are_added_and_withdrawn(owner_client):
    response = owner_client.post("/dashboard/money-in/cards/packages/", {"name": "Pro", "price": "49.99", "currency": "EUR", "credit": "60"})
    assert response.status_code == 302
    package = Package.objects.get()
    assert package.currency == "eur" and package.amount_minor == 4999
    owner_client.post(f"/dashboard/money-in/cards/packages/{package.pk}/toggle/")
    assert not Package.objects.get().active
    bad = owner_client.post("/dashboard/money-in/cards/packages/", {"name": "X", "price": "0.10", "currency": "e1", "credit": "0"})
    assert bad.status_code == 400
    assert {"at least 0.50", "three-letter code", "more than 0"} <= {
        text for text in ("at least 0.50", "three-letter code", "more than 0") if text in bad.content.decode()
    }


def test_staff_see_orders_but_not_the_setup(staff_client):
    assert staff_client.get(SETTINGS_URL).status_code == 403
    assert staff_client.get("/dashboard/money-in/orders/").status_code == 200
    assert staff_client.get("/dashboard/money-in/orders/?state=nonsense").status_code == 200


def test_the_orders_list_filters_by_state(owner_client):
    import uuid
    from decimal import Decimal

    for state in (Order.State.CREDITED, Order.State.FAILED):
        Order.objects.create(
            token=uuid.uuid4(), sub_key_id=str(uuid.uuid4()), key_label=f"Key {state}", package_name="P", price=Decimal(5),
            currency="usd", amount_minor=500, credit=Decimal(5), display_multiplier=Decimal(1), amount_usd=Decimal(5),
            state=state,
        )
    page = owner_client.get("/dashboard/money-in/orders/?state=failed").content.decode()
    assert "Key failed" in page and "Key credited" not in page
    assert "Retry the credit" in page
