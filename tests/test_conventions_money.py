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
