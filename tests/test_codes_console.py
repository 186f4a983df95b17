"""Redemption code batches in the console: who may make them, shown once, CSV, states, revoking, audit."""

import csv
import io
from decimal import Decimal

import pytest

from ledger.models import AuditEvent
from payments import codes
from payments.models import CodeBatch, MoneyInSettings, RedemptionCode
from lib.stored_text import read_in_english

pytestmark = pytest.mark.django_db

BATCHES_URL = "/dashboard/money-in/codes/"
NEW_URL = "/dashboard/money-in/codes/new/"


def _make(client, **fields):
    data = {"count": "3", "amount": "5", "unit": "customer", "expires_on": "", "note": "Shop order 17", **fields}
    return client.post(NEW_URL, data)


def _texts(response):
    return [line.strip() for line in response.content.decode().split('name="code" value="')[1:] for line in [line.split('"')[0]]]


def test_an_owner_makes_a_batch_and_sees_its_codes_once(owner_client):
    response = _make(owner_client)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    texts = _texts(response)
    assert len(texts) == 3 and len(set(texts)) == 3
    batch = CodeBatch.objects.get()
    assert batch.count == 3 and batch.amount == Decimal("5") and batch.note == "Shop order 17"
    stored = set(RedemptionCode.objects.values_list("digest", flat=True))
    assert stored == {codes.digest_of(text) for text in texts}
    # Nothing the console shows later carries a code's text.
    for url in (BATCHES_URL, f"{BATCHES_URL}{batch.pk}/"):
        body = owner_client.get(url).content.decode()
        assert all(text not in body for text in texts)
        assert all(codes.normalize(text) not in body for text in texts)
    event = AuditEvent.objects.get(action=AuditEvent.Action.CODES_CREATE)
    assert event.actor_name == "olivia" and f"Batch #{batch.pk}" in read_in_english(event.message)


def test_codes_are_long_random_and_unambiguous():
    texts = {codes.generate_code() for _ in range(200)}
    assert len(texts) == 200
    for text in texts:
        plain = codes.normalize(text)
        assert len(plain) == 25
        assert not set(plain) & set("0O1lIL")
    assert codes.normalize(" abcde-fghjk ") == "ABCDEFGHJK"


def test_the_csv_holds_the_batch_codes_and_refuses_others(owner_client):
    texts = _texts(_make(owner_client))
    batch = CodeBatch.objects.get()
    response = owner_client.post(f"{BATCHES_URL}{batch.pk}/codes.csv", {"code": texts + ["NOT-A-CODE"]})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["code", "worth", "unit", "expires", "batch", "note"]
    assert [row[0] for row in rows[1:]] == texts
    refused = owner_client.post(f"{BATCHES_URL}{batch.pk}/codes.csv", {"code": ["AAAAA-BBBBB"]})
    assert refused.status_code == 400


def test_bad_batch_input_is_refused_with_reasons(owner_client):
    for fields, text in (
        ({"count": "0"}, "whole number from 1"),
        ({"count": "5000"}, "whole number from 1"),
        ({"amount": "-3"}, "plain number"),
        ({"amount": "0"}, "more than 0"),
        ({"unit": "gold"}, "Choose what the amount"),
        ({"expires_on": "2020-01-01"}, "over already"),
    ):
        response = _make(owner_client, **fields)
        assert response.status_code == 400, fields
        assert text in response.content.decode(), fields
    assert not CodeBatch.objects.exists()


def test_staff_may_make_codes_only_when_an_owner_allows_it(staff_client, owner, client):
    assert _make(staff_client).status_code == 403
    assert staff_client.get(BATCHES_URL).status_code == 200
    assert "New batch of codes" not in staff_client.get(BATCHES_URL).content.decode()
    assert staff_client.post("/dashboard/money-in/codes/settings/", {"staff_may_manage_codes": "on"}).status_code == 403
    owner_browser = client.__class__()
    owner_browser.force_login(owner)
    owner_browser.post("/dashboard/money-in/codes/settings/", {"staff_may_manage_codes": "on"})
    assert MoneyInSettings.load().staff_may_manage_codes
    assert AuditEvent.objects.filter(action=AuditEvent.Action.MONEY_IN).exists()
    assert _make(staff_client).status_code == 200


def test_revoking_takes_unused_codes_only_and_is_audited(owner_client):
    _make(owner_client, count="3")
    batch = CodeBatch.objects.get()
    first, second, third = batch.codes.all()
    RedemptionCode.objects.filter(pk=third.pk).update(state=RedemptionCode.State.REDEEMED)
    response = owner_client.post(f"{BATCHES_URL}{batch.pk}/revoke/", {"code": first.pk})
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.state == RedemptionCode.State.REVOKED and first.revoked_by_name == "olivia"
    owner_client.post(f"{BATCHES_URL}{batch.pk}/revoke/")
    states = dict(batch.codes.values_list("pk", "state"))
    assert states == {first.pk: "revoked", second.pk: "revoked", third.pk: "redeemed"}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CODES_REVOKE).count() == 2
    page = owner_client.get(f"{BATCHES_URL}{batch.pk}/").content.decode()
    assert "Revoked" in page and "Redeemed" in page


def test_an_expired_batch_shows_its_unused_codes_as_expired(owner_client):
    _make(owner_client, count="2")
    batch = CodeBatch.objects.get()
    CodeBatch.objects.filter(pk=batch.pk).update(expires_at="2020-01-02T00:00:00Z")
    counts = codes.count_states([batch])[batch.pk]
    assert counts["expired"] == 2 and counts["unused"] == 0
    assert "Expired" in owner_client.get(f"{BATCHES_URL}{batch.pk}/").content.decode()


def test_a_missing_batch_is_404(owner_client):
    assert owner_client.get(f"{BATCHES_URL}999/").status_code == 404
    assert owner_client.post(f"{BATCHES_URL}999/revoke/").status_code == 404
