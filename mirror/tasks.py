"""The mirror's background work, run by Huey consumers (`manage.py run_huey`).

Every MIRROR_REFRESH_SECONDS the key snapshot is refreshed, then one usage pass syncs
every scope whose usage may have moved, concurrently (mirror.passes: a bounded number of
requests in flight, one pass at a time across consumers, each scope under its own lease).
A scope derouter fails is left for the next pass, every page already synced kept; a
failed snapshot refresh fails the task, and Huey retries it with a growing delay.
"""

import logging
import math
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from huey.contrib.djhuey import db_periodic_task, db_task

from derouter.client import DerouterError, NotFound
from mirror import leases, passes, sync
from mirror.models import KeySnapshot, SyncPass, SyncState, TaskRun
from mirror.reads import REFRESH_TASK_NAME
from mirror.runs import Recorded

logger = logging.getLogger(__name__)

# A failed sync is retried after 10 s, 20 s, 40 s, 80 s, 160 s, then left to the next period.
RETRIES = 5
RETRY_DELAY_SECONDS = 10
RETRY_BACKOFF = 2
# TaskRun rows kept for the status panel.
TASK_RUNS_KEPT = 2000
# SyncPass rows kept (the Sync page shows the last).
SYNC_PASSES_KEPT = 100
PASS_TASK_NAME = "sync_pass"


def _every_refresh_period(moment):
    """Whether the once-a-minute scheduler should start this minute's refreshes."""
    period = settings.MIRROR_REFRESH_SECONDS
    if period <= 0:
        return False
    if period < 60:
        return True
    minutes = period // 60
    return (moment.hour * 60 + moment.minute) % minutes == 0


@db_periodic_task(_every_refresh_period)
def schedule_refreshes():
    """Huey's scheduler wakes once a minute; periods under a minute are spread over it."""
    period = settings.MIRROR_REFRESH_SECONDS
    refresh_mirror()
    if period < 60:
        for step in range(1, math.ceil(60 / period)):
            refresh_mirror.schedule(delay=step * period)


@db_task(retries=RETRIES, retry_delay=RETRY_DELAY_SECONDS, retry_backoff=RETRY_BACKOFF)
def refresh_mirror():
    """Refresh the key snapshot, then queue a usage sync for every scope that may have new rows."""
    if not _refresh_snapshot_recorded():
        return
    sync_usage_pass()
    _prune_task_runs()


def sync_usage_pass():
    """Sync every scope whose usage may have moved in one pass, recorded; nothing when another pass runs."""
    recorded = Recorded(PASS_TASK_NAME)
    try:
        result = passes.run_pass(sync.moved_scopes())
    except leases.LeaseHeld:
        recorded.skipped()
        return None
    passes.record(result)
    if result.failed:
        failures = "; ".join(f"{scope}: {error}" for scope, error in sorted(result.failed.items())[:20])
        recorded.detail = result.describe()
        recorded.failed(f"{result.describe()}. {failures}")
    else:
        recorded.ok(result.describe())
    return result


@db_task(retries=RETRIES, retry_delay=RETRY_DELAY_SECONDS, retry_backoff=RETRY_BACKOFF)
def refresh_keys():
    """Refresh only the key snapshot: after a write whose answer did not describe the key, or on a first page view."""
    _refresh_snapshot_recorded()


def _refresh_snapshot_recorded():
    """Refresh the key snapshot under a TaskRun row; False when another consumer is already refreshing it."""
    recorded = Recorded(REFRESH_TASK_NAME)
    try:
        result = sync.refresh_snapshot()
    except sync.ScopeBusy:
        recorded.skipped()
        return False
    except DerouterError as error:
        recorded.failed(error.message)
        raise
    recorded.ok(result.describe())
    return True


@db_task(retries=RETRIES, retry_delay=RETRY_DELAY_SECONDS, retry_backoff=RETRY_BACKOFF)
def sync_usage(scope, full=False):
    """Sync one scope's usage rows; a scope another consumer is syncing is left to it."""
    recorded = Recorded(f"sync_usage {scope}")
    try:
        result = sync.sync_scope(scope, full=full, ask_ahead=True)
    except sync.ScopeBusy:
        recorded.skipped()
        return
    except KeySnapshot.DoesNotExist:
        recorded.failed("no such key in the snapshot")
        return
    except NotFound:
        # Deleted upstream since the snapshot was taken: the next refresh marks it.
        SyncState.objects.filter(scope=scope).update(synced_spent=None)
        recorded.failed("derouter no longer knows this key")
        return
    except DerouterError as error:
        recorded.failed(error.message)
        raise
    if result.inserted or result.malformed or not result.complete:
        recorded.ok(result.describe())
    else:
        recorded.skipped()


def _prune_task_runs():
    cutoff = TaskRun.objects.order_by("-started_at", "-id").values_list("started_at", flat=True)[
        TASK_RUNS_KEPT:TASK_RUNS_KEPT + 1
    ]
    if cutoff:
        TaskRun.objects.filter(started_at__lt=cutoff[0]).delete()
    kept = SyncPass.objects.values_list("started_at", flat=True)[SYNC_PASSES_KEPT:SYNC_PASSES_KEPT + 1]
    if kept:
        SyncPass.objects.filter(started_at__lt=kept[0]).delete()
    # A consumer killed mid-task leaves its run "running" forever; call it what it is.
    TaskRun.objects.filter(status=TaskRun.Status.RUNNING, started_at__lt=timezone.now() - timedelta(hours=1)).update(
        status=TaskRun.Status.FAILED, error="interrupted", finished_at=timezone.now()
    )

