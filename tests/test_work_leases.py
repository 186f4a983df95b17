"""Leases on units of work: one holder at a time, and a lock left by a killed consumer is taken over once it expires."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from automation import tasks as automation_tasks
from mirror import sync
from work import leases
from mirror.models import UsageRecord
from work.models import Lease, TaskRun
from tests.helpers import ROOT, database_url_for_subprocesses

# Takes a scope's lease the way a sync does and then waits to be killed: it never releases it.
HOLD_AND_HANG = """
import os, sys
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
django.setup()
from mirror import sync
from work import leases
lease = leases.held(sync.usage_lease_name(sys.argv[1]))
lease.__enter__()
print("held", flush=True)
sys.stdin.read()
"""


def _expire(name):
    """Move a lease's expiry into the past, as if its lease time had gone by.

    An hour back: leases expire by the database's clock, which PostgreSQL holds still
    for the length of a transaction (and a test runs in one).
    """
    assert Lease.objects.filter(name=name).update(expires_at=timezone.now() - timedelta(hours=1)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_lease_left_by_a_killed_consumer_is_taken_over_once_it_expires(simulator, make_key, settings):
    key = make_key(label="Killed mid-sync")
    simulator.add_usage(key.id, "0.01", count=3)
    name = sync.usage_lease_name(key.id)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_HANG, key.id],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url_for_subprocesses()},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline().strip() == b"held", holder.stderr.read().decode()[-2000:]
    finally:
        holder.kill()  # SIGKILL: no finally block of its own runs, its lease stays behind
        holder.wait()

    assert Lease.objects.filter(name=name).exists()
    with pytest.raises(sync.ScopeBusy):
        sync.sync_scope(key.id)
    sync.sync_usage(key.id)  # the periodic task leaves a held scope alone
    assert not UsageRecord.objects.filter(key__sub_key_id=key.id).exists()

    _expire(name)
    result = sync.sync_scope(key.id)

    assert result.inserted == 3 and UsageRecord.objects.filter(key__sub_key_id=key.id).count() == 3
    assert not Lease.objects.filter(name=name).exists()  # released after the sync


@pytest.mark.django_db
def test_one_holder_at_a_time_and_a_released_lease_is_free_again():
    with leases.held("unit-of-work"):
        with pytest.raises(leases.LeaseHeld):
            with leases.held("unit-of-work"):
                pytest.fail("two holders of one lease")
        with leases.held("another-unit"):
            assert Lease.objects.count() == 2
    assert not Lease.objects.exists()
    with leases.held("unit-of-work"):
        assert Lease.objects.filter(name="unit-of-work").exists()


@pytest.mark.django_db
def test_a_holder_whose_lease_was_taken_over_stops_at_its_next_renewal_and_frees_nothing():
    stalled = leases.held("unit-of-work")
    first = stalled.__enter__()
    first.renew()
    _expire("unit-of-work")

    with leases.held("unit-of-work") as second:
        with pytest.raises(leases.LeaseLost):
            first.renew()
        stalled.__exit__(None, None, None)
        # The stalled holder's release left the new holder's lease in place.
        assert Lease.objects.get(name="unit-of-work").holder == second.holder
        with pytest.raises(leases.LeaseHeld):
            with leases.held("unit-of-work"):
                pytest.fail("two holders of one lease")
    assert not Lease.objects.exists()


@pytest.mark.django_db
def test_one_automation_pass_at_a_time_and_a_dead_passes_lease_expires():
    # A consumer killed mid-pass: it took the lease and never got to release it.
    killed_mid_pass = leases.held(automation_tasks.EVALUATE_LEASE)
    killed_mid_pass.__enter__()

    automation_tasks.evaluate_periodically()
    assert not TaskRun.objects.filter(name="automation.evaluate").exists()

    _expire(automation_tasks.EVALUATE_LEASE)
    automation_tasks.evaluate_periodically()
    assert TaskRun.objects.filter(name="automation.evaluate", status=TaskRun.Status.OK).exists()
    assert not Lease.objects.exists()
