"""Money moves of the console under derouter's other conventions, each played by the simulator and found by the probe.

The product deals in real dollars; where derouter counts in the customer's units the client converts
with the key's multiplier, so a top-up debits what the ledger says and the customer sees it marked up.
"""

import functools
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from dashboard import topups
from ledger.models import AuditEvent, Outcome
from derouter import client, conventions

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def probed(private_simulators):
    """probed(**played) -> a private simulator playing those conventions, wired in and probed by check_upstream."""
    return functools.partial(private_simulators, probe=True)


def live(sub_key_id):
    return next(key for key in client.list_sub_keys() if key.id == sub_key_id)


@pytest.mark.parametrize("played", [{}, {"amounts": "customer"},
                                    {"amounts": "customer", "multiplier_after_creation": "ignored",
                                     "fixed_limits": True, "write_answers": "empty"}])
def test_a_marked_up_key_and_a_top_up_agree_with_derouter_to_the_cent(probed, owner, played):
    probed(**played)
    assert conventions.current().amounts == played.get("amounts", "real")
    before = client.get_balance().available

    created = client.create_sub_key(Decimal("10"), label="Marked up", display_multiplier=Decimal("1.3"))
    assert client.get_client_balance(created.secret.reveal()).budget == Decimal("13")
    assert client.get_balance().available == before - 10

    attempt = topups.top_up(owner, live(created.id), Decimal("5"), "INV-1", uuid.uuid4(), Decimal(1000))
    assert attempt.topup.outcome == Outcome.OK
    assert client.get_balance().available == before - 15
    assert live(created.id).budget == Decimal("15")
    assert client.get_client_balance(created.secret.reveal()).budget == Decimal("19.5")


@pytest.mark.parametrize("played", [{"write_answers": "created"}, {"write_answers": "empty"}])
def test_the_console_creates_edits_and_deletes_keys_answered_201_or_204(probed, owner_client, played):
    probed(**played)
    response = owner_client.post(reverse("console:key_create"), {"label": "Bodiless", "budget": "2",
                                                                  "rpm_limit": "30", "token": str(uuid.uuid4())})
    assert response.status_code == 200
    created = next(key for key in client.list_sub_keys() if key.label == "Bodiless")
    assert created.secret.reveal() in response.content.decode()
    assert AuditEvent.objects.get(action=AuditEvent.Action.CREATE).outcome == Outcome.OK

    owner_client.post(reverse("console:key_edit", args=[created.id]),
                      {"label": "Renamed", "rpm_limit": "30", "display_multiplier": "1"})
    assert live(created.id).label == "Renamed"
    assert AuditEvent.objects.get(action=AuditEvent.Action.EDIT).outcome == Outcome.OK
    owner_client.post(reverse("console:key_delete", args=[created.id]))
    assert all(key.id != created.id for key in client.list_sub_keys())
    assert AuditEvent.objects.get(action=AuditEvent.Action.DELETE).outcome == Outcome.OK


# ---------------------------------------------------------------- issue 21's "Done when", through the console

EVERY_CONVENTION_THAT_KEEPS_A_MARKUP = [
    {},
    {"amounts": "customer"},
    {"amounts": "customer", "multiplier_after_creation": "ignored", "fixed_limits": True, "write_answers": "empty"},
    {"multiplier_at_creation": "ignored"},
    {"amounts": "customer", "multiplier_at_creation": "ignored"},
    {"multiplier_after_creation": "refused", "write_answers": "created", "reclaim": "refused"},
]


@pytest.mark.parametrize("played", EVERY_CONVENTION_THAT_KEEPS_A_MARKUP)
def test_a_console_key_at_1_3x_topped_up_by_a_customer_amount_agrees_with_derouter_to_the_cent(
        probed, owner_client, sync_mirror, played):
    from analytics.figures import get_last_days, get_totals
    from ledger.models import TopUp
    from mirror.models import KeySnapshot
    from tests.simulator_helpers import inject_usage

    sim = probed(**played)
    before = client.get_balance().available

    created = owner_client.post(reverse("console:key_create"), {
        "label": "Done when", "customer_budget": "13", "display_multiplier": "1.3", "rpm_limit": "60",
        "token": str(uuid.uuid4()), "confirm": "1"})
    assert created.status_code == 200, created.content.decode()[:2000]
    key = next(key for key in client.list_sub_keys() if key.label == "Done when")
    secret = key.secret.reveal()
    assert (key.display_multiplier, client.get_client_balance(secret).budget) == (Decimal("1.3"), Decimal("13"))
    assert client.get_balance().available == before - 10

    url, token = reverse("console:key_topup", args=[key.id]), str(uuid.uuid4())
    confirm = owner_client.post(url, {"customer_amount": "6.5", "note": "INV-D", "token": token}).content.decode()
    assert "$5.00" in confirm and "$6.50" in confirm and client.get_balance().available == before - 10
    owner_client.post(url, {"amount": "5", "note": "INV-D", "token": token, "confirm": "1"})
    assert client.get_balance().available == before - 15
    assert client.get_client_balance(secret).budget == Decimal("19.5")
    row = TopUp.objects.get()
    assert (row.outcome, row.amount, row.customer_amount) == ("ok", Decimal("5"), Decimal("6.5"))

    inject_usage(sim, "0.0371", key.id, inputTokens=100, outputTokens=50)
    inject_usage(sim, "3.21", key.id, inputTokens=1200, outputTokens=300)
    sync_mirror(key.id)
    totals = get_totals(get_last_days(1), KeySnapshot.objects.get(sub_key_id=key.id))
    assert totals.spend == live(key.id).spent == Decimal("3.2471")
    assert totals.billed == client.get_client_balance(secret).spent == Decimal("4.22123")


def test_where_no_markup_is_kept_the_create_page_says_so_before_any_money_moves(probed, owner_client):
    probed(multiplier_at_creation="ignored", multiplier_after_creation="ignored")
    page = owner_client.get(reverse("console:key_create")).content.decode()
    assert "derouter keeps no markup on this account: the customer sees your cost" in page
    assert 'name="display_multiplier"' not in page and 'name="customer_budget"' not in page
