"""Rotation and expiry return every unspent cent: before/after balance figures."""

import contextlib
import datetime
import uuid
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from automation import evaluation, expiry
from automation import rotation as rotations
from automation.models import KeyExpiry, Rotation
from dashboard import keywrites
from ledger.models import AuditEvent, Outcome, TopUp
from derouter import client
from derouter.client import DerouterError
from mirror.key_store import secret_digest
from mirror.models import KeySnapshot, UsageRecord
from tests.helpers import find_key
from work.models import Lease

pytestmark = pytest.mark.django_db


def test_rotation_moves_the_remaining_budget_to_a_new_key_and_keeps_the_balance(owner_client, simulator, make_key, django_capture_on_commit_callbacks):
    old = make_key(budget="10", label="Rotated", rpm_limit=30)
    client.update_sub_key(old.id, display_multiplier=Decimal("2.5"))
    simulator.add_usage(old.id, "1.25")
    old_key = find_key(old.id)
    before = client.get_balance()

    with django_capture_on_commit_callbacks(execute=True):
        page = owner_client.get(f"/dashboard/automation/keys/{old.id}/rotate/")
        token = page.context["form"]["token"].value()
        response = owner_client.post(f"/dashboard/automation/keys/{old.id}/rotate/", {"token": token})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    rotation = Rotation.objects.get()
    assert rotation.status == Rotation.Status.DONE
    new = find_key(rotation.new_sub_key_id)
    secret = response.context["secret"]
    assert secret.startswith("sk-ant-") and secret.encode() in response.content
    assert find_key(old.id) is None
    assert (new.label, new.rpm_limit, new.display_multiplier, new.budget) == ("Rotated", 30, Decimal("2.5"), Decimal("8.75"))
    after = client.get_balance()
    assert (after.balance, after.locked, after.available) == (before.balance, before.locked, before.available)
    assert rotation.returned == Decimal("8.75") and rotation.moved_budget == Decimal("8.75")

    create, delete = AuditEvent.objects.order_by("id").filter(action__in=["create", "delete"])
    assert create.sub_key_id == rotation.new_sub_key_id and old.key_id in create.message
    assert delete.sub_key_id == old.id and rotation.new_key_id_short in delete.message

    # The same form again (a double click that arrives while the old key still exists) rotates nothing.
    repeated = rotations.rotate(rotation.actor, old_key, uuid.UUID(token))
    assert repeated.repeated and repeated.secret == "" and repeated.rotation == rotation
    assert Rotation.objects.count() == 1


def test_a_rotation_whose_delete_was_lost_says_so_and_can_be_finished(owner_client, simulator, make_key, settings):
    old = make_key(budget="6", label="Half rotated")
    before = client.get_balance()
    simulator.inject("drop", path=f"/sub-keys/{old.id}", method="DELETE", times=1)
    page = owner_client.get(f"/dashboard/automation/keys/{old.id}/rotate/")
    response = owner_client.post(f"/dashboard/automation/keys/{old.id}/rotate/", {"token": page.context["form"]["token"].value()})

    assert response.status_code == 503
    rotation = Rotation.objects.get()
    assert rotation.status == Rotation.Status.DELETE_UNKNOWN
    assert b"may or may not have been deleted" in response.content
    assert b"Finish the rotation" in response.content
    assert find_key(old.id) is not None  # the dropped delete never reached derouter
    assert client.get_balance().available == before.available - 6

    # The lost delete may still land for WRITE_SETTLE_SECONDS: no second delete goes out before.
    too_soon = owner_client.post(f"/dashboard/automation/rotations/{rotation.pk}/finish/", follow=True)
    assert b"earlier delete of this key" in too_soon.content
    assert find_key(old.id) is not None

    settings.WRITE_SETTLE_SECONDS = 0
    finished = owner_client.post(f"/dashboard/automation/rotations/{rotation.pk}/finish/", follow=True)
    assert b"the old key is gone" in finished.content
    rotation.refresh_from_db()
    assert rotation.status == Rotation.Status.DONE
    assert find_key(old.id) is None
    after = client.get_balance()
    assert (after.available, after.locked) == (before.available, before.locked)


def test_a_rotation_derouter_refuses_changes_nothing(owner_client, simulator, make_key):
    old = make_key(budget="3", label="Refused")
    simulator.inject("error", path="/sub-keys", method="POST", status=400, times=1)
    before = client.get_balance()
    page = owner_client.get(f"/dashboard/automation/keys/{old.id}/rotate/")
    response = owner_client.post(f"/dashboard/automation/keys/{old.id}/rotate/", {"token": page.context["form"]["token"].value()})
    assert response.status_code == 400
    assert Rotation.objects.get().status == Rotation.Status.CREATE_REFUSED
    assert find_key(old.id) is not None
    assert client.get_balance() == before


def test_staff_cannot_rotate(staff_client, make_key):
    old = make_key(budget="1", label="Not yours")
    assert staff_client.get(f"/dashboard/automation/keys/{old.id}/rotate/").status_code == 403
    assert staff_client.post(f"/dashboard/automation/keys/{old.id}/rotate/", {"token": "x"}).status_code == 403


def make_expiry(created, expires_at, **fields):
    return KeyExpiry.objects.create(
        sub_key_id=created.id, key_label=created.label, key_id_short=created.key_id,
        secret_sha256=secret_digest(created.secret.reveal()), expires_at=expires_at, **fields,
    )


def test_an_expired_key_is_deleted_and_its_unspent_budget_returns(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="7", label="Ends")
    simulator.add_usage(created.id, "2")
    record = make_expiry(created, timezone.now() + datetime.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    assert find_key(created.id) is not None

    KeyExpiry.objects.filter(pk=record.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    before = client.get_balance()
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
        evaluation.evaluate()

    record.refresh_from_db()
    assert record.status == KeyExpiry.Status.EXPIRED and record.returned == Decimal(5)
    assert find_key(created.id) is None
    after = client.get_balance()
    assert after.available == before.available + 5
    assert after.locked == before.locked - 5 and after.balance == before.balance
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETE)
    assert (event.actor_name, event.outcome, event.sub_key_id) == ("key expiry", Outcome.OK, created.id)
    assert KeySnapshot.objects.get(sub_key_id=created.id).is_deleted
    assert expiry.get_expired_notice(created.secret.reveal()).startswith("This key expired on")


def test_a_reminder_goes_out_once_before_the_key_expires(make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="1", label="Soon")
    make_expiry(created, timezone.now() + datetime.timedelta(days=2), remind_days=3, notify_email="customer@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
        evaluation.evaluate()
    (email,) = mail.outbox
    assert email.to == ["customer@example.com"] and "expires on" in email.subject
    assert find_key(created.id) is not None


def test_an_expiry_delete_with_no_answer_is_checked_before_trying_again(
    simulator, make_key, settings, django_capture_on_commit_callbacks
):
    created = make_key(budget="2", label="Lost delete")
    record = make_expiry(created, timezone.now() - datetime.timedelta(seconds=1))
    simulator.inject("drop", path=f"/sub-keys/{created.id}", method="DELETE", times=1)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    record.refresh_from_db()
    assert record.status == KeyExpiry.Status.UNKNOWN
    # Once the lost delete can no longer land (WRITE_SETTLE_SECONDS), the next pass deletes the key.
    settings.WRITE_SETTLE_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    record.refresh_from_db()
    assert record.status == KeyExpiry.Status.EXPIRED
    assert find_key(created.id) is None


@pytest.mark.parametrize("status", [429, 401])
def test_an_expiry_stopped_by_derouter_refusing_us_is_taken_over_by_the_next_pass(
    status, simulator, make_key, django_capture_on_commit_callbacks
):
    created = make_key(budget="2", label="Refused us")
    record = make_expiry(created, timezone.now() - datetime.timedelta(seconds=1))
    simulator.inject("error", path="/sub-keys", status=status, times=20)
    with contextlib.suppress(DerouterError):
        expiry.evaluate_expiry(record)
    simulator.clear_faults()
    assert find_key(created.id) is not None

    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    record.refresh_from_db()
    assert record.status == KeyExpiry.Status.EXPIRED and record.returned == Decimal(2)
    assert find_key(created.id) is None


def test_an_expiry_a_killed_worker_left_is_taken_over_once_its_lease_has_expired(
    simulator, make_key, django_capture_on_commit_callbacks
):
    created = make_key(budget="2", label="Killed mid-expiry")
    record = make_expiry(created, timezone.now() - datetime.timedelta(seconds=1))
    now = timezone.now()
    lease = Lease.objects.create(
        name=f"automation-expiry-{record.pk}", holder="a-killed-worker", taken_at=now,
        expires_at=now + datetime.timedelta(minutes=5),
    )
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    assert find_key(created.id) is not None  # the killed worker's claim holds until its lease runs out

    Lease.objects.filter(pk=lease.pk).update(expires_at=now - datetime.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    record.refresh_from_db()
    assert record.status == KeyExpiry.Status.EXPIRED
    assert find_key(created.id) is None


def test_an_expiry_left_deleting_by_an_earlier_version_is_finished(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="2", label="Stuck deleting")
    record = make_expiry(created, timezone.now() - datetime.timedelta(seconds=1), status=KeyExpiry.Status.DELETING)
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    record.refresh_from_db()
    assert record.status == KeyExpiry.Status.EXPIRED
    assert find_key(created.id) is None


def test_an_expiry_records_its_delete_before_derouter_is_asked(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="2", label="Recorded first")
    record = make_expiry(created, timezone.now() - datetime.timedelta(seconds=1))
    seen = []
    original = client.delete_sub_key

    def delete_seeing_the_record(sub_key_id, key_multiplier=None):
        seen.extend(AuditEvent.objects.filter(action=AuditEvent.Action.DELETE).values_list("outcome", flat=True))
        seen.extend(TopUp.objects.filter(kind=TopUp.Kind.RETURN).values_list("outcome", flat=True))
        return original(sub_key_id, key_multiplier)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client, "delete_sub_key", delete_seeing_the_record)
        expiry.evaluate_expiry(record)
    assert seen == [Outcome.PENDING, Outcome.PENDING]  # the delete and its return line
    assert AuditEvent.objects.get(action=AuditEvent.Action.DELETE).outcome == Outcome.OK


def test_the_portal_tells_a_customer_its_key_expired(client, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="3", label="Portal ends")
    client.post("/portal/login/", {"client_key": created.secret.reveal()})
    assert client.get("/portal/").status_code == 200
    make_expiry(created, timezone.now() - datetime.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()

    signed_out = client.get("/portal/", follow=True)
    assert b"This key expired on" in signed_out.content
    again = client.post("/portal/login/", {"client_key": created.secret.reveal()})
    assert again.status_code == 400
    assert b"This key expired on" in again.content


def test_a_rotation_writes_its_own_answers_into_the_key_snapshot(owner_client, simulator, make_key):
    old = make_key(budget="10", label="Snapshot rotated")
    client.update_sub_key(old.id, display_multiplier=Decimal("2.5"))
    simulator.add_usage(old.id, "1.25", count=2)

    page = owner_client.get(f"/dashboard/automation/keys/{old.id}/rotate/")
    owner_client.post(f"/dashboard/automation/keys/{old.id}/rotate/", {"token": page.context["form"]["token"].value()})

    # No refresh of the key list in between: the create, the multiplier and the delete answered for themselves.
    rotation = Rotation.objects.get()
    new = KeySnapshot.objects.get(sub_key_id=rotation.new_sub_key_id)
    assert (new.label, new.budget, new.display_multiplier, new.is_deleted) == ("Snapshot rotated", Decimal("7.5"), Decimal("2.5"), False)
    assert KeySnapshot.objects.get(sub_key_id=old.id).is_deleted
    # The old key's usage was mirrored before derouter stopped listing it, under its multiplier.
    rows = UsageRecord.objects.filter(key__sub_key_id=old.id)
    assert [(row.cost, row.billed) for row in rows] == [(Decimal("1.25"), Decimal("3.125"))] * 2


def test_an_expiry_mirrors_the_keys_last_usage_and_marks_it_deleted(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Expires mirrored")
    simulator.add_usage(created.id, "0.75")
    make_expiry(created, timezone.now() - datetime.timedelta(seconds=1))

    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()

    snapshot = KeySnapshot.objects.get(sub_key_id=created.id)
    assert snapshot.is_deleted and snapshot.spent == Decimal("0.75")
    assert list(UsageRecord.objects.filter(key=snapshot).values_list("cost", flat=True)) == [Decimal("0.75")]


def _rotation_left_started(owner, sub_key, minutes_ago):
    rotation = Rotation.objects.create(
        token=uuid.uuid4(), actor=owner, actor_name=owner.get_username(), old_sub_key_id=sub_key.id,
        old_key_id_short=sub_key.key_id, label=sub_key.label,
    )
    Rotation.objects.filter(pk=rotation.pk).update(created_at=timezone.now() - datetime.timedelta(minutes=minutes_ago))
    return rotation


def test_a_rotation_stopped_before_its_create_was_sent_ends_refused_once_its_claim_has_run_out(owner, make_key):
    created = make_key(budget="3", label="Stopped rotation")
    fresh = _rotation_left_started(owner, created, minutes_ago=0)
    stale = _rotation_left_started(owner, created, minutes_ago=10)

    rotations.settle_open()

    fresh.refresh_from_db()
    stale.refresh_from_db()
    assert fresh.status == Rotation.Status.STARTED  # its request may still be running
    assert stale.status == Rotation.Status.CREATE_REFUSED and "nothing was changed" in stale.message
    assert find_key(created.id) is not None


def test_a_rotation_stopped_after_its_new_key_was_made_is_finished_by_the_pass(owner, simulator, make_key):
    created = make_key(budget="3", label="Half-made rotation")
    old = find_key(created.id)
    rotation = _rotation_left_started(owner, old, minutes_ago=10)
    # The request made the new key (recorded first, as every create is), then stopped.
    made = keywrites.create_key(owner, token=rotation.token, label=old.label, budget=Decimal(3), rpm_limit=None)
    assert made.is_ok

    rotations.settle_open()

    rotation.refresh_from_db()
    assert rotation.status == Rotation.Status.DONE and rotation.new_sub_key_id == made.created.id
    assert find_key(created.id) is None and find_key(made.created.id) is not None
