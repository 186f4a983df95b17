"""Real Huey consumers (`manage.py run_huey` processes) keeping the mirror, on this run's queue and test database."""

import os
import secrets
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models import Sum
from huey.contrib.djhuey import HUEY

from derouter import client as derouter_client
from mirror import passes, reconcile
from mirror import sync as mirror_sync
from mirror.models import DailyRollup, KeySnapshot, SyncState, UsageRecord
from tests.helpers import ROOT, start_simulator, stop_simulator, database_url_for_subprocesses

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 90


@pytest.fixture
def private_simulator(tmp_path, settings):
    """A simulator of this test's own: the consumers' refresh sees only the keys the test makes."""
    simulator = start_simulator(tmp_path / "worker-sim.sqlite3", "sk-ant-acct-" + secrets.token_urlsafe(24))
    settings.DEROUTER_API_BASE = simulator.base_url
    settings.DEROUTER_ACCOUNT_KEY = simulator.account_key
    yield simulator
    stop_simulator(simulator)


def _make_key(label, budget="10"):
    return derouter_client.create_sub_key(Decimal(budget), label=label)


@pytest.fixture
def start_consumer(private_simulator):
    """Start `manage.py run_huey` processes on this run's queue; they are stopped (SIGINT) after the test."""
    simulator = private_simulator
    HUEY.immediate = False
    HUEY.flush()  # no task or lock left by an earlier test
    processes = []

    def start(*arguments, refresh_seconds=30):
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": database_url_for_subprocesses(),
            "HUEY_IMMEDIATE": "false",
            "HUEY_SQLITE_PATH": settings.HUEY_SQLITE_PATH,
            "HUEY_QUEUE_NAME": settings.HUEY["name"],
            "MIRROR_REFRESH_SECONDS": str(refresh_seconds),
            "DEROUTER_API_BASE": simulator.base_url,
            "DEROUTER_ACCOUNT_KEY": simulator.account_key,
        }
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_huey", "--workers", "2", *arguments],
            cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        processes.append(process)
        return process

    yield start
    for process in processes:
        process.send_signal(signal.SIGINT)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    HUEY.flush()
    HUEY.immediate = True


def _wait_until(condition, processes):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"a consumer exited: {process.stderr.read().decode()[-2000:]}")
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError("the consumers did not finish in time")


def _fully_mirrored(sub_key_id, expected_rows):
    def condition():
        state = SyncState.objects.filter(scope=sub_key_id, backfill_complete=True).first()
        return state is not None and UsageRecord.objects.filter(key__sub_key_id=sub_key_id).count() >= expected_rows

    return condition


def test_a_consumer_started_with_the_scheduler_refreshes_the_snapshot_and_mirrors_usage(
    start_consumer, private_simulator
):
    key = _make_key("Worker client")
    private_simulator.add_usage(key.id, "0.01", count=5)

    consumer = start_consumer()
    _wait_until(_fully_mirrored(key.id, 5), [consumer])

    snapshot = KeySnapshot.objects.get(sub_key_id=key.id)
    assert snapshot.label == "Worker client"
    assert reconcile.difference_text(snapshot, reconcile.mirrored_cost_of(snapshot)) == "reconciled"

    # Its log goes through our handler only: every line once.
    consumer.send_signal(signal.SIGINT)
    consumer.wait(timeout=20)
    log = consumer.stderr.read().decode()
    assert log.count("Huey consumer started") == 1


def test_two_consumers_syncing_the_same_keys_at_once_mirror_every_row_exactly_once(
    start_consumer, private_simulator
):
    first, second = _make_key("Busy one", budget="50"), _make_key("Busy two", budget="50")
    private_simulator.add_usage(first.id, "0.01", count=240)
    private_simulator.add_usage(second.id, "0.01", count=130)
    consumers = [start_consumer("--no-periodic"), start_consumer("--no-periodic")]

    # Enqueued onto the consumers' queue (the fixture turned immediate mode off).
    passes.refresh_mirror()
    _wait_until(lambda: KeySnapshot.objects.filter(sub_key_id__in=[first.id, second.id]).count() == 2, consumers)
    for _ in range(3):
        for sub_key_id in (first.id, second.id):
            mirror_sync.sync_usage(sub_key_id)
            mirror_sync.sync_usage(sub_key_id, full=True)
    _wait_until(_fully_mirrored(first.id, 240), consumers)
    _wait_until(_fully_mirrored(second.id, 130), consumers)
    _wait_until(lambda: HUEY.pending_count() == 0, consumers)

    for sub_key_id, expected in ((first.id, 240), (second.id, 130)):
        rows = UsageRecord.objects.filter(key__sub_key_id=sub_key_id)
        assert rows.count() == expected
        rollups = DailyRollup.objects.filter(key__sub_key_id=sub_key_id).aggregate(requests=Sum("requests"))
        assert rollups["requests"] == expected
        snapshot = KeySnapshot.objects.get(sub_key_id=sub_key_id)
        assert reconcile.mirrored_cost_of(snapshot) == snapshot.spent
