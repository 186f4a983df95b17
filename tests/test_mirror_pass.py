"""The worker's usage pass: scopes synced concurrently with a bound on requests in flight, 429s, its lag."""

import os
import secrets
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from derouter import client as derouter_client
from mirror import passes, reads, sync
from mirror import snapshot as mirror_snapshot
from mirror.models import ACCOUNT_SCOPE, SyncPass, SyncState, UsageRecord
from tests.helpers import ROOT, database_url_for_subprocesses, start_simulator, stop_simulator
from work import leases
from work.models import Lease, TaskRun


@pytest.fixture
def private_simulator(tmp_path, settings):
    """A simulator of this test's own: a pass sees only the keys the test makes."""
    simulator = start_simulator(tmp_path / "pass-sim.sqlite3", "sk-ant-acct-" + secrets.token_urlsafe(24))
    settings.DEROUTER_API_BASE = simulator.base_url
    settings.DEROUTER_ACCOUNT_KEY = simulator.account_key
    yield simulator
    stop_simulator(simulator)


def _keys_with_usage(simulator, count, rows=1):
    keys = [derouter_client.create_sub_key(5, label=f"Pass client {number}") for number in range(count)]
    for key in keys:
        simulator.add_usage(key.id, "0.01", count=rows)
    mirror_snapshot.refresh_snapshot()
    return keys


class CountingFetch:
    """The sync's page reads, counting how many are in flight at once."""

    def __init__(self):
        self.in_flight = self.most = 0
        self._lock = threading.Lock()

    def __call__(self, scope, page):
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return original_fetch(scope, page)
        finally:
            with self._lock:
                self.in_flight -= 1


original_fetch = sync.fetch_usage_page


@pytest.mark.django_db(transaction=True)
def test_a_pass_syncs_scopes_at_once_never_past_the_bound_of_requests_in_flight(private_simulator, monkeypatch):
    keys = _keys_with_usage(private_simulator, 12, rows=2)
    private_simulator.inject("slow", path="/usage-logs", delay=0.3, times=0)
    counting = CountingFetch()
    monkeypatch.setattr(sync, "fetch_usage_page", counting)

    result = passes.run_pass([key.id for key in keys] + [ACCOUNT_SCOPE], max_in_flight=4)

    assert (result.scopes, result.synced, result.inserted, result.failed) == (13, 13, 24, {})
    assert counting.most == 4
    # Thirteen reads of 0.3 s four at a time: four rounds, not thirteen.
    assert result.seconds < 13 * 0.3
    for key in keys:
        assert UsageRecord.objects.filter(key__sub_key_id=key.id).count() == 2
        assert SyncState.objects.get(scope=key.id).backfill_complete


@pytest.mark.django_db(transaction=True)
def test_a_429_halves_the_requests_in_flight_pauses_and_every_scope_is_still_synced(private_simulator):
    keys = _keys_with_usage(private_simulator, 6)
    private_simulator.inject("error", path="/usage-logs", status=429, times=3)

    result = passes.run_pass([key.id for key in keys], max_in_flight=4)

    assert result.rate_limited == 3 and result.failed == {}
    assert result.synced == 6 and result.inserted == 6


def test_the_gate_lowers_its_limit_on_a_429_and_grows_it_back_with_answers(monkeypatch):
    gate = passes.InFlight(8)
    monkeypatch.setattr(passes, "DEFAULT_RETRY_AFTER_SECONDS", 0)
    answers = iter([derouter_client.RateLimited("slow down"), "page"])

    def read():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert gate.call(read) == "page"
    assert (gate.limit, gate.rate_limited) == (4, 1)
    for _ in range(4 + 5 + 6 + 7):
        gate.call(lambda: None)
    assert gate.limit == 8
    gate.call(lambda: None)
    assert gate.limit == 8


@pytest.mark.django_db(transaction=True)
def test_a_scope_another_process_is_syncing_is_left_to_it_and_another_pass_waits_its_turn(private_simulator):
    first, second = _keys_with_usage(private_simulator, 2)

    with leases.held(sync.usage_lease_name(first.id)):
        result = passes.run_pass([first.id, second.id])
    assert result.busy == [first.id] and result.synced == 1 and not result.failed

    with leases.held(passes.PASS_LEASE), pytest.raises(leases.LeaseHeld):
        passes.run_pass([first.id])


@pytest.mark.django_db(transaction=True)
def test_the_worker_records_each_pass_and_the_sync_page_shows_its_lag(private_simulator, owner_client):
    keys = _keys_with_usage(private_simulator, 3)
    passes.refresh_mirror.call_local()
    for key in keys:
        private_simulator.add_usage(key.id, "0.02")

    passes.refresh_mirror.call_local()

    last = SyncPass.objects.first()
    assert SyncPass.objects.count() == 2
    assert (last.scopes, last.synced, last.inserted) == (4, 4, 3)
    assert last.lag_seconds is not None and 0 <= last.lag_seconds < 60
    assert TaskRun.objects.filter(name=passes.PASS_TASK_NAME, status=TaskRun.Status.OK).count() == 2
    body = owner_client.get(reverse("console:sync_status")).content.decode()
    assert "Lag of the last pass" in body and f"{last.lag_seconds:.1f} s" in body
    assert "request made → row visible" in body


@pytest.mark.django_db
def test_the_sync_lag_leaves_out_deleted_keys_and_keys_with_nothing_new(
    make_key, simulator, sync_mirror, client, settings
):
    deleted, idle = make_key(label="Deleted later"), make_key(label="Idle")
    simulator.add_usage(deleted.id, "0.01")
    simulator.add_usage(idle.id, "0.01")
    sync_mirror(deleted.id, idle.id, ACCOUNT_SCOPE)
    derouter_client.delete_sub_key(deleted.id)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    SyncState.objects.filter(scope__in=[deleted.id, idle.id]).update(last_synced_at=an_hour_ago)
    SyncState.objects.exclude(scope__in=[deleted.id, idle.id, ACCOUNT_SCOPE]).delete()

    mirror_snapshot.refresh_snapshot()  # marks the deleted key; the idle key's spend has not moved

    assert timezone.now() - reads.get_oldest_usage_sync() < timedelta(minutes=5)
    settings.METRICS_TOKEN = "metrics-token-for-tests"
    text = client.get("/metrics", HTTP_AUTHORIZATION="Bearer metrics-token-for-tests").content.decode()
    lag = next(line for line in text.splitlines() if line.startswith("dashboard_mirror_usage_sync_lag_seconds "))
    assert float(lag.split()[1]) < 300


# Runs one scope's sync task as the worker would; the test kills it (SIGKILL) while it waits on derouter.
SYNC_TASK_THEN_KILLED = """
import os, sys
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()
from django.conf import settings
settings.DEROUTER_API_BASE = sys.argv[2]
settings.DEROUTER_ACCOUNT_KEY = sys.argv[3]
from mirror import sync
sync.sync_usage.call_local(sys.argv[1])
"""


@pytest.mark.django_db(transaction=True)
def test_a_killed_tasks_run_ends_as_failed_once_its_lease_has_expired(make_key, simulator):
    key = make_key(label="Killed mid-task")
    simulator.add_usage(key.id, "0.01", count=2)
    simulator.inject("slow", path="/usage-logs", delay=30, times=1)
    worker = subprocess.Popen(
        [sys.executable, "-c", SYNC_TASK_THEN_KILLED, key.id, simulator.base_url, simulator.account_key],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url_for_subprocesses()},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    lease_name = sync.usage_lease_name(key.id)
    try:
        deadline = time.monotonic() + 30
        while not Lease.objects.filter(name=lease_name).exists():
            assert worker.poll() is None and time.monotonic() < deadline, worker.stderr.read().decode()[-2000:]
            time.sleep(0.1)
    finally:
        worker.kill()
        worker.wait()
    run = TaskRun.objects.get(name=f"sync_usage {key.id}")
    assert run.status == TaskRun.Status.RUNNING

    passes.end_interrupted_runs()
    assert TaskRun.objects.get(pk=run.pk).status == TaskRun.Status.RUNNING  # its lease has not expired yet

    Lease.objects.filter(name=lease_name).update(expires_at=timezone.now() - timedelta(hours=1))
    simulator.clear_faults()
    passes.refresh_mirror.call_local()

    run.refresh_from_db()
    assert run.status == TaskRun.Status.FAILED and "interrupted" in run.error and run.finished_at
    assert UsageRecord.objects.filter(key__sub_key_id=key.id).count() == 2  # the next pass took the work over
