"""The simulator answers at the speed of a real HTTP server: no Nagle stall, running totals, keyset pages, flat JSON."""

import json
import sqlite3
import time
from dataclasses import replace
from decimal import Decimal

import pytest
import requests

from derouter.simulator.api import JsonNumber, encode_json, fixed_point
from derouter.simulator.store import Store, UsageRow, insert_usage_rows
from tests.simulator_helpers import call, create_key, decode, inject_usage, list_keys, simulator_in_thread

# Nagle's algorithm meeting a delayed ACK holds every kept-alive answer for ~40 ms; a normal
# round trip on loopback takes 1-5 ms. Counting the stalled trips is not a timing race: a
# stalled server makes (nearly) all of them slow, a busy machine only a few.
STALL_SECONDS = 0.035
ROUND_TRIPS = 50


def slow_round_trips(session, url, **kwargs):
    session.get(url, timeout=10, **kwargs).raise_for_status()  # opens the kept-alive connection
    slow = 0
    for _ in range(ROUND_TRIPS):
        started = time.perf_counter()
        session.get(url, timeout=10, **kwargs).raise_for_status()
        slow += time.perf_counter() - started >= STALL_SECONDS
    return slow


def test_kept_alive_round_trips_do_not_wait_for_a_delayed_ack(simulator):
    with requests.Session() as session:
        slow_health = slow_round_trips(session, f"{simulator.base_url}/_sim/health")
        slow_balance = slow_round_trips(session, f"{simulator.base_url}/balance",
                                        headers={"Authorization": f"Bearer {simulator.account_key}"})
    assert slow_health < ROUND_TRIPS // 4
    assert slow_balance < ROUND_TRIPS // 4


# -- running totals -----------------------------------------------------------------------------


def row(sub_key_id, created_at, cost=100, input_tokens=10, output_tokens=2):
    return UsageRow(request_id="req_x", sub_key_id=sub_key_id, model="m", input_tokens=input_tokens,
                    output_tokens=output_tokens, cache_read_tokens=0, cache_write_tokens=0, cost=cost,
                    duration_ms=1, created_at=created_at)


def windows(store, key_id):
    return store.usage_totals(key_id, {"today": "2025-06-11T00:00:00Z", "week": "2025-06-09T00:00:00Z",
                                       "month": "2025-06-01T00:00:00Z", "total": None})


def brute_force_windows(path, key_id):
    starts = {"today": "2025-06-11T00:00:00Z", "week": "2025-06-09T00:00:00Z", "month": "2025-06-01T00:00:00Z",
              "total": "0"}
    with sqlite3.connect(path) as conn:
        return {
            window: conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0),"
                " COALESCE(SUM(cost), 0) FROM usage_logs WHERE sub_key_id = ? AND created_at >= ?",
                (key_id, start),
            ).fetchone()
            for window, start in starts.items()
        }


MOMENTS = ["2025-06-11T23:59:59Z", "2025-06-11T00:00:00Z", "2025-06-10T23:59:59Z", "2025-06-09T00:00:00Z",
           "2025-06-08T23:59:59Z", "2025-06-01T00:00:00Z", "2025-05-31T23:59:59Z", "2024-01-01T08:00:00Z"]


def test_usage_windows_from_running_totals_equal_sums_over_the_log(tmp_path):
    store = Store(tmp_path / "state.sqlite3")
    with store.transaction() as conn:
        insert_usage_rows(conn, [row("key-a", moment, cost=100 + i, input_tokens=i) for i, moment in enumerate(MOMENTS)])
        insert_usage_rows(conn, [row("key-b", MOMENTS[0], cost=7), row(None, MOMENTS[0], cost=9)])
    with store.transaction() as conn:  # one more row on a day that already has some
        insert_usage_rows(conn, [row("key-a", "2025-06-11T12:00:00Z", cost=5, input_tokens=3)])

    assert windows(store, "key-a") == brute_force_windows(tmp_path / "state.sqlite3", "key-a")
    assert windows(store, "key-b")["total"] == (1, 10, 2, 7)
    assert windows(store, "key-none") == dict.fromkeys(("today", "week", "month", "total"), (0, 0, 0, 0))


def test_a_state_file_from_before_running_totals_gets_them_from_its_log(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    with store.transaction() as conn:
        insert_usage_rows(conn, [row("key-a", moment, cost=10 + i) for i, moment in enumerate(MOMENTS)])
        insert_usage_rows(conn, [row(None, MOMENTS[1], cost=3)])
        conn.execute("DROP TABLE usage_totals")
        conn.execute("DROP TABLE usage_daily")

    reopened = Store(path)

    assert windows(reopened, "key-a") == brute_force_windows(path, "key-a")
    assert reopened.usage_page(1, 100)[1] == len(MOMENTS) + 1
    assert reopened.usage_page(1, 100, account_only=True)[1] == 1


# -- keyset paging ---------------------------------------------------------------------------------


def offset_page(path, page, limit, sub_key_id):
    with sqlite3.connect(path) as conn:
        return [found[0] for found in conn.execute(
            "SELECT request_id FROM usage_logs WHERE sub_key_id = ? ORDER BY created_at DESC, id DESC"
            " LIMIT ? OFFSET ?", (sub_key_id, limit, (page - 1) * limit))]


def test_pages_read_from_the_last_row_served_equal_offset_pages_even_as_rows_arrive(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    # Many ties on created_at, inserted out of time order, so the (created_at, id) order matters.
    rows = [replace(row("key-a", f"2025-06-{1 + i % 5:02d}T12:00:00Z"), request_id=f"req_{i}") for i in range(53)]
    with store.transaction() as conn:
        insert_usage_rows(conn, rows)

    def walk(limit):
        pages = []
        for page in range(1, 100):
            found, total = store.usage_page(page, limit, "key-a")
            if not found:
                return pages, total
            pages.append([item.request_id for item in found])
            if page == 3:  # a newer row arrives mid-walk: later pages shift as OFFSET would shift them
                with store.transaction() as conn:
                    insert_usage_rows(conn, [replace(row("key-a", "2025-07-01T00:00:00Z"), request_id=f"new_{limit}")])
        return pages, total

    for limit in (7, 10, 7):
        pages, total = walk(limit)
        assert pages[3:] == [offset_page(path, page, limit, "key-a") for page in range(4, len(pages) + 1)]
        assert sum(map(len, pages)) == total  # pages 1-3 before the new row, the rest after it


def test_repeated_and_random_pages_equal_offset_pages(tmp_path):
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    with store.transaction() as conn:
        insert_usage_rows(conn, [replace(row("key-a", f"2025-06-{1 + i % 3:02d}T00:00:00Z"), request_id=f"req_{i}")
                                 for i in range(40)])
    for page in (1, 2, 2, 3, 1, 4, 2, 3, 5, 4):
        assert [item.request_id for item in store.usage_page(page, 9, "key-a")[0]] == offset_page(path, page, 9, "key-a")


def test_paging_over_http_keeps_the_pagination_object(simulator):
    created = create_key(simulator, budgetVirtual=10)
    for _ in range(25):
        inject_usage(simulator, "0.001", created["id"])
    seen = []
    for page in (1, 2, 3):
        body = decode(call(simulator, "GET", f"/sub-key/usage-logs?page={page}&limit=10", key=created["key"]))
        assert body["pagination"] == {"page": page, "limit": 10, "total": 25, "pages": 3}
        seen.extend(item["request_id"] for item in body["data"])
    assert len(seen) == len(set(seen)) == 25


# -- flat JSON --------------------------------------------------------------------------------------

VALUES = [
    {"a": "é\u0000\"\\</", "b": [1, -2, None, True, False, 2.5, [], {}], "c": {"d": (1, 2)}, 5: "x"},
    "plain",
    0,
    [[[{"deep": [None]}]]],
]


@pytest.mark.parametrize("value", VALUES)
def test_json_without_decimals_is_exactly_the_compact_json_dumps(value):
    assert encode_json(value) == json.dumps(value, separators=(",", ":"))


def test_decimals_and_fixed_point_amounts_are_plain_exact_numbers():
    value = {"a": Decimal("1.50"), "b": Decimal("0E-6"), "c": Decimal("1E+3"), "d": fixed_point(25_000_000, 6),
             "e": fixed_point(10_000, 6), "f": fixed_point(-1, 6), "g": fixed_point(15_000, 4), "h": JsonNumber("7")}
    assert encode_json(value) == '{"a":1.5,"b":0,"c":1000,"d":25,"e":0.01,"f":-0.000001,"g":1.5,"h":7}'


def test_a_heavy_key_is_seeded_with_its_rows_spend_and_totals_consistent(tmp_path):
    with simulator_in_thread(tmp_path, balance="100", seed_usage_rows=500) as private:
        heavy = next(item for item in list_keys(private) if item["label"] == "Load Test heavy")
        balance_body = decode(call(private, "GET", "/sub-key/balance", key=heavy["key"]))
        logs = decode(call(private, "GET", f"/usage-logs?subKeyId={heavy['id']}&limit=100&page=5"))
        account = decode(call(private, "GET", "/balance"))
    assert balance_body["usage"]["total"]["requests"] == 500
    assert heavy["spentVirtual"] == Decimal("0.005") and balance_body["spent"] == Decimal("0.01")  # multiplier 2
    assert logs["pagination"] == {"page": 5, "limit": 100, "total": 500, "pages": 5} and len(logs["data"]) == 100
    assert Decimal(account["balance"]) == Decimal("99.995")
