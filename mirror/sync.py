"""Keeping the mirror's usage rows in step with derouter, scope by scope (mirror.snapshot keeps the key list).

A scope is one Client Key (its sub_key_id) or the Account Key's own use ("account").
Each scope's usage is synced under a lease (work.leases: a lock in the shared database
that expires, renewed after every page), so any number of consumers (and the `sync`
command, and a key edit) can run at once without two of them walking the same scope,
and a consumer killed mid-sync holds the scope only until its lease runs out; the
unique (key, time, request id) behind it makes a double insert fail instead of counting
a row twice.

Usage pages come newest first and are numbered from the newest row, so rows that
arrive while we page push older rows to later pages: we may see a row twice (skipped
as already held), never miss one. A first (or --full) sync walks every page and
checkpoints the next page in SyncState after each one, so a restart goes on from there.
Later syncs walk from page 1 until they reach the newest row of the last complete pass.
"""

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

from django.db import IntegrityError, connection
from django.utils import timezone
from django.utils.translation import gettext_noop
from huey.contrib.djhuey import db_task

from derouter import client
from lib.ahead import PagesAhead
from lib.stored_text import lines, note, read_in_english
from mirror import ingest, snapshot
from mirror.models import ACCOUNT_SCOPE, KeySnapshot, SyncState, UsageRecord
from work import leases
from work.runs import Recorded

logger = logging.getLogger(__name__)

# derouter's largest page: the fewest requests per row.
PAGE_SIZE = 100
# Rows a first sync writes per transaction (ten full pages): at most that much redone after
# a restart, and a tenth of the commits and checkpoints of a transaction per page. Its pages
# are fetched ahead all along, so a batch is written while the next ones arrive.
BACKFILL_BATCH_ROWS = 1000
# A catch-up writes its pages two at a time, while the next ones are fetched: at the end
# of the walk at most two pages are left to write. A page at a time costs a commit, a
# rollup statement and a state update each: measured, more than it saves at the end.
CATCH_UP_BATCH_ROWS = 2 * PAGE_SIZE
# Pages fetched ahead of the walk when it knows it needs them (a first sync, the rows new since
# the last pass): the next batch's pages arrive while this one is written.
ASK_AHEAD_PAGES = 20
# How long a key edit waits for a running sync of that key before giving up.
EDIT_LOCK_WAIT_SECONDS = 5
# A sync told nothing of the key's spend reads it itself.
UNREAD = object()
# The name of a scope's sync task run (TaskRun) is this and the scope.
SCOPE_TASK_PREFIX = "sync_usage "
# Another process is syncing this scope (or refreshing the snapshot) right now, or took it over from us.
ScopeBusy = leases.LeaseHeld


@dataclass
class SyncResult:
    """What one sync of one scope did."""

    scope: str
    complete: bool = False
    written: ingest.Written = field(default_factory=ingest.Written)
    malformed_ids: set = field(default_factory=set, repr=False)

    @property
    def pages(self):
        return self.written.pages

    @property
    def inserted(self):
        return self.written.inserted

    @property
    def malformed(self):
        return self.written.malformed

    def describe(self):
        """In English, for the command line and the logs."""
        return read_in_english(self.as_note())

    def as_note(self):
        """What a TaskRun stores, read in each reader's language."""
        if self.complete:
            text = note(gettext_noop("%(scope)s: %(rows)s new rows from %(pages)s pages, up to date"),
                        scope=self.scope, rows=self.inserted, pages=self.pages)
        else:
            text = note(gettext_noop("%(scope)s: %(rows)s new rows from %(pages)s pages, in progress"),
                        scope=self.scope, rows=self.inserted, pages=self.pages)
        return lines(text, note(gettext_noop("%(count)s malformed rows"), count=self.malformed) if self.malformed else "")


def usage_lease_name(scope):
    return f"mirror-usage-{scope}"


def mirror_usage_before_write(sub_key):
    """Before a write that changes how a key's usage is mirrored: record the key, then mirror its usage so far.

    A new multiplier must not reach rows made before it, and derouter stops listing a
    deleted key's usage. Returns None when done, else why it could not be done (a stored note).
    """
    snapshot.record_key(sub_key)
    try:
        sync_key_usage(sub_key.id)
    except ScopeBusy:
        return note(gettext_noop("the worker is mirroring this key's usage right now"))
    except client.DerouterError as error:
        return note(gettext_noop("this key's usage could not be read first (%(reason)s)"), reason=error.message)
    return None


# ---------------------------------------------------------------- usage


def _scope_key(scope):
    if scope == ACCOUNT_SCOPE:
        return None
    return KeySnapshot.objects.get(sub_key_id=scope)


def fetch_usage_page(scope, page):
    """A page of the scope's usage, read but not decoded (in the fetching thread, when there is one).

    The walk decodes it: the fetching thread is then back to asking for the next page
    sooner, while derouter answers it the walk decodes and writes this one.
    """
    if scope == ACCOUNT_SCOPE:
        return client.fetch_usage_logs(page, PAGE_SIZE, account_only=True, skip_malformed=True)
    return client.fetch_usage_logs(page, PAGE_SIZE, sub_key_id=scope, skip_malformed=True)


def _where_to_start(scope):
    """The page a sync of the scope will start on, and the key's spend as the snapshot says, before any page is read.

    Read without the lease, the page is a guess (checked under it): the first page is then
    asked for while the lease is taken and the state read. The spend is read before it: a
    walk from page 1 sees every row that spend counts, so the sync may record it as mirrored.
    """
    table = connection.ops.quote_name(SyncState._meta.db_table)
    with connection.cursor() as cursor:
        # A plain statement: the ORM takes ten times as long to build it as SQLite to run it.
        cursor.execute(f"SELECT backfill_complete, backfill_page FROM {table} WHERE scope = %s", [scope])
        state = cursor.fetchone()
    spent = None
    if scope != ACCOUNT_SCOPE:
        spent = KeySnapshot.objects.filter(sub_key_id=scope).values_list("spent", flat=True).first()
    if state is None or state[0]:
        return 1, spent
    return state[1] or 1, spent


def _count_malformed(result, usage_page):
    fresh = 0
    for row in usage_page.malformed:
        marker = row.request_id or f"page{usage_page.page}:{len(result.malformed_ids)}"
        if marker in result.malformed_ids:
            continue
        result.malformed_ids.add(marker)
        fresh += 1
        logger.warning(
            "derouter sent a usage row of unexpected shape (scope %s, request %s): %s",
            result.scope, row.request_id or "without id", row.problem,
        )
    return fresh


def _take_page(writer, logs, usage_page, checkpoint, progress, result, finished=None, behind=None):
    """Hand a walked page's new logs to the writer and report progress; ``finished`` (the walk's end) writes them."""
    malformed = _count_malformed(result, usage_page)
    fetched = len(usage_page.logs)
    if finished is None:
        writer.add(logs, checkpoint, fetched=fetched, malformed=malformed)
    else:
        checkpoint.update(finished)
        writer.finish(logs, checkpoint, fetched=fetched, malformed=malformed, behind=behind)
    if progress:
        progress(result, usage_page)
    return finished is not None


def _backfill(state, writer, finished, result, progress, pages):
    """Walk every page from the checkpoint on; rows and the next page to walk commit together."""
    page = state.backfill_page or 1
    while True:
        usage_page = pages.get(page).decode()
        checkpoint = ingest.Checkpoint(
            backfill_page=page + 1, backfill_total=usage_page.total, backfill_pages=usage_page.pages
        )
        if page == 1 and not state.newest_request_id and usage_page.logs:
            # Rows newer than this one arrive above it; the next catch-up stops here.
            checkpoint.newest_request_id = usage_page.logs[0].request_id
            checkpoint.newest_created_at = usage_page.logs[0].created_at
            checkpoint.newest_total = usage_page.total
        last = page >= usage_page.pages or not (usage_page.logs or usage_page.malformed)
        if last:
            checkpoint.update(
                ingest.Checkpoint(backfill_page=0, backfill_complete=True, last_synced_at=timezone.now())
            )
        else:
            # A first sync needs every page: those of the next batch can arrive while this one is written.
            pages.ask_for(*range(page + 1, min(page + ASK_AHEAD_PAGES, usage_page.pages) + 1))
        if _take_page(writer, usage_page.logs, usage_page, checkpoint, progress, result, finished if last else None):
            return
        page += 1


def _catch_up(state, writer, finished, result, progress, pages):
    """Walk from the newest row down to the newest row of the last complete pass.

    When every page reports the same total, exactly (total - newest_total) rows are new
    and the walk stops on the last of them, without asking for the page that holds the
    boundary row. If rows arrive meanwhile (the total moves), it walks on to the boundary.
    New rows of the boundary row's second come before the rows of that second held already
    in derouter's order: those get new ids behind them, so ids keep that order.
    """
    boundary, boundary_time = state.newest_request_id, state.newest_created_at
    newest, total_at_start = None, None
    seen_above_boundary = set()
    shares_boundary_second = False
    page = 1
    while True:
        usage_page = pages.get(page).decode()
        if page == 1:
            total_at_start = usage_page.total
            newest = usage_page.logs[0] if usage_page.logs else None
        fresh, reached = [], False
        for log in usage_page.logs:
            if log.request_id == boundary or (boundary_time and log.created_at < boundary_time):
                reached = True
                break
            # Rows pushed down a page by new arrivals come again: the writer gets each row once.
            if log.request_id in seen_above_boundary:
                continue
            seen_above_boundary.add(log.request_id)
            fresh.append(log)
            if log.created_at == boundary_time:
                shares_boundary_second = True
        seen_above_boundary.update(f"malformed:{page}:{index}" for index, _ in enumerate(usage_page.malformed))
        all_new_seen = (
            state.newest_total is not None
            and usage_page.total == total_at_start
            and len(seen_above_boundary) >= total_at_start - state.newest_total
        )
        last = (
            reached or all_new_seen or page >= usage_page.pages or not (usage_page.logs or usage_page.malformed)
        )
        checkpoint = ingest.Checkpoint()
        behind = None
        if last:
            checkpoint.last_synced_at = timezone.now()
            if newest is not None:
                checkpoint.newest_request_id = newest.request_id
                checkpoint.newest_created_at = newest.created_at
                checkpoint.newest_total = total_at_start
            if shares_boundary_second:
                behind = (boundary_time, frozenset(seen_above_boundary))
        else:
            # The pages holding the rows new since the last pass (when none shift meanwhile): no more.
            new_pages = -(-(total_at_start - state.newest_total) // PAGE_SIZE) if state.newest_total is not None else 0
            pages.ask_for(*range(page + 1, max(page + 1, min(new_pages, page + ASK_AHEAD_PAGES)) + 1))
        if _take_page(writer, fresh, usage_page, checkpoint, progress, result, finished if last else None, behind):
            return
        page += 1


def _sync_locked(scope, full, progress, pages, spent_before):
    # The state and its key (with the multiplier in force now) in one query.
    state = next(iter(SyncState.objects.select_related("key").filter(scope=scope)[:1]), None)
    if state is None:
        state = SyncState.objects.create(scope=scope, key=_scope_key(scope))
    key = state.key
    if full and (state.backfill_complete or state.backfill_page == 0):
        state.backfill_complete = False
        state.backfill_page = 1
        state.newest_request_id = ""
        state.newest_created_at = None
        state.newest_total = None
        state.save()
    if not state.backfill_complete and state.backfill_page <= 1:
        # A first walk inserts the rows in derouter's order; one over rows held already cannot.
        state.ids_in_upstream_order = not UsageRecord.objects.filter(key=key).exists()
        state.save(update_fields=["ids_in_upstream_order"])
    result = SyncResult(scope)
    # What the state takes with the last page. A walk from page 1 has seen every row the spend
    # read before it counts: the periodic sync then skips the key until its spend moves.
    finished = ingest.Checkpoint(last_error="")
    if key is not None and spent_before is not None:
        finished.synced_spent = spent_before
    writer = None
    try:
        if not state.backfill_complete:
            resumed = state.backfill_page > 1
            writer = ingest.UsageWriter(state, BACKFILL_BATCH_ROWS, written=result.written)
            _backfill(state, writer, ingest.Checkpoint(last_error="") if resumed else finished, result, progress, pages)
            if not resumed:
                result.complete = True
                return result
            # Resumed after a stop: rows that arrived since the walk began are above its first
            # page; they are walked now, before the pass may say the key's spend is mirrored.
        writer = ingest.UsageWriter(state, CATCH_UP_BATCH_ROWS, catching_up=True, written=result.written)
        _catch_up(state, writer, finished, result, progress, pages)
        result.complete = True
    except client.DerouterError as error:
        # Every page walked before derouter failed is kept, with its checkpoint.
        if writer is not None:
            writer.failed(error.message)
        raise
    return result


def sync_scope(scope, full=False, progress=None, wait_seconds=0, ask_ahead=False, fetch=None, spent_before=UNREAD):
    """Sync one scope's usage rows under its lease; raises ScopeBusy, DerouterError.

    ``progress(result, usage_page)`` is called after every page (the command's bar).
    A derouter failure stops the sync with every page so far kept and checkpointed.
    ``ask_ahead`` (the worker and the command, never a web request) fetches the next
    page while the current one is stored (lib.ahead), the first one while the lease is
    taken. The lease is kept up as the pages go by, so a first sync of any length holds
    it; a sync whose lease was taken over (it stalled past the lease) stops with ScopeBusy.
    ``fetch(scope, page)`` reads a page (a pass passes one that bounds the requests in flight).
    ``spent_before``: the key's spend as a caller read it before any page of this sync (a pass
    reads every scope's at once); read here, with the page to start on, when not given.
    """
    if spent_before is UNREAD:
        first_page, spent_before = _where_to_start(scope)
    else:
        # A pass: its scopes run at once, so the first page is read in line, and a helper
        # thread starts only for a walk that asks ahead (a first sync, many new pages).
        first_page = None
    with PagesAhead(partial(fetch or fetch_usage_page, scope), enabled=ask_ahead, lazy=first_page is None) as pages:
        if ask_ahead and first_page is not None:
            pages.ask_for(first_page)
        with leases.held(usage_lease_name(scope), wait_seconds=wait_seconds) as lease:
            return _sync_held(lease, scope, full, progress, pages, spent_before)


def _sync_held(lease, scope, full, progress, pages, spent_before):
    def after_page(result, usage_page):
        lease.keep()
        if progress:
            progress(result, usage_page)

    try:
        return _sync_locked(scope, full, after_page, pages, spent_before)
    except IntegrityError:
        # Another writer slipped a row in without the lease (it cannot with it): the
        # page rolled back whole; the next pass picks it up.
        logger.warning("usage rows of scope %s were written by another writer meanwhile", scope)
        raise ScopeBusy(scope) from None


@contextmanager
def usage_kept_in_sync(scope, wait_seconds=0):
    """Bring a scope's rows up to date (on the worker: pages fetched ahead) and keep its lease for the block.

    No sync writes the scope's rows until the block ends, so a reader (a long export) sees
    them as they were when the catch-up ended; call the yielded lease's ``keep`` as it goes.
    Raises ScopeBusy or DerouterError.
    """
    first_page, spent_before = _where_to_start(scope)
    with PagesAhead(partial(fetch_usage_page, scope)) as pages:
        pages.ask_for(first_page)
        with leases.held(usage_lease_name(scope), wait_seconds=wait_seconds) as lease:
            _sync_held(lease, scope, False, None, pages, spent_before)
            yield lease


def sync_key_usage(sub_key_id):
    """Bring one key's usage up to date now, waiting for a sync already running on it.

    The key-edit code calls this before it sends a new multiplier, so every row made
    before the change is mirrored with the old one. Raises ScopeBusy or DerouterError.
    """
    return sync_scope(sub_key_id, wait_seconds=EDIT_LOCK_WAIT_SECONDS)


def scopes_to_sync():
    """Scopes whose usage may have moved (see moved_scopes), the account last."""
    return list(moved_scopes())


def spent_of(scopes):
    """Each scope -> its key's spend now (None: the account, or a key not in the snapshot), in one query."""
    spent = dict(KeySnapshot.objects.filter(sub_key_id__in=scopes).values_list("sub_key_id", "spent"))
    return {scope: spent.get(scope) for scope in scopes}


def moved_scopes():
    """Scopes whose usage may have moved -> the key's spend now (None: the account), in one query.

    Keys whose spend changed since their last sync (or whose first sync is not complete), and
    the account. A key's spend only moves with its usage, so unchanged keys cost no request at all.
    """
    moved = {}
    for sub_key_id, spent, synced_spent, complete in KeySnapshot.objects.active().values_list(
        "sub_key_id", "spent", "sync__synced_spent", "sync__backfill_complete"
    ):
        if not complete or synced_spent is None or synced_spent != spent:
            moved[sub_key_id] = spent
    moved[ACCOUNT_SCOPE] = None
    return moved


@db_task(retries=snapshot.RETRIES, retry_delay=snapshot.RETRY_DELAY_SECONDS, retry_backoff=snapshot.RETRY_BACKOFF)
def sync_usage(scope, full=False):
    """The worker's task: sync one scope's usage rows; a scope another consumer is syncing is left to it."""
    recorded = Recorded(f"{SCOPE_TASK_PREFIX}{scope}")
    try:
        result = sync_scope(scope, full=full, ask_ahead=True)
    except ScopeBusy:
        recorded.skipped()
        return
    except KeySnapshot.DoesNotExist:
        recorded.failed(note(gettext_noop("no such key in the snapshot")))
        return
    except client.NotFound:
        # Deleted upstream since the snapshot was taken: the next refresh marks it.
        SyncState.objects.filter(scope=scope).update(synced_spent=None)
        recorded.failed(note(gettext_noop("derouter no longer knows this key")))
        return
    except client.DerouterError as error:
        recorded.failed(error.message)
        raise
    if result.inserted or result.malformed or not result.complete:
        recorded.ok(result.as_note())
    else:
        recorded.skipped()
