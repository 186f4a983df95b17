"""Profile the key list, the overview, analytics and the portal home with pyinstrument.

    .venv/bin/python bench/profile_pages.py [--keys 50] [--runs 30] [--page keys|overview|analytics|portal]

Starts its own simulator (--keys load-test keys and one key with usage) and a throwaway
test database, renders each page --runs times through Django's test client with
production settings, and prints pyinstrument's call tree of all runs together.
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
from pyinstrument import Profiler  # noqa: E402

from tests.helpers import start_simulator, stop_simulator  # noqa: E402

PAGES = {"keys": "/dashboard/keys/", "overview": "/dashboard/", "analytics": "/dashboard/analytics/", "portal": "/portal/"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--page", choices=sorted(PAGES), action="append")
    parser.add_argument("--timings", action="store_true", help="print median times instead of a profile")
    options = parser.parse_args()
    account_key = "sk-ant-profile-" + secrets.token_urlsafe(16)
    state = Path(tempfile.mkdtemp()) / "profile.sqlite3"
    simulator = start_simulator(state, account_key, "100000",
                                ["--seed-keys", str(options.keys), "--seed-usage-rows", "1000"])
    settings.DEROUTER_API_BASE = simulator.base_url
    settings.DEROUTER_ACCOUNT_KEY = account_key
    setup_test_environment()
    connection.creation.create_test_db(verbosity=0)
    try:
        from django.contrib.auth.models import User

        from accounts.models import ConsoleProfile, Role
        from derouter import client as derouter_client

        owner = User.objects.create_user("profile-owner", password=secrets.token_urlsafe(12))
        ConsoleProfile.objects.create(user=owner, role=Role.OWNER)
        console = Client()
        console.force_login(owner)
        heavy = next(key for key in derouter_client.list_sub_keys() if key.label == "Load Test heavy")
        portal = Client()
        portal.post("/portal/login/", {"client_key": heavy.secret.reveal()})
        for name in options.page or sorted(PAGES):
            browser = portal if name == "portal" else console
            browser.get(PAGES[name])  # warm-up
            if options.timings:
                samples = []
                for _ in range(options.runs):
                    started = time.perf_counter()
                    assert browser.get(PAGES[name]).status_code == 200
                    samples.append((time.perf_counter() - started) * 1000)
                print(f"{PAGES[name]:<20} median {statistics.median(samples):6.1f} ms over {options.runs} runs")
                continue
            profiler = Profiler(interval=0.0005)
            with profiler:
                for _ in range(options.runs):
                    assert browser.get(PAGES[name]).status_code == 200
            print(f"\n===== {PAGES[name]} x {options.runs} =====")
            print(profiler.output_text(unicode=False, color=False, show_all=False))
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
        stop_simulator(simulator)


if __name__ == "__main__":
    main()
