"""Every key write is read back: what derouter did not keep is said on the page, in the audit trail and to webhooks.

Each test runs a private simulator playing one of derouter's conventions. Where the console
knows the convention (check_upstream stored it) its forms offer only what derouter keeps;
where it does not (not probed yet, or derouter changed), the read-back catches the difference.
"""

import functools
import json
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from automation import webhooks
from automation.models import WebhookDelivery
from dashboard import keywrites
from derouter import client, conventions
from ledger.models import AuditEvent, Outcome
from lib import stored_text

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def played(private_simulators):
    """played(probe=True, **conventions) -> a private simulator playing them, wired in (and probed by check_upstream)."""
    return functools.partial(private_simulators, probe=True)


def listed(sub_key_id):
    return client.get_sub_key(sub_key_id)


def mismatch_bodies():
    return [json.loads(delivery.body) for delivery in WebhookDelivery.objects.filter(event_type="write.mismatch")]


def test_an_edit_derouter_answers_but_does_not_keep_is_said_recorded_and_sent(played, owner_client):
    # Not probed: the console believes the reference (everything settable); derouter ignores both.
    played(probe=False, multiplier_after_creation="ignored", fixed_limits=True)
    webhooks.create_endpoint("https://hooks.example.com/in", ["write.mismatch"])
    created = client.create_sub_key(Decimal("5"), label="Before")

    response = owner_client.post(reverse("console:key_edit", args=[created.id]),
                                 {"label": "After", "rpm_limit": "12", "display_multiplier": "1.3"}, follow=True)

    body = response.content.decode()
    assert "did not keep every change" in body
    assert "display multiplier not applied: asked 1.3, derouter kept 1" in body
    assert "requests per minute not applied: asked 12, derouter kept 60" in body
    event = AuditEvent.objects.get(action=AuditEvent.Action.EDIT)
    assert event.outcome == Outcome.OK
    assert event.not_applied == {"rpm_limit": [12, 60], "display_multiplier": ["1.3", "1"]}
    assert "label" not in event.not_applied and listed(created.id).label == "After"
    assert "Not applied: rpm limit (asked 12, derouter kept 60)" in stored_text.read_in_english(event.message)
    trail = owner_client.get(reverse("console:audit_trail")).content.decode()
    assert "not applied: derouter kept 60" in trail
    (sent,) = mismatch_bodies()
    assert sent["data"]["sub_key_id"] == created.id and set(sent["data"]["not_applied"]) == {"rpm_limit", "display_multiplier"}


def test_an_edit_derouter_keeps_is_saved_without_a_mismatch(played, owner_client):
    played(probe=False)
    webhooks.create_endpoint("https://hooks.example.com/in", ["write.mismatch"])
    created = client.create_sub_key(Decimal("5"), label="Before")

    response = owner_client.post(reverse("console:key_edit", args=[created.id]),
                                 {"label": "After", "rpm_limit": "12", "display_multiplier": "1.3"}, follow=True)

    assert "Saved the changes to Before." in response.content.decode()
    assert AuditEvent.objects.get(action=AuditEvent.Action.EDIT).not_applied == {}
    assert listed(created.id).display_multiplier == Decimal("1.3")
    assert mismatch_bodies() == []


def test_a_create_whose_markup_derouter_never_keeps_says_so_on_the_created_page(played, owner_client):
    # Not probed: the console asks for the markup; derouter keeps it neither at creation nor after.
    played(probe=False, multiplier_at_creation="ignored", multiplier_after_creation="ignored")
    webhooks.create_endpoint("https://hooks.example.com/in", ["write.mismatch"])

    response = owner_client.post(reverse("console:key_create"), {
        "label": "Marked up", "budget": "2", "rpm_limit": "60", "display_multiplier": "1.3", "token": str(uuid.uuid4())})

    body = response.content.decode()
    assert response.status_code == 200
    assert "display multiplier not applied: asked 1.3, derouter kept 1" in body
    edit = AuditEvent.objects.get(action=AuditEvent.Action.EDIT)  # the markup's second write, read back
    assert edit.not_applied == {"display_multiplier": ["1.3", "1"]}
    assert [sent["data"]["action"] for sent in mismatch_bodies()] == ["edit"]


def test_where_no_markup_is_kept_the_create_form_says_so_before_any_money_moves(played, owner_client):
    played(multiplier_at_creation="ignored", multiplier_after_creation="ignored")
    assert conventions.current().multiplier == conventions.NEVER

    body = owner_client.get(reverse("console:key_create")).content.decode()

    assert "derouter keeps no markup on this account" in body
    assert 'name="display_multiplier"' not in body


def test_where_the_markup_is_kept_only_at_creation_it_is_set_there_and_the_edit_offers_rotation(played, owner_client):
    played(multiplier_after_creation="ignored")
    assert conventions.current().multiplier == conventions.AT_CREATION

    response = owner_client.post(reverse("console:key_create"), {
        "label": "At creation", "budget": "2", "rpm_limit": "60", "display_multiplier": "1.3", "token": str(uuid.uuid4())})

    created = AuditEvent.objects.get(action=AuditEvent.Action.CREATE)
    assert response.status_code == 200 and created.outcome == Outcome.OK and created.not_applied == {}
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.EDIT).exists()
    assert listed(created.sub_key_id).display_multiplier == Decimal("1.3")
    edit_page = owner_client.get(reverse("console:key_edit", args=[created.sub_key_id])).content.decode()
    assert 'name="display_multiplier"' not in edit_page
    assert "rotate the key to a new one" in edit_page


def test_where_rate_limits_are_fixed_the_forms_say_so_instead_of_offering_a_field(played, owner_client):
    played(fixed_limits=True)
    assert not conventions.current().limits_settable
    created = client.create_sub_key(Decimal("1"), label="Fixed")

    create_page = owner_client.get(reverse("console:key_create")).content.decode()
    edit_page = owner_client.get(reverse("console:key_edit", args=[created.id])).content.decode()

    for page in (create_page, edit_page):
        assert 'name="rpm_limit"' not in page
        assert "Rate limits are fixed by derouter: 60 requests per minute, 5 at a time." in page
    response = owner_client.post(reverse("console:key_create"), {
        "label": "No rpm asked", "budget": "1", "token": str(uuid.uuid4())})
    assert response.status_code == 200
    event = AuditEvent.objects.get(action=AuditEvent.Action.CREATE)
    assert event.outcome == Outcome.OK and event.not_applied == {} and "rpm_limit" not in event.changes


def test_keywrites_report_what_was_not_kept_to_their_callers(played, owner):
    played(probe=False, multiplier_after_creation="ignored")
    created = client.create_sub_key(Decimal("1"), label="Caller")

    write = keywrites.edit_key(owner, listed(created.id), {"display_multiplier": (Decimal(1), Decimal(2))})

    assert write.is_ok and write.not_applied == {"display_multiplier": ("2", "1")}


# ---------------------------------------------------------------- top-ups and reclaims read back


def test_a_top_up_derouter_answers_but_does_not_apply_is_recorded_not_applied(played, owner):
    # derouter ignores reduceBudgetVirtual here; an addBudget it would keep, so the reclaim shows it.
    played(reclaim="ignored")
    created = client.create_sub_key(Decimal("5"), label="Ignored reclaim")
    sub_key = listed(created.id)
    from dashboard import topups
    conventions_now = conventions.current()
    assert conventions_now.reclaim == conventions.IGNORED

    with conventions.assuming(Played_supported(conventions_now)):
        attempt = topups.reclaim(owner, sub_key, Decimal("2"), "", uuid.uuid4())

    row = attempt.topup
    assert row.outcome == Outcome.REFUSED and row.amount == Decimal("-2")
    assert "Not applied: derouter answered success" in stored_text.read_in_english(row.message)
    event = AuditEvent.objects.get(form_token=row.token)
    assert event.action == AuditEvent.Action.RECLAIM and event.not_applied == {"budget": ["3", "5"]}
    assert listed(created.id).budget == Decimal("5")


def Played_supported(found):
    """The stored conventions, but with reclaim believed supported (derouter changed since the probe)."""
    from dataclasses import replace
    return replace(found, reclaim=conventions.APPLIED)
