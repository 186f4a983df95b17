"""The audit trail."""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from ledger import audit
from ledger.models import AuditEvent, Outcome

pytestmark = pytest.mark.django_db

AUDIT_URL = reverse("console:audit_trail")


@pytest.fixture
def events(owner, staff):
    key_id = str(uuid.uuid4())
    return {
        "topup": audit.record(
            staff, AuditEvent.Action.TOPUP, Outcome.OK, sub_key_id=key_id, label="Acme",
            key_id_short="sk-ant-acm...", changes={"budget": ("10", "15")},
        ),
        "refused": audit.record(
            owner, AuditEvent.Action.EDIT, Outcome.REFUSED, sub_key_id=key_id, label="Acme",
            changes={"rpm_limit": (60, 90)}, message="rpmLimit must be between 1 and 60",
        ),
        "unknown": audit.record(
            owner, AuditEvent.Action.DELETE, Outcome.UNKNOWN, sub_key_id=str(uuid.uuid4()), label="Other",
            message="derouter did not answer in time.",
        ),
        "reveal": audit.record(owner, AuditEvent.Action.REVEAL, Outcome.OK, sub_key_id=key_id, label="Acme"),
    }


def test_the_audit_trail_lists_events_with_their_outcomes(owner_client, events):
    response = owner_client.get(AUDIT_URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert "4 events" in page
    assert "Budget:</span> $10.00 → $15.00" in page
    assert "Requests per minute:</span> 60 → 90" in page
    assert "rpmLimit must be between 1 and 60" in page
    assert "May or may not have happened." in page
    for badge in ('class="badge ok"', 'class="badge refused"', 'class="badge unknown"'):
        assert badge in page
    assert "sam" in page and "olivia" in page


def test_the_audit_trail_filters(owner_client, events):
    by_action = owner_client.get(AUDIT_URL, {"action": "topup"}).content.decode()
    assert "1 event ·" in by_action and "Top up" in by_action

    by_outcome = owner_client.get(AUDIT_URL, {"outcome": "unknown"}).content.decode()
    assert "1 event ·" in by_outcome and "Delete key" in by_outcome

    by_key = owner_client.get(AUDIT_URL, {"sub_key_id": events["topup"].sub_key_id}).content.decode()
    assert "3 events" in by_key and "did not answer in time" not in by_key

    assert "No events match" in owner_client.get(AUDIT_URL, {"action": "create"}).content.decode()
    assert owner_client.get(AUDIT_URL, {"action": "launch"}).status_code == 400
    assert owner_client.get(AUDIT_URL, {"page": "zzz"}).status_code == 200


def test_the_audit_trail_swaps_its_fragment_for_htmx(owner_client, events):
    response = owner_client.get(AUDIT_URL, {"outcome": "refused"}, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="audit"')
    assert "1 event ·" in page
    assert "HX-Request" in response["Vary"]


def test_staff_see_the_audit_trail(staff_client, events):
    assert staff_client.get(AUDIT_URL).status_code == 200


# Bug: a create event read "label: → Acme", as if the label had changed from something.
def test_audit_shows_a_created_key_without_a_before_value(owner_client, owner):
    audit.record(
        owner,
        AuditEvent.Action.CREATE,
        Outcome.OK,
        sub_key_id="7c41f71c-3ae3-4cc2-8b09-d52df4efc5f3",
        label="Acme",
        key_id_short="sk-ant-abc...",
        changes={"label": ("", "Acme"), "budget": (None, Decimal("12.3456"))},
    )
    body = owner_client.get(AUDIT_URL).content.decode()
    assert '<span class="muted">Label:</span> Acme' in body
    assert "→ Acme" not in body
    assert '<span class="muted">Budget:</span> $12.3456' in body


def test_audit_shows_an_emptied_label_as_empty(owner_client, owner):
    audit.record(
        owner,
        AuditEvent.Action.EDIT,
        Outcome.OK,
        sub_key_id="7c41f71c-3ae3-4cc2-8b09-d52df4efc5f3",
        label="Acme",
        changes={"label": ("Acme", "")},
    )
    body = owner_client.get(AUDIT_URL).content.decode()
    assert "Acme → (empty)" in body


# A deleted key the snapshot never held has no page: its events name it without a link.
def test_audit_does_not_link_a_deleted_key_without_a_page(owner_client, owner):
    sub_key_id = "0b7e4c1a-5d3f-4e0a-9a43-7f1f0d6c2b11"
    for action in (AuditEvent.Action.CREATE, AuditEvent.Action.DELETE):
        audit.record(owner, action, Outcome.OK, sub_key_id=sub_key_id, label="Gone Ltd", changes={})
    body = owner_client.get(AUDIT_URL).content.decode()
    assert f"/dashboard/keys/{sub_key_id}/" not in body
    assert "Gone Ltd" in body and "deleted" in body
    assert owner_client.get(f"/dashboard/keys/{sub_key_id}/").status_code == 404
