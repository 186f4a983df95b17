"""Measure the analytics pages at 10k and at 1M mirrored usage rows: their cost must not grow with the rows.

    .venv/bin/python bench/analytics_at_scale.py [--small 10000] [--large 1000000] [--runs 15]

Builds two throwaway SQLite databases with the same keys, models and days (so the
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
from django.db.models import Count, Sum  # noqa: E402
from django.db.models.functions import TruncDate  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

KEYS = 30
MODELS = ("claude-sonnet-4-6", "claude-opus-4-1", "claude-haiku-4-5")
DAYS = 90
BATCH = 20_000


def use_database(path):
    """Point the default connection at another SQLite file."""
    connection.close()
    connection.settings_dict["NAME"] = str(path)


def build(path, rows):
    """A migrated database with KEYS keys, ``rows`` usage rows spread over every key x model x day, and rollups."""
    from accounts.models import ConsoleProfile, Role
    from django.contrib.auth.models import User
    from mirror.models import DailyRollup, KeySnapshot, UsageRecord, billed_amount

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
    cells = [(key, model, day) for key in keys for model in MODELS for day in range(DAYS)]
    started = time.perf_counter()
    for first in range(0, rows, BATCH):
        batch = []
        for index in range(first, min(first + BATCH, rows)):
            key, model, day = cells[index % len(cells)]
            cost = Decimal(index % 997 + 1).scaleb(-6)
            batch.append(
                UsageRecord(
                    request_id=f"req-bench-{index}",
                    key=key,
                    created_at=now - timedelta(days=day, seconds=index % 3600),
                    model=model,
                    input_tokens=1000 + index % 500,
                    output_tokens=200 + index % 100,
                    cost=cost,
                    multiplier=key.display_multiplier,
                    billed=billed_amount(cost, key.display_multiplier),
                )
            )
        with transaction.atomic():
            UsageRecord.objects.bulk_create(batch)
    sums = (
        UsageRecord.objects.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day", "key", "model")
        .annotate(
            total_requests=Count("id"),
            total_input=Sum("input_tokens"),
            total_output=Sum("output_tokens"),
            total_cost=Sum("cost"),
            total_billed=Sum("billed"),
        )
    )
    DailyRollup.objects.bulk_create(
        (
            DailyRollup(
                day=row["day"],
                key_id=row["key"],
                model=row["model"],
                requests=row["total_requests"],
                input_tokens=row["total_input"],
                output_tokens=row["total_output"],
                cost=row["total_cost"],
                billed=row["total_billed"],
            )
            for row in sums.iterator()
        ),
        batch_size=5000,
    )
    print(
        f"{path.name}: {UsageRecord.objects.count():,} usage rows, {DailyRollup.objects.count():,} rollups,"
        f" built in {time.perf_counter() - started:.1f} s"
    )
    connection.close()


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
