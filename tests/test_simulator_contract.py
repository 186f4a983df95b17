"""Contract of the simulated derouter upstream: every example and rule of shared/derouter-api.md.

Black-box over real HTTP (plain `requests` and the official `openai` SDK). Most tests use the
session's `simulator` (shared by all tests, so each makes its own keys and compares deltas of
/balance); the tests of absolute figures, such as the reference's examples, use simulators of
their own with a balance of 100: `fresh` (one per test) and `sim` (one per module).
"""

import re
import secrets
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openai
import pytest
import requests

from tests.helpers import start_simulator, stop_simulator
from tests.simulator_helpers import (
    balance,
    call,
    create_key,
    decode,
    inject_usage,
    list_keys,
    listed,
    simulator_in_thread,
)

ROOT = Path(__file__).resolve().parent.parent
LIST_ITEM_FIELDS = {"id", "label", "keyId", "key", "budgetVirtual", "spentVirtual", "remainingVirtual",
                    "rpmLimit", "concurrentLimit", "displayMultiplier", "createdAt"}
# What the reference promises a create answers; the simulator adds the multiplier and the time.
REFERENCE_CREATE_FIELDS = {"id", "key", "keyId", "label", "budgetVirtual", "rpmLimit", "concurrentLimit"}
CREATE_FIELDS = REFERENCE_CREATE_FIELDS | {"displayMultiplier", "createdAt"}
LOG_FIELDS = {"request_id", "model", "input_tokens", "output_tokens", "cache_read_tokens",
              "cache_write_tokens", "cost_usdc", "duration_ms", "created_at"}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
FOUR_PLACES = re.compile(r"-?\d+\.\d{4}")
INVALID_KEY_BODY = {"error": "Invalid API key"}
WINDOW_FIELDS = {"requests", "inputTokens", "outputTokens", "totalTokens", "cost"}
MESSAGES = [{"role": "user", "content": "Say hello"}]


def to_four_places(amount):
    return amount.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


# -- /balance -------------------------------------------------------------------------


def test_health_answers_without_a_key(simulator):
    response = requests.get(f"{simulator.base_url}/_sim/health", timeout=5)
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_balance_is_money_strings_with_four_decimals(simulator):
    body = call(simulator, "GET", "/balance").json()
    assert set(body) == {"balance", "locked_balance", "available"}
    for value in body.values():
        assert isinstance(value, str) and FOUR_PLACES.fullmatch(value)
    assert Decimal(body["available"]) == Decimal(body["balance"]) - Decimal(body["locked_balance"])


# -- creating and listing keys ---------------------------------------------------------


def test_create_key_answers_the_reference_shape_and_locks_its_budget(simulator):
    before = balance(simulator)
    created = create_key(simulator, budgetVirtual=25, label="Client B", rpmLimit=30)
    after = balance(simulator)

    assert set(created) == CREATE_FIELDS
    assert re.fullmatch(r"sk-ant-[A-Za-z0-9_-]{40}", created["key"])
    assert created["keyId"] == created["key"][:12] + "..."
    assert (created["label"], created["budgetVirtual"], created["rpmLimit"]) == ("Client B", 25, 30)
    assert (created["concurrentLimit"], created["displayMultiplier"]) == (5, 1)
    assert TIMESTAMP.fullmatch(created["createdAt"])
    assert after == (before[0], before[1] + 25, before[2] - 25)


def test_create_key_defaults_to_rpm_60_empty_label_and_multiplier_1(simulator):
    created = create_key(simulator)
    assert (created["rpmLimit"], created["label"], created["displayMultiplier"]) == (60, "", 1)


def test_list_carries_every_active_key_oldest_first_with_its_full_secret(simulator):
    first = create_key(simulator, label="List first")
    second = create_key(simulator, label="List second")
    items = list_keys(simulator)
    ids = [item["id"] for item in items]
    assert ids.index(first["id"]) < ids.index(second["id"])
    item = items[ids.index(first["id"])]
    assert set(item) == LIST_ITEM_FIELDS
    assert item["key"] == first["key"] and item["keyId"] == first["keyId"]
    assert (item["budgetVirtual"], item["spentVirtual"], item["remainingVirtual"]) == (5, 0, 5)


def test_money_accepts_numeric_strings_and_stays_exact(simulator):
    created = create_key(simulator, budgetVirtual="0.1", displayMultiplier="1.5")
    response = call(simulator, "PUT", f"/sub-keys/{created['id']}", json={"addBudgetVirtual": "0.2"})
    assert response.status_code == 200
    assert '"budgetVirtual":0.3,' in response.text  # a decimal, not 0.30000000000000004
    assert decode(response)["displayMultiplier"] == Decimal("1.5")


def test_money_accepts_a_json_number_with_six_decimal_places(simulator):
    response = call(simulator, "POST", "/sub-keys", data='{"budgetVirtual": 0.000001}')
    assert response.status_code == 200
    assert decode(response)["budgetVirtual"] == Decimal("0.000001")


INVALID_CREATE_BODIES = [
    pytest.param({}, id="missing-budget"),
    pytest.param({"budgetVirtual": 0}, id="zero"),
    pytest.param({"budgetVirtual": -1}, id="negative"),
    pytest.param({"budgetVirtual": "abc"}, id="non-numeric"),
    pytest.param({"budgetVirtual": True}, id="boolean"),
    pytest.param({"budgetVirtual": None}, id="null"),
    pytest.param({"budgetVirtual": "NaN"}, id="nan-string"),
    pytest.param({"budgetVirtual": "Infinity"}, id="infinity-string"),
    pytest.param({"budgetVirtual": "1.0000001"}, id="seven-decimals"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": 0}, id="rpm-zero"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": 61}, id="rpm-61"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": 1.5}, id="rpm-fraction"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": "thirty"}, id="rpm-non-numeric-string"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": True}, id="rpm-boolean"),
    pytest.param({"budgetVirtual": 1, "label": 7}, id="label-number"),
    pytest.param({"budgetVirtual": 1, "displayMultiplier": "0.99"}, id="multiplier-below-1"),
    pytest.param({"budgetVirtual": 1, "displayMultiplier": "1.00001"}, id="multiplier-five-decimals"),
    pytest.param({"budgetVirtual": 1, "displayMultiplier": False}, id="multiplier-boolean"),
]


@pytest.mark.parametrize("body", INVALID_CREATE_BODIES)
def test_invalid_create_body_is_refused_and_moves_no_money(simulator, body):
    before, keys_before = balance(simulator), len(list_keys(simulator))
    response = call(simulator, "POST", "/sub-keys", json=body)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert balance(simulator) == before
    assert len(list_keys(simulator)) == keys_before


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"text"', '{"budgetVirtual": NaN}',
                                 '{"budgetVirtual": Infinity}', ""])
def test_malformed_or_non_object_body_is_refused_and_moves_no_money(simulator, raw):
    before = balance(simulator)
    response = call(simulator, "POST", "/sub-keys", data=raw)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert balance(simulator) == before


def test_create_key_over_available_is_refused_and_moves_no_money(simulator):
    before = balance(simulator)
    response = call(simulator, "POST", "/sub-keys", json={"budgetVirtual": str(before[2] + Decimal("0.000001"))})
    assert response.status_code == 400
    assert "available" in response.json()["error"].lower()
    assert balance(simulator) == before


# -- updating keys ---------------------------------------------------------------------------


def test_update_changes_label_rpm_multiplier_and_adds_budget(simulator):
    created = create_key(simulator, budgetVirtual=10)
    before = balance(simulator)
    response = call(simulator, "PUT", f"/sub-keys/{created['id']}",
                    json={"label": "Renamed", "rpmLimit": 12, "addBudgetVirtual": 2.5, "displayMultiplier": 2})
    assert response.status_code == 200
    item = decode(response)
    assert set(item) == LIST_ITEM_FIELDS
    assert (item["label"], item["rpmLimit"], item["displayMultiplier"]) == ("Renamed", 12, 2)
    assert (item["budgetVirtual"], item["remainingVirtual"]) == (Decimal("12.5"), Decimal("12.5"))
    assert balance(simulator) == (before[0], before[1] + Decimal("2.5"), before[2] - Decimal("2.5"))
    assert listed(simulator, created["id"]) == item


@pytest.mark.parametrize("body", [{}, {"unknownField": 1}])
def test_update_with_no_known_field_changes_nothing(simulator, body):
    created = create_key(simulator, label="Unchanged")
    before_item, before = listed(simulator, created["id"]), balance(simulator)
    response = call(simulator, "PUT", f"/sub-keys/{created['id']}", json=body)
    assert response.status_code == 200
    assert decode(response) == before_item
    assert balance(simulator) == before


INVALID_UPDATE_BODIES = [
    pytest.param({"addBudgetVirtual": 0}, id="add-zero"),
    pytest.param({"addBudgetVirtual": -1}, id="add-negative"),
    pytest.param({"addBudgetVirtual": "x"}, id="add-non-numeric"),
    pytest.param({"addBudgetVirtual": True}, id="add-boolean"),
    pytest.param({"addBudgetVirtual": 1_000_000_000}, id="add-over-available"),
    pytest.param({"rpmLimit": 0}, id="rpm-zero"),
    pytest.param({"rpmLimit": "61"}, id="rpm-string-61"),
    pytest.param({"displayMultiplier": 0.5}, id="multiplier-below-1"),
    pytest.param({"label": ["list"]}, id="label-list"),
    # One bad field spoils the whole update: the valid label and budget must not be applied either.
    pytest.param({"label": "Should not stick", "addBudgetVirtual": 1, "rpmLimit": 99}, id="mixed"),
]


@pytest.mark.parametrize("body", INVALID_UPDATE_BODIES)
def test_invalid_update_is_refused_and_changes_nothing(simulator, body):
    created = create_key(simulator, label="Before update")
    before_item, before = listed(simulator, created["id"]), balance(simulator)
    response = call(simulator, "PUT", f"/sub-keys/{created['id']}", json=body)
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)
    assert listed(simulator, created["id"]) == before_item
    assert balance(simulator) == before


def test_add_budget_over_available_is_refused_and_moves_no_money(simulator):
    created = create_key(simulator)
    before = balance(simulator)
    response = call(simulator, "PUT", f"/sub-keys/{created['id']}",
                    json={"addBudgetVirtual": str(before[2] + 1)})
    assert response.status_code == 400
    assert balance(simulator) == before


# -- deleting keys ---------------------------------------------------------------------------


def test_delete_refunds_the_remaining_budget_and_hides_the_key(simulator):
    created = create_key(simulator, budgetVirtual=10)
    row = inject_usage(simulator, "3.25", created["id"])
    before = balance(simulator)

    response = call(simulator, "DELETE", f"/sub-keys/{created['id']}")

    assert response.status_code == 200
    assert decode(response) == {"success": True, "id": created["id"], "refundedVirtual": Decimal("6.75")}
    assert balance(simulator) == (before[0], before[1] - Decimal("6.75"), before[2] + Decimal("6.75"))
    assert listed(simulator, created["id"]) is None
    assert call(simulator, "PUT", f"/sub-keys/{created['id']}", json={"label": "x"}).status_code == 404
    assert call(simulator, "DELETE", f"/sub-keys/{created['id']}").status_code == 404
    assert call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}").status_code == 404
    assert call(simulator, "GET", "/sub-key/balance", key=created["key"]).status_code == 401
    account_rows = decode(call(simulator, "GET", "/usage-logs?limit=100"))["data"]
    assert row["request_id"] in {item["request_id"] for item in account_rows}


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", [
    ("GET", "/no-such-path"),
    ("PUT", "/sub-keys/00000000-0000-4000-8000-000000000000"),
    ("DELETE", "/sub-keys/00000000-0000-4000-8000-000000000000"),
    ("GET", "/usage-logs?subKeyId=00000000-0000-4000-8000-000000000000"),
])
def test_unknown_paths_and_ids_answer_404_with_an_error_body(simulator, method, path):
    response = call(simulator, method, path, json={"label": "x"})
    assert response.status_code == 404
    assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize("method, path", [("POST", "/balance"), ("DELETE", "/sub-keys"),
                                          ("GET", "/sub-keys/some-id"), ("POST", "/usage-logs")])
def test_wrong_method_on_a_known_path_answers_405(simulator, method, path):
    response = call(simulator, method, path)
    assert response.status_code == 405
    assert isinstance(response.json()["error"], str)


ACCOUNT_ENDPOINTS = [("GET", "/balance"), ("GET", "/sub-keys"), ("POST", "/sub-keys"),
                     ("PUT", "/sub-keys/some-id"), ("DELETE", "/sub-keys/some-id"), ("GET", "/usage-logs")]
CLIENT_ENDPOINTS = [("GET", "/sub-key/balance"), ("GET", "/sub-key/usage-logs")]


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS + CLIENT_ENDPOINTS)
def test_missing_or_wrong_key_answers_401(simulator, method, path):
    before = balance(simulator)
    missing = requests.request(method, simulator.base_url + path, json={"budgetVirtual": 1}, timeout=5)
    wrong = call(simulator, method, path, key="sk-ant-not-a-real-key", json={"budgetVirtual": 1})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert isinstance(response.json()["error"], str)
    assert balance(simulator) == before


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS)
def test_client_key_on_an_account_endpoint_answers_401(simulator, method, path):
    created = create_key(simulator)
    before = balance(simulator)
    assert call(simulator, method, path, key=created["key"], json={"budgetVirtual": 1}).status_code == 401
    assert balance(simulator) == before


@pytest.mark.parametrize("method, path", CLIENT_ENDPOINTS)
def test_account_key_on_a_client_endpoint_answers_401(simulator, method, path):
    assert call(simulator, method, path).status_code == 401


# -- what a Client Key sees: money times its displayMultiplier ----------------------------------


def test_client_balance_shows_the_reference_4x_example(simulator):
    created = create_key(simulator, budgetVirtual=50, displayMultiplier=4, label="Client A", rpmLimit=60)
    inject_usage(simulator, "12.5", created["id"], inputTokens=1000, outputTokens=500)

    body = decode(call(simulator, "GET", "/sub-key/balance", key=created["key"]))

    assert (body["budget"], body["spent"], body["remaining"]) == (200, 50, 150)
    assert (body["rpmLimit"], body["concurrentLimit"], body["label"]) == (60, 5, "Client A")
    assert body["usage"]["total"] == {"requests": 1, "inputTokens": 1000, "outputTokens": 500,
                                      "totalTokens": 1500, "cost": 50}
    item = listed(simulator, created["id"])
    assert (item["budgetVirtual"], item["spentVirtual"], item["remainingVirtual"]) == (50, Decimal("12.5"),
                                                                                      Decimal("37.5"))


def test_client_logs_show_the_reference_0_0023_request_as_0_0092(simulator):
    created = create_key(simulator, budgetVirtual=1, displayMultiplier=4)
    row = inject_usage(simulator, "0.0023", created["id"], inputTokens=1500, outputTokens=800)

    client_rows = decode(call(simulator, "GET", "/sub-key/usage-logs", key=created["key"]))["data"]
    account_rows = decode(call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"]

    assert set(client_rows[0]) == LOG_FIELDS | {"key_id"}
    assert (client_rows[0]["request_id"], client_rows[0]["cost_usdc"]) == (row["request_id"], Decimal("0.0092"))
    assert client_rows[0]["key_id"] == created["keyId"]
    assert set(account_rows[0]) == LOG_FIELDS  # no key identity in the account view
    assert account_rows[0]["cost_usdc"] == Decimal("0.0023")


def test_client_usage_windows_start_today_monday_and_the_first_utc(simulator):
    created = create_key(simulator, budgetVirtual=10)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    today = now.replace(hour=0, minute=0, second=0)
    starts = {"today": today, "week": today - timedelta(days=today.weekday()), "month": today.replace(day=1)}
    moments = [now, today - timedelta(hours=12), today - timedelta(days=9), today - timedelta(days=40)]
    for moment in moments:
        inject_usage(simulator, "0.01", created["id"], inputTokens=100, outputTokens=10,
                     createdAt=moment.strftime("%Y-%m-%dT%H:%M:%SZ"))

    usage = decode(call(simulator, "GET", "/sub-key/balance", key=created["key"]))["usage"]

    for window, start in starts.items():
        count = sum(moment >= start for moment in moments)
        assert usage[window] == {"requests": count, "inputTokens": 100 * count, "outputTokens": 10 * count,
                                 "totalTokens": 110 * count, "cost": Decimal("0.01") * count}
    assert usage["total"]["requests"] == 4


# -- usage logs --------------------------------------------------------------------------------


def test_usage_logs_come_newest_first_ties_by_latest_insert(simulator):
    created = create_key(simulator, budgetVirtual=10)
    early = inject_usage(simulator, "0.01", created["id"], createdAt="2025-06-01T12:00:00Z")
    tie_first = inject_usage(simulator, "0.02", created["id"], createdAt="2025-06-02T12:00:00Z")
    tie_second = inject_usage(simulator, "0.03", created["id"], createdAt="2025-06-02T12:00:00Z")
    rows = decode(call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"]
    assert [row["request_id"] for row in rows] == [tie_second["request_id"], tie_first["request_id"],
                                                   early["request_id"]]


def test_usage_logs_page_and_cap_the_limit_at_100(simulator):
    created = create_key(simulator, budgetVirtual=10)
    for _ in range(105):
        inject_usage(simulator, "0.001", created["id"])

    first = decode(call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}&limit=500"))
    second = decode(call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}&limit=500&page=2"))
    default = decode(call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}"))

    assert first["pagination"] == {"page": 1, "limit": 100, "total": 105, "pages": 2}
    assert (len(first["data"]), len(second["data"])) == (100, 5)
    assert default["pagination"] == {"page": 1, "limit": 20, "total": 105, "pages": 6}
    client = decode(call(simulator, "GET", "/sub-key/usage-logs?limit=1000&page=2", key=created["key"]))
    assert client["pagination"] == {"page": 2, "limit": 100, "total": 105, "pages": 2}


def test_usage_logs_without_rows_have_zero_pages(simulator):
    created = create_key(simulator)
    body = decode(call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}"))
    assert body == {"data": [], "pagination": {"page": 1, "limit": 20, "total": 0, "pages": 0}}


def test_account_only_logs_hold_only_account_key_requests(simulator):
    created = create_key(simulator)
    key_row = inject_usage(simulator, "0.01", created["id"])
    account_row = inject_usage(simulator, "0.01")
    rows = decode(call(simulator, "GET", "/usage-logs?accountOnly=true&limit=100"))["data"]
    ids = {row["request_id"] for row in rows}
    assert account_row["request_id"] in ids and key_row["request_id"] not in ids


@pytest.mark.parametrize("query", ["page=0", "page=abc", "page=-1", "limit=0", "limit=1.5", "accountOnly=maybe",
                                   "subKeyId={id}&accountOnly=true"])
def test_bad_usage_log_parameters_answer_400(simulator, query):
    created = create_key(simulator)
    response = call(simulator, "GET", "/usage-logs?" + query.format(id=created["id"]))
    assert response.status_code == 400
    assert isinstance(response.json()["error"], str)


@pytest.mark.parametrize("query", ["page=0", "limit=x"])
def test_bad_client_usage_log_parameters_answer_400(simulator, query):
    created = create_key(simulator)
    assert call(simulator, "GET", "/sub-key/usage-logs?" + query, key=created["key"]).status_code == 400


# -- accounting under concurrency and restarts -----------------------------------------------


def test_concurrent_creates_and_top_ups_lose_no_update(simulator):
    target = create_key(simulator, budgetVirtual=1)
    before = balance(simulator)

    def create(_):
        return call(simulator, "POST", "/sub-keys", json={"budgetVirtual": "1.0001"}).status_code

    def top_up(_):
        return call(simulator, "PUT", f"/sub-keys/{target['id']}", json={"addBudgetVirtual": "0.5"}).status_code

    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = [future.result() for future in
                    [pool.submit(create, n) for n in range(10)] + [pool.submit(top_up, n) for n in range(10)]]

    assert statuses == [200] * 20
    moved = 10 * Decimal("1.0001") + 10 * Decimal("0.5")
    assert balance(simulator) == (before[0], before[1] + moved, before[2] - moved)
    assert listed(simulator, target["id"])["budgetVirtual"] == 6


def test_state_survives_a_restart_and_ignores_the_new_starting_balance(tmp_path):
    state = tmp_path / "restart.sqlite3"
    first = start_simulator(state, "sk-ant-restart-account", balance="50")
    try:
        created = create_key(first, budgetVirtual=5, label="Survivor")
        row = inject_usage(first, "1.5", created["id"])
    finally:
        stop_simulator(first)

    second = start_simulator(state, "sk-ant-restart-account", balance="999")
    try:
        assert balance(second) == (Decimal("48.5"), Decimal("3.5"), Decimal("45"))
        assert listed(second, created["id"])["key"] == created["key"]
        rows = decode(call(second, "GET", "/usage-logs"))["data"]
        assert [item["request_id"] for item in rows] == [row["request_id"]]
    finally:
        stop_simulator(second)


# -- seeding and command line ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with simulator_in_thread(tmp_path_factory.mktemp("demo"), demo=True, seed_keys=5000) as private:
        yield private


def test_demo_seed_is_consistent_with_its_usage_rows(demo):
    keys = [item for item in list_keys(demo) if not item["label"].startswith("Load Test")]
    assert len(keys) == 8
    assert len({item["displayMultiplier"] for item in keys}) >= 4
    assert any(item["remainingVirtual"] < item["budgetVirtual"] * Decimal("0.05") for item in keys)
    total_cost = Decimal(0)
    page, pages = 1, 1
    while page <= pages:
        body = decode(call(demo, "GET", f"/usage-logs?limit=100&page={page}"))
        total_cost += sum(row["cost_usdc"] for row in body["data"])
        pages, page = body["pagination"]["pages"], page + 1
    assert body["pagination"]["total"] > 2000
    for item in keys[:2]:
        rows = decode(call(demo, "GET", f"/usage-logs?subKeyId={item['id']}&limit=100&page=1"))
        assert rows["pagination"]["total"] > 50
    account_balance, locked, _ = balance(demo)
    all_keys = list_keys(demo)
    # /balance shows four decimals; the sums are exact to the micro-dollar.
    assert locked == to_four_places(sum(item["remainingVirtual"] for item in all_keys))
    assert account_balance == to_four_places(Decimal(2500) - total_cost)
    assert sum(item["spentVirtual"] for item in keys) < total_cost  # the rest is account-level use


def test_five_thousand_keys_list_in_one_response(demo):
    keys = list_keys(demo)
    assert sum(item["label"].startswith("Load Test") for item in keys) == 5000
    assert keys[8]["label"] == "Load Test 0001"


def test_fault_control_is_absent_without_the_faults_flag(demo):
    assert requests.post(f"{demo.base_url}/_sim/faults", json={"mode": "error"}, timeout=5).status_code == 404
    assert requests.post(f"{demo.base_url}/_sim/usage", json={"cost": 1}, timeout=5).status_code == 404


def test_cli_announces_its_address_and_requires_an_account_key(tmp_path):
    command = [sys.executable, "-m", "derouter.simulator", "--port", "0", "--state", str(tmp_path / "cli.sqlite3")]
    missing = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=20,
                             env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode != 0 and "account key" in missing.stderr
    process = subprocess.Popen([*command, "--account-key", "sk-ant-cli"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert re.fullmatch(r"derouter simulator listening on http://127\.0\.0\.1:\d+\n", line)
    finally:
        process.terminate()
    assert process.wait(timeout=10) == 0


# -- fault injection ---------------------------------------------------------------------------


def test_slow_fault_still_performs_the_write_after_the_client_gave_up(simulator):
    simulator.inject("slow", path="/sub-keys", method="POST", delay=1.0)
    before = balance(simulator)
    with pytest.raises(requests.Timeout):
        requests.post(f"{simulator.base_url}/sub-keys", json={"budgetVirtual": 2, "label": "Slow write"},
                      headers={"Authorization": f"Bearer {simulator.account_key}"}, timeout=0.3)
    time.sleep(1.2)
    assert balance(simulator)[1] == before[1] + 2
    assert any(item["label"] == "Slow write" for item in list_keys(simulator))


def test_error_fault_answers_the_status_without_processing(simulator):
    simulator.inject("error", path="/sub-keys", method="POST", status=503)
    before = balance(simulator)
    response = call(simulator, "POST", "/sub-keys", json={"budgetVirtual": 2})
    assert response.status_code == 503
    assert response.json() == {"error": "Simulated server error"}
    assert balance(simulator) == before
    assert call(simulator, "POST", "/sub-keys", json={"budgetVirtual": 2}).status_code == 200  # times=1


def test_error_fault_defaults_to_500_and_every_path(simulator):
    simulator.inject("error")
    assert call(simulator, "GET", "/balance").status_code == 500
    assert call(simulator, "GET", "/balance").status_code == 200


def test_nonjson_fault_answers_200_html(simulator):
    simulator.inject("nonjson", path="/balance")
    response = call(simulator, "GET", "/balance")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_drop_fault_closes_the_connection_without_processing(simulator):
    simulator.inject("drop", path="/sub-keys", method="POST")
    before = balance(simulator)
    with pytest.raises(requests.ConnectionError):
        call(simulator, "POST", "/sub-keys", json={"budgetVirtual": 2})
    assert balance(simulator) == before


def test_fault_times_counts_matching_requests_and_zero_lasts_until_cleared(simulator):
    simulator.inject("error", path="/balance", method="GET", times=2)
    simulator.inject("error", path="/usage-logs", times=0)
    assert call(simulator, "GET", "/sub-keys").status_code == 200  # another path: untouched
    assert [call(simulator, "GET", "/balance").status_code for _ in range(3)] == [500, 500, 200]
    assert [call(simulator, "GET", "/usage-logs").status_code for _ in range(3)] == [500, 500, 500]
    simulator.clear_faults()
    assert call(simulator, "GET", "/usage-logs").status_code == 200


def test_fault_method_filter_spares_other_methods(simulator):
    simulator.inject("error", path="/sub-keys", method="POST")
    assert call(simulator, "GET", "/sub-keys").status_code == 200
    assert call(simulator, "POST", "/sub-keys", json={"budgetVirtual": 1}).status_code == 500


@pytest.mark.parametrize("rule", [{"mode": "explode"}, {"mode": "error", "times": -1},
                                  {"mode": "error", "status": 42}, {"mode": "slow", "delay": "soon"}])
def test_invalid_fault_rule_is_refused(simulator, rule):
    assert requests.post(f"{simulator.base_url}/_sim/faults", json=rule, timeout=5).status_code == 400


# ---------------------------------------------------------------- on accounts of their own, from a balance of 100


def launch(tmp_path_factory):
    account_key = "sk-ant-acct-" + secrets.token_urlsafe(24)
    return start_simulator(tmp_path_factory.mktemp("reference") / "state.sqlite3", account_key, balance="100")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    simulator = launch(tmp_path_factory)
    yield simulator
    stop_simulator(simulator)


@pytest.fixture
def fresh(tmp_path_factory):
    simulator = launch(tmp_path_factory)
    yield simulator
    stop_simulator(simulator)


def sdk(sim, key, **options):
    return openai.OpenAI(base_url=f"{sim.base_url}/openai/v1", api_key=key, timeout=20, **options)


def assert_error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["error"], (str, dict))


def is_number(value):
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


# -- the accounting, in absolute figures from a balance of 100 --------------------------------


def test_fresh_account_shows_100_as_four_decimal_strings(fresh):
    response = call(fresh, "GET", "/balance")
    assert response.status_code == 200
    assert response.json() == {"balance": "100.0000", "locked_balance": "0.0000", "available": "100.0000"}


def test_accounting_walk_through_from_the_reference_semantics(fresh):
    # Creating a key moves its budget from available to locked: the reference's /balance example.
    first = create_key(fresh, budgetVirtual=20, label="Client A")
    assert call(fresh, "GET", "/balance").json() == {
        "balance": "100.0000", "locked_balance": "20.0000", "available": "80.0000"}

    # Short of available: refused with 400, nothing moves.
    assert_error(call(fresh, "POST", "/sub-keys", json={"budgetVirtual": "80.0001"}), 400)
    assert balance(fresh) == (100, 20, 80)

    # Adding budget moves more into locked; more than available is refused.
    assert call(fresh, "PUT", f"/sub-keys/{first['id']}", json={"addBudgetVirtual": 5}).status_code == 200
    assert balance(fresh) == (100, 25, 75)
    assert_error(call(fresh, "PUT", f"/sub-keys/{first['id']}", json={"addBudgetVirtual": "75.01"}), 400)
    assert balance(fresh) == (100, 25, 75)
    assert listed(fresh, first["id"])["budgetVirtual"] == 25

    # The key's spending lowers both balance and locked; available stays.
    inject_usage(fresh, "12.5", first["id"])
    assert balance(fresh) == (Decimal("87.5"), Decimal("12.5"), 75)
    item = listed(fresh, first["id"])
    assert (item["budgetVirtual"], item["spentVirtual"], item["remainingVirtual"]) == (25, Decimal("12.5"),
                                                                                      Decimal("12.5"))

    # The Account Key's own requests spend from available.
    inject_usage(fresh, "0.0023")
    assert balance(fresh) == (Decimal("87.4977"), Decimal("12.5"), Decimal("74.9977"))

    # Deleting a key returns its remaining budget to available.
    assert call(fresh, "DELETE", f"/sub-keys/{first['id']}").status_code == 200
    assert balance(fresh) == (Decimal("87.4977"), 0, Decimal("87.4977"))

    # All that is available can be allocated, to the last cent.
    create_key(fresh, budgetVirtual="87.4977")
    assert call(fresh, "GET", "/balance").json()["available"] == "0.0000"


def test_balance_rounds_to_four_places_and_stays_consistent(fresh):
    inject_usage(fresh, "0.000051")
    body = call(fresh, "GET", "/balance").json()
    assert all(FOUR_PLACES.fullmatch(body[name]) for name in ("balance", "locked_balance", "available"))
    assert body["balance"] == "99.9999"
    assert Decimal(body["available"]) == Decimal(body["balance"]) - Decimal(body["locked_balance"])


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS + CLIENT_ENDPOINTS)
def test_missing_or_invalid_key_answers_401_invalid_api_key(sim, method, path):
    before = balance(sim)
    missing = requests.request(method, sim.base_url + path, json={"budgetVirtual": 1}, timeout=10)
    invalid = call(sim, method, path, key="sk-ant-invalid", json={"budgetVirtual": 1})
    not_bearer = requests.request(method, sim.base_url + path, json={"budgetVirtual": 1}, timeout=10,
                                  headers={"Authorization": sim.account_key})
    for response in (missing, invalid, not_bearer):
        assert response.status_code == 401
        assert response.json() == INVALID_KEY_BODY
    assert balance(sim) == before


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS)
def test_client_key_is_refused_on_account_endpoints(sim, method, path):
    key = create_key(sim, budgetVirtual="0.05")
    before = balance(sim)
    response = call(sim, method, path, key=key["key"], json={"budgetVirtual": 1})
    assert response.status_code == 401
    assert response.json() == INVALID_KEY_BODY
    assert balance(sim) == before


@pytest.mark.parametrize("method, path", CLIENT_ENDPOINTS)
def test_account_key_is_refused_on_client_endpoints(sim, method, path):
    response = call(sim, method, path)
    assert response.status_code == 401
    assert response.json() == INVALID_KEY_BODY


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(sim, scheme):
    response = requests.get(f"{sim.base_url}/balance", headers={"Authorization": f"{scheme} {sim.account_key}"},
                            timeout=10)
    assert response.status_code == 200


def test_deleted_client_key_is_refused(sim):
    key = create_key(sim, budgetVirtual="0.05")
    assert call(sim, "GET", "/sub-key/balance", key=key["key"]).status_code == 200
    call(sim, "DELETE", f"/sub-keys/{key['id']}")
    response = call(sim, "GET", "/sub-key/balance", key=key["key"])
    assert response.status_code == 401
    assert response.json() == INVALID_KEY_BODY


# -- GET /sub-keys and POST /sub-keys -------------------------------------------------------


def test_create_answers_the_reference_shape(sim):
    response = call(sim, "POST", "/sub-keys", json={"budgetVirtual": 25, "label": "Client B", "rpmLimit": 30})
    assert response.status_code == 200
    body = decode(response)
    assert REFERENCE_CREATE_FIELDS <= set(body)
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert (body["label"], body["budgetVirtual"], body["rpmLimit"], body["concurrentLimit"]) == ("Client B", 25, 30, 5)
    assert body["key"].startswith("sk-ant-") and body["keyId"].startswith("sk-ant-")
    assert body["keyId"].endswith("...") and body["key"].startswith(body["keyId"].removesuffix("..."))
    assert body["keyId"] != body["key"]


def test_list_carries_every_field_with_the_full_secret(fresh):
    sim = fresh
    created = create_key(sim, budgetVirtual=50, label="Client A")
    inject_usage(sim, "12.5", created["id"])
    response = call(sim, "GET", "/sub-keys")
    assert response.status_code == 200
    assert set(decode(response)) == {"subKeys"}
    item = listed(sim, created["id"])
    assert set(item) == LIST_ITEM_FIELDS
    assert (item["key"], item["keyId"], item["label"]) == (created["key"], created["keyId"], "Client A")
    assert (item["budgetVirtual"], item["spentVirtual"], item["remainingVirtual"]) == (50, Decimal("12.5"),
                                                                                      Decimal("37.5"))
    assert (item["rpmLimit"], item["concurrentLimit"], item["displayMultiplier"]) == (60, 5, 1)
    assert all(is_number(item[name]) for name in ("budgetVirtual", "spentVirtual", "remainingVirtual", "rpmLimit",
                                                    "concurrentLimit", "displayMultiplier"))
    assert TIMESTAMP.fullmatch(item["createdAt"])


def test_create_defaults_label_optional_rpm_60_multiplier_1(sim):
    created = create_key(sim, budgetVirtual="0.05")
    assert created["rpmLimit"] == 60
    item = listed(sim, created["id"])
    assert (item["rpmLimit"], item["displayMultiplier"], item["concurrentLimit"]) == (60, 1, 5)
    assert isinstance(item["label"], str)


def test_list_holds_every_active_key_and_only_those(sim):
    created = [create_key(sim, budgetVirtual="0.05", label=f"Many {n}") for n in range(25)]
    call(sim, "DELETE", f"/sub-keys/{created[0]['id']}")
    ids = {item["id"] for item in decode(call(sim, "GET", "/sub-keys"))["subKeys"]}
    assert {key["id"] for key in created[1:]} <= ids
    assert created[0]["id"] not in ids


def test_numbers_are_accepted_as_json_numbers_or_numeric_strings(sim):
    created = create_key(sim, budgetVirtual="2.5", rpmLimit="30", displayMultiplier="4")
    item = listed(sim, created["id"])
    assert (item["budgetVirtual"], item["rpmLimit"], item["displayMultiplier"]) == (Decimal("2.5"), 30, 4)
    before = balance(sim)
    response = call(sim, "PUT", f"/sub-keys/{created['id']}",
                   json={"addBudgetVirtual": "0.1", "rpmLimit": "12", "displayMultiplier": "1.5"})
    assert response.status_code == 200
    item = decode(response)
    assert (item["budgetVirtual"], item["rpmLimit"], item["displayMultiplier"]) == (Decimal("2.6"), 12, Decimal("1.5"))
    # Decimals, never floats: 0.1 moves exactly 0.1.
    assert balance(sim) == (before[0], before[1] + Decimal("0.1"), before[2] - Decimal("0.1"))


def test_a_long_label_is_kept_whole(sim):
    label = "Client with a very long name " * 6  # 174 characters: the reference sets no maximum
    created = create_key(sim, budgetVirtual="0.05", label=label)
    assert listed(sim, created["id"])["label"] == label


@pytest.mark.parametrize("body", [
    pytest.param({}, id="missing"),
    pytest.param({"budgetVirtual": 0}, id="zero"),
    pytest.param({"budgetVirtual": "0"}, id="zero-string"),
    pytest.param({"budgetVirtual": -5}, id="negative"),
    pytest.param({"budgetVirtual": "-5"}, id="negative-string"),
    pytest.param({"budgetVirtual": "ten"}, id="non-numeric"),
    pytest.param({"budgetVirtual": ""}, id="empty-string"),
    pytest.param({"budgetVirtual": None}, id="null"),
    pytest.param({"budgetVirtual": True}, id="boolean"),
    pytest.param({"budgetVirtual": [5]}, id="list"),
    pytest.param({"budgetVirtual": {"amount": 5}}, id="object"),
    pytest.param({"budgetVirtual": 1_000_000}, id="over-available"),
    pytest.param({"budgetVirtual": 1, "label": 12}, id="label-number"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": 0}, id="rpm-0"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": 61}, id="rpm-61"),
    pytest.param({"budgetVirtual": 1, "rpmLimit": "fast"}, id="rpm-text"),
])
def test_invalid_create_body_answers_400_and_moves_nothing(sim, body):
    before, count = balance(sim), len(decode(call(sim, "GET", "/sub-keys"))["subKeys"])
    response = call(sim, "POST", "/sub-keys", json=body)
    assert_error(response, 400)
    assert isinstance(response.json()["error"], str)
    assert balance(sim) == before
    assert len(decode(call(sim, "GET", "/sub-keys"))["subKeys"]) == count


@pytest.mark.parametrize("raw", ["{", "not json", "[]", "null", "42", '{"budgetVirtual": 5,}'])
def test_malformed_json_answers_400(sim, raw):
    response = call(sim, "POST", "/sub-keys", data=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400)


# -- PUT and DELETE /sub-keys/:id ------------------------------------------------------------


@pytest.mark.parametrize("rpm", [1, 60])
def test_put_accepts_rpm_limit_bounds(sim, rpm):
    created = create_key(sim, budgetVirtual="0.05")
    response = call(sim, "PUT", f"/sub-keys/{created['id']}", json={"rpmLimit": rpm})
    assert response.status_code == 200
    assert listed(sim, created["id"])["rpmLimit"] == rpm


def test_put_changes_label_and_multiplier(sim):
    created = create_key(sim, budgetVirtual="0.05", label="Old")
    response = call(sim, "PUT", f"/sub-keys/{created['id']}", json={"label": "New", "displayMultiplier": 1})
    assert response.status_code == 200
    item = listed(sim, created["id"])
    assert (item["label"], item["displayMultiplier"]) == ("New", 1)


@pytest.mark.parametrize("body", [
    pytest.param({"rpmLimit": 0}, id="rpm-0"),
    pytest.param({"rpmLimit": 61}, id="rpm-61"),
    pytest.param({"rpmLimit": -1}, id="rpm-negative"),
    pytest.param({"rpmLimit": 2.5}, id="rpm-fraction"),
    pytest.param({"rpmLimit": "lots"}, id="rpm-text"),
    pytest.param({"displayMultiplier": 0.99}, id="multiplier-below-1"),
    pytest.param({"displayMultiplier": 0}, id="multiplier-0"),
    pytest.param({"displayMultiplier": "x"}, id="multiplier-text"),
    pytest.param({"addBudgetVirtual": 0}, id="add-0"),
    pytest.param({"addBudgetVirtual": -1}, id="add-negative"),
    pytest.param({"addBudgetVirtual": "x"}, id="add-text"),
    pytest.param({"addBudgetVirtual": 1_000_000}, id="add-over-available"),
    pytest.param({"label": 5}, id="label-number"),
    pytest.param({"label": "Kept?", "rpmLimit": 99}, id="one-bad-field-spoils-all"),
])
def test_invalid_put_answers_400_and_changes_nothing(sim, body):
    created = create_key(sim, budgetVirtual="0.05", label="Before")
    before_item, before = listed(sim, created["id"]), balance(sim)
    response = call(sim, "PUT", f"/sub-keys/{created['id']}", json=body)
    assert_error(response, 400)
    assert listed(sim, created["id"]) == before_item
    assert balance(sim) == before


def test_put_with_malformed_json_answers_400(sim):
    created = create_key(sim, budgetVirtual="0.05")
    assert_error(call(sim, "PUT", f"/sub-keys/{created['id']}", data="{oops"), 400)


@pytest.mark.parametrize("kwargs", [{}, {"json": {}}, {"json": {"label": None, "rpmLimit": None}}])
def test_put_without_fields_changes_nothing(sim, kwargs):
    created = create_key(sim, budgetVirtual="0.05", label="Same", rpmLimit=20)
    before_item = listed(sim, created["id"])
    response = call(sim, "PUT", f"/sub-keys/{created['id']}", **kwargs)
    assert response.status_code == 200
    assert listed(sim, created["id"]) == before_item


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_unknown_id_answers_404_with_an_error_body(sim, method):
    response = call(sim, method, f"/sub-keys/{uuid.uuid4()}", json={"label": "x"})
    assert_error(response, 404)
    assert isinstance(response.json()["error"], str)


def test_delete_twice_answers_404_the_second_time(sim):
    created = create_key(sim, budgetVirtual="0.3")
    before = balance(sim)
    assert call(sim, "DELETE", f"/sub-keys/{created['id']}").status_code == 200
    after = (before[0], before[1] - Decimal("0.3"), before[2] + Decimal("0.3"))
    assert balance(sim) == after
    assert_error(call(sim, "DELETE", f"/sub-keys/{created['id']}"), 404)
    assert balance(sim) == after


def test_trailing_slashes_are_accepted(sim):
    assert call(sim, "GET", "/balance/").status_code == 200
    assert call(sim, "GET", "/sub-keys/").status_code == 200
    created = decode(call(sim, "POST", "/sub-keys/", json={"budgetVirtual": 1}))
    assert call(sim, "PUT", f"/sub-keys/{created['id']}/", json={"label": "slash"}).status_code == 200
    assert call(sim, "GET", "/usage-logs/").status_code == 200


# -- GET /usage-logs ---------------------------------------------------------------------------


def test_usage_logs_shape_and_defaults(sim):
    inject_usage(sim, "0.0023", inputTokens=1500, outputTokens=800)
    response = call(sim, "GET", "/usage-logs")
    assert response.status_code == 200
    body = decode(response)
    assert set(body) == {"data", "pagination"}
    assert set(body["pagination"]) == {"page", "limit", "total", "pages"}
    pagination = body["pagination"]
    assert (pagination["page"], pagination["limit"]) == (1, 20)
    assert pagination["pages"] == -(-pagination["total"] // 20)
    row = body["data"][0]
    assert set(row) == LOG_FIELDS  # no key identity in the account view
    assert (row["input_tokens"], row["output_tokens"], row["cost_usdc"]) == (1500, 800, Decimal("0.0023"))
    assert row["model"] == "claude-sonnet-4-6-20250514"
    assert row["request_id"].startswith("req_") and TIMESTAMP.fullmatch(row["created_at"])
    assert all(isinstance(row[name], int) for name in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                        "cache_write_tokens", "duration_ms"))


def test_usage_logs_page_limit_and_cap(sim):
    for _ in range(3):
        inject_usage(sim, "0.0001")
    capped = decode(call(sim, "GET", "/usage-logs?limit=500"))
    assert capped["pagination"]["limit"] == 100
    assert len(capped["data"]) == min(100, capped["pagination"]["total"])
    first, second = (decode(call(sim, "GET", f"/usage-logs?limit=2&page={page}")) for page in (1, 2))
    assert (first["pagination"]["page"], second["pagination"]["page"], first["pagination"]["limit"]) == (1, 2, 2)
    assert len(first["data"]) == len(second["data"]) == 2
    assert not {r["request_id"] for r in first["data"]} & {r["request_id"] for r in second["data"]}
    beyond = decode(call(sim, "GET", "/usage-logs?page=100000000000000000000000"))
    assert beyond["data"] == []


def test_usage_logs_come_newest_first(sim):
    key = create_key(sim, budgetVirtual=1)
    older = inject_usage(sim, "0.0001", key["id"], createdAt="2025-06-01T12:00:00Z")
    newest = inject_usage(sim, "0.0002", key["id"])
    oldest = inject_usage(sim, "0.0003", key["id"], createdAt="2025-01-01T00:00:00Z")
    rows = decode(call(sim, "GET", f"/usage-logs?subKeyId={key['id']}"))["data"]
    assert [row["request_id"] for row in rows] == [r["request_id"] for r in (newest, older, oldest)]
    client_rows = decode(call(sim, "GET", "/sub-key/usage-logs", key=key["key"]))["data"]
    assert [row["request_id"] for row in client_rows] == [r["request_id"] for r in (newest, older, oldest)]


def test_usage_logs_filter_by_sub_key_and_account_only(sim):
    first, second = create_key(sim, budgetVirtual="0.05"), create_key(sim, budgetVirtual="0.05")
    mine = inject_usage(sim, "0.001", first["id"])
    theirs = inject_usage(sim, "0.001", second["id"])
    account = inject_usage(sim, "0.001")
    rows = decode(call(sim, "GET", f"/usage-logs?subKeyId={first['id']}&limit=100"))["data"]
    assert [row["request_id"] for row in rows] == [mine["request_id"]]
    for flag in ("true", "1", "True"):
        ids = {row["request_id"] for row in decode(call(sim, "GET", f"/usage-logs?accountOnly={flag}&limit=100"))["data"]}
        assert account["request_id"] in ids and not ids & {mine["request_id"], theirs["request_id"]}
    everything = {row["request_id"]
                  for row in decode(call(sim, "GET", "/usage-logs?accountOnly=false&limit=100"))["data"]}
    assert {mine["request_id"], theirs["request_id"], account["request_id"]} <= everything


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=x", "limit=0", "limit=-5", "limit=x",
                                   "accountOnly=maybe"])
def test_bad_usage_log_parameters_answer_400_on_a_fresh_account(sim, query):
    assert_error(call(sim, "GET", f"/usage-logs?{query}"), 400)


def test_blank_parameters_count_as_not_given(sim):
    body = decode(call(sim, "GET", "/usage-logs?page=&limit=&accountOnly=&subKeyId="))
    assert (body["pagination"]["page"], body["pagination"]["limit"]) == (1, 20)


def test_unknown_sub_key_id_filter_answers_404(sim):
    assert_error(call(sim, "GET", f"/usage-logs?subKeyId={uuid.uuid4()}"), 404)


# -- what a Client Key sees ------------------------------------------------------------------


def test_client_balance_shows_the_reference_example_times_4(fresh):
    sim = fresh
    created = create_key(sim, budgetVirtual=50, label="Client A", displayMultiplier=4)
    inject_usage(sim, "12.5", created["id"], inputTokens=1000, outputTokens=500)
    response = call(sim, "GET", "/sub-key/balance", key=created["key"])
    assert response.status_code == 200
    body = decode(response)
    assert set(body) >= {"budget", "spent", "remaining", "rpmLimit", "concurrentLimit", "label", "usage"}
    assert (body["budget"], body["spent"], body["remaining"]) == (200, 50, 150)
    assert (body["rpmLimit"], body["concurrentLimit"], body["label"]) == (60, 5, "Client A")
    assert set(body["usage"]) == {"today", "week", "month", "total"}
    for window in body["usage"].values():
        assert set(window) == WINDOW_FIELDS
        assert window == {"requests": 1, "inputTokens": 1000, "outputTokens": 500, "totalTokens": 1500, "cost": 50}
    # The Account Key sees the real money.
    item = listed(sim, created["id"])
    assert (item["budgetVirtual"], item["spentVirtual"], item["remainingVirtual"]) == (50, Decimal("12.5"),
                                                                                      Decimal("37.5"))


def test_client_logs_show_0_0023_as_0_0092(sim):
    created = create_key(sim, budgetVirtual="0.05", displayMultiplier=4)
    row = inject_usage(sim, "0.0023", created["id"], inputTokens=1500, outputTokens=800)
    client = decode(call(sim, "GET", "/sub-key/usage-logs", key=created["key"]))
    assert set(client) == {"data", "pagination"}
    assert (client["pagination"]["page"], client["pagination"]["limit"], client["pagination"]["total"],
            client["pagination"]["pages"]) == (1, 20, 1, 1)
    client_row = client["data"][0]
    assert set(client_row) == LOG_FIELDS | {"key_id"}
    assert (client_row["request_id"], client_row["cost_usdc"], client_row["key_id"]) == (
        row["request_id"], Decimal("0.0092"), created["keyId"])
    account_row = decode(call(sim, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"][0]
    assert account_row["cost_usdc"] == Decimal("0.0023")


def test_client_view_follows_a_multiplier_change(sim):
    created = create_key(sim, budgetVirtual="0.1")
    inject_usage(sim, "0.01", created["id"])
    assert decode(call(sim, "GET", "/sub-key/balance", key=created["key"]))["spent"] == Decimal("0.01")
    call(sim, "PUT", f"/sub-keys/{created['id']}", json={"displayMultiplier": "2.5"})
    body = decode(call(sim, "GET", "/sub-key/balance", key=created["key"]))
    assert (body["budget"], body["spent"], body["remaining"]) == (Decimal("0.25"), Decimal("0.025"), Decimal("0.225"))


def test_client_usage_logs_page_and_cap(sim):
    created = create_key(sim, budgetVirtual="0.05")
    for _ in range(3):
        inject_usage(sim, "0.0001", created["id"])
    body = decode(call(sim, "GET", "/sub-key/usage-logs?limit=2&page=2", key=created["key"]))
    assert (body["pagination"]["page"], body["pagination"]["limit"], body["pagination"]["total"],
            body["pagination"]["pages"]) == (2, 2, 3, 2)
    assert len(body["data"]) == 1
    assert decode(call(sim, "GET", "/sub-key/usage-logs?limit=1000", key=created["key"]))["pagination"]["limit"] == 100
    assert_error(call(sim, "GET", "/sub-key/usage-logs?page=0", key=created["key"]), 400)


# -- inference ----------------------------------------------------------------------------------


def test_models_list_through_the_sdk_with_either_key(sim):
    for key in (create_key(sim, budgetVirtual="0.05")["key"], sim.account_key):
        ids = {model.id for model in sdk(sim, key).models.list()}
        assert "claude-sonnet-4-6" in ids


def test_chat_completion_through_the_sdk_is_logged_and_charged(sim):
    created = create_key(sim, budgetVirtual=1, displayMultiplier=4)
    before = balance(sim)
    completion = sdk(sim, created["key"]).chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    assert completion.choices[0].message.content
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    rows = decode(call(sim, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["input_tokens"], row["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert row["cost_usdc"] > 0
    item = listed(sim, created["id"])
    assert item["spentVirtual"] == row["cost_usdc"]
    after = balance(sim)
    assert after[2] == before[2]  # a key's spending comes out of locked, not available
    assert before[0] - after[0] == pytest.approx(row["cost_usdc"], abs=Decimal("0.0001"))

    client_row = decode(call(sim, "GET", "/sub-key/usage-logs", key=created["key"]))["data"][0]
    assert (client_row["request_id"], client_row["cost_usdc"]) == (row["request_id"], row["cost_usdc"] * 4)
    today = decode(call(sim, "GET", "/sub-key/balance", key=created["key"]))["usage"]["today"]
    assert (today["requests"], today["inputTokens"], today["outputTokens"]) == (1, usage.prompt_tokens,
                                                                                usage.completion_tokens)


def test_account_key_inference_spends_from_available(sim):
    before = balance(sim)
    sdk(sim, sim.account_key).chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    after = balance(sim)
    assert after[1] == before[1] and after[0] < before[0] and after[2] < before[2]
    assert decode(call(sim, "GET", "/usage-logs?accountOnly=true"))["data"][0]["cost_usdc"] > 0


def test_past_the_rpm_limit_the_sdk_gets_429_at_once(sim):
    client = sdk(sim, create_key(sim, budgetVirtual="0.05", rpmLimit=2)["key"])  # the SDK's default retries stay on
    for _ in range(2):
        client.chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    assert raised.value.status_code == 429
    # The SDK raises at once instead of sleeping out Retry-After and retrying.
    assert raised.value.response.headers["x-should-retry"] == "false"
    assert "error" in raised.value.response.json()


def test_a_spent_budget_is_refused(sim):
    created = create_key(sim, budgetVirtual="0.01")
    inject_usage(sim, "0.01", created["id"])
    with pytest.raises(openai.APIStatusError) as raised:
        sdk(sim, created["key"]).chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    assert 400 <= raised.value.status_code < 500
    assert "error" in raised.value.response.json()


def test_inference_refuses_an_invalid_key(sim):
    with pytest.raises(openai.AuthenticationError):
        sdk(sim, "sk-ant-invalid").chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    response = requests.get(f"{sim.base_url}/openai/v1/models", timeout=10)
    assert_error(response, 401)


# -- HTTP edges: errors are always JSON -------------------------------------------------------


def test_unknown_path_answers_404_json(sim):
    assert_error(call(sim, "GET", "/no-such-endpoint"), 404)


def test_unknown_method_answers_json(sim):
    response = call(sim, "PROPFIND", "/balance")
    assert response.status_code in (405, 501)
    assert isinstance(response.json()["error"], str)


def test_head_answers_like_get_without_a_body(sim):
    response = requests.head(f"{sim.base_url}/balance", headers={"Authorization": f"Bearer {sim.account_key}"},
                             timeout=10)
    assert response.status_code == 200 and response.content == b""
    assert requests.head(f"{sim.base_url}/balance", timeout=10).status_code == 401


def test_options_lists_the_allowed_methods(sim):
    response = requests.options(f"{sim.base_url}/sub-keys", timeout=10)
    assert response.status_code == 204
    assert {"GET", "POST"} <= {method.strip() for method in response.headers["Allow"].split(",")}


def test_server_error_is_500_with_an_error_body(sim):
    requests.post(f"{sim.base_url}/_sim/faults", json={"mode": "error", "path": "/balance"}, timeout=10)
    try:
        response = call(sim, "GET", "/balance")
    finally:
        requests.delete(f"{sim.base_url}/_sim/faults", timeout=10)
    assert_error(response, 500)
    assert isinstance(response.json()["error"], str)


def test_chunked_request_body_is_read(sim):
    response = call(sim, "POST", "/sub-keys", data=iter([b'{"budgetVirtual": ', b'1, "label": "Chunked"}']))
    assert response.status_code == 200
    assert decode(response)["label"] == "Chunked"
    assert call(sim, "GET", "/balance").status_code == 200  # the connection is still in step


def test_sim_usage_accepts_the_log_rows_field_names(sim):
    created = create_key(sim, budgetVirtual="0.05")
    response = requests.post(f"{sim.base_url}/_sim/usage", timeout=10, json={
        "sub_key_id": created["id"], "cost_usdc": 0.0023, "input_tokens": 1500, "output_tokens": 800,
        "created_at": "2025-06-01T12:00:00Z"})
    assert response.status_code == 200, response.text
    row = decode(call(sim, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"][0]
    assert (row["cost_usdc"], row["input_tokens"], row["output_tokens"], row["created_at"]) == (
        Decimal("0.0023"), 1500, 800, "2025-06-01T12:00:00Z")
