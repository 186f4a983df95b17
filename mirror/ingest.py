"""Writing derouter's usage into the mirror: usage rows, their rollups and each scope's checkpoint.

The one writer of usage (UsageWriter): the rows, the rollups that sum them and the
scope's checkpoint change in one transaction, so a summary read from the rollups always
agrees with the rows and a checkpoint never passes a row not stored; the rollups add only
the rows an insert really added (RETURNING), so a row offered twice (two consumers racing,
or a page seen again) is never counted twice. The key snapshot is written by mirror.key_store.
"""

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NamedTuple

from django.db import connection, transaction
from django.utils import timezone

from lib.sql import placeholders
from mirror.models import DailyRollup, SyncState, UsageRecord, billed_amount

USAGE_COLUMNS = (
    "request_id", "key_id", "created_at", "model", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "duration_ms", "cost", "multiplier", "billed", "mirrored_at",
)
# PostgreSQL's types of USAGE_COLUMNS: the rows go to the server as one array per column.
_POSTGRESQL_TYPES = (
    "varchar", "bigint", "timestamptz", "varchar", "bigint", "bigint", "bigint", "bigint", "bigint", "numeric",
    "numeric", "numeric", "timestamptz",
)
_UNNEST = "unnest(" + ", ".join(f"%s::{name}[]" for name in _POSTGRESQL_TYPES) + ")"
# SQLite binds at most 32,766 parameters a statement: rows per INSERT of a batch.
_SQLITE_ROWS_PER_INSERT = 2000


class UsageRow(NamedTuple):
    """One usage row ready to insert: USAGE_COLUMNS as the backend takes them, then its UTC day and time."""

    request_id: str
    key_id: int | None
    created_at: object  # the backend's parameter for the time (text on SQLite)
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    duration_ms: int
    cost: Decimal
    multiplier: Decimal
    billed: Decimal
    mirrored_at: object
    day: date
    moment: datetime

    @property
    def parameters(self):
        return self[:len(USAGE_COLUMNS)]


def usage_row_maker(key, multiplier):
    """What turns usage logs into UsageRows for a key (None: the account) under a multiplier.

    The function it returns reads no database (the backend's way of passing a datetime is
    chosen now, in the caller's thread), so it could run in any thread.
    """
    adapt_datetime = _datetime_adapter()
    key_pk = key.pk if key is not None else None

    def make_rows(logs):
        mirrored_at = adapt_datetime(timezone.now())
        rows = []
        for log in logs:
            created_at = log.created_at
            if created_at.tzinfo is not UTC:
                created_at = created_at.astimezone(UTC)
            rows.append(UsageRow(
                log.request_id, key_pk, adapt_datetime(created_at), log.model, log.input_tokens, log.output_tokens,
                log.cache_read_tokens, log.cache_write_tokens, log.duration_ms, log.cost, multiplier,
                billed_amount(log.cost, multiplier), mirrored_at, created_at.date(), created_at,
            ))
        return rows

    return make_rows


def insert_usage(key, rows):
    """Insert UsageRows of one key (None: the account) with their rollups; returns the rows that were new.

    One INSERT … ON CONFLICT DO NOTHING RETURNING names the rows it added (a row held
    already, or slipped in by another writer meanwhile, is skipped and not named), and one
    upsert adds exactly those to the rollups, in the same transaction: no row is counted twice.
    """
    # A page can shift while it is walked: the same row may come twice in one batch.
    rows = list({row.request_id: row for row in rows}.values())
    if not rows:
        return []
    # In the writer's transaction no savepoint is needed: a failure there rolls the batch back whole.
    with transaction.atomic(savepoint=False):
        added = _insert_returning(rows)
        if len(added) < len(rows):
            rows = [row for row in rows if row.request_id in added]
        if rows:
            _add_to_rollups(key, rows)
    return rows


def _insert_returning(rows):
    """Insert the rows, skipping those held (either unique constraint); the request ids of those added.

    On PostgreSQL, one statement over an array of values per column (unnest): a statement
    per row was a statement for the server to parse, plan and run each. On SQLite, one
    multi-row VALUES statement per _SQLITE_ROWS_PER_INSERT rows (executemany cannot return rows).
    """
    added = set()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            columns = [list(column) for column in zip(*(row.parameters for row in rows), strict=True)]
            cursor.execute(_insert_statement("unnest"), columns)
            added.update(request_id for (request_id,) in cursor.fetchall())
            return added
        # Straight to sqlite3, in this connection's transaction: Django rewrites every %s of a
        # statement to ?, which over a thousand rows of thirteen values cost more than the insert.
        sqlite = connection.connection
        for start in range(0, len(rows), _SQLITE_ROWS_PER_INSERT):
            chunk = rows[start:start + _SQLITE_ROWS_PER_INSERT]
            answer = sqlite.execute(
                _insert_statement(len(chunk)), [value for row in chunk for value in row.parameters]
            )
            added.update(request_id for (request_id,) in answer.fetchall())
    return added


@functools.cache
def _insert_statement(rows):
    """The INSERT … ON CONFLICT DO NOTHING RETURNING of usage rows: over unnest (PostgreSQL), or of ``rows`` rows."""
    table = connection.ops.quote_name(UsageRecord._meta.db_table)
    insert = f"INSERT INTO {table} ({', '.join(USAGE_COLUMNS)})"
    returning = " ON CONFLICT DO NOTHING RETURNING request_id"
    if rows == "unnest":
        return f"{insert} SELECT * FROM {_UNNEST}{returning}"
    values = "(" + ", ".join(["?"] * len(USAGE_COLUMNS)) + ")"
    return f"{insert} VALUES {', '.join([values] * rows)}{returning}"


@dataclass
class Checkpoint:
    """Where a scope's sync stands: the SyncState fields a batch moves (None: left as they are)."""

    backfill_page: int | None = None
    backfill_pages: int | None = None
    backfill_total: int | None = None
    backfill_complete: bool | None = None
    newest_request_id: str | None = None
    newest_created_at: datetime | None = None
    newest_total: int | None = None
    last_synced_at: datetime | None = None
    last_error: str | None = None
    synced_spent: Decimal | None = None

    def update(self, later):
        for name, value in later.changes().items():
            setattr(self, name, value)

    def changes(self):
        return {name: value for name, value in vars(self).items() if value is not None}


@dataclass
class Written:
    """What a writer has written so far for one sync."""

    pages: int = 0
    fetched: int = 0
    inserted: int = 0
    malformed: int = 0
    # Of the rows a catch-up added (new since the last pass): the longest one waited, request to visible.
    longest_lag_seconds: float | None = None


class UsageWriter:
    """The one writer of a scope's usage: its rows, their rollups and its checkpoint (SyncState), together.

    The sync walks derouter's pages and hands each page's logs here with where it would go
    on from after that page; the writer gathers a few pages and writes their rows, their
    rollups and that checkpoint in one transaction, so the checkpoint never moves past a
    row not stored. A sync cut off (by a restart) redoes at most one batch. A catch-up hands
    over only rows new to its walk: one of them held already was mirrored out of order, so
    the scope's ids can no longer vouch for derouter's order (SyncState.ids_in_upstream_order).
    """

    def __init__(self, state, batch_rows, catching_up=False, written=None):
        self.state = state
        self.key = state.key
        multiplier = self.key.display_multiplier if self.key is not None else Decimal(1)
        self._make_rows = usage_row_maker(self.key, multiplier)
        self.batch_rows = batch_rows
        self.catching_up = catching_up
        self.written = written if written is not None else Written()
        self._reset()

    def _reset(self):
        self._rows, self._malformed, self._pages, self._fetched = [], 0, 0, 0
        self._checkpoint = Checkpoint()

    def add(self, logs, checkpoint, *, fetched, malformed=0):
        """Take one walked page's logs and where to go on from after it; written once enough have gathered."""
        self._gather(logs, checkpoint, fetched, malformed)
        if len(self._rows) >= self.batch_rows:
            self.write()

    def finish(self, logs, checkpoint, *, fetched, malformed=0, behind=None):
        """Take the walk's last page and write what is gathered with its checkpoint.

        ``behind`` (created_at, request ids ahead) asks for the held rows of that second to
        get ids after the new ones (move_rows_behind), in the same transaction.
        """
        self._gather(logs, checkpoint, fetched, malformed)
        self.write(behind)

    def _gather(self, logs, checkpoint, fetched, malformed):
        self._rows.extend(self._make_rows(logs))
        self._malformed += malformed
        self._checkpoint.update(checkpoint)
        self._pages += 1
        self._fetched += fetched

    def write(self, behind=None):
        """Insert the gathered rows, add them to the rollups and move the checkpoint, in one transaction."""
        if not self._pages:
            return
        state, checkpoint = self.state, self._checkpoint
        with transaction.atomic():
            added = insert_usage(self.key, self._rows)
            if self.catching_up and len(added) < len({row.request_id for row in self._rows}):
                state.ids_in_upstream_order = False
                checkpoint_fields = {"ids_in_upstream_order": False}
            else:
                checkpoint_fields = {}
            changes = checkpoint.changes()
            for name, value in changes.items():
                setattr(state, name, value)
            if behind is not None and state.ids_in_upstream_order:
                move_rows_behind(self.key, *behind)
            state.rows_mirrored += len(added)
            state.malformed_rows += self._malformed
            if changes or checkpoint_fields:
                # Only what moved: a full save writes every column and runs the model's signals.
                SyncState.objects.filter(pk=state.pk).update(
                    **changes, **checkpoint_fields, rows_mirrored=state.rows_mirrored,
                    malformed_rows=state.malformed_rows,
                )
            else:
                _count_rows(state)
        if added and self.catching_up:
            # Request made -> row visible (committed just now): the oldest new row waited longest.
            # A first sync's rows are history, not lag.
            lag = (timezone.now() - min(row.moment for row in added)).total_seconds()
            self.written.longest_lag_seconds = max(lag, self.written.longest_lag_seconds or 0)
        self.written.pages += self._pages
        self.written.fetched += self._fetched
        self.written.inserted += len(added)
        self.written.malformed += self._malformed
        self._reset()

    def failed(self, message):
        """derouter failed mid-walk: every page walked so far is kept with its checkpoint, the error recorded."""
        self.write()
        SyncState.objects.filter(pk=self.state.pk).update(last_error=message[:500], last_error_at=timezone.now())


def _count_rows(state):
    """Write the state's row counts alone (a catch-up's batch but its last): one statement, no query built."""
    table = connection.ops.quote_name(SyncState._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET rows_mirrored = %s, malformed_rows = %s WHERE id = %s",
            [state.rows_mirrored, state.malformed_rows, state.pk],
        )


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
    the text is written straight away (the same text: an aware UTC time's ISO form less its
    "+00:00", which is half the cost of dropping the zone and formatting). Other backends
    take the datetime.
    """
    if connection.vendor == "sqlite" and connection.timezone_name == "UTC":
        return _naive_utc_text
    return connection.ops.adapt_datetimefield_value


def _naive_utc_text(moment):
    return moment.isoformat(" ")[:-6]


ROLLUP_SUMS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost", "billed")


def _add_to_rollups(key, rows):
    """Add a batch's totals per UTC day and model to the rollups in one upsert statement."""
    groups = defaultdict(list)
    for row in rows:
        groups[(row.day, row.model)].append(row)
    summed = [UsageRow._fields.index(name) for name in ROLLUP_SUMS[1:]]
    adapt_date = connection.ops.adapt_datefield_value
    key_pk = key.pk if key is not None else None
    params = []
    for (day, model_name), group in groups.items():
        columns = list(zip(*group, strict=True))
        params.extend((adapt_date(day), key_pk, model_name, len(group)))
        params.extend(sum(columns[index]) for index in summed)
    table = connection.ops.quote_name(DailyRollup._meta.db_table)
    columns = ("day", "key_id", "model", *ROLLUP_SUMS)
    # The account's rows (no key) are kept unique by a partial index of their own.
    target = "(day, key_id, model)" if key is not None else "(day, model) WHERE key_id IS NULL"
    rows_marks = ", ".join([f"({placeholders(len(columns))})"] * len(groups))
    additions = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in ROLLUP_SUMS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {rows_marks}"
            f" ON CONFLICT {target} DO UPDATE SET {additions}",
            params,
        )
