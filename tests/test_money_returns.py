"""A delete returns the key's budget to the account: it waits for the key's earlier money moves to settle.

Found by the money harness: a key deleted (by a person, an expiry or a rotation) while one of
its top-ups had an unknown outcome could never settle it, since derouter no longer lists the
deleted key's budget; the ledger then disagreed with derouter for good.
"""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from automation import expiry
from automation.models import KeyExpiry
from dashboard import keywrites, topups
from ledger.models import Outcome, TopUp
from derouter import client

pytestmark = pytest.mark.django_db


def live(sub_key_id):
    return next((key for key in client.list_sub_keys() if key.id == sub_key_id), None)


def unknown_top_up(owner, simulator, sub_key_id, mode):
    """A top-up of $2 whose answer never comes: ``error`` (not applied) or ``applied-then-drop`` (applied)."""
    simulator.inject(mode, path=f"/sub-keys/{sub_key_id}", method="PUT", status=500)
    attempt = topups.top_up(owner, live(sub_key_id), Decimal(2), "INV-9", uuid.uuid4(), Decimal(100000))
    assert attempt.topup.outcome == Outcome.UNKNOWN
    return attempt.topup


def test_a_delete_waits_while_a_top_up_on_the_key_may_still_land(owner, simulator, make_key, settings):
    settings.WRITE_SETTLE_SECONDS = 600
    created = make_key(budget="5")
    unknown_top_up(owner, simulator, created.id, "error")

    write = keywrites.delete_key(owner, live(created.id))

    assert write.is_refused and not write.was_sent
    assert "not settled yet" in write.event.message
    assert live(created.id) is not None


def test_a_delete_settles_the_keys_top_ups_first_then_goes(owner, simulator, make_key, settings):
    settings.WRITE_SETTLE_SECONDS = 600
    created = make_key(budget="5")
    landed = unknown_top_up(owner, simulator, created.id, "applied-then-drop")

    write = keywrites.delete_key(owner, live(created.id))

    assert write.is_ok
    assert live(created.id) is None
    landed.refresh_from_db()
    assert landed.outcome == Outcome.OK


def test_a_delete_goes_once_a_lost_top_up_is_settled_not_applied(owner, simulator, make_key, settings):
    settings.WRITE_SETTLE_SECONDS = 0
    created = make_key(budget="5")
    lost = unknown_top_up(owner, simulator, created.id, "error")

    write = keywrites.delete_key(owner, live(created.id))

    assert write.is_ok
    lost.refresh_from_db()
    assert lost.outcome == Outcome.REFUSED


def test_an_expiry_waits_for_the_keys_top_ups_and_expires_on_a_later_pass(owner, simulator, make_key, settings):
    settings.WRITE_SETTLE_SECONDS = 600
    created = make_key(budget="5")
    lost = unknown_top_up(owner, simulator, created.id, "error")
    due = KeyExpiry.objects.create(sub_key_id=created.id, key_label="Test client", expires_at=timezone.now() - timedelta(seconds=1))

    expiry.evaluate_expiry(due)

    due.refresh_from_db()
    assert due.status == KeyExpiry.Status.SCHEDULED
    assert "not settled yet" in due.message
    assert live(created.id) is not None

    settings.WRITE_SETTLE_SECONDS = 0
    expiry.evaluate_expiry(due)

    due.refresh_from_db()
    assert due.status == KeyExpiry.Status.EXPIRED
    assert live(created.id) is None
    assert TopUp.objects.get(pk=lost.pk).outcome == Outcome.REFUSED
