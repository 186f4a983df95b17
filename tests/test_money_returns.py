"""A delete returns the key's budget to the account: it waits for the key's earlier money moves to settle.

Found by the money harness: a key deleted (by a person, an expiry or a rotation) while one of
its top-ups had an unknown outcome could never settle it, since derouter no longer lists the
deleted key's budget; the ledger then disagreed with derouter for good.
"""

import datetime
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.db import connections
from django.utils import timezone

from automation import actors, expiry
from automation import rotation as rotations
from automation.models import KeyExpiry, Rotation
from dashboard import keywrites, money_rows, topups
from ledger.models import AuditEvent, Outcome, TopUp
from derouter import client
from lib import stored_text
from tests.helpers import budget_of

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
    assert "not settled yet" in stored_text.read_in_english(write.event.message)
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
    assert "not settled yet" in stored_text.read_in_english(due.message)
    assert live(created.id) is not None

    settings.WRITE_SETTLE_SECONDS = 0
    expiry.evaluate_expiry(due)

    due.refresh_from_db()
    assert due.status == KeyExpiry.Status.EXPIRED
    assert live(created.id) is None
    assert TopUp.objects.get(pk=lost.pk).outcome == Outcome.REFUSED


def top_up(sub_key, amount):
    row = topups.top_up(actors.WorkerActor("test"), sub_key, Decimal(amount), "test", uuid.uuid4(), Decimal(10**6)).topup
    assert row.outcome == Outcome.OK


@pytest.fixture
def short_lock_wait(monkeypatch):
    monkeypatch.setattr(money_rows, "MONEY_LOCK_WAIT_SECONDS", 0.3)


def test_a_delete_records_what_the_key_held_when_the_delete_went_out(owner, make_key):
    created = make_key("10", label="Topped up meanwhile")
    page_read = live(created.id)  # the delete page was opened at $10
    top_up(page_read, "5")
    available = client.get_balance().available

    write = keywrites.delete_key(owner, page_read)

    assert write.is_ok and live(created.id) is None
    assert write.event.changes == {"budget_returned": [None, "15"]}
    assert client.get_balance().available == available + Decimal(15)


def test_a_delete_while_a_money_move_holds_the_key_sends_nothing(owner, make_key, short_lock_wait):
    created = make_key("10", label="Busy delete")
    with topups.key_lock(created.id):
        write = keywrites.delete_key(owner, live(created.id))
    assert write.is_refused and not write.was_sent
    assert "another money move on this key" in stored_text.read_in_english(write.event.message)
    assert live(created.id) is not None


def test_a_rotation_carries_over_what_the_old_key_holds_under_its_lock(owner, make_key):
    created = make_key("10", label="Rotated after a top-up")
    page_read = live(created.id)  # the rotate page was opened at $10
    top_up(page_read, "5")
    available = client.get_balance().available

    result = rotations.rotate(owner, page_read, uuid.uuid4())

    rotation = result.rotation
    assert rotation.status == Rotation.Status.DONE
    assert rotation.moved_budget == Decimal(15) and rotation.returned == Decimal(15)
    assert budget_of(rotation.new_sub_key_id) == Decimal(15)
    assert live(created.id) is None
    assert client.get_balance().available == available


def test_a_rotation_while_a_money_move_holds_the_key_changes_nothing(owner, make_key, short_lock_wait):
    created = make_key("10", label="Busy rotation")
    keys_before = len(client.list_sub_keys())
    with topups.key_lock(created.id):
        result = rotations.rotate(owner, live(created.id), uuid.uuid4())
    assert result.rotation.status == Rotation.Status.CREATE_REFUSED
    assert "another money move on this key" in stored_text.read_in_english(result.rotation.message)
    assert len(client.list_sub_keys()) == keys_before and live(created.id) is not None


def test_an_expiry_while_a_money_move_holds_the_key_waits_for_the_next_pass(make_key, short_lock_wait, django_capture_on_commit_callbacks):
    created = make_key("7", label="Busy expiry")
    record = KeyExpiry.objects.create(
        sub_key_id=created.id, key_label=created.label, key_id_short=created.key_id,
        expires_at=timezone.now() - datetime.timedelta(minutes=1),
    )
    with topups.key_lock(created.id):
        message = expiry.evaluate_expiry(record)
    record.refresh_from_db()
    assert "another money move" in message and record.status == KeyExpiry.Status.SCHEDULED
    assert live(created.id) is not None

    with django_capture_on_commit_callbacks(execute=True):
        expiry.evaluate_expiry(record)
    record.refresh_from_db()
    assert (record.status, record.returned) == (KeyExpiry.Status.EXPIRED, Decimal(7))
    assert live(created.id) is None
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETE, sub_key_id=created.id, outcome=Outcome.OK)
    assert event.changes == {"budget_returned": [None, "7"]}


def test_a_delete_is_dated_when_it_goes_out_so_settling_waits_for_its_request(owner, simulator, make_key):
    # Found by the money harness: a delete's event was dated before the key's usage sync and its
    # money lock; a slow delete sent seconds later was settled "not applied" while it still ran
    # (WRITE_SETTLE_SECONDS counts from the event's time), and derouter then deleted the key.
    created = make_key(budget="5")
    sub_key = live(created.id)
    before = timezone.now()
    # The key's last usage is mirrored before its delete goes out: here, slowly.
    simulator.inject("slow", path="/usage-logs", method="GET", delay=1.5, times=1)

    write = keywrites.delete_key(owner, sub_key)

    assert write.is_ok
    assert (write.event.created_at - before).total_seconds() >= 1.5
    assert AuditEvent.objects.get(pk=write.event.pk).created_at == write.event.created_at


# ---------------------------------------------------------------- the return's own ledger line


def test_a_delete_writes_its_return_as_a_ledger_line_shown_on_the_ledger_and_its_csv(owner, owner_client, make_key):
    created = make_key("10", label="Returned budget")
    available = client.get_balance().available

    write = keywrites.delete_key(owner, live(created.id))  # nothing spent: all $10 go back

    line = TopUp.objects.get(sub_key_id=created.id, kind=TopUp.Kind.RETURN)
    assert (line.outcome, line.amount, line.outcome_inferred) == (Outcome.OK, Decimal(-10), False)
    assert line.token == write.event.form_token
    assert client.get_balance().available == available - line.amount  # the ledger explains the balance
    page = owner_client.get(f"/dashboard/topups/?sub_key_id={created.id}").content.decode()
    assert "Returned on delete" in page and "-$10.00" in page
    csv = b"".join(owner_client.get(f"/dashboard/topups/export.csv?sub_key_id={created.id}").streaming_content).decode()
    assert csv.splitlines()[0].endswith(",kind") and csv.splitlines()[1].endswith(",return")


def test_a_return_line_records_what_derouter_answered_it_returned(owner, simulator, make_key, monkeypatch):
    created = make_key("10", label="Spent while deleting")
    real_delete = client.delete_sub_key

    def charged_just_before(sub_key_id, key_multiplier=None):
        # A request charged after the delete read the key under its lock: derouter returns less than that read.
        spent = requests.post(f"{simulator.base_url}/_sim/usage", json={"subKeyId": sub_key_id, "cost": "3"}, timeout=10)
        assert spent.status_code == 200
        return real_delete(sub_key_id, key_multiplier)

    monkeypatch.setattr(client, "delete_sub_key", charged_just_before)
    keywrites.delete_key(owner, live(created.id))

    line = TopUp.objects.get(sub_key_id=created.id, kind=TopUp.Kind.RETURN)
    assert line.amount == Decimal(-7)


def test_an_unknown_delete_leaves_its_return_unknown_until_derouter_shows_it(owner, simulator, make_key, settings):
    created = make_key("6", label="Delete answer lost")
    simulator.inject("applied-then-drop", path=f"/sub-keys/{created.id}", method="DELETE")

    write = keywrites.delete_key(owner, live(created.id))

    assert write.is_unknown
    line = TopUp.objects.get(sub_key_id=created.id, kind=TopUp.Kind.RETURN)
    assert line.outcome == Outcome.UNKNOWN and line.amount == Decimal(-6)
    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes()
    line.refresh_from_db()
    assert (line.outcome, line.outcome_inferred) == (Outcome.OK, True)


def test_a_refused_delete_returns_nothing(owner, simulator, make_key):
    created = make_key("6", label="Delete refused")
    simulator.inject("error", path=f"/sub-keys/{created.id}", method="DELETE", status=400)

    assert keywrites.delete_key(owner, live(created.id)).is_refused

    assert TopUp.objects.get(sub_key_id=created.id, kind=TopUp.Kind.RETURN).outcome == Outcome.REFUSED


def test_a_delete_waits_while_an_earlier_delete_of_the_key_is_unknown(owner, simulator, make_key, settings):
    """Found by the money harness: deletes sent while an earlier one was unknown were all settled done, the key's
    budget returned once per delete in the ledger."""
    created = make_key("6", label="Deleted twice")
    simulator.inject("error", path=f"/sub-keys/{created.id}", method="DELETE", status=500)
    assert keywrites.delete_key(owner, live(created.id)).is_unknown

    again = keywrites.delete_key(owner, live(created.id))

    assert again.is_refused and not again.was_sent
    assert "earlier delete of this key" in stored_text.read_in_english(again.event.message)
    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes()  # the first is settled "not applied": the key is still listed
    assert keywrites.delete_key(owner, live(created.id)).is_ok
    keywrites.resolve_unsettled_writes()
    lines = TopUp.objects.filter(sub_key_id=created.id, kind=TopUp.Kind.RETURN)
    assert sorted(lines.values_list("outcome", flat=True)) == [Outcome.OK, Outcome.REFUSED]


@pytest.mark.django_db(transaction=True)
def test_a_delete_settled_by_its_request_and_the_settling_task_at_once_keeps_its_line_with_its_event(
    owner, simulator, make_key, monkeypatch
):
    """Found by the money harness: the request recording its lost answer and the settling task (another process)
    finishing the delete interleaved, leaving the event "ok" and its return line "unknown" for good."""
    created = make_key("4", label="Settled twice")
    simulator.inject("applied-then-drop", path=f"/sub-keys/{created.id}", method="DELETE")
    real_save = AuditEvent.save
    task = []

    def settling_task():
        try:
            keywrites.resolve_unsettled_writes()
        finally:
            connections.close_all()

    def save_then_the_task_runs(event, *args, **kwargs):
        real_save(event, *args, **kwargs)
        if event.action == AuditEvent.Action.DELETE and event.outcome == Outcome.UNKNOWN and not task:
            # Between the event and its line: the task runs as far as it can before this request goes on.
            task.append(threading.Thread(target=settling_task))
            task[0].start()
            task[0].join(timeout=2)

    monkeypatch.setattr(AuditEvent, "save", save_then_the_task_runs)
    keywrites.delete_key(owner, live(created.id))
    task[0].join()

    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETE, sub_key_id=created.id)
    line = TopUp.objects.get(token=event.form_token)
    assert (event.outcome, line.outcome) == (Outcome.OK, Outcome.OK)
