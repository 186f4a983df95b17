"""Reclaim budget: an owner moves part of a key's unspent budget back to the balance, once per form, ledgered and audited.

Against a private simulator in each convention that supports it (amounts in real dollars or in
the customer's units), found by check_upstream; refused plainly where the probe did not find it.
"""

import functools
import uuid
from decimal import Decimal

import pytest
import requests
from django.urls import reverse

from dashboard import reconcile, topups
from derouter import client, conventions
from ledger.models import AuditEvent, Outcome, TopUp
from lib import stored_text
from tests.helpers import eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def probed(private_simulators):
    """probed(**played) -> a private simulator playing those conventions, wired in and probed by check_upstream."""
    return functools.partial(private_simulators, probe=True)


def reclaim_url(sub_key_id):
    return reverse("console:key_reclaim", args=[sub_key_id])


@pytest.mark.parametrize("played", [{}, {"amounts": "customer"}], ids=["real", "customer-units"])
def test_an_owner_reclaims_part_of_a_budget_with_a_confirm_step_and_the_balance_gets_it_back(probed, owner_client, played):
    probed(**played)
    assert conventions.current().reclaim_supported
    created = client.create_sub_key(Decimal("10"), label="Refunded", display_multiplier=Decimal("1.3"))
    before = client.get_balance().available
    token = str(uuid.uuid4())

    confirm = owner_client.post(reclaim_url(created.id), {"amount": "4", "note": "Refund R-1", "token": token})
    body = confirm.content.decode()
    assert "Confirm the reclaim" in body and "$10.00 → <strong>$6.00</strong>" in body
    assert "$5.20 less: a budget of $7.80" in body  # what the customer sees at ×1.3
    assert client.get_balance().available == before  # nothing moved before the confirm

    done = owner_client.post(reclaim_url(created.id), {"amount": "4", "note": "Refund R-1", "token": token, "confirm": "1"})
    again = owner_client.post(reclaim_url(created.id), {"amount": "4", "note": "Refund R-1", "token": token, "confirm": "1"})

    assert done.status_code == 200 and "$4.00 went back to your balance." in done.content.decode()
    assert "already submitted" in again.content.decode()
    assert client.get_balance().available == before + 4
    assert client.get_sub_key(created.id).budget == Decimal("6")
    assert client.get_client_balance(created.secret.reveal()).budget == Decimal("7.8")
    (row,) = TopUp.objects.all()
    assert (row.amount, row.outcome, row.budget_before, row.note) == (Decimal("-4"), Outcome.OK, Decimal("10"), "Refund R-1")
    event = AuditEvent.objects.get(form_token=row.token)
    assert event.action == AuditEvent.Action.RECLAIM and event.outcome == Outcome.OK
    assert event.changes == {"budget": ["10", "6"]}


def test_a_reclaim_of_more_than_is_unspent_is_refused_before_anything_is_sent(probed, owner_client):
    probed()
    created = client.create_sub_key(Decimal("3"), label="Small")

    response = owner_client.post(reclaim_url(created.id), {"amount": "5", "token": str(uuid.uuid4())})

    assert response.status_code == 400
    assert "The key has only $3.00 unspent; it cannot give back more." in response.content.decode()
    assert not TopUp.objects.exists() and client.get_sub_key(created.id).budget == Decimal("3")


def test_where_the_probe_found_no_reclaim_the_page_says_so_and_nothing_moves(probed, owner_client, owner):
    probed(reclaim="refused")
    assert not conventions.current().reclaim_supported
    created = client.create_sub_key(Decimal("3"), label="No reclaim")

    page = owner_client.get(reclaim_url(created.id)).content.decode()
    posted = owner_client.post(reclaim_url(created.id), {"amount": "1", "token": str(uuid.uuid4()), "confirm": "1"})
    detail = owner_client.get(reverse("console:key_detail", args=[created.id])).content.decode()

    assert "was not found to support reclaiming budget" in page
    assert posted.status_code == 409 and not TopUp.objects.exists()
    assert reclaim_url(created.id) not in detail
    with pytest.raises(topups.ReclaimNotSupported):
        topups.reclaim(owner, client.get_sub_key(created.id), Decimal("1"), "", uuid.uuid4())


def test_staff_cannot_reclaim(probed, staff_client):
    probed()
    created = client.create_sub_key(Decimal("3"), label="Owners only")

    response = staff_client.post(reclaim_url(created.id), {"amount": "1", "token": str(uuid.uuid4()), "confirm": "1"})

    assert response.status_code == 403 and not TopUp.objects.exists()


def test_a_reclaim_and_a_top_up_on_one_key_reconcile_with_derouter(probed, owner):
    probed()
    created = client.create_sub_key(Decimal("5"), label="Both ways")
    reconcile.reconcile()  # opens the books: counting starts here
    sub_key = client.get_sub_key(created.id)
    topups.top_up(owner, sub_key, Decimal("2"), "INV-1", uuid.uuid4(), None)
    topups.reclaim(owner, client.get_sub_key(created.id), Decimal("3.5"), "", uuid.uuid4())

    assert client.get_sub_key(created.id).budget == Decimal("3.5")
    assert sum(row.amount for row in TopUp.objects.filter(outcome=Outcome.OK)) == Decimal("-1.5")
    assert reconcile.reconcile().differences == []


def test_no_reclaim_goes_out_while_a_top_up_of_the_key_is_unknown_so_open_moves_never_cancel_out(probed, owner, settings):
    # Found by the money harness (seed 229287233): a reclaim of $4 and a top-up of $4, both unknown, both landed
    # between two reads of the budget; the budget had not moved, and both were settled "not applied".
    sim = probed()
    created = client.create_sub_key(Decimal("10"), label="Cancelling")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    fault = {"mode": "slow", "path": f"/sub-keys/{created.id}", "method": "PUT", "delay": 2, "times": 1}
    requests.post(f"{sim.base_url}/_sim/faults", json=fault, timeout=5).raise_for_status()
    top_up = topups.top_up(owner, client.get_sub_key(created.id), Decimal("4"), "INV-1", uuid.uuid4(), None).topup
    assert top_up.outcome == Outcome.UNKNOWN  # derouter applies it later: a late write

    refused = topups.reclaim(owner, client.get_sub_key(created.id), Decimal("4"), "", uuid.uuid4()).topup

    assert refused.outcome == Outcome.REFUSED
    assert "the other way is not settled yet" in stored_text.read_in_english(refused.message)
    eventually(lambda: client.get_sub_key(created.id).budget == Decimal("14"))  # the top-up landed; no reclaim went out
    settings.WRITE_SETTLE_SECONDS = 0
    topups.settle_key(created.id)
    top_up.refresh_from_db()
    assert top_up.outcome == Outcome.OK
    again = topups.reclaim(owner, client.get_sub_key(created.id), Decimal("4"), "", uuid.uuid4()).topup
    assert again.outcome == Outcome.OK and client.get_sub_key(created.id).budget == Decimal("10")
