"""Contract of the simulated derouter upstream: every example and rule of shared/derouter-api.md.

Runs over real HTTP against the session's `simulator` (shared by all tests, so each test
makes its own keys and compares deltas of /balance), plus a few private simulators.
"""

import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import requests

from tests.conftest import start_simulator, stop_simulator
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
CREATE_FIELDS = {"id", "key", "keyId", "label", "budgetVirtual", "rpmLimit", "concurrentLimit",
                 "displayMultiplier", "createdAt"}
LOG_FIELDS = {"request_id", "model", "input_tokens", "output_tokens", "cache_read_tokens",
              "cache_write_tokens", "cost_usdc", "duration_ms", "created_at"}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
FOUR_PLACES = re.compile(r"-?\d+\.\d{4}")


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
    # Its speed is measured by bench/run, not asserted here.
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
