"""Every write ends with a record that says what derouter did, and a page that says the truth.

Creates, edits and deletes under each injected fault; settling unknown and pending
writes from derouter's state later; one deadline per writing request; form tokens
that belong to one key and one action.
"""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import keywrites, topups
from ledger.models import AuditEvent, Outcome, TopUp
from derouter import client as derouter_client
from derouter.client import Unavailable
from lib import stored_text
from lib.stored_text import read_in_english
from work.models import TaskRun
from tests.helpers import budget_of, eventually, find_key

pytestmark = pytest.mark.django_db

# The simulator acts out these faults without applying the request (see derouter/simulator/controls.py).
NOT_APPLIED_FAULTS = {
    "500": {"mode": "error", "status": 500},
    "503": {"mode": "error", "status": 503},
    "non-JSON": {"mode": "nonjson"},
    "dropped": {"mode": "drop"},
}
NOTHING_CHANGED = "Nothing was changed"
EDIT_DATA = {"label": "After", "rpm_limit": "12", "display_multiplier": "2"}


def create_data(label, budget="1.25"):
    return {"label": label, "budget": budget, "rpm_limit": "30", "token": str(uuid.uuid4())}


def edit(owner_client, sub_key_id):
    return owner_client.post(reverse("console:key_edit", args=[sub_key_id]), EDIT_DATA)


def delete(owner_client, sub_key_id):
    return owner_client.post(reverse("console:key_delete", args=[sub_key_id]))


def view_key(owner_client, sub_key_id):
    """The key page as a browser takes it: the page, then its live budget (which settles open writes)."""
    url = reverse("console:key_detail", args=[sub_key_id])
    owner_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="key-budget")
    return owner_client.get(url)


def assert_says_unknown(response, what):
    body = response.content.decode()
    assert response.status_code == 503
    assert f"may or may not have {what}" in body
    assert NOTHING_CHANGED not in body


def only_event(action):
    return AuditEvent.objects.get(action=action)


# ---------------------------------------------------------------- faults that derouter did not apply


@pytest.mark.parametrize("fault", NOT_APPLIED_FAULTS.values(), ids=NOT_APPLIED_FAULTS.keys())
def test_an_edit_under_a_fault_is_unknown_then_settled_as_not_applied(owner_client, make_key, simulator, settings, fault):
    key = make_key("1", label="Before")
    simulator.inject(path=f"/sub-keys/{key.id}", method="PUT", **fault)

    response = edit(owner_client, key.id)

    assert_says_unknown(response, "happened")
    assert "What derouter reports now" in response.content.decode()
    assert only_event(AuditEvent.Action.EDIT).outcome == Outcome.UNKNOWN
    assert find_key(key.id).label == "Before"

    settings.WRITE_SETTLE_SECONDS = 0
    view_key(owner_client, key.id)
    event = only_event(AuditEvent.Action.EDIT)
    assert event.outcome == Outcome.REFUSED and stored_text.read_in_english(event.message).startswith("Not applied")


@pytest.mark.parametrize("fault", NOT_APPLIED_FAULTS.values(), ids=NOT_APPLIED_FAULTS.keys())
def test_a_delete_under_a_fault_is_unknown_then_settled_as_not_applied(owner_client, make_key, simulator, settings, fault):
    key = make_key("1", label="Survivor")
    simulator.inject(path=f"/sub-keys/{key.id}", method="DELETE", **fault)

    response = delete(owner_client, key.id)

    assert_says_unknown(response, "happened")
    assert only_event(AuditEvent.Action.DELETE).outcome == Outcome.UNKNOWN
    assert find_key(key.id) is not None

    settings.WRITE_SETTLE_SECONDS = 0
    view_key(owner_client, key.id)
    event = only_event(AuditEvent.Action.DELETE)
    assert event.outcome == Outcome.REFUSED and "still lists the key" in stored_text.read_in_english(event.message)


@pytest.mark.parametrize("fault", NOT_APPLIED_FAULTS.values(), ids=NOT_APPLIED_FAULTS.keys())
def test_a_create_under_a_fault_is_unknown_then_settled_as_not_applied(owner_client, simulator, settings, fault):
    label = f"Never made {uuid.uuid4().hex[:8]}"
    simulator.inject(path="/sub-keys", method="POST", **fault)

    response = owner_client.post(reverse("console:key_create"), create_data(label))

    assert_says_unknown(response, "been created")
    assert only_event(AuditEvent.Action.CREATE).outcome == Outcome.UNKNOWN
    assert not [key for key in derouter_client.list_sub_keys() if key.label == label]

    settings.WRITE_SETTLE_SECONDS = 0
    owner_client.get(reverse("console:key_list"))
    event = only_event(AuditEvent.Action.CREATE)
    assert event.outcome == Outcome.REFUSED and "no such key appeared" in read_in_english(event.message)


# ---------------------------------------------------------------- slow past the timeout: derouter applies it late


def test_a_slow_edit_is_unknown_then_confirmed_once_it_lands(owner_client, make_key, simulator, settings):
    key = make_key("1", label="Before")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path=f"/sub-keys/{key.id}", method="PUT", delay=1.5)

    assert_says_unknown(edit(owner_client, key.id), "happened")
    assert only_event(AuditEvent.Action.EDIT).outcome == Outcome.UNKNOWN

    eventually(lambda: find_key(key.id).label == "After")
    view_key(owner_client, key.id)
    event = only_event(AuditEvent.Action.EDIT)
    assert event.outcome == Outcome.OK and stored_text.read_in_english(event.message).startswith("Confirmed")


def test_a_slow_delete_is_unknown_then_confirmed_once_it_lands(owner_client, make_key, simulator, settings):
    key = make_key("1", label="Doomed slowly")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path=f"/sub-keys/{key.id}", method="DELETE", delay=1.5)

    assert_says_unknown(delete(owner_client, key.id), "happened")
    assert only_event(AuditEvent.Action.DELETE).outcome == Outcome.UNKNOWN

    eventually(lambda: find_key(key.id) is None)
    owner_client.get(reverse("console:key_list"))
    assert only_event(AuditEvent.Action.DELETE).outcome == Outcome.OK


def test_a_slow_create_is_unknown_then_confirmed_with_its_key(owner_client, simulator, settings):
    label = f"Made slowly {uuid.uuid4().hex[:8]}"
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys", method="POST", delay=1.5)

    assert_says_unknown(owner_client.post(reverse("console:key_create"), create_data(label)), "been created")
    assert only_event(AuditEvent.Action.CREATE).outcome == Outcome.UNKNOWN

    eventually(lambda: any(key.label == label for key in derouter_client.list_sub_keys()))
    owner_client.get(reverse("console:key_list"))
    event = only_event(AuditEvent.Action.CREATE)
    created = next(key for key in derouter_client.list_sub_keys() if key.label == label)
    assert event.outcome == Outcome.OK and event.sub_key_id == created.id



def test_a_create_settled_not_applied_that_derouter_makes_later_is_resettled_as_applied(owner_client, simulator, settings):
    # Found by the money harness (run I, seed 201615687): a key derouter made after WRITE_SETTLE_SECONDS
    # stayed "not applied" for good, so its budget was money spent with no record of spending it.
    from dashboard.tasks import settle_unsettled_writes

    label = f"Made late {uuid.uuid4().hex[:8]}"
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys", method="POST", delay=2)
    assert_says_unknown(owner_client.post(reverse("console:key_create"), create_data(label, budget="3")), "been created")

    # Settled before derouter got round to it: "not applied".
    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes(late_writes=True)
    assert only_event(AuditEvent.Action.CREATE).outcome == Outcome.REFUSED

    eventually(lambda: any(key.label == label for key in derouter_client.list_sub_keys()))
    settle_unsettled_writes.call_local()  # the worker's minutely settling looks for late writes

    created = next(key for key in derouter_client.list_sub_keys() if key.label == label)
    events = AuditEvent.objects.filter(action=AuditEvent.Action.CREATE).order_by("id")
    assert [(event.outcome, event.sub_key_id) for event in events] == [(Outcome.OK, created.id)] * 2
    assert read_in_english(events[1].message).startswith("Late write: the key asked for on")
    assert "Re-settled as applied" in read_in_english(events[1].message)
    # The key's budget is counted once (the reconciliation reads it from the create itself).
    assert "budget" not in events[1].changes


# ---------------------------------------------------------------- refused and unsent writes


def test_a_refused_edit_says_derouter_refused_and_is_recorded(owner_client, make_key, simulator):
    key = make_key("1", label="Before")
    simulator.inject("error", path=f"/sub-keys/{key.id}", method="PUT", status=400)
    response = edit(owner_client, key.id)
    assert response.status_code == 400
    assert "derouter refused the change: Simulated server error" in response.content.decode()
    assert only_event(AuditEvent.Action.EDIT).outcome == Outcome.REFUSED


def test_an_edit_that_could_not_be_sent_says_so(owner_client, make_key, settings, monkeypatch):
    key = make_key("1", label="Before")
    listed = find_key(key.id)
    # The key is found as usual; then derouter stops listening before the write.
    monkeypatch.setattr("dashboard.views.keys.get_sub_key_or_404", lambda sub_key_id: listed)
    settings.DEROUTER_API_BASE = "http://127.0.0.1:9"

    response = edit(owner_client, key.id)

    assert response.status_code == 503
    body = response.content.decode()
    assert "The change was not sent" in body and NOTHING_CHANGED not in body
    event = only_event(AuditEvent.Action.EDIT)
    assert event.outcome == Outcome.REFUSED and read_in_english(event.message).startswith("The change was not sent")


# ---------------------------------------------------------------- pending and unknown top-ups are settled


def pending_topup(key, owner, amount="2", age_seconds=0, budget_before=None):
    """A ledger row left "pending", as when a worker died between the write and its record."""
    row = TopUp.objects.create(
        token=uuid.uuid4(),
        actor=owner,
        actor_name=owner.get_username(),
        sub_key_id=key.id,
        key_label=key.label,
        key_id_short=key.key_id,
        amount=Decimal(amount),
        note="INV-LOST",
        budget_before=budget_before if budget_before is not None else budget_of(key.id),
        outcome=Outcome.PENDING,
    )
    TopUp.objects.filter(pk=row.pk).update(created_at=timezone.now() - timedelta(seconds=age_seconds))
    row.refresh_from_db()
    return row


def test_a_pending_top_up_whose_money_moved_is_confirmed_on_the_key_page(owner_client, owner, make_key):
    key = make_key("10", label="Lost answer")
    row = pending_topup(key, owner)
    derouter_client.update_sub_key(key.id, add_budget=Decimal("2"))

    view_key(owner_client, key.id)

    row.refresh_from_db()
    assert row.outcome == Outcome.OK and stored_text.read_in_english(row.message).startswith("Confirmed")
    event = AuditEvent.objects.get(form_token=row.token)
    assert (event.action, event.outcome, event.actor_name) == (AuditEvent.Action.TOPUP, Outcome.OK, owner.get_username())


def test_a_pending_top_up_whose_money_did_not_move_is_settled_as_not_applied(owner_client, owner, make_key, settings):
    key = make_key("10", label="Never sent")
    row = pending_topup(key, owner)
    view_key(owner_client, key.id)
    row.refresh_from_db()
    assert row.outcome == Outcome.PENDING  # its request could still be running

    settings.WRITE_SETTLE_SECONDS = 0
    view_key(owner_client, key.id)
    row.refresh_from_db()
    assert row.outcome == Outcome.REFUSED and stored_text.read_in_english(row.message).startswith("Not applied")
    assert AuditEvent.objects.get(form_token=row.token).outcome == Outcome.REFUSED


def test_an_unknown_top_up_is_confirmed_when_the_form_is_sent_again(owner_client, make_key, simulator, settings):
    key = make_key("10", label="Slow top-up")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path=f"/sub-keys/{key.id}", method="PUT", delay=1.5)
    data = {"amount": "2", "note": "INV-7", "token": str(uuid.uuid4()), "confirm": "1"}
    url = reverse("console:key_topup", args=[key.id])

    assert owner_client.post(url, data).status_code == 503
    assert TopUp.objects.get().outcome == Outcome.UNKNOWN
    eventually(lambda: budget_of(key.id) == Decimal("12"))

    again = owner_client.post(url, data).content.decode()
    assert "Added $2.00" in again and "still being processed" not in again
    assert TopUp.objects.get().outcome == Outcome.OK
    assert budget_of(key.id) == Decimal("12")


def test_the_worker_entry_point_settles_every_key_with_one_list(owner, make_key, settings, upstream_calls):
    moved, unmoved = make_key("5", label="Moved"), make_key("5", label="Unmoved")
    moved_row, unmoved_row = pending_topup(moved, owner), pending_topup(unmoved, owner)
    derouter_client.update_sub_key(moved.id, add_budget=Decimal("2"))
    settings.WRITE_SETTLE_SECONDS = 0
    calls_before = upstream_calls()

    settled = keywrites.resolve_unsettled_writes()

    assert upstream_calls() - calls_before == 1
    assert {row.pk for row in settled} == {moved_row.pk, unmoved_row.pk}
    moved_row.refresh_from_db()
    unmoved_row.refresh_from_db()
    assert (moved_row.outcome, unmoved_row.outcome) == (Outcome.OK, Outcome.REFUSED)
    # Pages leave the search for late writes to the worker: nothing is left for them to ask derouter about.
    assert keywrites.resolve_unsettled_writes() == []
    assert upstream_calls() - calls_before == 1


def test_resolving_a_key_without_unsettled_rows_changes_nothing(make_key):
    key = make_key("5")
    assert topups.settle_key(key.id) == []


# ---------------------------------------------------------------- one deadline per writing request


def test_a_slow_read_before_a_top_up_sends_nothing(owner_client, make_key, simulator, settings):
    key = make_key("10", label="Slow list")
    settings.DEROUTER_PREWRITE_READ_TIMEOUT = 0.5
    # The key's own balance (the one-key read) and the key list (its fallback) are both slow.
    simulator.inject("slow", path="/sub-key", method="GET", delay=1.5, times=0)
    data = {"amount": "2", "note": "INV-8", "token": str(uuid.uuid4()), "confirm": "1"}

    response = owner_client.post(reverse("console:key_topup", args=[key.id]), data)

    assert response.status_code == 503
    assert "Nothing was added" in response.content.decode()
    assert TopUp.objects.get().outcome == Outcome.REFUSED
    simulator.clear_faults()
    assert budget_of(key.id) == Decimal("10")


def test_the_write_gets_only_what_is_left_of_the_deadline(owner_client, make_key, simulator, settings):
    key = make_key("1", label="Before")
    # Alone, the edit would be answered within the read timeout; the deadline ends it first.
    settings.DEROUTER_READ_TIMEOUT = 5
    settings.DEROUTER_WRITE_DEADLINE = 1
    simulator.inject("slow", path=f"/sub-keys/{key.id}", method="PUT", delay=2)

    assert_says_unknown(edit(owner_client, key.id), "happened")
    assert only_event(AuditEvent.Action.EDIT).outcome == Outcome.UNKNOWN
    eventually(lambda: find_key(key.id).label == "After")


# ---------------------------------------------------------------- form tokens belong to one key and action


def test_a_top_up_token_replayed_on_another_key_is_refused(owner_client, make_key):
    first, other = make_key("10", label="First"), make_key("10", label="Other")
    data = {"amount": "2", "note": "INV-9", "token": str(uuid.uuid4()), "confirm": "1"}
    owner_client.post(reverse("console:key_topup", args=[first.id]), data)

    replay = owner_client.post(reverse("console:key_topup", args=[other.id]), data)

    assert replay.status_code == 400
    body = replay.content.decode()
    assert "This form was filled in for another key (First)" in body and "to Other" not in body
    assert (budget_of(first.id), budget_of(other.id)) == (Decimal("12"), Decimal("10"))
    assert TopUp.objects.count() == 1


def test_a_create_token_replayed_on_a_top_up_is_refused(owner_client, make_key):
    key = make_key("10", label="Target")
    token = str(uuid.uuid4())
    owner_client.post(reverse("console:key_create"), {**create_data("Made once"), "token": token})

    replay = owner_client.post(
        reverse("console:key_topup", args=[key.id]), {"amount": "2", "note": "INV-10", "token": token, "confirm": "1"}
    )

    assert replay.status_code == 400
    assert "already used for creating a key, not for a top-up" in replay.content.decode()
    assert budget_of(key.id) == Decimal("10") and not TopUp.objects.exists()

    in_chinese = owner_client.post(
        reverse("console:key_topup", args=[key.id]), {"amount": "2", "note": "INV-10", "token": token, "confirm": "1"},
        HTTP_ACCEPT_LANGUAGE="zh-CN",
    )
    assert "此表单已用于创建密钥，而不是充值" in in_chinese.content.decode()


def test_a_top_up_token_replayed_on_the_create_form_is_refused(owner_client, make_key):
    key = make_key("10", label="Topped")
    token = str(uuid.uuid4())
    owner_client.post(reverse("console:key_topup", args=[key.id]), {"amount": "1", "note": "INV-11", "token": token, "confirm": "1"})
    count = len(derouter_client.list_sub_keys())

    replay = owner_client.post(reverse("console:key_create"), {**create_data("Replayed"), "token": token})

    assert replay.status_code == 400
    assert "already used for a top-up, not for creating a key" in replay.content.decode()
    assert len(derouter_client.list_sub_keys()) == count


def test_the_periodic_task_settles_a_pending_top_up(owner, make_key, settings):
    from dashboard.tasks import settle_unsettled_writes

    key = make_key("5", label="Settled by the worker")
    row = pending_topup(key, owner)
    settings.WRITE_SETTLE_SECONDS = 0

    settle_unsettled_writes.call_local()

    row.refresh_from_db()
    assert row.outcome == Outcome.REFUSED
    run = TaskRun.objects.get(name="dashboard.settle_unsettled_writes")
    assert (run.status, read_in_english(run.detail)) == (TaskRun.Status.OK, "1 settled")


def test_the_periodic_task_records_a_failed_run_when_derouter_is_down(owner, make_key, simulator):
    from dashboard.tasks import settle_unsettled_writes

    key = make_key("5", label="Waiting for derouter")
    pending_topup(key, owner)
    simulator.inject("error", path="/sub-keys", status=503, times=5)

    with pytest.raises(Unavailable):
        settle_unsettled_writes.call_local()

    run = TaskRun.objects.get(name="dashboard.settle_unsettled_writes")
    assert run.status == TaskRun.Status.FAILED and "Unavailable" in run.error


@pytest.mark.django_db
def test_pages_look_for_open_writes_of_keys_and_moves_only():
    """The key list's check before it asks derouter: a pending or unknown key write or move, nothing else."""
    assert not keywrites.has_unsettled_writes()
    AuditEvent.objects.create(actor_name="owner", action=AuditEvent.Action.EDIT, outcome=Outcome.OK)
    AuditEvent.objects.create(actor_name="owner", action=AuditEvent.Action.REVEAL, outcome=Outcome.PENDING)
    TopUp.objects.create(
        token=uuid.uuid4(), kind=TopUp.Kind.RETURN, actor_name="owner", sub_key_id="k", amount=Decimal(1), outcome=Outcome.PENDING
    )
    refused = TopUp.objects.create(
        token=uuid.uuid4(), actor_name="owner", sub_key_id="k", amount=Decimal(1), outcome=Outcome.REFUSED
    )
    assert not keywrites.has_unsettled_writes()
    for action in keywrites.KEY_WRITE_ACTIONS:
        for outcome in (Outcome.PENDING, Outcome.UNKNOWN):
            event = AuditEvent.objects.create(actor_name="owner", action=action, outcome=outcome)
            assert keywrites.has_unsettled_writes(), (action, outcome)
            event.delete()
    for outcome in (Outcome.PENDING, Outcome.UNKNOWN):
        refused.outcome = outcome
        refused.save(update_fields=["outcome"])
        assert keywrites.has_unsettled_writes(), outcome
