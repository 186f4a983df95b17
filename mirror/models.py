"""The local mirror of derouter: every Client Key as last reported, every usage row, daily rollups.

Pages read these tables; decisions that move money read derouter itself. Nothing here is
ever written from a browser: only the sync code (run by the Huey worker, the `sync`
command, or the answer of a write we made) changes these rows.

Money is stored exactly: real costs with the upstream's precision (derouter reports at
most six decimals), billed amounts as derouter shows them to the client (real cost times
the display multiplier, rounded half-up to six decimals, row by row), so sums of billed
amounts equal what the client itself sees summed from /sub-key/usage-logs.
"""

from decimal import ROUND_HALF_UP, Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# What a client sees of one row's money: derouter rounds each row's shown cost to six places.
BILLED_PLACES = Decimal("0.000001")
# Real costs carry eight places (UsageRecord.cost); SQLite sums them as floats, so sums are rounded back.
COST_PLACES = Decimal("0.00000001")
ACCOUNT_SCOPE = "account"


def billed_amount(cost, multiplier):
    """What the client is shown for a real cost under a display multiplier (one row)."""
    return (cost * multiplier).quantize(BILLED_PLACES, rounding=ROUND_HALF_UP)


class KeySnapshotQuerySet(models.QuerySet):
    def active(self):
        return self.filter(deleted_at__isnull=True)


class KeySnapshot(models.Model):
    """A Client Key as derouter last reported it. Deleted keys stay, marked, with their final spend.

    The full secret is kept encrypted (``secret_encrypted``, lib.encryption keyed from
    SECRET_KEY): a money step reads the key's own /sub-key/balance with it, one call at any
    number of keys. Its SHA-256 lets a pasted full key be matched without decrypting.
    """

    sub_key_id = models.CharField(max_length=64, unique=True, help_text=_("derouter's id of the key."))
    label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True, help_text=_("The shortened key (keyId)."))
    secret_sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    secret_encrypted = models.CharField(max_length=400, blank=True)
    budget = models.DecimalField(max_digits=20, decimal_places=6)
    spent = models.DecimalField(max_digits=20, decimal_places=6)
    remaining = models.DecimalField(max_digits=20, decimal_places=6)
    rpm_limit = models.PositiveIntegerField()
    concurrent_limit = models.PositiveIntegerField()
    display_multiplier = models.DecimalField(max_digits=12, decimal_places=4, default=Decimal(1))
    created_at = models.DateTimeField(null=True, blank=True, help_text=_("When derouter created the key."))
    first_seen_at = models.DateTimeField(default=timezone.now)
    refreshed_at = models.DateTimeField(default=timezone.now, help_text=_("When derouter last reported it."))
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = KeySnapshotQuerySet.as_manager()

    class Meta:
        # Pages list active keys sorted by one column, a page at a time: an index per sort
        # column over the active keys only, ending in the tie-break, lets the database read
        # just that page in order instead of sorting every key (the key list's cost stays
        # flat). Partial, not led by deleted_at: PostgreSQL does not take "deleted_at IS NULL"
        # as fixing an index's first column, so it sorted every key past such an index.
        indexes = [
            models.Index(fields=[column, "sub_key_id"], condition=Q(deleted_at__isnull=True),
                         name=f"snapshot_active_{name}")
            for column, name in (
                ("label", "label"),
                ("key_id_short", "key"),
                ("budget", "budget"),
                ("spent", "spent"),
                ("remaining", "remaining"),
                ("rpm_limit", "rpm"),
                ("concurrent_limit", "concurrency"),
                ("display_multiplier", "multiplier"),
                ("created_at", "created"),
            )
        ] + [
            # The snapshot's freshness (its oldest refresh) and the refresh's own update.
            models.Index(fields=["refreshed_at"], condition=Q(deleted_at__isnull=True),
                         name="snapshot_active_refreshed"),
        ]

    def __str__(self):
        return f"{self.label or self.key_id_short} ({self.sub_key_id})"

    @property
    def is_deleted(self):
        return self.deleted_at is not None


class SnapshotSummary(models.Model):
    """The active keys at a glance, recounted whenever the snapshot changes (one row).

    The overview reads this row instead of summing every key, so its cost does not grow
    with the number of keys; ``mirror.key_store.summarize_snapshot`` keeps it.
    """

    key_count = models.PositiveIntegerField(default=0)
    total_allocated = models.DecimalField(max_digits=24, decimal_places=6, default=Decimal(0))
    total_spent = models.DecimalField(max_digits=24, decimal_places=6, default=Decimal(0))
    low_count = models.PositiveIntegerField(default=0)
    # The keys running low, the emptiest (by share used) first, as many as a page lists.
    low_key_ids = models.JSONField(default=list)
    computed_at = models.DateTimeField(default=timezone.now)


class AccountBalance(models.Model):
    """The account's balance as derouter last reported it (one row), for pages that must not wait for it.

    Every read of /balance (the worker's refresh, a page's live figure, a money step) records it
    here; a page shows it with ``read_at`` and fills in the live figure after it has answered.
    """

    balance = models.DecimalField(max_digits=24, decimal_places=6)
    locked = models.DecimalField(max_digits=24, decimal_places=6)
    available = models.DecimalField(max_digits=24, decimal_places=6)
    read_at = models.DateTimeField(default=timezone.now)


class UsageRecord(models.Model):
    """One row of derouter's usage log, attributed to its key (None: the Account Key's own use)."""

    request_id = models.CharField(max_length=128)
    # The unique constraints below lead with the key: they are its index.
    key = models.ForeignKey(
        KeySnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="usage", db_index=False
    )
    created_at = models.DateTimeField()
    model = models.CharField(max_length=128)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    duration_ms = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, help_text=_("Real cost in USD."))
    multiplier = models.DecimalField(max_digits=12, decimal_places=4, help_text=_("Display multiplier when mirrored."))
    billed = models.DecimalField(max_digits=20, decimal_places=8, help_text=_("What the client was shown."))
    mirrored_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # A request id is unique: derouter logs each request once, under one key (or the
        # account) and at one time, so it is held once when (key, time, request id) is. The
        # constraint leads with the key and its time because new rows are the newest: they are
        # added at the end of the index, a few pages per sync. Led by the request id alone,
        # an index of random ids takes every new row on a page of its own (a sync of 1,000
        # rows into 100,000 rewrote some 650 of its pages, and SQLite checkpointed them).
        constraints = [
            models.UniqueConstraint(fields=["key", "created_at", "request_id"], name="usage_unique_key_request"),
            # NULL keys (the account's own use) are distinct in a plain unique constraint.
            models.UniqueConstraint(
                fields=["created_at", "request_id"], condition=Q(key__isnull=True), name="usage_unique_account_request"
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="usage_newest"),
            models.Index(fields=["model", "-created_at"], name="usage_by_model"),
        ]


class DailyRollup(models.Model):
    """Totals per key x model x UTC day, kept in the same transaction as the rows they sum."""

    day = models.DateField()
    key = models.ForeignKey(KeySnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="rollups")
    model = models.CharField(max_length=128)
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal(0))
    billed = models.DecimalField(max_digits=24, decimal_places=8, default=Decimal(0))

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "key", "model"], name="rollup_unique_key_day_model"),
            # NULL keys (the account's own use) are distinct in a plain unique constraint.
            models.UniqueConstraint(
                fields=["day", "model"], condition=Q(key__isnull=True), name="rollup_unique_account_day_model"
            ),
        ]
        indexes = [
            models.Index(fields=["day"], name="rollup_day"),
            models.Index(fields=["key", "day"], name="rollup_key_day"),
        ]


class SyncState(models.Model):
    """Where the usage sync of one scope (a key's id, or "account") stands; also its checkpoint."""

    scope = models.CharField(max_length=64, unique=True, help_text=_('A sub_key_id, or "account".'))
    key = models.OneToOneField(KeySnapshot, null=True, blank=True, on_delete=models.CASCADE, related_name="sync")
    # The newest request already held: an incremental sync stops when it reaches it.
    newest_request_id = models.CharField(max_length=128, blank=True)
    newest_created_at = models.DateTimeField(null=True, blank=True)
    # How many rows derouter reported for the scope in the same answer whose newest row was
    # newest_request_id: a catch-up knows how many new rows to expect and stops on the last.
    newest_total = models.PositiveIntegerField(null=True, blank=True)
    # A first (or --full) sync walks back page by page; it resumes from here after a restart.
    backfill_page = models.PositiveIntegerField(default=0, help_text=_("0 when no backfill is under way."))
    backfill_pages = models.PositiveIntegerField(default=0)
    backfill_total = models.PositiveIntegerField(default=0)
    backfill_complete = models.BooleanField(default=False)
    # derouter lists rows of the same second newest-arrived first, and says nothing else of that
    # order. It holds for our ids when the first sync began with no rows of the scope and every
    # catch-up since has kept it (mirror.sync); a scope mirrored before, or a catch-up that met
    # rows held already above its boundary, cannot vouch for it: an export then pages derouter.
    ids_in_upstream_order = models.BooleanField(default=False)
    rows_mirrored = models.BigIntegerField(default=0)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    malformed_rows = models.PositiveIntegerField(default=0)
    # The key's spend in the snapshot when its last sync began: a key whose spend has not
    # moved since has no new rows, so the periodic sync skips it without asking derouter.
    synced_spent = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)

    def __str__(self):
        return self.scope


class SyncPass(models.Model):
    """One usage pass of the worker (mirror.passes): how long it took and how long its new rows had waited.

    ``lag_seconds`` is the longest any row the pass mirrored had waited, from the request
    derouter logged to the row being visible here (committed); empty when no row was new.
    """

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    scopes = models.PositiveIntegerField(default=0)
    synced = models.PositiveIntegerField(default=0)
    busy = models.PositiveIntegerField(default=0, help_text=_("Scopes left to another process syncing them."))
    failed = models.PositiveIntegerField(default=0)
    inserted = models.PositiveIntegerField(default=0)
    lag_seconds = models.FloatField(null=True, blank=True)
    rate_limited = models.PositiveIntegerField(default=0, help_text=_("Answers of 429 during the pass."))

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"pass {self.started_at:%Y-%m-%d %H:%M:%S}"

    @property
    def seconds(self):
        return (self.finished_at - self.started_at).total_seconds()
