"""Helpers that write the mirror the way the sync does (through mirror.ingest), for analytics tests."""

import itertools
from datetime import UTC, date, datetime, time
from decimal import Decimal

from derouter import client as derouter_client
from derouter.client import Secret, SubKey, UsageLog
from mirror import ingest, key_store

_request_ids = itertools.count(1)
_key_numbers = itertools.count(1)


def mirrored_key(label="Acme", *, budget="100", spent="0", remaining=None, multiplier="1", created=date(2026, 1, 1)):
    """A key snapshot as the sync would record it."""
    number = next(_key_numbers)
    remaining = Decimal(budget) - Decimal(spent) if remaining is None else Decimal(remaining)
    sub_key = SubKey(
        id=f"00000000-0000-4000-8000-{number:012d}",
        label=label,
        key_id=f"sk-ant-k{number:04d}...",
        secret=Secret(f"sk-ant-k{number:04d}-full-secret"),
        budget=Decimal(budget),
        spent=Decimal(spent),
        remaining=remaining,
        rpm_limit=60,
        concurrent_limit=5,
        display_multiplier=Decimal(multiplier),
        created_at=datetime.combine(created, time(9), tzinfo=UTC),
    )
    return key_store.upsert_key(sub_key)


def usage(key, day, cost, *, count=1, model="claude-sonnet-4-6", input_tokens=100, output_tokens=50, hour=12):
    """Mirror ``count`` requests of ``cost`` each (real USD) on a UTC day; None as key: the Account Key."""
    when = datetime.combine(day, time(hour), tzinfo=UTC)
    logs = [
        UsageLog(
            request_id=f"req-test-{next(_request_ids)}",
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=0,
            cache_write_tokens=0,
            cost=Decimal(cost),
            duration_ms=500,
            created_at=when,
        )
        for _ in range(count)
    ]
    multiplier = key.display_multiplier if key is not None else Decimal(1)
    return store_logs(key, logs, multiplier)


def store_logs(key, logs, multiplier):
    """Insert usage logs for a key (None: the account) as the sync's writer does; how many were new."""
    return len(ingest.insert_usage(key, ingest.usage_row_maker(key, multiplier)(logs)))


def mirror_from_simulator(sub_key_id):
    """Mirror a key and all its usage the way the sync does: the key list, then its logs page by page."""
    sub_key = next(item for item in derouter_client.list_sub_keys() if item.id == sub_key_id)
    snapshot = key_store.upsert_key(sub_key)
    page = 1
    while True:
        logs = derouter_client.fetch_usage_logs(page, 100, sub_key_id=sub_key_id).decode()
        store_logs(snapshot, logs.logs, sub_key.display_multiplier)
        if not logs.has_next:
            return snapshot
        page += 1
