"""Measure the mirror: console pages at 50 / 5,000 / 20,000 keys, and sync speed against raw paging.

    .venv/bin/python bench/mirror_at_scale.py [--runs 15] [--rows 100000] [--new-rows 1000] [--sync-runs 2] [--incremental-runs 25]
    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/mirror_at_scale.py --skip-keys   # the sync on PostgreSQL

Pages: one simulator per scale (--seed-keys), each refreshed into a SQLite database of
its own through the real snapshot refresh; then the overview, the key list (sorted,
searched) and the usage log are requested through Django's test client, pages and scales
interleaved run by run. Own time is the page minus the derouter calls it made (as the
dashboard's metrics time them), compared with the empty signed-in page and with 50 keys.

Sync: a simulator holding one key with --rows usage rows (written straight into its state
file, as its demo seed does). Interleaved: paging GET /usage-logs?subKeyId=&limit=100
through derouter.client (the same parsing the sync uses) against a first sync of the key
into an empty mirror; then --new-rows new rows, paged raw against an incremental sync. With
BENCH_DATABASE_URL (a PostgreSQL database it may empty) the sync runs on that database.
"""

import argparse
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="mirror-bench-"))
# Our own SQLite files and queue, whatever the shell has configured; or, for the sync alone, the
# PostgreSQL database given.
POSTGRES_URL = os.environ.get("BENCH_DATABASE_URL", "")
os.environ["DATABASE_URL"] = POSTGRES_URL or f"sqlite:///{WORK / 'default.sqlite3'}"
os.environ["REDIS_URL"] = ""
os.environ["HUEY_IMMEDIATE"] = "true"
os.environ["LOG_LEVEL"] = "WARNING"
# Listing 20,000 keys takes seconds on a busy machine; the test settings allow only 5.
os.environ["DEROUTER_READ_TIMEOUT"] = "120"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from derouter import client as derouter_client  # noqa: E402
from derouter.simulator import pricing  # noqa: E402
from derouter.simulator.store import UsageRow, insert_usage_rows, iso_utc  # noqa: E402
from lib.metrics import UPSTREAM_SECONDS  # noqa: E402
from mirror import sync  # noqa: E402
from mirror import snapshot as mirror_snapshot  # noqa: E402
from mirror.models import DailyRollup, SyncState, UsageRecord  # noqa: E402
from tests.helpers import start_simulator, stop_simulator  # noqa: E402

SCALES = (50, 5000, 20000)
PAGE_SIZE = 100


def use_database(path):
    """Point the default connection at another SQLite file (closed now, reopened on the next query)."""
    connection.close()
    connection.settings_dict["NAME"] = str(path)


def point_at(simulator):
    settings.DEROUTER_API_BASE = simulator.base_url
    settings.DEROUTER_ACCOUNT_KEY = simulator.account_key


def fresh_database(name):
    if POSTGRES_URL:
        call_command("migrate", verbosity=0)
        call_command("flush", interactive=False, verbosity=0)
        return None
    path = WORK / f"{name}.sqlite3"
    use_database(path)
    call_command("migrate", verbosity=0)
    return path


def signed_in_client():
    from accounts.models import ConsoleProfile, Role
    from django.contrib.auth.models import User

    owner = User.objects.create_user("bench-owner", password="bench-pass-1234")
    ConsoleProfile.objects.create(user=owner, role=Role.OWNER)
    browser = Client()
    browser.force_login(owner)
    return browser


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


# (name, path): the empty signed-in page is the floor every page's own time is compared with.
PAGES = (
    ("empty signed-in page (ledger)", "/dashboard/topups/"),
    ("overview", "/dashboard/"),
    ("key list", "/dashboard/keys/"),
    ("key list by spend", "/dashboard/keys/?sort=-spent"),
    ("key list, search", "/dashboard/keys/?q=Load+Test+00"),
    ("usage log", "/dashboard/logs/"),
)


def upstream_seconds():
    """Seconds this process has spent in derouter calls so far, as the dashboard's own metrics count them."""
    return sum(
        sample.value for metric in UPSTREAM_SECONDS.collect() for sample in metric.samples if sample.name.endswith("_sum")
    )


def bench_pages(runs):
    prepared = {}
    simulators = []
    try:
        for scale in SCALES:
            account_key = "sk-ant-bench-" + secrets.token_urlsafe(16)
            # The simulator's --seed-keys adds keys beside the account's own; 0 extra makes 50 exactly.
            simulator = start_simulator(WORK / f"sim-{scale}.sqlite3", account_key, "100000", ["--seed-keys", str(scale)])
            simulators.append(simulator)
            point_at(simulator)
            path = fresh_database(f"keys-{scale}")
            result, seconds = timed(mirror_snapshot.refresh_snapshot)
            print(f"  {scale:>6} keys: first snapshot refresh {seconds:6.2f} s ({result.describe()})", file=sys.stderr)
            _, again = timed(mirror_snapshot.refresh_snapshot)
            print(f"  {scale:>6} keys: unchanged refresh      {again:6.2f} s", file=sys.stderr)
            prepared[scale] = (path, simulator, signed_in_client())
        samples = {}
        for run in range(runs + 1):
            for scale in SCALES:
                path, simulator, browser = prepared[scale]
                use_database(path)
                point_at(simulator)
                for name, url in PAGES:
                    before = upstream_seconds()
                    response, seconds = timed(lambda: browser.get(url))
                    upstream = upstream_seconds() - before
                    assert response.status_code == 200, (scale, url, response.status_code)
                    if run:  # the first round warms caches and connections
                        samples.setdefault((scale, name), []).append((seconds - upstream) * 1000)
    finally:
        for simulator in simulators:
            stop_simulator(simulator)
    median = statistics.median
    print("\n| scale | page | own ms (page minus upstream) | own / empty page | own / same page at 50 keys |")
    print("|---|---|---|---|---|")
    for scale in SCALES:
        floor = median(samples[(scale, PAGES[0][0])])
        for name, _ in PAGES:
            own = median(samples[(scale, name)])
            at_50 = median(samples[(SCALES[0], name)])
            versus_50 = "" if scale == SCALES[0] else f"{own / at_50:.2f}x"
            print(f"| {scale:,} keys | {name} | {own:.1f} | {own / floor:.2f}x | {versus_50} |")


def write_rows(state_path, sub_key_id, count, newest_at):
    """Usage rows straight into the simulator's state, one a second back from newest_at (as its seed does)."""
    rng = random.Random(count)
    price = pricing.MODELS["claude-sonnet-4-6"]
    rows = []
    for index in range(count):
        input_tokens, output_tokens = rng.randint(100, 5000), rng.randint(10, 1500)
        rows.append(UsageRow(
            request_id=f"req_{secrets.token_hex(12)}", sub_key_id=sub_key_id, model=price.logged_name,
            input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=0, cache_write_tokens=0,
            cost=pricing.cost_micro(price, input_tokens, output_tokens), duration_ms=rng.randint(300, 9000),
            created_at=iso_utc(newest_at - timedelta(seconds=count - index)),
        ))
    with sqlite3.connect(state_path) as state:
        insert_usage_rows(state, rows)


def page_raw(sub_key_id, pages=None):
    """Page the key's logs through the client the way the sync does; returns rows read."""
    rows, page = 0, 1
    while True:
        usage_page = derouter_client.fetch_usage_logs(page, PAGE_SIZE, sub_key_id=sub_key_id).decode()
        rows += len(usage_page.logs)
        if page >= usage_page.pages or (pages and page >= pages):
            return rows
        page += 1


def forget_usage():
    UsageRecord.objects.all().delete()
    DailyRollup.objects.all().delete()
    SyncState.objects.all().delete()


def bench_sync(total_rows, new_rows, runs, incremental_runs):
    account_key = "sk-ant-bench-" + secrets.token_urlsafe(16)
    state_path = WORK / "sim-usage.sqlite3"
    simulator = start_simulator(state_path, account_key, "100000")
    try:
        point_at(simulator)
        fresh_database("usage")
        sub_key_id = derouter_client.create_sub_key(10, label="Heavy user").id
        now = datetime.now(UTC).replace(microsecond=0)
        write_rows(state_path, sub_key_id, total_rows, now - timedelta(days=1))
        mirror_snapshot.refresh_snapshot()
        raw_first, sync_first = [], []
        for run in range(runs):
            order = ("raw", "sync") if run % 2 == 0 else ("sync", "raw")
            for what in order:
                if what == "raw":
                    rows, seconds = timed(lambda: page_raw(sub_key_id))
                    raw_first.append(rows / seconds)
                else:
                    forget_usage()
                    result, seconds = timed(lambda: sync.sync_scope(sub_key_id, ask_ahead=True))
                    assert result.inserted == total_rows, result
                    sync_first.append(result.inserted / seconds)
            print(f"  first sync run {run + 1}: raw {raw_first[-1]:,.0f} rows/s, sync {sync_first[-1]:,.0f} rows/s",
                  file=sys.stderr)
        raw_new, sync_new = [], []
        pages_of_new = -(-new_rows // PAGE_SIZE)
        for run in range(incremental_runs):
            write_rows(state_path, sub_key_id, new_rows, datetime.now(UTC) + timedelta(hours=run + 1))
            # Which goes first after the new rows are written alternates, as in the first syncs.
            for what in ("raw", "sync") if run % 2 == 0 else ("sync", "raw"):
                if what == "raw":
                    rows, seconds = timed(lambda: page_raw(sub_key_id, pages=pages_of_new))
                    raw_new.append(rows / seconds)
                else:
                    result, seconds = timed(lambda: sync.sync_scope(sub_key_id, ask_ahead=True))
                    assert result.inserted == new_rows, result
                    sync_new.append(result.inserted / seconds)
    finally:
        stop_simulator(simulator)
    print(f"\n| Usage sync, pages of {PAGE_SIZE} | raw paging | mirror sync | ratio |")
    print("|---|---|---|---|")
    for title, raw, mirrored in (
        (f"first sync, {total_rows:,} rows", raw_first, sync_first),
        (f"incremental, {new_rows:,} new rows", raw_new, sync_new),
    ):
        raw_median, sync_median = statistics.median(raw), statistics.median(mirrored)
        # The median of each run's ratio: a run's sync and raw paging are a moment apart, so a
        # slower spell of the machine slows both.
        paired = statistics.median(rate / raw_rate for rate, raw_rate in zip(mirrored, raw, strict=True))
        print(f"| {title} | {raw_median:,.0f} rows/s | {sync_median:,.0f} rows/s | {paired:.2f}x |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="interleaved key-list requests per scale")
    parser.add_argument("--rows", type=int, default=100_000, help="usage rows of the first sync")
    parser.add_argument("--new-rows", type=int, default=1000, help="new rows of each incremental sync")
    parser.add_argument("--sync-runs", type=int, default=2, help="interleaved first-sync runs")
    # An incremental sync of 1,000 rows takes some 30 ms, which the machine's other work moves
    # by a third from one to the next: nine pairs gave ratios from 0.72x to 0.95x on one machine
    # within minutes. Pairs cost little; enough of them give a median that stays put.
    parser.add_argument("--incremental-runs", type=int, default=25, help="interleaved incremental-sync runs")
    parser.add_argument("--skip-keys", action="store_true", help="only the sync measurement")
    parser.add_argument("--skip-sync", action="store_true", help="only the page measurement")
    options = parser.parse_args()
    if POSTGRES_URL and not options.skip_keys:
        parser.error("with BENCH_DATABASE_URL only the sync is measured: add --skip-keys")
    setup_test_environment()
    print(f"working in {WORK}", file=sys.stderr)
    if not options.skip_keys:
        bench_pages(options.runs)
    if not options.skip_sync:
        bench_sync(options.rows, options.new_rows, options.sync_runs, options.incremental_runs)


if __name__ == "__main__":
    main()
