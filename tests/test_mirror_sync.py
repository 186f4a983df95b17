"""The sync engine against the live simulator: snapshot refresh, first and incremental usage syncs."""

import sqlite3
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from derouter import client as derouter_client
from derouter.client import Unavailable
from mirror import passes, reads, reconcile, sync
from mirror import snapshot as mirror_snapshot
from work import leases
from mirror.models import ACCOUNT_SCOPE, KeySnapshot, SyncState, UsageRecord
from work.models import TaskRun
from tests.mirror_helpers import store_logs

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_pages(monkeypatch):
    """Pages of 5 rows, so a few dozen rows make many pages."""
    monkeypatch.setattr(sync, "PAGE_SIZE", 5)


def _request_ids(sub_key_id):
    ids, page = [], 1
    while True:
        usage_page = derouter_client.fetch_usage_logs(page, 100, sub_key_id=sub_key_id).decode()
        ids.extend(log.request_id for log in usage_page.logs)
        if page >= usage_page.pages:
            return ids
        page += 1


def _mirrored_ids(sub_key_id):
    return list(UsageRecord.objects.filter(key__sub_key_id=sub_key_id).values_list("request_id", flat=True))


def test_a_refresh_records_every_key_and_marks_keys_gone_upstream_deleted_with_their_final_spend(
    make_key, simulator
):
    kept, removed = make_key(label="Kept client"), make_key(label="Removed client")
    simulator.add_usage(removed.id, "0.25")
    mirror_snapshot.refresh_snapshot()
    assert KeySnapshot.objects.get(sub_key_id=kept.id).label == "Kept client"

    derouter_client.delete_sub_key(removed.id)
    result = mirror_snapshot.refresh_snapshot()

    gone = KeySnapshot.objects.get(sub_key_id=removed.id)
    assert gone.is_deleted and gone.spent == Decimal("0.25")
    assert not KeySnapshot.objects.get(sub_key_id=kept.id).is_deleted
    assert result.deleted == 1 and result.changed == 0


def test_a_refresh_writes_only_new_or_changed_keys(make_key):
    key = make_key(label="Before")
    mirror_snapshot.refresh_snapshot()
    derouter_client.update_sub_key(key.id, label="After")

    result = mirror_snapshot.refresh_snapshot()

    assert result.changed == 1
    assert KeySnapshot.objects.get(sub_key_id=key.id).label == "After"
    assert reads.get_freshness().as_of is not None


@pytest.mark.parametrize("ask_ahead", [False, True], ids=["in-line", "asking-ahead"])
def test_a_first_sync_mirrors_every_row_once_with_the_keys_multiplier(make_key, simulator, small_pages, ask_ahead):
    key = make_key(budget="20")
    derouter_client.update_sub_key(key.id, display_multiplier=Decimal("2.5"))
    simulator.add_usage(key.id, "0.010001", count=12)
    mirror_snapshot.refresh_snapshot()

    result = sync.sync_scope(key.id, ask_ahead=ask_ahead)

    assert (result.inserted, result.pages, result.complete) == (12, 3, True)
    rows = UsageRecord.objects.filter(key__sub_key_id=key.id)
    assert {(row.cost, row.multiplier, row.billed) for row in rows} == {
        (Decimal("0.010001"), Decimal("2.5"), Decimal("0.025003"))
    }
    snapshot = KeySnapshot.objects.get(sub_key_id=key.id)
    assert reconcile.difference_text(snapshot, reconcile.mirrored_cost_of(snapshot)) == "reconciled"
    state = SyncState.objects.get(scope=key.id)
    assert state.backfill_complete and state.rows_mirrored == 12 and state.synced_spent == snapshot.spent


@pytest.mark.parametrize("ask_ahead", [False, True], ids=["in-line", "asking-ahead"])
def test_an_incremental_sync_asks_only_for_the_pages_with_new_rows(make_key, simulator, upstream_calls, ask_ahead):
    key = make_key()
    simulator.add_usage(key.id, "0.01", count=3)
    mirror_snapshot.refresh_snapshot()
    sync.sync_scope(key.id, ask_ahead=ask_ahead)
    simulator.add_usage(key.id, "0.02", count=2)
    before = upstream_calls()

    result = sync.sync_scope(key.id, ask_ahead=ask_ahead)

    assert result.inserted == 2 and upstream_calls() - before == 1
    assert sorted(_mirrored_ids(key.id)) == sorted(_request_ids(key.id))


@pytest.mark.parametrize("ask_ahead", [False, True], ids=["in-line", "asking-ahead"])
def test_rows_arriving_while_pages_are_walked_are_neither_missed_nor_doubled(make_key, simulator, small_pages, ask_ahead):
    key = make_key(budget="20")
    simulator.add_usage(key.id, "0.01", count=17)
    mirror_snapshot.refresh_snapshot()

    def more_rows_arrive(result, usage_page):
        simulator.add_usage(key.id, "0.01", count=3)

    sync.sync_scope(key.id, progress=more_rows_arrive, ask_ahead=ask_ahead)
    sync.sync_scope(key.id, progress=more_rows_arrive, ask_ahead=ask_ahead)
    sync.sync_scope(key.id, ask_ahead=ask_ahead)

    mirrored = _mirrored_ids(key.id)
    assert len(mirrored) == len(set(mirrored))
    assert sorted(mirrored) == sorted(_request_ids(key.id))


@pytest.mark.parametrize("ask_ahead", [False, True], ids=["in-line", "asking-ahead"])
def test_a_first_sync_cut_off_by_derouter_keeps_its_pages_and_resumes_from_its_checkpoint(
    make_key, simulator, small_pages, ask_ahead
):
    key = make_key(budget="20")
    simulator.add_usage(key.id, "0.01", count=23)
    mirror_snapshot.refresh_snapshot()
    simulator.inject("slow", path="/usage-logs", delay=0, times=2)
    simulator.inject("error", path="/usage-logs", status=500, times=1)

    with pytest.raises(Unavailable):
        sync.sync_scope(key.id, ask_ahead=ask_ahead)

    state = SyncState.objects.get(scope=key.id)
    assert (state.backfill_page, state.rows_mirrored, state.backfill_complete) == (3, 10, False)
    assert state.last_error
    result = sync.sync_scope(key.id, ask_ahead=ask_ahead)
    # Pages 3 to 5, then page 1 again: rows may have arrived above the walk while it was stopped.
    assert (result.inserted, result.pages) == (13, 4)
    assert sorted(_mirrored_ids(key.id)) == sorted(_request_ids(key.id))
    assert SyncState.objects.get(scope=key.id).last_error == ""


class Killed(BaseException):
    """Stands for the worker process dying mid-sync (nothing is cleaned up on the way out)."""


@pytest.mark.parametrize("ask_ahead", [False, True], ids=["in-line", "asking-ahead"])
def test_a_first_sync_killed_between_batches_resumes_after_the_last_written_batch(
    make_key, simulator, small_pages, monkeypatch, ask_ahead
):
    monkeypatch.setattr(sync, "BACKFILL_BATCH_ROWS", 10)
    key = make_key(budget="20")
    simulator.add_usage(key.id, "0.01", count=23)
    mirror_snapshot.refresh_snapshot()

    def die_after_page_three(result, usage_page):
        if usage_page.page == 3:
            raise Killed

    with pytest.raises(Killed):
        sync.sync_scope(key.id, progress=die_after_page_three, ask_ahead=ask_ahead)

    state = SyncState.objects.get(scope=key.id)
    assert (state.backfill_page, state.rows_mirrored, state.backfill_complete) == (3, 10, False)
    result = sync.sync_scope(key.id, ask_ahead=ask_ahead)
    assert (result.inserted, result.complete) == (13, True)
    mirrored = _mirrored_ids(key.id)
    assert sorted(mirrored) == sorted(_request_ids(key.id)) and len(mirrored) == len(set(mirrored))


def test_rows_arriving_while_a_killed_first_sync_waits_are_mirrored_when_it_resumes(
    make_key, simulator, small_pages, monkeypatch
):
    monkeypatch.setattr(sync, "BACKFILL_BATCH_ROWS", 10)
    key = make_key(budget="20")
    simulator.add_usage(key.id, "0.01", count=30)
    mirror_snapshot.refresh_snapshot()

    def die_after_page_three(result, usage_page):
        if usage_page.page == 3:
            raise Killed

    with pytest.raises(Killed):
        sync.sync_scope(key.id, progress=die_after_page_three, ask_ahead=True)
    simulator.add_usage(key.id, "0.02", count=4)
    # The worker's next passes: the snapshot (the new spend with it), then every scope whose spend moved.
    for _ in range(2):
        mirror_snapshot.refresh_snapshot()
        if key.id in sync.scopes_to_sync():
            sync.sync_scope(key.id, ask_ahead=True)

    mirrored = _mirrored_ids(key.id)
    assert sorted(mirrored) == sorted(_request_ids(key.id)) and len(mirrored) == 34
    snapshot = KeySnapshot.objects.get(sub_key_id=key.id)
    assert reconcile.mirrored_cost_of(snapshot) == snapshot.spent


def test_a_row_of_unexpected_shape_is_counted_and_logged_and_verify_names_its_key(make_key, simulator, caplog):
    key = make_key(label="Odd rows client")
    simulator.add_usage(key.id, "0.01", count=3)
    with sqlite3.connect(simulator.state_path) as state_db:
        state_db.execute(
            "UPDATE usage_logs SET created_at = 'yesterday' WHERE rowid = "
            "(SELECT MIN(rowid) FROM usage_logs WHERE sub_key_id = ?)",
            (key.id,),
        )
    mirror_snapshot.refresh_snapshot()

    result = sync.sync_scope(key.id)

    assert (result.inserted, result.malformed) == (2, 1)
    assert SyncState.objects.get(scope=key.id).malformed_rows == 1
    assert "unexpected shape" in caplog.text
    with pytest.raises(CommandError, match="Odd rows client"):
        call_command("sync", "--key", key.id, "--verify")


def test_the_sync_command_prints_what_it_did_and_verify_passes(make_key, simulator, capsys):
    key = make_key(label="Command client")
    simulator.add_usage(key.id, "0.5", count=4)

    call_command("sync", "--key", key.id, "--verify")

    printed = capsys.readouterr().out
    assert "4 new rows" in printed and "Verified" in printed


def test_a_scope_being_synced_elsewhere_is_left_to_that_sync(make_key, simulator):
    key = make_key()
    simulator.add_usage(key.id, "0.01", count=2)
    mirror_snapshot.refresh_snapshot()

    with leases.held(sync.usage_lease_name(key.id)):
        sync.sync_usage(key.id)
        with pytest.raises(sync.ScopeBusy):
            sync.sync_scope(key.id)

    assert not UsageRecord.objects.filter(key__sub_key_id=key.id).exists()
    assert not TaskRun.objects.filter(name=f"sync_usage {key.id}").exists()


def test_the_periodic_refresh_syncs_only_keys_whose_spend_moved_and_the_account(make_key, simulator):
    busy, idle = make_key(label="Busy"), make_key(label="Idle")
    simulator.add_usage(busy.id, "0.01")
    passes.refresh_mirror()
    assert _mirrored_ids(busy.id)
    simulator.add_usage(busy.id, "0.01")
    mirror_snapshot.refresh_snapshot()

    scopes = sync.scopes_to_sync()

    assert busy.id in scopes and idle.id not in scopes and scopes[-1] == ACCOUNT_SCOPE
    assert TaskRun.objects.filter(name="refresh_keys", status=TaskRun.Status.OK).exists()


def test_derouter_down_during_a_refresh_keeps_the_snapshot_and_records_the_failure(make_key, simulator):
    make_key(label="Still here")
    mirror_snapshot.refresh_snapshot()
    simulator.inject("error", path="/sub-keys", status=500, times=0)

    with pytest.raises(Unavailable):
        passes.refresh_mirror.call_local()

    assert KeySnapshot.objects.filter(label="Still here", deleted_at__isnull=True).exists()
    failed = TaskRun.objects.get(name="refresh_keys")
    assert failed.status == TaskRun.Status.FAILED and failed.error


def test_a_catch_up_stops_on_the_last_new_row_without_asking_for_the_next_page(
    make_key, simulator, small_pages, upstream_calls
):
    key = make_key()
    simulator.add_usage(key.id, "0.01", count=4)
    mirror_snapshot.refresh_snapshot()
    sync.sync_scope(key.id)
    simulator.add_usage(key.id, "0.01", count=10)
    before = upstream_calls()

    result = sync.sync_scope(key.id)

    assert (result.inserted, result.pages) == (10, 2) and upstream_calls() - before == 2
    assert sorted(_mirrored_ids(key.id)) == sorted(_request_ids(key.id))


def _in_upstream_order(sub_key_id):
    snapshot = KeySnapshot.objects.get(sub_key_id=sub_key_id)
    return reads.is_usage_in_upstream_order(snapshot)


def _mirrored_ids_in_upstream_order(sub_key_id):
    snapshot = KeySnapshot.objects.get(sub_key_id=sub_key_id)
    return [row[0] for row in reads.iter_key_usage_in_upstream_order(snapshot)]


@pytest.mark.parametrize("ask_ahead", [False, True], ids=["in-line", "asking-ahead"])
def test_rows_of_one_second_keep_derouters_order_in_the_mirror_across_syncs(
    make_key, simulator, small_pages, ask_ahead
):
    key = make_key(budget="20")
    second = "2026-01-05T10:00:00Z"
    simulator.add_usage(key.id, "0.01", count=3, createdAt="2026-01-05T09:59:59Z")
    simulator.add_usage(key.id, "0.01", count=9, createdAt=second)
    mirror_snapshot.refresh_snapshot()

    def more_rows_arrive(result, usage_page):
        simulator.add_usage(key.id, "0.01", count=2, createdAt=second)

    sync.sync_scope(key.id, progress=more_rows_arrive, ask_ahead=ask_ahead)
    simulator.add_usage(key.id, "0.01", count=4, createdAt=second)
    sync.sync_scope(key.id, progress=more_rows_arrive, ask_ahead=ask_ahead)
    simulator.add_usage(key.id, "0.01", count=2, createdAt="2026-01-05T10:00:01Z")
    simulator.add_usage(key.id, "0.01", count=2, createdAt=second)
    sync.sync_scope(key.id, ask_ahead=ask_ahead)

    assert _in_upstream_order(key.id)
    assert _mirrored_ids_in_upstream_order(key.id) == _request_ids(key.id)
    mirror_snapshot.refresh_snapshot()  # rows given new ids are still counted once
    snapshot = KeySnapshot.objects.get(sub_key_id=key.id)
    assert reconcile.difference_text(snapshot, reconcile.mirrored_cost_of(snapshot)) == "reconciled"


def test_a_full_sync_over_rows_held_cannot_vouch_for_their_order(make_key, simulator):
    key = make_key()
    simulator.add_usage(key.id, "0.01", count=3)
    mirror_snapshot.refresh_snapshot()
    sync.sync_scope(key.id)
    assert _in_upstream_order(key.id)

    sync.sync_scope(key.id, full=True)

    assert not _in_upstream_order(key.id)


def test_a_catch_up_meeting_rows_held_above_its_boundary_cannot_vouch_for_their_order(make_key, simulator):
    key = make_key()
    simulator.add_usage(key.id, "0.01", count=3)
    mirror_snapshot.refresh_snapshot()
    sync.sync_scope(key.id)
    simulator.add_usage(key.id, "0.01", count=4)
    # As a catch-up cut off after its first batch leaves it: the newest rows held, the boundary not moved.
    newest = derouter_client.fetch_usage_logs(1, 2, sub_key_id=key.id).decode().logs
    snapshot = KeySnapshot.objects.get(sub_key_id=key.id)
    store_logs(snapshot, newest, snapshot.display_multiplier)

    sync.sync_scope(key.id)

    assert sorted(_mirrored_ids(key.id)) == sorted(_request_ids(key.id))
    assert not _in_upstream_order(key.id)
