"""What console pages read from the mirror: keys from the snapshot, how fresh it is, the first sync.

Pages never ask derouter for the key list: they search, sort and count the snapshot in
SQL, so their cost does not grow with the number of keys. Decisions that move money
(top-up confirm, edit, delete) still read the key from derouter.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Case, Count, F, Max, Min, Q, Sum, When
from django.db.models.functions import Greatest
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext_lazy

from derouter.client import ClientBalance, Secret, SubKey, UsageSummary
from lib.money import plain
from lib.queue import enqueue_or_warn
from mirror import key_store
from mirror.models import AccountBalance, DailyRollup, KeySnapshot, SyncPass, SyncState, UsageRecord, billed_amount
from mirror.snapshot import REFRESH_TASK_NAME, refresh_keys
from work.models import TaskRun

# Sort columns of the key list (as the form names them) and the snapshot fields behind them.
SORT_FIELDS = {
    "label": "label",
    "key_id": "key_id_short",
    "budget": "budget",
    "spent": "spent",
    "remaining": "remaining",
    "rpm_limit": "rpm_limit",
    "concurrent_limit": "concurrent_limit",
    "display_multiplier": "display_multiplier",
    "created_at": "created_at",
}
# A page seen before the first refresh asks for one at most this often.
FIRST_SYNC_REQUEST_SECONDS = 60
FIRST_SYNC_REQUEST_CACHE_KEY = "mirror:first-sync-requested"


@dataclass(frozen=True)
class Freshness:
    """How fresh the key snapshot is, as pages say it."""

    as_of: datetime | None
    age_seconds: int | None
    is_stale: bool
    first_sync_running: bool


def get_freshness():
    """When the snapshot was last complete: the oldest refresh of an active key, else the last refresh run."""
    as_of = KeySnapshot.objects.active().order_by("refreshed_at").values_list("refreshed_at", flat=True).first()
    if as_of is None:
        as_of = (
            TaskRun.objects.filter(name=REFRESH_TASK_NAME, status=TaskRun.Status.OK)
            .values_list("finished_at", flat=True)
            .first()
        )
    if as_of is None:
        return Freshness(None, None, False, True)
    return _freshness_as_of(as_of)


def _freshness_as_of(as_of):
    age = max(0, int((timezone.now() - as_of).total_seconds()))
    return Freshness(as_of, age, age > settings.MIRROR_STALE_AFTER_SECONDS, False)


@dataclass(frozen=True)
class MirroredBalance:
    """The account's balance as derouter last reported it, and how fresh that is."""

    balance: object
    locked: object
    available: object
    freshness: Freshness


def get_mirrored_balance():
    """The balance last read from derouter (by the worker or any page), or None before the first read."""
    row = next(iter(AccountBalance.objects.filter(pk=1)[:1]), None)  # first() would order the one row too
    if row is None:
        return None
    return MirroredBalance(row.balance, row.locked, row.available, _freshness_as_of(row.read_at))


def get_key_freshness(snapshot):
    """How fresh one key of the snapshot is: as of derouter's last report of it."""
    return _freshness_as_of(snapshot.refreshed_at)


def get_usage_freshness(snapshot):
    """How fresh a key's mirrored requests are; ``first_sync_running`` until its first sync is complete.

    A key whose spend has not moved since its last sync has no new requests, so the
    periodic sync does not ask for them: its rows are then as fresh as the snapshot.
    """
    # One row (the scope is unique): sliced, not first(), which would order by id as well.
    state = next(iter(
        SyncState.objects.filter(scope=snapshot.sub_key_id).values_list("last_synced_at", "backfill_complete", "synced_spent")[:1]
    ), None)
    if state is None or not state[1] or state[0] is None:
        return Freshness(None, None, False, True)
    last_synced_at, _, synced_spent = state
    as_of = max(last_synced_at, snapshot.refreshed_at) if synced_spent == snapshot.spent else last_synced_at
    return _freshness_as_of(as_of)


def request_first_sync_if_empty():
    """Before the first refresh, ask the worker for one (at most once a minute across processes).

    Pages that read the snapshot call this first; the worker's own first refresh usually wins.
    """
    if KeySnapshot.objects.exists():
        return
    if cache.add(FIRST_SYNC_REQUEST_CACHE_KEY, True, FIRST_SYNC_REQUEST_SECONDS):
        enqueue_or_warn(refresh_keys)


def get_snapshot_or_404(sub_key_id, deleted_too=False):
    """An active key of the snapshot (or a deleted one too), or Http404 (the URL converter already refused malformed ids).

    A key found means the snapshot is not empty: only a miss needs the first-sync check.
    """
    keys = KeySnapshot.objects.all() if deleted_too else KeySnapshot.objects.active()
    try:
        return keys.get(sub_key_id=sub_key_id)
    except KeySnapshot.DoesNotExist:
        request_first_sync_if_empty()
        raise Http404(gettext_lazy("No such key.")) from None


def get_summary_after_first_sync_request():
    """The snapshot's summary row, for a page that reads the snapshot (request_first_sync_if_empty first).

    Keys counted in the summary mean the snapshot is not empty, so the check for any key is
    needed only when it counts none; it is read again then, in case the first sync just ran.
    """
    summary = key_store.get_summary()
    if summary.key_count:
        return summary
    request_first_sync_if_empty()
    return key_store.get_summary()


def search_keys(query="", sort="-created_at", include_deleted=False, keys=None):
    """Snapshot keys matching a search, sorted in SQL; a pasted full key is matched by its digest.

    ``keys`` is the snapshot queryset to search, for a caller that annotates it (the key
    list adds each key's days left) and sorts by that annotation: the sort names either
    a column of SORT_FIELDS or an annotation of ``keys``.
    """
    keys = KeySnapshot.objects.all() if keys is None else keys
    if not include_deleted:
        keys = keys.filter(deleted_at__isnull=True)
    needle = query.strip()
    if needle:
        keys = keys.filter(
            Q(label__icontains=needle)
            | Q(key_id_short__icontains=needle.removesuffix("..."))
            | Q(sub_key_id__icontains=needle)
            | Q(secret_sha256=key_store.secret_digest(needle))
        )
    column = sort.removeprefix("-")
    descending = sort.startswith("-")
    if column in keys.query.annotations:
        # An annotation (the key list's days left) is NULL for some keys: those sort last either way.
        order = F(column).desc(nulls_last=True) if descending else F(column).asc(nulls_last=True)
    else:
        # Plain orderings (no NULLS LAST: every sort column is filled) so the indexes serve them.
        order = F(SORT_FIELDS[column]).desc() if descending else F(SORT_FIELDS[column]).asc()
    return keys.order_by(order, "-sub_key_id" if descending else "sub_key_id")


def as_sub_key(snapshot):
    """A snapshot row in the shape the key templates know; the secret is never in the snapshot."""
    return SubKey(
        id=snapshot.sub_key_id,
        label=snapshot.label,
        key_id=snapshot.key_id_short,
        secret=Secret(""),
        budget=plain(snapshot.budget),
        spent=plain(snapshot.spent),
        remaining=plain(snapshot.remaining),
        rpm_limit=snapshot.rpm_limit,
        concurrent_limit=snapshot.concurrent_limit,
        display_multiplier=plain(snapshot.display_multiplier),
        created_at=snapshot.created_at,
    )


@dataclass(frozen=True)
class SyncProgress:
    """The usage mirror at a glance, for the status panel."""

    scopes: int
    complete: int
    rows_mirrored: int
    malformed_rows: int
    pages_done: int
    pages_total: int
    last_synced_at: datetime | None
    scopes_with_errors: list

    @property
    def first_sync_running(self):
        return self.complete < self.scopes

    @property
    def percent(self):
        if not self.pages_total:
            return 0 if self.first_sync_running else 100
        return min(100, int(self.pages_done * 100 / self.pages_total))


def get_sync_progress():
    totals = SyncState.objects.aggregate(
        scopes=Count("id"),
        complete=Count("id", filter=Q(backfill_complete=True)),
        rows_mirrored=Sum("rows_mirrored", default=0),
        malformed_rows=Sum("malformed_rows", default=0),
        pages_done=Sum(F("backfill_page") - 1, filter=Q(backfill_complete=False, backfill_page__gt=0), default=0),
        pages_total=Sum("backfill_pages", filter=Q(backfill_complete=False), default=0),
        last_synced_at=Max("last_synced_at"),
    )
    errors = SyncState.objects.exclude(last_error="").select_related("key").order_by("-last_error_at")[:20]
    return SyncProgress(**totals, scopes_with_errors=list(errors))


def get_oldest_usage_sync():
    """When the least recently mirrored scope (an active key, or the account) was last known to be in step.

    A key whose spend has not moved since its last sync has no new rows, so its rows are
    as fresh as the snapshot (see get_usage_freshness). Deleted keys are left out: nothing
    syncs them again. None before any sync.
    """
    in_step_since = Case(
        When(synced_spent=F("key__spent"), then=Greatest("last_synced_at", "key__refreshed_at")),
        default=F("last_synced_at"),
    )
    return (
        SyncState.objects.filter(Q(key__isnull=True) | Q(key__deleted_at__isnull=True))
        .aggregate(oldest=Min(in_step_since))["oldest"]
    )


def get_last_pass():
    """The worker's last usage pass (a SyncPass: its length, rows and lag), or None before the first."""
    return SyncPass.objects.first()


# A key's mirrored rows as an export reads them: the columns of the client's own usage log.
USAGE_EXPORT_COLUMNS = (
    "request_id", "created_at", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "cost", "duration_ms",
)


# The usage windows of a key's own view, as derouter counts them: UTC today, this week (from Monday), this month.
CLIENT_WINDOWS = ("today", "week", "month", "total")
CLIENT_WINDOW_FIELDS = ("requests", "input_tokens", "output_tokens", "billed")


def _client_window_starts(now):
    today = now.astimezone(UTC).date()
    return {"today": today, "week": today - timedelta(days=today.weekday()), "month": today.replace(day=1), "total": None}


def get_client_view(snapshot, now=None):
    """What the key's holder sees of itself (a derouter.client.ClientBalance, in display units), from the mirror.

    Budget and spent are the snapshot's times the key's multiplier; the usage windows sum the
    key's daily rollups (one query, however many requests the key made).
    """
    starts = _client_window_starts(now or timezone.now())
    sums = {}
    for window in CLIENT_WINDOWS:
        only = Q(day__gte=starts[window]) if starts[window] else Q()
        for name in CLIENT_WINDOW_FIELDS:
            sums[f"{window}_{name}"] = Sum(name, filter=only, default=0)
    totals = DailyRollup.objects.filter(key=snapshot).aggregate(**sums)
    usage = {}
    for window in CLIENT_WINDOWS:
        requests, input_tokens, output_tokens, billed = (totals[f"{window}_{name}"] for name in CLIENT_WINDOW_FIELDS)
        usage[window] = UsageSummary(
            requests=requests, input_tokens=input_tokens, output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens, cost=billed,
        )
    budget = billed_amount(snapshot.budget, snapshot.display_multiplier)
    spent = billed_amount(snapshot.spent, snapshot.display_multiplier)
    return ClientBalance(
        label=snapshot.label,
        budget=budget,
        spent=spent,
        remaining=budget - spent,
        rpm_limit=snapshot.rpm_limit,
        concurrent_limit=snapshot.concurrent_limit,
        **usage,
    )


def get_active_key_by_secret(secret_text):
    """The snapshot of the active key whose full secret this is, or None (matched by its digest)."""
    return KeySnapshot.objects.active().filter(secret_sha256=key_store.secret_digest(secret_text)).first()


def is_usage_in_upstream_order(snapshot):
    """Whether the key's rows are all mirrored and their ids follow derouter's order (see SyncState)."""
    return SyncState.objects.filter(
        scope=snapshot.sub_key_id, backfill_complete=True, backfill_page=0, ids_in_upstream_order=True
    ).exists()


def count_key_usage(snapshot):
    return UsageRecord.objects.filter(key=snapshot).count()


def iter_key_usage_in_upstream_order(snapshot, chunk_size=2000):
    """The key's rows in derouter's order, streamed: newest first, a second's rows newest-arrived first.

    Only as exact as is_usage_in_upstream_order says: within a second, ids follow derouter's listing.
    """
    return (
        UsageRecord.objects.filter(key=snapshot)
        .order_by("-created_at", "id")
        .values_list(*USAGE_EXPORT_COLUMNS)
        .iterator(chunk_size=chunk_size)
    )
