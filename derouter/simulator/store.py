"""SQLite state of the simulated upstream: account, Client Keys and usage logs.

Money is stored as INTEGER micro-dollars so every sum is exact. Every write that
moves money runs in one `BEGIN IMMEDIATE` transaction, which takes SQLite's write
lock up front: concurrent requests queue on it instead of losing updates.

Usage is also kept as running totals (per scope, and per key and UTC day), updated in
the transaction that inserts the rows, so a key's balance and a page's total cost the
same at a hundred rows or a million: nothing sums or counts the log itself.
"""

import sqlite3
import threading
from collections import OrderedDict, defaultdict
from contextlib import contextmanager
from dataclasses import astuple, dataclass, replace
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal

MICRO = 1_000_000
MULTIPLIER_SCALE = 10_000  # displayMultiplier is stored in units of 0.0001
KEY_ID_LENGTH = 12

SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    balance INTEGER NOT NULL,
    locked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS sub_keys (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    secret TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    budget INTEGER NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0,
    rpm_limit INTEGER NOT NULL,
    concurrent_limit INTEGER NOT NULL,
    multiplier INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    deleted_at TEXT
);
CREATE TABLE IF NOT EXISTS usage_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id TEXT NOT NULL,
    sub_key_id TEXT,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_logs_newest ON usage_logs (created_at, id);
CREATE INDEX IF NOT EXISTS usage_logs_by_key ON usage_logs (sub_key_id, created_at, id);
"""

# Running totals of the usage log, kept in step with it by insert_usage_rows. A scope is a
# Client Key's id, ACCOUNT_SCOPE (rows of the Account Key) or ALL_SCOPE (every row); the
# ":" keeps them apart from key ids. usage_daily holds the same per Client Key and UTC day
# (the "YYYY-MM-DD" that starts created_at), which is what the usage windows are made of.
TOTALS_SCHEMA = """
CREATE TABLE usage_totals (
    scope TEXT PRIMARY KEY,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost INTEGER NOT NULL
);
CREATE TABLE usage_daily (
    sub_key_id TEXT NOT NULL,
    day TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost INTEGER NOT NULL,
    PRIMARY KEY (sub_key_id, day)
) WITHOUT ROWID;
"""
ACCOUNT_SCOPE = ":account"
ALL_SCOPE = ":all"
TOTALS_BACKFILL = f"""
INSERT INTO usage_totals
    SELECT COALESCE(sub_key_id, '{ACCOUNT_SCOPE}'), COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost)
    FROM usage_logs GROUP BY sub_key_id;
INSERT INTO usage_totals
    SELECT * FROM (SELECT '{ALL_SCOPE}', COUNT(*) AS requests, SUM(input_tokens), SUM(output_tokens), SUM(cost)
                   FROM usage_logs) WHERE requests > 0;
INSERT INTO usage_daily
    SELECT sub_key_id, substr(created_at, 1, 10), COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cost)
    FROM usage_logs WHERE sub_key_id IS NOT NULL GROUP BY sub_key_id, substr(created_at, 1, 10);
"""
ADD_TO_TOTALS = """
INSERT INTO usage_totals (scope, requests, input_tokens, output_tokens, cost) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (scope) DO UPDATE SET requests = requests + excluded.requests,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens, cost = cost + excluded.cost
"""
ADD_TO_DAILY = """
INSERT INTO usage_daily (sub_key_id, day, requests, input_tokens, output_tokens, cost) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (sub_key_id, day) DO UPDATE SET requests = requests + excluded.requests,
    input_tokens = input_tokens + excluded.input_tokens,
    output_tokens = output_tokens + excluded.output_tokens, cost = cost + excluded.cost
"""
# How many page boundaries of the usage log are remembered for keyset paging.
PAGE_CURSORS_KEPT = 4096

SUB_KEY_COLUMNS = (
    "id, secret, label, budget, spent, rpm_limit, concurrent_limit, multiplier, created_at, deleted_at"
)
LOG_COLUMNS = (
    "request_id, sub_key_id, model, input_tokens, output_tokens, cache_read_tokens,"
    " cache_write_tokens, cost, duration_ms, created_at"
)


class NotFound(Exception):
    """The Client Key does not exist or was deleted."""


# /balance shows four decimals: 0.0001 USD is 100 micro-dollars.
SHOWN_UNIT_MICRO = 100


class InsufficientBalance(Exception):
    """The account's available balance cannot cover the requested amount."""


class BudgetTooSmall(Exception):
    """A Client Key's remaining budget cannot give back the requested amount."""


def micro_to_decimal(micro):
    """Return an integer micro-dollar amount as an exact Decimal of dollars."""
    return Decimal(micro).scaleb(-6)


def decimal_to_micro(amount):
    """Return a Decimal dollar amount (at most 6 decimals) as integer micro-dollars."""
    return int(amount.scaleb(6))


def display_money(micro, multiplier):
    """Return real micro-dollars times a stored multiplier, as dollars rounded to 6 decimals."""
    shown = Decimal(micro * multiplier).scaleb(-10)
    return shown.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def key_id_of(secret):
    """Return the shortened, displayable form of a key's secret."""
    return secret[:KEY_ID_LENGTH] + "..."


def iso_utc(moment):
    """Format an aware datetime as ISO 8601 UTC with a Z, to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso():
    """Return the current time in the stored ISO 8601 UTC format."""
    return iso_utc(datetime.now(timezone.utc))


@dataclass(frozen=True)
class SubKey:
    """One Client Key as stored (money in micro-dollars, multiplier in 0.0001 units)."""

    id: str
    secret: str
    label: str
    budget: int
    spent: int
    rpm_limit: int
    concurrent_limit: int
    multiplier: int
    created_at: str
    deleted_at: str | None

    @property
    def remaining(self):
        return self.budget - self.spent

    @property
    def key_id(self):
        return key_id_of(self.secret)


@dataclass(frozen=True)
class UsageRow:
    """One usage-log row as stored; cost is the real charge in micro-dollars."""

    request_id: str
    sub_key_id: str | None
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: int
    duration_ms: int
    created_at: str


class Store:
    """All persistent state, in one SQLite file opened afresh by each caller."""

    def __init__(self, path):
        self.path = str(path)
        self._page_cursors = PageCursors(PAGE_CURSORS_KEPT)
        with self._connection() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)
        self._create_running_totals()

    def _create_running_totals(self):
        """Create the running totals, filled from the log when a state file from before them is opened."""
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'usage_totals'").fetchone():
                return
            for statement in (TOTALS_SCHEMA + TOTALS_BACKFILL).split(";"):
                if statement.strip():
                    conn.execute(statement)

    @contextmanager
    def _connection(self):
        # A connection per call: sqlite3 connections must not be shared across the
        # server's request threads, and opening one is cheap.
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA synchronous = NORMAL")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self):
        """Yield a connection inside BEGIN IMMEDIATE; commit on success, roll back on error."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def snapshot(self):
        """Yield a connection whose reads all see the same state (one read transaction)."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def initialize(self, balance_micro, seed=None):
        """Create the account unless it exists, then run seed(conn); return True if new.

        Seeding shares the creating transaction, so a failed seed leaves the state new.
        """
        with self.transaction() as conn:
            if conn.execute("SELECT 1 FROM account").fetchone():
                return False
            conn.execute("INSERT INTO account (id, balance, locked) VALUES (1, ?, 0)", (balance_micro,))
            if seed is not None:
                seed(conn)
            return True

    def account(self):
        """Return (balance, locked) in micro-dollars."""
        with self._connection() as conn:
            return conn.execute("SELECT balance, locked FROM account").fetchone()

    def list_keys(self):
        """Return every active Client Key, oldest first."""
        with self._connection() as conn:
            rows = conn.execute(
                f"SELECT {SUB_KEY_COLUMNS} FROM sub_keys WHERE deleted_at IS NULL ORDER BY seq"
            ).fetchall()
        return [SubKey(*row) for row in rows]

    def active_key(self, key_id):
        """Return the active Client Key with this id, or raise NotFound."""
        with self._connection() as conn:
            return _active_key(conn, key_id)

    def key_by_secret(self, secret):
        """Return the active Client Key with this secret, or None."""
        with self._connection() as conn:
            row = conn.execute(
                f"SELECT {SUB_KEY_COLUMNS} FROM sub_keys WHERE secret = ? AND deleted_at IS NULL",
                (secret,),
            ).fetchone()
        return SubKey(*row) if row else None

    def create_key(self, key_id, secret, label, budget, rpm_limit, concurrent_limit, multiplier):
        """Create a Client Key, locking its budget out of the available balance."""
        with self.transaction() as conn:
            lock_funds(conn, budget)
            conn.execute(
                "INSERT INTO sub_keys (id, secret, label, budget, rpm_limit, concurrent_limit,"
                " multiplier, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key_id, secret, label, budget, rpm_limit, concurrent_limit, multiplier, now_iso()),
            )
            return _active_key(conn, key_id)

    def update_key(self, key_id, label=None, rpm_limit=None, add_budget=None, multiplier=None, reduce_budget=None):
        """Apply the given changes to an active Client Key and return it updated.

        reduce_budget (reclaim) takes part of the unspent budget back to the available balance.
        """
        with self.transaction() as conn:
            key = _active_key(conn, key_id)
            if add_budget is not None:
                lock_funds(conn, add_budget)
                conn.execute("UPDATE sub_keys SET budget = budget + ? WHERE id = ?", (add_budget, key_id))
            if reduce_budget is not None:
                if reduce_budget > key.remaining + (add_budget or 0):
                    raise BudgetTooSmall(reduce_budget)
                conn.execute("UPDATE sub_keys SET budget = budget - ? WHERE id = ?", (reduce_budget, key_id))
                conn.execute("UPDATE account SET locked = locked - ?", (reduce_budget,))
            for column, value in (("label", label), ("rpm_limit", rpm_limit), ("multiplier", multiplier)):
                if value is not None:
                    conn.execute(f"UPDATE sub_keys SET {column} = ? WHERE id = ?", (value, key_id))
            return _active_key(conn, key_id)

    def delete_key(self, key_id):
        """Delete a Client Key, unlock its remaining budget and return that amount."""
        with self.transaction() as conn:
            key = _active_key(conn, key_id)
            conn.execute("UPDATE sub_keys SET deleted_at = ? WHERE id = ?", (now_iso(), key_id))
            conn.execute("UPDATE account SET locked = locked - ?", (key.remaining,))
            return key.remaining

    def record_usage(self, row):
        """Charge a request and log it; return the row as logged.

        A Client Key is charged at most its remaining budget, so it never spends more
        than it was given; the Account Key is charged the full cost.
        """
        with self.transaction() as conn:
            charge = row.cost
            if row.sub_key_id is not None:
                key = SubKey(*conn.execute(
                    f"SELECT {SUB_KEY_COLUMNS} FROM sub_keys WHERE id = ?", (row.sub_key_id,)
                ).fetchone())
                charge = max(0, min(row.cost, key.remaining))
                conn.execute("UPDATE sub_keys SET spent = spent + ? WHERE id = ?", (charge, key.id))
                # A key deleted while this request ran already released its remainder.
                if key.deleted_at is None:
                    conn.execute("UPDATE account SET locked = locked - ?", (charge,))
            conn.execute("UPDATE account SET balance = balance - ?", (charge,))
            logged = replace(row, cost=charge)
            insert_usage_rows(conn, [logged])
            return logged

    def usage_page(self, page, limit, sub_key_id=None, account_only=False):
        """Return (rows, total) for one page of logs, newest first.

        Pages are numbered as with OFFSET, but a page that starts where a page served
        before ended is read from that row on (keyset), so page 1,000 costs what page 1
        does. The remembered boundary is used only while the log of that scope has not
        grown since, so the rows are exactly those OFFSET would give.
        """
        if sub_key_id is not None:
            where, params, scope = "WHERE sub_key_id = ?", (sub_key_id,), sub_key_id
        elif account_only:
            where, params, scope = "WHERE sub_key_id IS NULL", (), ACCOUNT_SCOPE
        else:
            where, params, scope = "", (), ALL_SCOPE
        offset = (page - 1) * limit
        with self.snapshot() as conn:
            total = _scope_row_count(conn, scope)
            if offset >= total:  # past the end; also keeps a huge page number away from SQLite's 64-bit ints
                return [], total
            cursor = self._page_cursors.get((scope, total, offset)) if offset else None
            if cursor is not None:
                seek = "AND" if where else "WHERE"
                rows = conn.execute(
                    f"SELECT {LOG_COLUMNS}, id FROM usage_logs {where} {seek} (created_at, id) < (?, ?)"
                    " ORDER BY created_at DESC, id DESC LIMIT ?",
                    (*params, *cursor, limit),
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {LOG_COLUMNS}, id FROM usage_logs {where}"
                    " ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
                    (*params, limit, offset),
                ).fetchall()
        if rows:
            last = rows[-1]
            self._page_cursors.put((scope, total, offset + len(rows)), (last[-2], last[-1]))
        return [UsageRow(*row[:-1]) for row in rows], total

    def usage_totals(self, sub_key_id, since):
        """Return {window: (requests, input, output, cost)} for a key; since maps window -> ISO start or None.

        A window starts at a UTC midnight, so it is a run of whole days of usage_daily.
        """
        columns = []
        params = []
        for start in since.values():
            if start is not None and not start.endswith("T00:00:00Z"):
                raise ValueError(f"a usage window starts at a UTC midnight, not {start}")
            condition = "day >= ?" if start else "1"
            params.extend([start[:10]] * 4 if start else [])
            columns.extend(
                f"COALESCE(SUM(CASE WHEN {condition} THEN {value} ELSE 0 END), 0)"
                for value in ("requests", "input_tokens", "output_tokens", "cost")
            )
        earliest = min((start[:10] for start in since.values() if start), default="")
        with self.snapshot() as conn:
            windows = conn.execute(
                f"SELECT {', '.join(columns)} FROM usage_daily WHERE sub_key_id = ? AND day >= ?",
                (*params, sub_key_id, earliest),
            ).fetchone()
            total = conn.execute(
                "SELECT requests, input_tokens, output_tokens, cost FROM usage_totals WHERE scope = ?",
                (sub_key_id,),
            ).fetchone() or (0, 0, 0, 0)
        values = {}
        for i, (window, start) in enumerate(since.items()):
            values[window] = tuple(windows[i * 4:i * 4 + 4]) if start else tuple(total)
        return values


class PageCursors:
    """A bounded, thread-safe map from (scope, log size, offset) to the (created_at, id) just before that offset."""

    def __init__(self, capacity):
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries = OrderedDict()

    def get(self, boundary):
        with self._lock:
            cursor = self._entries.get(boundary)
            if cursor is not None:
                self._entries.move_to_end(boundary)
            return cursor

    def put(self, boundary, cursor):
        with self._lock:
            self._entries[boundary] = cursor
            self._entries.move_to_end(boundary)
            if len(self._entries) > self._capacity:
                self._entries.popitem(last=False)


def _scope_row_count(conn, scope):
    row = conn.execute("SELECT requests FROM usage_totals WHERE scope = ?", (scope,)).fetchone()
    return row[0] if row else 0


def _active_key(conn, key_id):
    row = conn.execute(
        f"SELECT {SUB_KEY_COLUMNS} FROM sub_keys WHERE id = ? AND deleted_at IS NULL", (key_id,)
    ).fetchone()
    if row is None:
        raise NotFound(key_id)
    return SubKey(*row)


def round_to_shown(micro):
    """Round micro-dollars half-up to the four decimals that /balance shows."""
    return (micro + SHOWN_UNIT_MICRO // 2) // SHOWN_UNIT_MICRO * SHOWN_UNIT_MICRO


def shown_available(balance, locked):
    """The available balance exactly as /balance shows it: rounded balance minus rounded locked."""
    return round_to_shown(balance) - round_to_shown(locked)


def lock_funds(conn, amount):
    """Move an amount from available to locked, or raise InsufficientBalance.

    The limit is the available balance as /balance shows it, so what a client
    was shown is exactly what it can allocate: a millionth more is refused.
    """
    balance, locked = conn.execute("SELECT balance, locked FROM account").fetchone()
    if amount > shown_available(balance, locked):
        raise InsufficientBalance(amount)
    conn.execute("UPDATE account SET locked = locked + ?", (amount,))


def insert_usage_rows(conn, rows):
    """Insert usage rows as they are, and add them to the running totals, without moving money.

    Callers do the accounting of balance and spend.
    """
    conn.executemany(
        f"INSERT INTO usage_logs ({LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [astuple(row) for row in rows],
    )
    # Summed here first, so a seed of a million rows makes a few hundred upserts, not millions.
    totals = defaultdict(lambda: [0, 0, 0, 0])
    daily = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        sums = [totals[ALL_SCOPE], totals[row.sub_key_id if row.sub_key_id is not None else ACCOUNT_SCOPE]]
        if row.sub_key_id is not None:
            sums.append(daily[(row.sub_key_id, row.created_at[:10])])
        for total in sums:
            total[0] += 1
            total[1] += row.input_tokens
            total[2] += row.output_tokens
            total[3] += row.cost
    conn.executemany(ADD_TO_TOTALS, [(scope, *sums) for scope, sums in totals.items()])
    conn.executemany(ADD_TO_DAILY, [(*key_and_day, *sums) for key_and_day, sums in daily.items()])
