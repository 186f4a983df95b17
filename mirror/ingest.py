"""Writing derouter's answers into the mirror: key snapshots, usage rows and their rollups.

These are the only functions that write mirror tables. The usage rows and the rollups
that sum them change in one transaction, so a summary read from the rollups always
agrees with the rows; the rollups add only the rows an insert really added, so a row
offered twice (two consumers racing, or a page seen again) is never counted twice.
"""

import hashlib
from collections import defaultdict
from datetime import UTC
from decimal import Decimal
from operator import itemgetter

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Count, DecimalField, ExpressionWrapper, F, Sum, Value, When
from django.utils import timezone

from lib import encryption
from mirror.models import AccountBalance, DailyRollup, KeySnapshot, SnapshotSummary, UsageRecord, billed_amount

# How many keys running low the summary names (what the overview lists).
LOW_KEYS_LISTED = 10
# lib.encryption's purpose for the Client Keys the snapshot keeps.
SECRET_PURPOSE = "mirror-client-key"


def secret_digest(secret_text):
    """SHA-256 of a full Client Key: lets a pasted key be matched without storing it."""
    return hashlib.sha256(secret_text.encode()).hexdigest()


def encrypt_secret(secret_text):
    """A full Client Key as the snapshot keeps it (empty for none)."""
    return encryption.encrypt(secret_text, SECRET_PURPOSE) if secret_text else ""


def decrypt_secret(snapshot):
    """The key's full secret from the snapshot, or None when it holds none (or one under an old SECRET_KEY)."""
    return encryption.decrypt(snapshot.secret_encrypted, SECRET_PURPOSE) if snapshot.secret_encrypted else None


def _snapshot_fields(sub_key, seen_at):
    return {
        "label": sub_key.label,
        "key_id_short": sub_key.key_id,
        "secret_sha256": secret_digest(sub_key.secret.reveal()) if sub_key.secret.reveal() else "",
        "budget": sub_key.budget,
        "spent": sub_key.spent,
        "remaining": sub_key.remaining,
        "rpm_limit": sub_key.rpm_limit,
        "concurrent_limit": sub_key.concurrent_limit,
        "display_multiplier": sub_key.display_multiplier,
        "refreshed_at": seen_at,
        "deleted_at": None,
    }


def get_low_keys():
    """Active keys under the low-budget threshold, the emptiest (by share used) first."""
    used_share = Case(
        When(budget__lte=0, then=Value(1)),
        default=ExpressionWrapper(F("spent") / F("budget"), output_field=DecimalField()),
        output_field=DecimalField(),
    )
    low = KeySnapshot.objects.active().filter(remaining__lt=F("budget") * settings.LOW_BUDGET_THRESHOLD)
    return low.annotate(used_share=used_share).order_by("-used_share", "remaining", "sub_key_id")


def summarize_snapshot():
    """Recount the active keys into the summary row; every write to the snapshot ends with this.

    One pass over the keys per change (a refresh, or a write we made), so that every page
    view reads a single row instead.
    """
    totals = KeySnapshot.objects.active().aggregate(
        key_count=Count("id"), total_allocated=Sum("budget", default=0), total_spent=Sum("spent", default=0)
    )
    low = get_low_keys()
    SnapshotSummary.objects.update_or_create(
        pk=1,
        defaults={
            **totals,
            "low_count": low.count(),
            "low_key_ids": list(low.values_list("pk", flat=True)[:LOW_KEYS_LISTED]),
            "computed_at": timezone.now(),
        },
    )


def get_summary():
    """The summary row, counted now if the snapshot was never summarized."""
    summary = SnapshotSummary.objects.filter(pk=1).first()
    if summary is None:
        summarize_snapshot()
        summary = SnapshotSummary.objects.get(pk=1)
    return summary


def _summary_figures(sub_key_id):
    """(budget, spent, remaining) of an active key of the snapshot, or None."""
    return KeySnapshot.objects.active().filter(sub_key_id=sub_key_id).values_list("budget", "spent", "remaining").first()


def _is_low(figures):
    budget, _, remaining = figures
    return remaining < budget * settings.LOW_BUDGET_THRESHOLD


def _update_summary(before, after):
    """Bring the summary row up to date after one active key changed from ``before`` to ``after`` (figures or None).

    A write moves one key: its difference is added to the totals in one statement, so a money
    step costs the same at any number of keys. A key that is, or was, running low changes the
    list of low keys: that (rarer) case, and a summary never counted, are recounted in full.
    """
    if before is None or after is None or _is_low(before) or _is_low(after):
        summarize_snapshot()
        return
    changed = SnapshotSummary.objects.filter(pk=1).update(
        total_allocated=F("total_allocated") + (after[0] - before[0]),
        total_spent=F("total_spent") + (after[1] - before[1]),
        computed_at=timezone.now(),
    )
    if not changed:
        summarize_snapshot()


def upsert_key(sub_key, seen_at=None):
    """Record one key as derouter just reported it (a derouter.client.SubKey); return its snapshot.

    A write's answer may leave out createdAt: a known creation time is then kept, and a
    key first seen that way is dated now (the next refresh brings derouter's own time).
    """
    seen_at = seen_at or timezone.now()
    fields = _snapshot_fields(sub_key, seen_at)
    if sub_key.secret.reveal():
        fields["secret_encrypted"] = encrypt_secret(sub_key.secret.reveal())
    else:
        # An answer that leaves the secret out keeps the one held.
        del fields["secret_sha256"]
    if sub_key.created_at is not None:
        fields["created_at"] = sub_key.created_at
    with transaction.atomic():
        before = _summary_figures(sub_key.id)
        snapshot, _ = KeySnapshot.objects.update_or_create(
            sub_key_id=sub_key.id, defaults=fields, create_defaults={**fields, "created_at": sub_key.created_at or seen_at}
        )
        _update_summary(before, (snapshot.budget, snapshot.spent, snapshot.remaining))
    return snapshot


def insert_created_key(created):
    """Record a key we just created (a derouter.client.CreatedSubKey): nothing spent yet."""
    now = timezone.now()
    with transaction.atomic():
        snapshot, _ = KeySnapshot.objects.update_or_create(
            sub_key_id=created.id,
            defaults={
                "label": created.label,
                "key_id_short": created.key_id,
                "secret_sha256": secret_digest(created.secret.reveal()) if created.secret.reveal() else "",
                "secret_encrypted": encrypt_secret(created.secret.reveal()),
                "budget": created.budget,
                "spent": Decimal(0),
                "remaining": created.budget,
                "rpm_limit": created.rpm_limit,
                "concurrent_limit": created.concurrent_limit,
                "created_at": now,
                "refreshed_at": now,
                "deleted_at": None,
            },
        )
        summarize_snapshot()
    return snapshot


def record_balance(balance, read_at=None):
    """Keep the account's balance as derouter just reported it (a derouter.client.Balance)."""
    AccountBalance.objects.update_or_create(
        pk=1,
        defaults={"balance": balance.balance, "locked": balance.locked, "available": balance.available,
                  "read_at": read_at or timezone.now()},
    )


def mark_deleted(sub_key_id, deleted_at=None):
    """Keep a deleted key's row (its history and statements survive), marked deleted."""
    with transaction.atomic():
        KeySnapshot.objects.filter(sub_key_id=sub_key_id, deleted_at__isnull=True).update(
            deleted_at=deleted_at or timezone.now()
        )
        summarize_snapshot()


USAGE_COLUMNS = (
    "request_id", "key_id", "created_at", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "duration_ms", "cost", "multiplier", "billed", "mirrored_at",
)
# Where each value sits in a prepared row: the parameters of USAGE_COLUMNS, then the row's UTC
# day and its time (an aware datetime, whatever the backend takes).
_ROW = {name: index for index, name in enumerate(USAGE_COLUMNS)}
_DAY = len(USAGE_COLUMNS)
_MOMENT = _DAY + 1
_PARAMETERS = itemgetter(*range(len(USAGE_COLUMNS)))
_VALUES = "(" + ", ".join(["%s"] * len(USAGE_COLUMNS)) + ")"
# PostgreSQL's types of USAGE_COLUMNS: the rows go to the server as one array per column.
_POSTGRESQL_TYPES = (
    "varchar", "bigint", "timestamptz", "varchar", "bigint", "bigint", "bigint", "bigint", "bigint", "numeric",
    "numeric", "numeric", "timestamptz",
)
_UNNEST = "unnest(" + ", ".join(f"%s::{name}[]" for name in _POSTGRESQL_TYPES) + ")"


class _SomeHeld(Exception):
    """Rows of the batch were held already: the insert is rolled back and made again without them."""


def store_usage_rows(key, logs, multiplier):
    """Insert usage rows (derouter.client.UsageLog) for a key (None: the account) with their rollups.

    Rows already held are skipped. Returns the number of rows inserted.
    """
    return store_prepared_rows(key, usage_row_maker(key, multiplier)(logs))


def usage_row_maker(key, multiplier):
    """What turns usage logs into rows ready to insert for a key (None: the account) under a multiplier.

    The function it returns reads no database (the backend's way of passing a datetime is
    chosen now, in the caller's thread), so it could run in any thread. A row is a plain
    tuple: no model instances.
    """
    adapt_datetime = _datetime_adapter()
    key_pk = key.pk if key is not None else None

    def make_rows(logs):
        mirrored_at = adapt_datetime(timezone.now())
        rows = []
        for log in logs:
            created_at = log.created_at.astimezone(UTC)
            rows.append((
                log.request_id, key_pk, adapt_datetime(created_at), log.model, log.input_tokens, log.output_tokens,
                log.cache_read_tokens, log.cache_write_tokens, log.duration_ms, log.cost, multiplier,
                billed_amount(log.cost, multiplier), mirrored_at, created_at.date(), created_at,
            ))
        return rows

    return make_rows


def store_prepared_rows(key, rows):
    """Insert rows made by usage_row_maker for the same key, with their rollups; returns how many were new.

    Rows already held are skipped, and one upsert adds exactly the rows inserted to the
    rollups, in the same transaction: a row held already, or slipped in by another writer
    meanwhile, is never counted twice. Usually every row is new: one statement inserts them
    all and its count of rows changed says so. When it counts fewer, it is rolled back and
    the rows held are looked up and left out.
    """
    # A page can shift while it is walked: the same row may come twice in one batch.
    rows = list({row[0]: row for row in rows}.values())
    if not rows:
        return 0
    with transaction.atomic():
        try:
            with transaction.atomic():
                _insert_rows(rows, skip_held=True)
        except _SomeHeld:
            held = set(held_rows(key, rows).values_list("request_id", flat=True))
            rows = [row for row in rows if row[0] not in held]
            if rows:
                _insert_rows(rows, skip_held=False)
        if rows:
            _add_to_rollups(key, rows)
        return len(rows)


def move_rows_behind(key, created_at, ahead_request_ids):
    """Give a scope's rows of the second ``created_at``, but those of ``ahead_request_ids``, ids after theirs.

    derouter lists the rows of one second newest-arrived first. A catch-up that inserts rows
    of the second its boundary row is in puts them ahead of the rows of that second held
    already; the held rows are deleted and inserted again, in their order, so ids keep
    derouter's order. Same rows, so the rollups stay; run in the catch-up's transaction.
    """
    behind = [
        row for row in UsageRecord.objects.filter(key=key, created_at=created_at).order_by("id")
        if row.request_id not in ahead_request_ids
    ]
    if not behind:
        return
    UsageRecord.objects.filter(pk__in=[row.pk for row in behind]).delete()
    for row in behind:
        row.pk = None
    UsageRecord.objects.bulk_create(behind)


def _datetime_adapter():
    """What turns an aware UTC datetime into the backend's parameter, for many rows.

    Django's SQLite adapter checks every value for an expression and a time zone before it
    writes the naive UTC time as text; these are all aware and in UTC already, so on SQLite
    the text is written straight away (the same text). Other backends take the datetime.
    """
    if connection.vendor == "sqlite" and connection.timezone_name == "UTC":
        return _naive_utc_text
    return connection.ops.adapt_datetimefield_value


def _naive_utc_text(moment):
    return str(moment.replace(tzinfo=None))


def _insert_rows(rows, skip_held):
    """Insert the rows with one statement.

    On SQLite, one statement run row after row (compiled once, whatever the batch's size).
    On PostgreSQL, one statement over an array of values per column (unnest): run row after
    row, each row was a statement of its own for the server to parse, plan and run (Django
    binds parameters in the client), about 55 µs of its CPU a row against 25 µs.

    With ``skip_held``, rows held already are skipped, and _SomeHeld is raised when any was.
    Without, a row held (slipped in by a writer without the scope's lease) fails the insert
    with IntegrityError and the transaction rolls back whole.
    """
    table = connection.ops.quote_name(UsageRecord._meta.db_table)
    # Either unique constraint: a keyed row's, or an account row's.
    conflict = " ON CONFLICT DO NOTHING" if skip_held else ""
    insert = f"INSERT INTO {table} ({', '.join(USAGE_COLUMNS)})"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = [list(column) for column in zip(*map(_PARAMETERS, rows), strict=True)]
            cursor.execute(f"{insert} SELECT * FROM {_UNNEST}{conflict}", columns)
        else:
            cursor.executemany(f"{insert} VALUES {_VALUES}{conflict}", list(map(_PARAMETERS, rows)))
        # Both count the rows changed: over every run of the statement, or by the one statement.
        if skip_held and cursor.rowcount != len(rows):
            raise _SomeHeld


def held_rows(key, rows):
    """The rows held already among prepared ``rows`` of a key (None: the account).

    Looked up by key and time, then request id: the order of the unique constraints, so a
    few index entries are read instead of every row (there is no index of request ids alone).
    """
    moments = [row[_MOMENT] for row in rows]
    return UsageRecord.objects.filter(
        key=key, created_at__range=(min(moments), max(moments)), request_id__in=[row[0] for row in rows]
    )


ROLLUP_SUMS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost", "billed")


def _add_to_rollups(key, rows):
    """Add a batch's totals per UTC day and model to the rollups in one upsert statement."""
    groups = defaultdict(list)
    model = _ROW["model"]
    for row in rows:
        groups[(row[_DAY], row[model])].append(row)
    adapt_date = connection.ops.adapt_datefield_value
    key_pk = key.pk if key is not None else None
    params = []
    for (day, model_name), group in groups.items():
        columns = list(zip(*group, strict=True))
        params.extend((adapt_date(day), key_pk, model_name, len(group)))
        params.extend(sum(columns[_ROW[name]]) for name in ROLLUP_SUMS[1:])
    table = connection.ops.quote_name(DailyRollup._meta.db_table)
    columns = ("day", "key_id", "model", *ROLLUP_SUMS)
    # The account's rows (no key) are kept unique by a partial index of their own.
    target = "(day, key_id, model)" if key is not None else "(day, model) WHERE key_id IS NULL"
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(columns)) + ")"] * len(groups))
    additions = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {placeholders}"
            f" ON CONFLICT {target} DO UPDATE SET {additions}",
            params,
        )
