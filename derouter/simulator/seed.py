"""Seeding of a new simulator state: demo clients with 30 days of usage, and load-test keys.

Both run inside the transaction that creates the account, on its connection. The demo
draws from a fixed random seed, so it is the same every time (relative to "now").
"""

import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from . import pricing
from .store import MICRO, MULTIPLIER_SCALE, UsageRow, insert_usage_rows, iso_utc, lock_funds, now_iso

DEMO_RANDOM_SEED = 20250601
DEMO_MIN_BALANCE = 2500 * MICRO
DEMO_DAYS = 30
LOAD_KEY_BUDGET = 10_000  # 0.01 USD each, so thousands of keys fit in a small balance
SURL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Relative traffic per UTC hour: quiet nights, a European morning and an American afternoon.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 4, 7, 10, 12, 13, 13, 14, 16, 18, 18, 17, 15, 12, 9, 7, 5, 4, 3)
WEEKEND_WEIGHT = 0.35


@dataclass(frozen=True)
class DemoClient:
    """A demo Client Key and the usage it has had: spend_fraction of its budget over `requests` rows."""

    label: str
    budget: int  # dollars
    multiplier: str
    rpm_limit: int
    concurrent_limit: int
    spend_fraction: str
    models: tuple  # (alias, weight) pairs
    requests: int


DEMO_CLIENTS = (
    DemoClient("Northwind Analytics", 500, "1.5", 60, 10, "0.38",
               (("claude-sonnet-4-6", 6), ("claude-opus-4-1", 2), ("claude-haiku-4-5", 2)), 820),
    DemoClient("Acme Robotics", 250, "2", 45, 8, "0.61", (("claude-opus-4-1", 3), ("claude-sonnet-4-6", 5)), 520),
    DemoClient("Blue Harbor Legal", 150, "2.5", 30, 5, "0.988", (("claude-sonnet-4-6", 1),), 430),
    DemoClient("Pinecrest Health", 100, "4", 20, 4, "0.27", (("claude-haiku-4-5", 3), ("gpt-4o-mini", 1)), 480),
    DemoClient("Lumen Education", 60, "1", 60, 6, "0.52",
               (("gpt-4o-mini", 2), ("deepseek-v3", 2), ("claude-haiku-4-5", 1)), 560),
    DemoClient("Redwood Logistics", 40, "1.5", 15, 3, "0.972", (("claude-haiku-4-5", 2), ("claude-sonnet-4-6", 1)), 260),
    DemoClient("Copperline Studio", 25, "2", 10, 2, "0.18", (("claude-sonnet-4-6", 1),), 110),
    DemoClient("Kestrel Fintech", 10, "4", 25, 5, "0.44", (("deepseek-v3", 3), ("claude-haiku-4-5", 1)), 170),
)
# The reseller's own use of the Account Key: (dollars, requests, models).
DEMO_ACCOUNT_USAGE = (38, 260, (("claude-sonnet-4-6", 3), ("claude-opus-4-1", 1)))


def seed_demo(conn):
    """Create the demo clients and their usage, with balance, locked and spent consistent with the rows."""
    rng = random.Random(DEMO_RANDOM_SEED)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    conn.execute("UPDATE account SET balance = MAX(balance, ?)", (DEMO_MIN_BALANCE,))
    all_rows = []
    for age_rank, client in enumerate(DEMO_CLIENTS):
        key_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        secret = "sk-ant-" + "".join(rng.choice(SURL_ALPHABET) for _ in range(40))
        budget = client.budget * MICRO
        created_at = now - timedelta(days=75 - 5 * age_rank, hours=rng.randint(0, 12))
        lock_funds(conn, budget)
        conn.execute(
            "INSERT INTO sub_keys (id, secret, label, budget, rpm_limit, concurrent_limit, multiplier, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (key_id, secret, client.label, budget, client.rpm_limit, client.concurrent_limit,
             int(Decimal(client.multiplier) * MULTIPLIER_SCALE), iso_utc(created_at)),
        )
        target = int(budget * Decimal(client.spend_fraction))
        rows = _usage_rows(rng, now, key_id, client.models, client.requests, target, cap=budget)
        spent = sum(row.cost for row in rows)
        conn.execute("UPDATE sub_keys SET spent = ? WHERE id = ?", (spent, key_id))
        conn.execute("UPDATE account SET balance = balance - ?, locked = locked - ?", (spent, spent))
        all_rows.extend(rows)
    dollars, requests, models = DEMO_ACCOUNT_USAGE
    account_rows = _usage_rows(rng, now, None, models, requests, dollars * MICRO, cap=dollars * MICRO)
    conn.execute("UPDATE account SET balance = balance - ?", (sum(row.cost for row in account_rows),))
    all_rows.extend(account_rows)
    all_rows.sort(key=lambda row: row.created_at)  # insertion order follows time, as in live use
    insert_usage_rows(conn, all_rows)


def seed_load_keys(conn, count):
    """Add `count` small Client Keys named "Load Test 0001"... in one statement."""
    lock_funds(conn, count * LOAD_KEY_BUDGET)
    width = max(4, len(str(count)))
    created_at = now_iso()
    conn.executemany(
        "INSERT INTO sub_keys (id, secret, label, budget, rpm_limit, concurrent_limit, multiplier, created_at)"
        " VALUES (?, ?, ?, ?, 60, 5, ?, ?)",
        [
            (str(uuid.uuid4()), "sk-ant-" + secrets.token_urlsafe(30), f"Load Test {number:0{width}d}",
             LOAD_KEY_BUDGET, MULTIPLIER_SCALE, created_at)
            for number in range(1, count + 1)
        ],
    )


HEAVY_KEY_LABEL = "Load Test heavy"
HEAVY_ROW_COST = 10  # micro-dollars a row, so a million rows fit a 10 USD budget


def seed_heavy_key(conn, rows):
    """Add one Client Key with `rows` usage rows spread over the last 30 days, oldest first."""
    rng = random.Random(DEMO_RANDOM_SEED)
    budget = max(MICRO, 2 * rows * HEAVY_ROW_COST)
    lock_funds(conn, budget)
    key_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc).replace(microsecond=0)
    conn.execute(
        "INSERT INTO sub_keys (id, secret, label, budget, rpm_limit, concurrent_limit, multiplier, created_at)"
        " VALUES (?, ?, ?, ?, 60, 5, ?, ?)",
        (key_id, "sk-ant-" + secrets.token_urlsafe(30), HEAVY_KEY_LABEL, budget, 2 * MULTIPLIER_SCALE,
         iso_utc(now - timedelta(days=DEMO_DAYS))),
    )
    step = DEMO_DAYS * 86400 / rows
    usage = [
        UsageRow(request_id=f"req_{rng.getrandbits(96):024x}", sub_key_id=key_id, model="claude-sonnet-4-6",
                 input_tokens=rng.randint(100, 4000), output_tokens=rng.randint(10, 800), cache_read_tokens=0,
                 cache_write_tokens=0, cost=HEAVY_ROW_COST, duration_ms=rng.randint(300, 4000),
                 created_at=iso_utc(now - timedelta(seconds=(rows - number) * step)))
        for number in range(rows)
    ]
    spent = rows * HEAVY_ROW_COST
    conn.execute("UPDATE sub_keys SET spent = ? WHERE id = ?", (spent, key_id))
    conn.execute("UPDATE account SET balance = balance - ?, locked = locked - ?", (spent, spent))
    insert_usage_rows(conn, usage)


def _usage_rows(rng, now, sub_key_id, models, requests, target, cap):
    """Draw `requests` believable rows over the last 30 days costing about `target` (never over `cap`)."""
    aliases = [alias for alias, _ in models]
    weights = [weight for _, weight in models]
    drafts = []
    for _ in range(requests):
        price = pricing.MODELS[rng.choices(aliases, weights)[0]]
        input_tokens = int(rng.lognormvariate(8.2, 0.9)) + 20
        output_tokens = int(rng.lognormvariate(6.2, 0.8)) + 5
        cache_read = cache_write = 0
        if price.alias.startswith("claude") and rng.random() < 0.45:
            cache_read = int(input_tokens * rng.uniform(0.5, 3))
            if rng.random() < 0.3:
                cache_write = int(input_tokens * rng.uniform(0.2, 1))
        drafts.append((price, [input_tokens, output_tokens, cache_read, cache_write], _moment(rng, now)))
    # Scale every request's tokens by one factor so the client's total lands on its target.
    raw = sum(pricing.cost_micro(price, *tokens) for price, tokens, _ in drafts)
    factor = target / raw
    rows = []
    for price, tokens, moment in drafts:
        scaled = [max(1, round(count * factor)) if count else 0 for count in tokens]
        rows.append(UsageRow(
            request_id=f"req_{rng.getrandbits(96):024x}",
            sub_key_id=sub_key_id,
            model=price.logged_name,
            input_tokens=scaled[0],
            output_tokens=scaled[1],
            cache_read_tokens=scaled[2],
            cache_write_tokens=scaled[3],
            cost=pricing.cost_micro(price, *scaled),
            duration_ms=int(250 + scaled[1] * rng.uniform(8, 20) + scaled[0] / 60),
            created_at=iso_utc(moment),
        ))
    # Rounding may overshoot a nearly spent budget by a hair: drop the dearest rows until it fits.
    rows.sort(key=lambda row: row.cost)
    while sum(row.cost for row in rows) > cap:
        rows.pop()
    return rows


def _moment(rng, now):
    """A time in the last 30 days, weighted towards weekdays and working hours (UTC)."""
    day_weights = [WEEKEND_WEIGHT if (now - timedelta(days=age)).weekday() >= 5 else 1.0 for age in range(DEMO_DAYS)]
    age = rng.choices(range(DEMO_DAYS), day_weights)[0]
    hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
    day = (now - timedelta(days=age)).replace(hour=0, minute=0, second=0)
    moment = day + timedelta(hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))
    # Today's later hours have not happened yet: fold them back into the last hour.
    return moment if moment <= now else now - timedelta(seconds=rng.randrange(3600))
