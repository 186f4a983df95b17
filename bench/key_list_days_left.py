"""Time the key list sorted by days left against the default sort, at growing numbers of mirrored keys.

    .venv/bin/python bench/key_list_days_left.py [--keys 50,5000,20000] [--runs 7]

Builds a throwaway test database with that many key snapshots, each with seven days
of daily rollups (so every key is burning and has a days-left figure), and times page 1
of /dashboard/keys/ through Django's test client: median of --runs requests, per sort.
No simulator is needed: the key list makes no upstream call.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from accounts.models import ConsoleProfile, Role  # noqa: E402
from mirror.key_store import summarize_snapshot  # noqa: E402
from mirror.models import DailyRollup, KeySnapshot  # noqa: E402

SORTS = ("-created_at", "days_left")


def _grow_to(count, today):
    """Add key snapshots (each with seven days of rollups) until there are ``count``."""
    have = KeySnapshot.objects.count()
    created = datetime(2026, 1, 1, tzinfo=UTC)
    keys = KeySnapshot.objects.bulk_create(
        [
            KeySnapshot(
                sub_key_id=f"00000000-0000-4000-8000-{number:012d}",
                label=f"Bench client {number}",
                key_id_short=f"sk-ant-b{number:05d}...",
                budget=Decimal(100),
                spent=Decimal(number % 90),
                remaining=Decimal(100 - number % 90),
                rpm_limit=60,
                concurrent_limit=5,
                created_at=created + timedelta(minutes=number),
            )
            for number in range(have, count)
        ],
        batch_size=1000,
    )
    DailyRollup.objects.bulk_create(
        [
            DailyRollup(day=today - timedelta(days=back), key=key, model="claude-sonnet-4-6", requests=1,
                        cost=Decimal("0.01") * (1 + index % 50), billed=Decimal("0.01") * (1 + index % 50))
            for index, key in enumerate(keys)
            for back in range(7)
        ],
        batch_size=2000,
    )
    # Written here directly, not by mirror.ingest: recount the summary every write to the snapshot ends with.
    summarize_snapshot()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", default="50,5000,20000")
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()

    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    try:
        owner = get_user_model().objects.create_user("bench-owner", password="bench-pass-1234")
        ConsoleProfile.objects.create(user=owner, role=Role.OWNER)
        browser = Client()
        browser.force_login(owner)
        today = datetime.now(UTC).date()
        print(f"{'keys':>7}  " + "  ".join(f"{sort:>14}" for sort in SORTS) + "   (median ms, page 1)")
        for count in (int(part) for part in options.keys.split(",")):
            _grow_to(count, today)
            medians = []
            for sort in SORTS:
                browser.get("/dashboard/keys/", {"sort": sort})  # warm-up
                samples = []
                for _ in range(options.runs):
                    started = time.perf_counter()
                    assert browser.get("/dashboard/keys/", {"sort": sort}).status_code == 200
                    samples.append((time.perf_counter() - started) * 1000)
                medians.append(statistics.median(samples))
            print(f"{count:>7}  " + "  ".join(f"{median:>14.1f}" for median in medians))
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)


if __name__ == "__main__":
    main()
