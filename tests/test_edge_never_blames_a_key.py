"""No 4xx/5xx HTML page from Cloudflare signs a customer out or says the Account Key is not accepted."""

import pytest
from django.test import Client
from django.urls import reverse

from derouter.simulator.controls import CLOUDFLARE_STATUSES
from portal.forms import INVALID_KEY_MESSAGE

pytestmark = pytest.mark.django_db

ACCOUNT_KEY_BLAMED = "Account Key is not accepted"
EDGE_STATUSES = list(CLOUDFLARE_STATUSES)
# Every portal page that asks derouter with the customer's key.
PORTAL_PAGES = ["/portal/", "/portal/logs/", "/portal/logs/export.csv", "/portal/statements/", "/portal/requests/"]


@pytest.fixture
def key(make_key):
    return make_key("1", label="Edge customer")


def signed_in(secret):
    browser = Client()
    assert browser.post("/portal/login/", {"client_key": secret}).status_code == 302
    return browser


@pytest.mark.parametrize("status", EDGE_STATUSES)
def test_a_cloudflare_page_never_signs_a_portal_customer_out(simulator, key, status):
    browser = signed_in(key.secret.reveal())
    simulator.inject("cloudflare", status=status, retry_after=600, path="/sub-key/", times=0)
    for page in PORTAL_PAGES:
        response = browser.get(page)
        assert not (response.status_code == 302 and "/portal/login/" in response["Location"]), page
        body = b"".join(response.streaming_content) if response.streaming else response.content
        assert str(INVALID_KEY_MESSAGE) not in body.decode(), page
    simulator.clear_faults()
    assert browser.get("/portal/").status_code == 200  # still signed in


@pytest.mark.parametrize("status", EDGE_STATUSES)
def test_signing_in_behind_a_cloudflare_page_does_not_call_the_key_wrong(simulator, key, status):
    simulator.inject("cloudflare", status=status, path="/sub-key/", times=0)
    response = Client().post("/portal/login/", {"client_key": key.secret.reveal()})
    assert str(INVALID_KEY_MESSAGE) not in response.content.decode()
    assert response.status_code != 302


@pytest.mark.parametrize("status", EDGE_STATUSES)
def test_the_console_never_blames_the_account_key_for_a_cloudflare_page(simulator, owner_client, key, status):
    simulator.inject("cloudflare", status=status, retry_after=600, path="/", times=0)
    for url in (reverse("console:overview"), reverse("console:key_create"), reverse("console:key_list"),
                reverse("console:key_detail", args=[key.id]), reverse("console:key_topup", args=[key.id]),
                reverse("console:usage_logs"), reverse("console:ledger")):
        response = owner_client.get(url)
        assert ACCOUNT_KEY_BLAMED not in response.content.decode(), url
