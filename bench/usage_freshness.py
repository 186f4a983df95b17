"""Measure usage freshness at scale: N keys that each made a request, one worker pass, derouter far away.

    .venv/bin/python bench/usage_freshness.py [--keys 2000] [--latency-ms 150] [--jitter-ms 0] [--runs 3]
        [--in-flight 16] [--sequential-keys 200]

A simulator with --seed-keys N keys and --latency-ms of delay on every answer (threads: concurrent
requests overlap, as they would over a network). The mirror (a SQLite file of its own, as the
worker runs it) is filled once (snapshot and a first pass). Then, each run: every key makes one
request (a usage row written into the simulator's state, dated now, its spend moved), and the
worker's periodic task runs (mirror.passes.refresh_mirror: the key snapshot, then one usage pass).
Measured from the moment the requests were made: when the last row was visible in the mirror,
the pass's own length, and its lag as the Sync page shows it (request made -> row visible).

For comparison, the same at --in-flight 1 (one scope after another, as before the pass) over
--sequential-keys keys, and the keys/s of both.
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
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="freshness-bench-"))
os.environ["DATABASE_URL"] = f"sqlite:///{WORK / 'default.sqlite3'}"
os.environ["REDIS_URL"] = ""
os.environ["HUEY_IMMEDIATE"] = "true"
os.environ["LOG_LEVEL"] = "WARNING"
os.environ["DEROUTER_READ_TIMEOUT"] = "120"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from derouter.simulator import pricing  # noqa: E402
from derouter.simulator.store import UsageRow, insert_usage_rows, iso_utc  # noqa: E402
from mirror import passes  # noqa: E402
from mirror.models import KeySnapshot, SyncPass, UsageRecord  # noqa: E402
from tests.helpers import start_simulator, stop_simulator  # noqa: E402


def use_database(path):
    connection.close()
    connection.settings_dict["NAME"] = str(path)
    call_command("migrate", verbosity=0)


def every_key_makes_a_request(state_path, sub_key_ids, rng):
    """One usage row per key, dated now, its spend moved: what a request through derouter leaves behind."""
    price = pricing.MODELS["claude-sonnet-4-6"]
    made_at = datetime.now(UTC)
    rows = []
    for sub_key_id in sub_key_ids:
        input_tokens, output_tokens = rng.randint(100, 5000), rng.randint(10, 1500)
        rows.append(UsageRow(
            request_id=f"req_{secrets.token_hex(12)}", sub_key_id=sub_key_id, model=price.logged_name,
            input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=0, cache_write_tokens=0,
            cost=pricing.cost_micro(price, input_tokens, output_tokens), duration_ms=rng.randint(300, 9000),
            created_at=iso_utc(made_at),
        ))
    with sqlite3.connect(state_path) as state:
        insert_usage_rows(state, rows)
        state.executemany("UPDATE sub_keys SET spent = spent + ? WHERE id = ?", [(row.cost, row.sub_key_id) for row in rows])
    # The rows are dated to the second: the lag is counted from then.
    return made_at.replace(microsecond=0), len(rows)


def one_run(state_path, sub_key_ids, rng):
    before = UsageRecord.objects.count()
    made_at, made = every_key_makes_a_request(state_path, sub_key_ids, rng)
    started = time.monotonic()
    passes.refresh_mirror.call_local()
    seconds = time.monotonic() - started
    last = SyncPass.objects.first()
    newest_visible = UsageRecord.objects.order_by("-mirrored_at").values_list("mirrored_at", flat=True).first()
    assert UsageRecord.objects.count() - before == made, (UsageRecord.objects.count() - before, made)
    return {
        "task seconds": seconds,
        "pass seconds": last.seconds,
        "lag seconds": last.lag_seconds,
        "last row visible after": (newest_visible - made_at).total_seconds(),
        "keys per second": made / last.seconds,
        "rate limited": last.rate_limited,
    }


def measure(keys, latency_ms, jitter_ms, runs, in_flight, label):
    account_key = "sk-ant-bench-" + secrets.token_urlsafe(16)
    state_path = WORK / f"sim-{label}.sqlite3"
    simulator = start_simulator(
        state_path, account_key, "1000000",
        ["--seed-keys", str(keys), "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)],
    )
    try:
        settings.DEROUTER_API_BASE = simulator.base_url
        settings.DEROUTER_ACCOUNT_KEY = simulator.account_key
        settings.MIRROR_SYNC_MAX_IN_FLIGHT = in_flight
        use_database(WORK / f"mirror-{label}.sqlite3")
        started = time.monotonic()
        passes.refresh_mirror.call_local()  # the snapshot and every key's first sync
        print(f"  {label}: first pass over {keys} keys {time.monotonic() - started:.1f} s", file=sys.stderr)
        sub_key_ids = list(KeySnapshot.objects.active().values_list("sub_key_id", flat=True))
        rng = random.Random(keys)
        results = []
        for run in range(runs):
            results.append(one_run(state_path, sub_key_ids, rng))
            print(f"  {label} run {run + 1}: " + ", ".join(f"{name} {value:.1f}" for name, value in results[-1].items()
                                                           if value is not None), file=sys.stderr)
        return len(sub_key_ids), results
    finally:
        stop_simulator(simulator)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=2000)
    parser.add_argument("--latency-ms", type=int, default=150)
    parser.add_argument("--jitter-ms", type=int, default=0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=None, help="default: MIRROR_SYNC_MAX_IN_FLIGHT")
    parser.add_argument("--sequential-keys", type=int, default=200, help="0: skip the one-at-a-time comparison")
    options = parser.parse_args()
    in_flight = options.in_flight or settings.MIRROR_SYNC_MAX_IN_FLIGHT
    print(f"working in {WORK}", file=sys.stderr)
    table = [("pass", in_flight, *measure(options.keys, options.latency_ms, options.jitter_ms, options.runs,
                                          in_flight, "pass"))]
    if options.sequential_keys:
        table.append(("one scope at a time", 1, *measure(options.sequential_keys, options.latency_ms,
                                                          options.jitter_ms, options.runs, 1, "sequential")))
    median = statistics.median
    print(f"\n| {options.latency_ms} ms latency | keys, each made a request | in flight | last row visible after"
          " (from the requests) | pass | lag shown | keys/s |")
    print("|---|---|---|---|---|---|---|")
    for name, limit, keys, results in table:
        visible = median(result["last row visible after"] for result in results)
        print(f"| {name} | {keys:,} | {limit} | {visible:.1f} s | {median(r['pass seconds'] for r in results):.1f} s"
              f" | {median(r['lag seconds'] for r in results):.1f} s"
              f" | {median(r['keys per second'] for r in results):.1f} |")
    print(f"\nmedians of {options.runs} runs; goal: every row mirrored within 30 s of the pass starting"
          " at 2,000 keys and 150 ms")


if __name__ == "__main__":
    main()
