"""Redeeming codes in the portal against the live simulator: credited once, given back when refused, held when unknown."""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client

from automation.models import WebhookDelivery
from dashboard import keywrites
from ledger.models import AuditEvent, Outcome, TopUp
from derouter import client as derouter_client
from mirror import snapshot as mirror_snapshot
from payments import codes
from payments.models import CodeBatch, RedemptionCode
from lib.stored_text import read_in_english
from tests.helpers import budget_of

pytestmark = pytest.mark.django_db

REDEEM_URL = "/portal/redeem/"


@pytest.fixture
def key(make_key):
    created = make_key("1", label="Acme Corp")
    yield created
    try:
        derouter_client.delete_sub_key(created.id)
    except derouter_client.NotFound:
        pass


def _portal(key):
    browser = Client()
    assert browser.post("/portal/login/", {"client_key": key.secret.reveal()}).status_code == 302
    return browser


def _batch(owner, amount="4", unit=CodeBatch.Unit.USD, count=1, expires_at=None):
    _, texts = codes.create_batch(owner, count, Decimal(amount), unit, expires_at, "test")
    return texts


def test_a_code_tops_the_key_up_once_with_ledger_audit_and_webhook(owner, key, webhook_receiver):
    from automation import webhooks

    webhooks.create_endpoint(webhook_receiver.url, ["code.redeemed", "key.topped_up"])
    [text] = _batch(owner, "4")
    portal = _portal(key)
    response = portal.post(REDEEM_URL, {"code": text.lower().replace("-", " ")})
    assert response.status_code == 302
    assert budget_of(key.id) == Decimal("5")
    topup = TopUp.objects.get()
    assert topup.outcome == Outcome.OK and topup.amount == Decimal("4") and read_in_english(topup.note).startswith("code …")
    assert AuditEvent.objects.get(action=AuditEvent.Action.TOPUP).outcome == Outcome.OK
    code = RedemptionCode.objects.get()
    assert code.state == "redeemed" and code.sub_key_id == key.id and code.topup == topup
    assert set(WebhookDelivery.objects.values_list("event_type", flat=True)) == {"code.redeemed", "key.topped_up"}
    again = portal.post(REDEEM_URL, {"code": text})
    assert again.status_code == 409 and "You redeemed this code already" in again.content.decode()
    assert budget_of(key.id) == Decimal("5")
    assert "…" + code.hint in portal.get(REDEEM_URL).content.decode()


def test_a_code_in_customer_units_is_converted_with_the_keys_markup(owner, key):
    derouter_client.update_sub_key(key.id, display_multiplier=Decimal("2"))
    mirror_snapshot.refresh_snapshot()
    [text] = _batch(owner, "10", unit=CodeBatch.Unit.CUSTOMER)
    response = _portal(key).post(REDEEM_URL, {"code": text}, follow=True)
    assert "10.00 was added" in response.content.decode()
    assert budget_of(key.id) == Decimal("6")
    assert RedemptionCode.objects.get().amount_usd == Decimal("5")


def test_unknown_revoked_and_expired_codes_are_refused_plainly(owner, key):
    portal = _portal(key)
    unknown = portal.post(REDEEM_URL, {"code": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"})
    assert unknown.status_code == 400 and "not valid" in unknown.content.decode()
    [revoked] = _batch(owner)
    codes.revoke(owner, CodeBatch.objects.get())
    response = portal.post(REDEEM_URL, {"code": revoked})
    assert response.status_code == 410 and "withdrawn" in response.content.decode()
    [expired] = _batch(owner, expires_at=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC))
    response = portal.post(REDEEM_URL, {"code": expired})
    assert response.status_code == 410 and "expired" in response.content.decode()
    assert portal.post(REDEEM_URL, {"code": ""}).status_code == 400
    assert budget_of(key.id) == Decimal("1") and not TopUp.objects.exists()


def test_a_code_derouter_refused_is_given_back_and_works_later(owner, key, simulator):
    [text] = _batch(owner, "2")
    portal = _portal(key)
    simulator.inject("error", path="/sub-keys/", method="PUT", status=400)
    response = portal.post(REDEEM_URL, {"code": text})
    assert response.status_code == 409 and "was not used" in response.content.decode()
    code = RedemptionCode.objects.get()
    assert code.state == "unused" and code.attempts == 1
    assert TopUp.objects.get().outcome == Outcome.REFUSED
    simulator.clear_faults()
    assert portal.post(REDEEM_URL, {"code": text}).status_code == 302
    assert budget_of(key.id) == Decimal("3")
    assert RedemptionCode.objects.get().state == "redeemed"


def test_a_code_whose_top_up_is_unknown_is_held_then_settled(owner, key, simulator, settings):
    [text] = _batch(owner, "2")
    portal = _portal(key)
    simulator.inject("error", path="/sub-keys/", method="PUT", status=500)
    response = portal.post(REDEEM_URL, {"code": text}, follow=True)
    assert "is held" in response.content.decode()
    code = RedemptionCode.objects.get()
    assert code.state == "redeeming"
    # A second try while it is held credits nothing.
    assert portal.post(REDEEM_URL, {"code": text}).status_code == 409
    simulator.clear_faults()
    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes()
    codes.settle_held_codes()
    code.refresh_from_db()
    # The write never reached the budget: refused, so the code is the customer's again.
    assert code.state == "unused" and budget_of(key.id) == Decimal("1")


def test_a_held_code_is_redeemed_when_its_top_up_is_confirmed(owner, key):
    [text] = _batch(owner, "2")
    code = RedemptionCode.objects.get()
    sub_key = next(item for item in derouter_client.list_sub_keys() if item.id == key.id)
    RedemptionCode.objects.filter(pk=code.pk).update(state="redeeming", sub_key_id=key.id)
    from payments import crediting

    crediting.credit(sub_key, Decimal("2"), "code", "code", code.pk, 0, "redemption code")
    assert [item.pk for item in codes.settle_held_codes()] == [code.pk]
    code.refresh_from_db()
    assert code.state == "redeemed" and code.amount_usd == Decimal("2")


def test_redeeming_is_throttled_per_key(owner, key, settings):
    settings.PORTAL_REDEEM_ATTEMPTS_LIMIT = 2
    portal = _portal(key)
    for _ in range(2):
        assert portal.post(REDEEM_URL, {"code": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"}).status_code == 400
    throttled = portal.post(REDEEM_URL, {"code": "AAAAA-BBBBB-CCCCC-DDDDD-EEEEE"})
    assert throttled.status_code == 429 and int(throttled["Retry-After"]) > 0


def test_the_redeem_page_needs_a_portal_session(client):
    response = client.get(REDEEM_URL)
    assert response.status_code == 302 and "/portal/login/" in response["Location"]


@pytest.mark.django_db(transaction=True)
def test_twenty_simultaneous_redemptions_of_one_code_top_up_once(owner, key, settings):
    settings.PORTAL_REDEEM_ATTEMPTS_LIMIT = 100
    [text] = _batch(owner, "3")
    signed_in = _portal(key)
    cookie = signed_in.cookies["sessionid"].value
    statuses = []
    start = threading.Barrier(20)

    def redeem():
        browser = Client()
        browser.cookies["sessionid"] = cookie
        try:
            start.wait()
            statuses.append(browser.post(REDEEM_URL, {"code": text}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=redeem) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302] + [409] * 19
    assert TopUp.objects.count() == 1
    assert budget_of(key.id) == Decimal("4")
    assert RedemptionCode.objects.get().state == "redeemed"


def test_a_code_whose_refused_top_up_is_confirmed_late_is_not_credited_twice(owner, key, simulator):
    [text] = _batch(owner, "2")
    portal = _portal(key)
    simulator.inject("error", path="/sub-keys/", method="PUT", status=400)
    portal.post(REDEEM_URL, {"code": text})
    simulator.clear_faults()
    # As if the refused attempt had landed after all (the money service re-settles such writes).
    TopUp.objects.update(outcome=Outcome.OK)
    assert len(codes.settle_held_codes()) == 1
    code = RedemptionCode.objects.get()
    assert code.state == "redeemed" and code.sub_key_id == key.id
    assert portal.post(REDEEM_URL, {"code": text}).status_code == 409
    assert TopUp.objects.count() == 1
