"""Starter codes: someone without a key types one on the portal and gets a new key, shown once, made once."""

from decimal import Decimal

import pytest
from django.test import Client

from derouter import client as derouter_client
from payments import codes
from payments.models import CodeBatch, RedemptionCode
from tests.helpers import find_key

pytestmark = pytest.mark.django_db

START_URL = "/portal/start/"


def _starter(owner, amount="3"):
    _, [text] = codes.create_batch(owner, 1, Decimal(amount), CodeBatch.Unit.USD, kind=CodeBatch.Kind.STARTER)
    return text


@pytest.fixture
def made_keys():
    """Keys the test made through starter codes, deleted after (the simulator's balance is shared)."""
    yield
    for code in RedemptionCode.objects.exclude(sub_key_id=""):
        try:
            derouter_client.delete_sub_key(code.sub_key_id)
        except derouter_client.DerouterError:
            pass


def test_a_starter_code_makes_a_key_shows_it_once_and_signs_in(owner, made_keys):
    text = _starter(owner, "3")
    browser = Client()
    assert "Make my key" in browser.get(START_URL).content.decode()
    response = browser.post(START_URL, {"code": text})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    code = RedemptionCode.objects.get()
    assert code.state == "redeemed" and code.amount_usd == Decimal("3")
    made = find_key(code.sub_key_id)
    assert made is not None and made.budget == Decimal("3")
    assert made.secret.reveal() in response.content.decode()
    assert browser.get("/portal/").status_code == 200
    again = Client().post(START_URL, {"code": text})
    assert again.status_code == 409 and made.secret.reveal() not in again.content.decode()


def test_a_starter_batch_is_counted_in_real_money(owner_client):
    response = owner_client.post("/dashboard/money-in/codes/new/", {
        "count": "2", "amount": "5", "unit": "customer", "kind": "starter", "expires_on": "", "note": "",
    })
    assert response.status_code == 400 and "count it in USD" in response.content.decode()
    assert not CodeBatch.objects.exists()


def test_each_kind_of_code_is_refused_where_it_does_not_belong(owner, make_key):
    starter = _starter(owner)
    _, [topup] = codes.create_batch(owner, 1, Decimal(1), CodeBatch.Unit.USD)
    refused = Client().post(START_URL, {"code": topup})
    assert refused.status_code == 400 and "adds to an existing key" in refused.content.decode()
    key = make_key("1", label="Has a key")
    try:
        portal = Client()
        portal.post("/portal/login/", {"client_key": key.secret.reveal()})
        refused = portal.post("/portal/redeem/", {"code": starter})
        assert refused.status_code == 400 and "makes a new key" in refused.content.decode()
    finally:
        derouter_client.delete_sub_key(key.id)
    assert set(RedemptionCode.objects.values_list("state", flat=True)) == {"unused"}


def test_a_key_derouter_refused_to_make_gives_the_code_back(owner, simulator, made_keys):
    text = _starter(owner)
    simulator.inject("error", path="/sub-keys", method="POST", status=400)
    response = Client().post(START_URL, {"code": text})
    assert response.status_code == 409 and "was not used" in response.content.decode()
    code = RedemptionCode.objects.get()
    assert code.state == "unused" and code.attempts == 1
    simulator.clear_faults()
    assert Client().post(START_URL, {"code": text}).status_code == 200
