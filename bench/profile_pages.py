"""Profile the console pages and the portal home with pyinstrument, or time them against the ledger.

    .venv/bin/python bench/profile_pages.py [--keys 50] [--runs 30] [--page keys|overview|...] [--timings|--queries]

Starts its own simulator (--keys load-test keys and one key with usage) and a throwaway
test database, fills the mirror as bench/run does (manage.py sync), renders each page --runs
times through Django's test client with production settings, and prints pyinstrument's call
tree of all runs together. With --timings it prints each page's median CPU time instead
(this process's own work: not the simulator's, nor waiting for it or for other processes on
a busy machine), pages interleaved run by run, and its ratio to the ledger (the empty
signed-in page bench/run compares every page with). With --queries it prints the SQL each
page runs once warm, to find the ones a page could do without.
"""

import argparse
import io
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
from django.template import Template  # noqa: E402
from django.test.utils import CaptureQueriesContext, _TestState, setup_test_environment  # noqa: E402
from pyinstrument import Profiler  # noqa: E402

from tests.helpers import start_simulator, stop_simulator  # noqa: E402

PAGES = {
    "ledger": "/dashboard/topups/",  # the empty signed-in page every other page is compared with
    "keys": "/dashboard/keys/",
    "keys-spend": "/dashboard/keys/?sort=-spent",
    "overview": "/dashboard/",
    "key": "/dashboard/keys/{key}/",  # a light key's page
    "logs": "/dashboard/logs/",
    "analytics": "/dashboard/analytics/",
    "portal": "/portal/",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=50)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--usage-rows", type=int, default=1000, help="requests of the heavy key (bench/run: 100000)")
    parser.add_argument("--page", choices=sorted(PAGES), action="append")
    parser.add_argument("--timings", action="store_true", help="print median CPU times instead of a profile")
    parser.add_argument("--queries", action="store_true", help="print each page's SQL instead of a profile")
    options = parser.parse_args()
    account_key = "sk-ant-profile-" + secrets.token_urlsafe(16)
    state = Path(tempfile.mkdtemp()) / "profile.sqlite3"
    simulator = start_simulator(state, account_key, "100000",
                                ["--seed-keys", str(options.keys), "--seed-usage-rows", str(options.usage_rows)])
    settings.DEROUTER_API_BASE = simulator.base_url
    settings.DEROUTER_ACCOUNT_KEY = account_key
    # Production's middleware: the tests' secret scanner reads every page and would weigh the big ones.
    settings.MIDDLEWARE = [name for name in settings.MIDDLEWARE if not name.startswith("tests.")]
    setup_test_environment()
    # As in production: no test instrumentation of every template (and include) rendered.
    Template._render = _TestState.saved_data.template_render
    connection.creation.create_test_db(verbosity=0)
    try:
        from django.contrib.auth.models import User
        from django.core.management import call_command

        from accounts.models import ConsoleProfile, Role
        from derouter import client as derouter_client

        call_command("sync", *(() if options.keys <= 50 else ("--key", "account")), stdout=io.StringIO())

        owner = User.objects.create_user("profile-owner", password=secrets.token_urlsafe(12))
        ConsoleProfile.objects.create(user=owner, role=Role.OWNER)
        console = Client()
        console.force_login(owner)
        listed = derouter_client.list_sub_keys()
        heavy = next(key for key in listed if key.label == "Load Test heavy")
        light = next(key for key in listed if key.label != "Load Test heavy")
        pages = {name: path.format(key=light.id) for name, path in PAGES.items()}
        portal = Client()
        portal.post("/portal/login/", {"client_key": heavy.secret.reveal()})
        names = options.page or list(PAGES)
        for name in names:
            (portal if name == "portal" else console).get(pages[name])  # warm-up
        if options.queries:
            for name in ["ledger", *names]:
                browser = portal if name == "portal" else console
                with CaptureQueriesContext(connection) as queries:
                    assert browser.get(pages[name]).status_code == 200
                print(f"\n===== {pages[name]}: {len(queries)} queries =====")
                for query in queries:
                    print("  " + query["sql"][:240])
            return
        if options.timings:
            samples = {name: [] for name in ["ledger", *names]}
            for _ in range(options.runs):
                for name in samples:
                    browser = portal if name == "portal" else console
                    started = time.thread_time()
                    assert browser.get(pages[name]).status_code == 200
                    samples[name].append((time.thread_time() - started) * 1000)
            ledger = statistics.median(samples["ledger"])
            for name, times in samples.items():
                median = statistics.median(times)
                print(f"{pages[name]:<30} median {median:6.2f} ms CPU  {median / ledger:4.2f}x ledger  ({options.runs} runs)")
            return
        for name in names:
            browser = portal if name == "portal" else console
            profiler = Profiler(interval=0.0005)
            with profiler:
                for _ in range(options.runs):
                    assert browser.get(pages[name]).status_code == 200
            print(f"\n===== {pages[name]} x {options.runs} =====")
            print(profiler.output_text(unicode=False, color=False, show_all=False))
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
        stop_simulator(simulator)


if __name__ == "__main__":
    main()
