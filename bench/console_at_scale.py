"""Measure the console's pages against a simulator holding thousands of keys and log rows.

    .venv/bin/python bench/console_at_scale.py [--keys 5000] [--runs 10]

Starts its own simulator (demo data plus --keys extra keys) and a throwaway test
database, then times each page through Django's test client: median and worst
of --runs requests, with the time spent waiting on the upstream shown apart.
"""

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from derouter import client as derouter_client  # noqa: E402
from tests.helpers import start_simulator, stop_simulator  # noqa: E402


def timed(function, runs):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        samples.append((time.perf_counter() - started) * 1000)
    return result, statistics.median(samples), max(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=10)
    options = parser.parse_args()

    account_key = "sk-ant-bench-" + secrets.token_urlsafe(16)
    state = Path(tempfile.mkdtemp()) / "bench.sqlite3"
    started = time.perf_counter()
    simulator = start_simulator(state, account_key, "100000", ["--demo", "--seed-keys", str(options.keys)])
    print(f"simulator with demo data + {options.keys} keys ready in {time.perf_counter() - started:.1f} s")
    settings.DEROUTER_API_BASE = simulator.base_url
    settings.DEROUTER_ACCOUNT_KEY = account_key
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    try:
        from accounts.models import ConsoleProfile, Role
        from django.contrib.auth.models import User

        owner = User.objects.create_user("bench-owner", password="bench-pass-1234")
        ConsoleProfile.objects.create(user=owner, role=Role.OWNER)
        browser = Client()
        browser.force_login(owner)

        keys, median, worst = timed(derouter_client.list_sub_keys, options.runs)
        print(f"\n{'upstream GET /sub-keys (' + str(len(keys)) + ' keys)':<52} median {median:7.1f} ms   worst {worst:7.1f} ms")
        _, median, worst = timed(lambda: derouter_client.fetch_usage_logs(page=1, limit=100).decode(), options.runs)
        print(f"{'upstream GET /usage-logs?limit=100':<52} median {median:7.1f} ms   worst {worst:7.1f} ms")

        pages = [
            "/dashboard/",
            "/dashboard/keys/",
            "/dashboard/keys/?page=100",
            "/dashboard/keys/?sort=-spent",
            "/dashboard/keys/?q=Load+Test+00",
            "/dashboard/logs/?limit=100",
            "/dashboard/logs/?limit=100&page=50",
            "/dashboard/topups/",
            "/dashboard/audit/",
        ]
        print()
        for url in pages:
            response, median, worst = timed(lambda: browser.get(url), options.runs)
            size = len(response.content) // 1024
            print(f"{'GET ' + url:<52} median {median:7.1f} ms   worst {worst:7.1f} ms   {response.status_code} {size} KiB")
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
        stop_simulator(simulator)


if __name__ == "__main__":
    main()
