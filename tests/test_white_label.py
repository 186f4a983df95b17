"""White label: nothing a customer receives (downloads, emails, error pages) names derouter."""

import pytest
from django.core import mail
from django.test import Client

from automation import notify
from branding.models import Branding
from derouter import client as derouter_client

pytestmark = pytest.mark.django_db

CSV_URL = "/portal/logs/export.csv"


@pytest.fixture
def customer(make_key):
    created = make_key("1", label="Label Co")
    browser = Client()
    assert browser.post("/portal/login/", {"client_key": created.secret.reveal()}).status_code == 302
    yield browser
    try:
        derouter_client.delete_sub_key(created.id)
    except derouter_client.NotFound:
        pass


def _brand(name):
    branding = Branding.load()
    branding.product_name = name
    branding.save()


def test_the_customers_usage_download_is_named_after_the_resellers_product(customer):
    _brand("Acme AI")
    disposition = customer.get(CSV_URL)["Content-Disposition"]
    assert 'filename="acme-ai-usage-' in disposition
    assert "derouter" not in disposition


def test_without_a_product_name_the_download_is_plainly_usage(customer):
    disposition = customer.get(CSV_URL)["Content-Disposition"]
    assert 'filename="usage-' in disposition


def test_customer_emails_come_from_the_resellers_product(settings):
    settings.DEFAULT_FROM_EMAIL = "derouter dashboard <noreply@example.com>"
    _brand("Acme AI")
    notify.send_customer_email.call_local("Your budget request was approved", "Approved.", "buyer@example.com")
    (message,) = mail.outbox
    assert message.subject == "[Acme AI] Your budget request was approved"
    assert message.from_email == "Acme AI <noreply@example.com>"
    assert "derouter" not in message.subject + message.from_email + message.body


def test_a_customers_error_page_does_not_name_the_upstream(customer, simulator):
    simulator.inject("error", path="/", status=503, times=0)
    try:
        response = customer.get(CSV_URL)
    finally:
        simulator.clear_faults()
    assert response.status_code == 503
    body = response.content.decode()
    assert "derouter" not in body.lower()
    assert "The service is not answering" in body
