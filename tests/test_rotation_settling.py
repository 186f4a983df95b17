"""Open rotations move on by themselves: found by the money harness, where faults left rotations stuck for good.

A rotation whose balance read failed stayed "started"; one whose new key's create had an
unknown outcome stayed "outcome unknown" even once the create was settled, with the old key
and (when the create had landed) a new one both holding the budget.
"""

import time
import uuid
from decimal import Decimal

import pytest

from automation import rotation
from automation.models import Rotation
from dashboard import keywrites
from derouter import client
from derouter.client import DerouterError
from ledger.models import AuditEvent, Outcome
from tests.helpers import eventually

pytestmark = pytest.mark.django_db


def console_key(owner, label):
    """A key the console created (its create confirmed), as a rotation finds it."""
    return keywrites.create_key(owner, token=uuid.uuid4(), label=label, budget=Decimal(5), rpm_limit=None).created


def live(sub_key_id):
    return next((key for key in client.list_sub_keys() if key.id == sub_key_id), None)


def test_a_rotation_whose_balance_cannot_be_read_ends_with_nothing_changed(owner, simulator, make_key):
    created = make_key(budget="5")
    simulator.inject("error", path="/balance", method="GET", status=500, times=10)

    with pytest.raises(DerouterError):
        rotation.rotate(owner, live(created.id), uuid.uuid4())

    stuck = Rotation.objects.get(old_sub_key_id=created.id)
    assert stuck.status == Rotation.Status.CREATE_REFUSED
    assert "Nothing was changed" in stuck.message


def test_a_rotation_whose_new_key_was_made_after_all_is_finished_by_the_pass(owner, simulator, settings):
    created = console_key(owner, "Harbor rotation")
    simulator.inject("applied-then-drop", path="/sub-keys", method="POST")
    result = rotation.rotate(owner, live(created.id), uuid.uuid4())
    assert result.rotation.status == Rotation.Status.CREATE_UNKNOWN

    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes()
    rotation.settle_open()

    done = Rotation.objects.get(pk=result.rotation.pk)
    assert done.status == Rotation.Status.DONE
    assert live(created.id) is None
    new_key = live(done.new_sub_key_id)
    assert new_key.label == "Harbor rotation"
    assert new_key.budget == Decimal("5")


def test_a_rotation_whose_new_key_was_not_made_ends_with_nothing_changed(owner, simulator, settings):
    created = console_key(owner, "Quay rotation")
    simulator.inject("error", path="/sub-keys", method="POST", status=500)
    result = rotation.rotate(owner, live(created.id), uuid.uuid4())
    assert result.rotation.status == Rotation.Status.CREATE_UNKNOWN

    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes()
    rotation.settle_open()

    ended = Rotation.objects.get(pk=result.rotation.pk)
    assert ended.status == Rotation.Status.CREATE_REFUSED
    assert live(created.id) is not None


def test_an_unknown_new_key_is_never_taken_for_the_key_it_replaces(owner, simulator, make_key, settings):
    """Found by the money harness: the old key has the new one's label and budget, so settling adopted it."""
    old = make_key(budget="5", label="Jetty rotation")  # made outside the console: no create of ours claims it
    simulator.inject("error", path="/sub-keys", method="POST", status=500)
    result = rotation.rotate(owner, live(old.id), uuid.uuid4())
    assert result.rotation.status == Rotation.Status.CREATE_UNKNOWN

    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes()
    rotation.settle_open()

    create = AuditEvent.objects.get(form_token=result.rotation.token)
    assert create.outcome == Outcome.REFUSED
    assert create.sub_key_id != old.id
    assert Rotation.objects.get(pk=result.rotation.pk).status == Rotation.Status.CREATE_REFUSED
    assert live(old.id) is not None


def test_a_key_is_not_rotated_again_while_its_earlier_rotations_new_key_is_unknown(owner, simulator):
    created = console_key(owner, "Pier rotation")
    simulator.inject("applied-then-drop", path="/sub-keys", method="POST")
    first = rotation.rotate(owner, live(created.id), uuid.uuid4())
    assert first.rotation.status == Rotation.Status.CREATE_UNKNOWN

    second = rotation.rotate(owner, live(created.id), uuid.uuid4())

    assert second.rotation.status == Rotation.Status.CREATE_REFUSED
    assert "earlier rotation" in second.rotation.message
    assert not AuditEvent.objects.filter(form_token=second.rotation.token).exists()


def test_a_create_is_judged_from_when_the_key_list_was_asked_for_not_when_it_came(owner, simulator, monkeypatch, settings):
    """Found by the money harness on a loaded machine: a key list asked for before an unknown create landed came
    back seconds later, and the create was settled "not applied" from it though derouter had made the key."""
    settings.WRITE_SETTLE_SECONDS = 1
    before_the_create = client.list_sub_keys()
    simulator.inject("applied-then-drop", path="/sub-keys", method="POST")
    write = keywrites.create_key(owner, token=uuid.uuid4(), label="Slow list", budget=Decimal(3), rpm_limit=None)
    assert write.is_unknown

    def list_as_it_was_when_asked():
        time.sleep(settings.WRITE_SETTLE_SECONDS + 0.2)  # the answer comes late, as derouter was when asked
        return before_the_create

    with monkeypatch.context() as patch:
        patch.setattr(client, "list_sub_keys", list_as_it_was_when_asked)
        keywrites.resolve_unsettled_writes()
    assert AuditEvent.objects.get(pk=write.event.pk).outcome == Outcome.UNKNOWN  # too early to tell

    keywrites.resolve_unsettled_writes()
    settled = AuditEvent.objects.get(pk=write.event.pk)
    assert settled.outcome == Outcome.OK and live(settled.sub_key_id).label == "Slow list"


def test_a_rotations_new_key_derouter_made_after_nothing_was_said_changed_is_deleted_and_the_old_key_kept(owner, simulator, settings):
    """Found by the money harness (run I): a rotation's new key made by derouter after WRITE_SETTLE_SECONDS stayed
    "not applied", and the rotation "nothing changed", for good: the old key and the new one both held the budget."""
    created = console_key(owner, "Wharf rotation")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys", method="POST", delay=2, times=1)
    result = rotation.rotate(owner, live(created.id), uuid.uuid4())
    assert result.rotation.status == Rotation.Status.CREATE_UNKNOWN
    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes(late_writes=True)  # before derouter got round to it
    rotation.settle_open()
    assert Rotation.objects.get(pk=result.rotation.pk).status == Rotation.Status.CREATE_REFUSED

    eventually(lambda: len([key for key in client.list_sub_keys() if key.label == "Wharf rotation"]) == 2)
    keywrites.resolve_unsettled_writes(late_writes=True)  # the worker's run looks for late writes
    rotation.settle_open()

    create = AuditEvent.objects.get(form_token=result.rotation.token)
    assert create.outcome == Outcome.OK and create.sub_key_id != created.id
    kept = Rotation.objects.get(pk=result.rotation.pk)
    # Nobody was given the late key and the customer still uses the old one: the late key goes, its budget back.
    assert (kept.status, kept.new_sub_key_id) == (Rotation.Status.CREATE_REFUSED, create.sub_key_id)
    assert "old key stays in use" in kept.message
    assert live(create.sub_key_id) is None
    assert live(created.id).budget == Decimal(5)
    rotation.settle_open()  # a later pass leaves it be
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETE, sub_key_id=create.sub_key_id).count() == 1
