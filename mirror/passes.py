"""A usage pass: every scope that may have new rows, synced concurrently, a bounded number of requests in flight.

derouter answers from far away (50-300 ms a call) and its usage log names no key, so a
pass asks once per scope: one scope after another, 2,000 keys that each made a request
took minutes at 150 ms. A pass runs its scopes on a few threads of the worker (never in
a web process), each scope under its own lease as before (mirror.sync), and every page
read goes through one gate, InFlight, that lets at most MIRROR_SYNC_MAX_IN_FLIGHT
requests be in flight at once. A 429 halves that number and pauses every request for
the time derouter asks (or a second); after enough answers without one it grows back.

One pass at a time: a pass holds the pass lease, kept up while it runs, so two consumers
whose refreshes overlap do not double the requests; a consumer killed mid-pass holds it
until the lease runs out. A scope whose lease another process holds is left to it.
"""

import logging
import queue
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, connections
from django.utils import timezone
from django.utils.translation import gettext_noop
from huey.contrib.djhuey import db_task

from derouter import client
from lib.stored_text import lines, note, read_in_english
from mirror import snapshot, sync
from mirror.models import KeySnapshot, SyncPass, SyncState
from work import leases
from work.models import Lease, TaskRun
from work.runs import Recorded, prune_task_runs

logger = logging.getLogger(__name__)

PASS_LEASE = "mirror-usage-pass"
# The names of the runs (TaskRun) of a pass and of one scope's sync task.
PASS_TASK_NAME = "sync_pass"
SCOPE_TASK_PREFIX = sync.SCOPE_TASK_PREFIX
# SyncPass rows kept (the Sync page shows the last).
SYNC_PASSES_KEPT = 100
# Short, kept up every few seconds while the pass runs: a killed pass stops the others this long at most.
PASS_LEASE_SECONDS = 60
# How often the thread that started the pass keeps its lease up while the scopes are synced.
KEEP_EVERY_SECONDS = 5
# A page asked for again after a 429 at most this many times before the scope's sync fails (and is retried later).
RATE_LIMIT_RETRIES = 5
# How long to pause after a 429 that names no Retry-After.
DEFAULT_RETRY_AFTER_SECONDS = 1.0


class InFlight:
    """The gate every request of a pass goes through: at most ``limit`` in flight, fewer after a 429.

    On a 429 the limit halves (down to one) and no request starts until the time derouter
    asked for has passed; every ``limit`` answers without one it grows by one, back up
    to the configured ceiling.
    """

    def __init__(self, limit):
        self.ceiling = self.limit = max(1, limit)
        self.rate_limited = 0
        self.most_in_flight = 0
        self._in_flight = 0
        self._answers_since_limited = 0
        self._paused_until = 0.0
        self._changed = threading.Condition()

    def call(self, function, *args):
        """``function(*args)`` once the gate lets it through; after a 429, again (RATE_LIMIT_RETRIES times)."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            self._enter()
            try:
                answer = function(*args)
            except client.RateLimited as error:
                self._leave(limited_for=error.retry_after or DEFAULT_RETRY_AFTER_SECONDS)
                if attempt == RATE_LIMIT_RETRIES:
                    raise
                continue
            except BaseException:
                self._leave()
                raise
            self._leave()
            return answer
        raise AssertionError("unreachable")

    def _enter(self):
        with self._changed:
            while True:
                pause = self._paused_until - time.monotonic()
                if pause <= 0 and self._in_flight < self.limit:
                    break
                self._changed.wait(timeout=pause if pause > 0 else None)
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)

    def _leave(self, limited_for=None):
        with self._changed:
            self._in_flight -= 1
            if limited_for is not None:
                self.rate_limited += 1
                self.limit = max(1, self.limit // 2)
                self._answers_since_limited = 0
                self._paused_until = max(self._paused_until, time.monotonic() + limited_for)
                logger.warning("derouter answered 429: %s requests in flight at most, pausing %.1f s",
                               self.limit, limited_for)
            elif self.limit < self.ceiling:
                self._answers_since_limited += 1
                if self._answers_since_limited >= self.limit:
                    self.limit += 1
                    self._answers_since_limited = 0
            self._changed.notify_all()


@dataclass
class PassResult:
    """What one pass did; ``lag_seconds``: the longest a new row waited, from its request to being visible."""

    started_at: datetime
    finished_at: datetime | None = None
    scopes: int = 0
    synced: int = 0
    inserted: int = 0
    busy: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    lag_seconds: float | None = None
    rate_limited: int = 0

    @property
    def seconds(self):
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else None

    def describe(self):
        """In English, for the command line and the logs."""
        return read_in_english(self.as_note())

    def as_note(self):
        """What a TaskRun stores, read in each reader's language."""
        return lines(
            note(gettext_noop("%(synced)s of %(scopes)s scopes synced in %(seconds)s s, %(rows)s new rows"),
                 synced=self.synced, scopes=self.scopes, seconds=f"{self.seconds:.1f}", rows=self.inserted),
            self.lag_seconds is not None and note(gettext_noop("longest lag %(seconds)s s"), seconds=f"{self.lag_seconds:.1f}"),
            self.busy and note(gettext_noop("%(count)s left to another process"), count=len(self.busy)),
            self.failed and note(gettext_noop("%(count)s failed"), count=len(self.failed)),
            self.rate_limited and note(gettext_noop("%(count)s answers of 429"), count=self.rate_limited),
        )


def _record(result, scope, synced=None, error=None, busy=False):
    if busy:
        result.busy.append(scope)
    elif error is not None:
        result.failed[scope] = error
    else:
        result.synced += 1
        result.inserted += synced.inserted
        lag = synced.written.longest_lag_seconds
        if lag is not None:
            result.lag_seconds = max(lag, result.lag_seconds or 0)


def _sync_one(scope, spent_before, full, gate, wait_seconds):
    """Sync a scope through the gate; (SyncResult, error text, busy).

    The scopes are what runs at once; a scope's walk asks ahead only when it knows it needs
    more pages (a first sync, many new rows).
    """
    try:
        synced = sync.sync_scope(
            scope, full=full, wait_seconds=wait_seconds, spent_before=spent_before, ask_ahead=True,
            fetch=lambda *page: gate.call(sync.fetch_usage_page, *page),
        )
    except sync.ScopeBusy:
        return None, None, True
    except KeySnapshot.DoesNotExist:
        return None, "no such key in the snapshot", False
    except client.NotFound:
        # Deleted upstream since the snapshot was taken: the next refresh marks it.
        SyncState.objects.filter(scope=scope).update(synced_spent=None)
        return None, "derouter no longer knows this key", False
    except client.DerouterError as error:
        return None, error.message, False
    return synced, None, False


def run_pass(scopes, full=False, max_in_flight=None, wait_seconds=0, on_scope=None, exclusive=True):
    """Sync ``scopes`` concurrently; a PassResult. Raises leases.LeaseHeld when ``exclusive`` and another pass runs.

    ``scopes`` maps each scope to its key's spend as read before the pass (sync.moved_scopes),
    or is a list of scopes (their spend is read then). ``exclusive`` (the worker's passes)
    holds the pass lease; the `sync` command runs beside them, its scopes under their own leases.
    ``wait_seconds``: how long each scope waits for another process syncing it (0: leave it
    to that process, listed as busy). ``on_scope(scope, synced, error, busy)`` is called as
    each scope ends, in the thread that started the pass. Inside a transaction (a test's)
    the scopes run in line: other threads would not see its rows.
    """
    limit = max_in_flight or settings.MIRROR_SYNC_MAX_IN_FLIGHT
    if not isinstance(scopes, dict):
        scopes = sync.spent_of(scopes)
    gate = InFlight(limit)
    result = PassResult(started_at=timezone.now(), scopes=len(scopes))
    with leases.held(PASS_LEASE, seconds=PASS_LEASE_SECONDS) if exclusive else nullcontext() as lease:
        keep = lease.keep if lease is not None else (lambda: None)
        if connection.in_atomic_block or limit == 1:
            for scope, spent in scopes.items():
                _ended(result, on_scope, scope, *_sync_one(scope, spent, full, gate, wait_seconds))
                keep()
        else:
            _run_threads(scopes, full, gate, wait_seconds, min(limit, len(scopes)), result, keep, on_scope)
    result.rate_limited = gate.rate_limited
    result.finished_at = timezone.now()
    return result


def _ended(result, on_scope, scope, synced, error, busy):
    _record(result, scope, synced, error, busy)
    if on_scope:
        on_scope(scope, synced, error, busy)


def _run_threads(scopes, full, gate, wait_seconds, thread_count, result, keep, on_scope):
    """The scopes on ``thread_count`` threads; this thread gathers what ended and keeps the pass lease up.

    If this thread stops (the pass lease was taken over, an error in ``on_scope``), the
    threads take no further scope and the pass ends once the scopes under way are done.
    """
    todo, ended = queue.SimpleQueue(), queue.SimpleQueue()
    stopping = threading.Event()
    for scope_and_spent in scopes.items():
        todo.put(scope_and_spent)

    def work():
        try:
            while not stopping.is_set():
                try:
                    scope, spent = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    ended.put((scope, *_sync_one(scope, spent, full, gate, wait_seconds)))
                except BaseException as error:  # a bug, or the database gone: reported, the pass goes on
                    logger.exception("the sync of scope %s failed", scope)
                    ended.put((scope, None, f"{error.__class__.__name__}: {error}", False))
        finally:
            # Each thread has connections of its own; they end with it.
            connections.close_all()

    threads = [threading.Thread(target=work, name=f"sync-pass-{number}", daemon=True) for number in range(thread_count)]
    for thread in threads:
        thread.start()
    try:
        for _ in scopes:
            while True:
                try:
                    scope, synced, error, busy = ended.get(timeout=KEEP_EVERY_SECONDS)
                    break
                except queue.Empty:
                    keep()
            _ended(result, on_scope, scope, synced, error, busy)
            keep()
    finally:
        stopping.set()
        for thread in threads:
            thread.join()


def record(result):
    """Keep a finished pass's figures for the Sync page."""
    return SyncPass.objects.create(
        started_at=result.started_at, finished_at=result.finished_at, scopes=result.scopes, synced=result.synced,
        busy=len(result.busy), failed=len(result.failed), inserted=result.inserted, lag_seconds=result.lag_seconds,
        rate_limited=result.rate_limited,
    )


# A run whose lease was never seen is left this long before it counts as interrupted: it may not have taken it yet.
UNSEEN_LEASE_GRACE_SECONDS = 60


def _lease_of_run(name):
    """The lease a mirror task's run works under, by the run's name (None: not a mirror task)."""
    if name == PASS_TASK_NAME:
        return PASS_LEASE
    if name == snapshot.REFRESH_TASK_NAME:
        return snapshot.SNAPSHOT_LEASE
    if name.startswith(SCOPE_TASK_PREFIX):
        return sync.usage_lease_name(name.removeprefix(SCOPE_TASK_PREFIX))
    return None


def end_interrupted_runs():
    """Runs of mirror tasks still "running" whose worker was killed: failed, once their lease has expired.

    A worker keeps its lease up while it works and releases it when done, so a run whose
    lease has expired (or, after a grace, is not held at all) will never finish.
    """
    now = timezone.now()
    running = TaskRun.objects.filter(status=TaskRun.Status.RUNNING).values_list("pk", "name", "started_at")
    leases_of = {pk: (_lease_of_run(name), started_at) for pk, name, started_at in running}
    names = {lease for lease, _ in leases_of.values() if lease is not None}
    expiry = dict(Lease.objects.filter(name__in=names).values_list("name", "expires_at"))
    interrupted = []
    for pk, (lease, started_at) in leases_of.items():
        if lease is None:
            continue
        if lease in expiry:
            if expiry[lease] <= now:
                interrupted.append(pk)
        elif (now - started_at).total_seconds() > UNSEEN_LEASE_GRACE_SECONDS:
            interrupted.append(pk)
    if interrupted:
        TaskRun.objects.filter(pk__in=interrupted, status=TaskRun.Status.RUNNING).update(
            status=TaskRun.Status.FAILED, finished_at=now,
            error=note(gettext_noop("interrupted: the worker stopped mid-task and its lease expired; the next pass takes the work over")),
        )
    return len(interrupted)


# ---------------------------------------------------------------- the worker's task


@db_task(retries=snapshot.RETRIES, retry_delay=snapshot.RETRY_DELAY_SECONDS, retry_backoff=snapshot.RETRY_BACKOFF)
def refresh_mirror():
    """The worker's task: refresh the key snapshot and the balance, then sync every scope that may have new rows."""
    # Before this pass takes their scopes over: runs of killed workers, whose leases have expired, end as failed.
    end_interrupted_runs()
    if not snapshot.refresh_snapshot_recorded():
        return
    try:
        snapshot.refresh_balance()
    except client.DerouterError as error:
        # The pages show the last balance read, with its age; the next pass tries again.
        logger.warning("balance not refreshed: %s", error.message)
    sync_usage_pass()
    prune_task_runs()
    kept = SyncPass.objects.values_list("started_at", flat=True)[SYNC_PASSES_KEPT:SYNC_PASSES_KEPT + 1]
    if kept:
        SyncPass.objects.filter(started_at__lt=kept[0]).delete()


def sync_usage_pass():
    """Sync every scope whose usage may have moved in one pass, recorded; nothing when another pass runs."""
    recorded = Recorded(PASS_TASK_NAME)
    try:
        result = run_pass(sync.moved_scopes())
    except leases.LeaseHeld:
        recorded.skipped()
        return None
    record(result)
    if result.failed:
        failures = "; ".join(f"{scope}: {error}" for scope, error in sorted(result.failed.items())[:20])
        recorded.detail = result.as_note()
        recorded.failed(lines(result.as_note(), failures))
    else:
        recorded.ok(result.as_note())
    return result
