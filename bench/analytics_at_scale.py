"""Measure the analytics pages at 10k and at 1M mirrored usage rows: their cost must not grow with the rows.

    .venv/bin/python bench/analytics_at_scale.py [--small 10000] [--large 1000000] [--runs 15]

Builds two throwaway SQLite databases (rows generated in SQL) with the same keys, models and days (so the
same daily rollups) but --small and --large usage rows, each with the rollups
summed from its rows, then times each page through Django's test client on the
two databases in turn (interleaved, so a busy machine slows both alike) and
prints the medians and the large/small ratio. No upstream is involved: the
pages read only the mirror.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

KEYS = 30
MODELS = ("claude-sonnet-4-6", "claude-opus-4-1", "claude-haiku-4-5")
DAYS = 90


def use_database(path):
    """Point the default connection at another SQLite file."""
    connection.close()
    connection.settings_dict["NAME"] = str(path)


def build(path, rows):
    """A migrated database with KEYS keys, ``rows`` usage rows spread over every key x model x day, and rollups."""
    from accounts.models import ConsoleProfile, Role
    from django.contrib.auth.models import User
    from mirror.models import DailyRollup, KeySnapshot, UsageRecord

    use_database(path)
    call_command("migrate", verbosity=0)
    owner = User.objects.create_user("bench-owner", password="bench-pass-1234")
    ConsoleProfile.objects.create(user=owner, role=Role.OWNER)
    now = datetime.now(UTC)
    keys = KeySnapshot.objects.bulk_create(
        KeySnapshot(
            sub_key_id=f"00000000-0000-4000-8000-{number:012d}",
            label=f"Client {number:02d}",
            key_id_short=f"sk-ant-b{number:03d}...",
            budget=Decimal(1000),
            spent=Decimal(0),
            remaining=Decimal(500 + number),
            rpm_limit=60,
            concurrent_limit=5,
            display_multiplier=Decimal(1 + number % 4),
            created_at=now - timedelta(days=DAYS + 1),
        )
        for number in range(KEYS)
    )
    started = time.perf_counter()
    _insert_rows(rows, [key.pk for key in keys])
    _sum_rollups()
    print(
        f"{path.name}: {UsageRecord.objects.count():,} usage rows, {DailyRollup.objects.count():,} rollups,"
        f" built in {time.perf_counter() - started:.1f} s"
    )
    connection.close()


def _insert_rows(rows, key_pks):
    """Insert the usage rows in SQL (a million through the ORM would take the better part of an hour).

    Row i falls on cell i mod (keys x models x days), so any count from one cell
    per rollup upwards fills every rollup; costs are whole micro-dollars and the
    multipliers whole numbers, so billed is exact.
    """
    assert key_pks == list(range(key_pks[0], key_pks[0] + len(key_pks))), "key ids must be consecutive"
    cells = KEYS * len(MODELS) * DAYS
    model_case = " ".join(f"WHEN {index} THEN '{model}'" for index, model in enumerate(MODELS))
    with connection.cursor() as cursor, transaction.atomic():
        cursor.execute(
            f"""
            WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < %s - 1),
            cell(i, key_index, model_index, day) AS (
                SELECT i, (i %% {cells}) / {len(MODELS) * DAYS}, ((i %% {cells}) / {DAYS}) %% {len(MODELS)}, i %% {DAYS}
                FROM seq
            )
            INSERT INTO mirror_usagerecord (request_id, key_id, created_at, model, input_tokens, output_tokens,
                cache_read_tokens, cache_write_tokens, duration_ms, cost, multiplier, billed, mirrored_at)
            SELECT 'req-bench-' || i, {key_pks[0]} + key_index,
                strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || day || ' days', '-' || (i %% 3600) || ' seconds'),
                CASE model_index {model_case} END, 1000 + i %% 500, 200 + i %% 100, 0, 0, 800,
                (i %% 997 + 1) / 1000000.0, 1 + key_index %% 4, (i %% 997 + 1) * (1 + key_index %% 4) / 1000000.0,
                strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')
            FROM cell
            """,
            [rows],
        )


def _sum_rollups():
    """The daily rollups of the rows, as the ingest keeps them: per key x model x UTC day."""
    with connection.cursor() as cursor, transaction.atomic():
        cursor.execute(
            """
            INSERT INTO mirror_dailyrollup (day, key_id, model, requests, input_tokens, output_tokens,
                cache_read_tokens, cache_write_tokens, cost, billed)
            SELECT date(created_at), key_id, model, count(*), sum(input_tokens), sum(output_tokens), 0, 0,
                sum(cost), sum(billed)
            FROM mirror_usagerecord GROUP BY date(created_at), key_id, model
            """
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=15)
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="analytics-bench-"))
    databases = {"small": folder / "small.sqlite3", "large": folder / "large.sqlite3"}
    build(databases["small"], options.small)
    build(databases["large"], options.large)
    setup_test_environment()

    sample_key = "00000000-0000-4000-8000-000000000001"
    month = datetime.now(UTC).strftime("%Y-%m")
    pages = [
        "/dashboard/analytics/",
        "/dashboard/analytics/?period=90d",
        "/dashboard/analytics/?period=90d&sort=label",
        f"/dashboard/keys/{sample_key}/statements/{month}.csv",
    ]
    samples = {(size, url): [] for size in databases for url in pages}
    for run in range(options.runs + 1):
        for size, path in databases.items():
            use_database(path)
            browser = Client()
            browser.login(username="bench-owner", password="bench-pass-1234")
            for url in pages:
                started = time.perf_counter()
                response = browser.get(url)
                if response.streaming:
                    b"".join(response.streaming_content)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (url, response.status_code)
                if run:  # the first round warms caches and connections
                    samples[(size, url)].append(elapsed)

    print(f"\nmedian of {options.runs} interleaved runs: {options.small:,} rows vs {options.large:,} rows")
    for url in pages:
        small = statistics.median(samples[("small", url)])
        large = statistics.median(samples[("large", url)])
        print(f"GET {url:<62} {small:7.1f} ms  {large:7.1f} ms   ratio {large / small:.2f}")


if __name__ == "__main__":
    main()
