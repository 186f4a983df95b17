"""Black-box check of the simulator against every statement of /work/shared/derouter-api.md.

Independent of test_simulator_contract.py: plain `requests` and the official `openai` SDK against
simulators this module starts itself on fresh state with a balance of 100, so absolute figures
such as the reference's examples can be asserted. `fresh` gives a test its own simulator where
the exact account figures matter; `sim` is shared by the rest, which compare deltas.
"""

import json
import re
import secrets
import time
import uuid
from decimal import Decimal

import openai
import pytest
import requests

from tests.helpers import start_simulator, stop_simulator

FOUR_PLACES = re.compile(r"-?\d+\.\d{4}")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
INVALID_KEY_BODY = {"error": "Invalid API key"}
LIST_FIELDS = {"id", "label", "keyId", "key", "budgetVirtual", "spentVirtual", "remainingVirtual", "rpmLimit",
               "concurrentLimit", "displayMultiplier", "createdAt"}
CREATE_FIELDS = {"id", "key", "keyId", "label", "budgetVirtual", "rpmLimit", "concurrentLimit"}
LOG_FIELDS = {"request_id", "model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
              "cost_usdc", "duration_ms", "created_at"}
WINDOW_FIELDS = {"requests", "inputTokens", "outputTokens", "totalTokens", "cost"}
MESSAGES = [{"role": "user", "content": "Say hello"}]
ACCOUNT_ENDPOINTS = [("GET", "/balance"), ("GET", "/sub-keys"), ("POST", "/sub-keys"), ("PUT", "/sub-keys/x"),
                     ("DELETE", "/sub-keys/x"), ("GET", "/usage-logs")]
CLIENT_ENDPOINTS = [("GET", "/sub-key/balance"), ("GET", "/sub-key/usage-logs")]


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


def exact(response):
    """The JSON body with every non-integer number as a Decimal."""
    return json.loads(response.text, parse_float=Decimal)


def api(sim, method, path, key=None, **kwargs):
    headers = {"Authorization": f"Bearer {key or sim.account_key}", **kwargs.pop("headers", {})}
    return requests.request(method, sim.base_url + path, headers=headers, timeout=10, **kwargs)


def figures(sim):
    """(balance, locked_balance, available) as Decimals."""
    body = api(sim, "GET", "/balance").json()
    return tuple(Decimal(body[name]) for name in ("balance", "locked_balance", "available"))


def new_key(sim, **fields):
    response = api(sim, "POST", "/sub-keys", json={"budgetVirtual": "0.05", **fields})
    assert response.status_code == 200, response.text
    return exact(response)


def listed(sim, key_id):
    return next((item for item in exact(api(sim, "GET", "/sub-keys"))["subKeys"] if item["id"] == key_id), None)


def spend(sim, cost, sub_key_id=None, **fields):
    """Record a usage row at an exact real cost through the simulator's test control."""
    body = {"cost": str(cost), **fields, **({"subKeyId": sub_key_id} if sub_key_id else {})}
    response = requests.post(f"{sim.base_url}/_sim/usage", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return exact(response)["row"]


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
    response = api(fresh, "GET", "/balance")
    assert response.status_code == 200
    assert response.json() == {"balance": "100.0000", "locked_balance": "0.0000", "available": "100.0000"}


def test_accounting_walk_through_from_the_reference_semantics(fresh):
    # Creating a key moves its budget from available to locked: the reference's /balance example.
    first = new_key(fresh, budgetVirtual=20, label="Client A")
    assert api(fresh, "GET", "/balance").json() == {
        "balance": "100.0000", "locked_balance": "20.0000", "available": "80.0000"}

    # Short of available: refused with 400, nothing moves.
    assert_error(api(fresh, "POST", "/sub-keys", json={"budgetVirtual": "80.0001"}), 400)
    assert figures(fresh) == (100, 20, 80)

    # Adding budget moves more into locked; more than available is refused.
    assert api(fresh, "PUT", f"/sub-keys/{first['id']}", json={"addBudgetVirtual": 5}).status_code == 200
    assert figures(fresh) == (100, 25, 75)
    assert_error(api(fresh, "PUT", f"/sub-keys/{first['id']}", json={"addBudgetVirtual": "75.01"}), 400)
    assert figures(fresh) == (100, 25, 75)
    assert listed(fresh, first["id"])["budgetVirtual"] == 25

    # The key's spending lowers both balance and locked; available stays.
    spend(fresh, "12.5", first["id"])
    assert figures(fresh) == (Decimal("87.5"), Decimal("12.5"), 75)
    item = listed(fresh, first["id"])
    assert (item["budgetVirtual"], item["spentVirtual"], item["remainingVirtual"]) == (25, Decimal("12.5"),
                                                                                      Decimal("12.5"))

    # The Account Key's own requests spend from available.
    spend(fresh, "0.0023")
    assert figures(fresh) == (Decimal("87.4977"), Decimal("12.5"), Decimal("74.9977"))

    # Deleting a key returns its remaining budget to available.
    assert api(fresh, "DELETE", f"/sub-keys/{first['id']}").status_code == 200
    assert figures(fresh) == (Decimal("87.4977"), 0, Decimal("87.4977"))

    # All that is available can be allocated, to the last cent.
    new_key(fresh, budgetVirtual="87.4977")
    assert api(fresh, "GET", "/balance").json()["available"] == "0.0000"


def test_balance_rounds_to_four_places_and_stays_consistent(fresh):
    spend(fresh, "0.000051")
    body = api(fresh, "GET", "/balance").json()
    assert all(FOUR_PLACES.fullmatch(body[name]) for name in ("balance", "locked_balance", "available"))
    assert body["balance"] == "99.9999"
    assert Decimal(body["available"]) == Decimal(body["balance"]) - Decimal(body["locked_balance"])


# -- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS + CLIENT_ENDPOINTS)
def test_missing_or_invalid_key_answers_401_invalid_api_key(sim, method, path):
    before = figures(sim)
    missing = requests.request(method, sim.base_url + path, json={"budgetVirtual": 1}, timeout=10)
    invalid = api(sim, method, path, key="sk-ant-invalid", json={"budgetVirtual": 1})
    not_bearer = requests.request(method, sim.base_url + path, json={"budgetVirtual": 1}, timeout=10,
                                  headers={"Authorization": sim.account_key})
    for response in (missing, invalid, not_bearer):
        assert response.status_code == 401
        assert response.json() == INVALID_KEY_BODY
    assert figures(sim) == before


@pytest.mark.parametrize("method, path", ACCOUNT_ENDPOINTS)
def test_client_key_is_refused_on_account_endpoints(sim, method, path):
    key = new_key(sim)
    before = figures(sim)
    response = api(sim, method, path, key=key["key"], json={"budgetVirtual": 1})
    assert response.status_code == 401
    assert response.json() == INVALID_KEY_BODY
    assert figures(sim) == before


@pytest.mark.parametrize("method, path", CLIENT_ENDPOINTS)
def test_account_key_is_refused_on_client_endpoints(sim, method, path):
    response = api(sim, method, path)
    assert response.status_code == 401
    assert response.json() == INVALID_KEY_BODY


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_bearer_scheme_is_case_insensitive(sim, scheme):
    response = requests.get(f"{sim.base_url}/balance", headers={"Authorization": f"{scheme} {sim.account_key}"},
                            timeout=10)
    assert response.status_code == 200


def test_deleted_client_key_is_refused(sim):
    key = new_key(sim)
    assert api(sim, "GET", "/sub-key/balance", key=key["key"]).status_code == 200
    api(sim, "DELETE", f"/sub-keys/{key['id']}")
    response = api(sim, "GET", "/sub-key/balance", key=key["key"])
    assert response.status_code == 401
    assert response.json() == INVALID_KEY_BODY


# -- GET /sub-keys and POST /sub-keys -------------------------------------------------------


def test_create_answers_the_reference_shape(sim):
    response = api(sim, "POST", "/sub-keys", json={"budgetVirtual": 25, "label": "Client B", "rpmLimit": 30})
    assert response.status_code == 200
    body = exact(response)
    assert CREATE_FIELDS <= set(body)
    assert str(uuid.UUID(body["id"])) == body["id"]
    assert (body["label"], body["budgetVirtual"], body["rpmLimit"], body["concurrentLimit"]) == ("Client B", 25, 30, 5)
    assert body["key"].startswith("sk-ant-") and body["keyId"].startswith("sk-ant-")
    assert body["keyId"].endswith("...") and body["key"].startswith(body["keyId"].removesuffix("..."))
    assert body["keyId"] != body["key"]


def test_list_carries_every_field_with_the_full_secret(fresh):
    sim = fresh
    created = new_key(sim, budgetVirtual=50, label="Client A")
    spend(sim, "12.5", created["id"])
    response = api(sim, "GET", "/sub-keys")
    assert response.status_code == 200
    assert set(exact(response)) == {"subKeys"}
    item = listed(sim, created["id"])
    assert set(item) == LIST_FIELDS
    assert (item["key"], item["keyId"], item["label"]) == (created["key"], created["keyId"], "Client A")
    assert (item["budgetVirtual"], item["spentVirtual"], item["remainingVirtual"]) == (50, Decimal("12.5"),
                                                                                      Decimal("37.5"))
    assert (item["rpmLimit"], item["concurrentLimit"], item["displayMultiplier"]) == (60, 5, 1)
    assert all(is_number(item[name]) for name in ("budgetVirtual", "spentVirtual", "remainingVirtual", "rpmLimit",
                                                    "concurrentLimit", "displayMultiplier"))
    assert TIMESTAMP.fullmatch(item["createdAt"])


def test_create_defaults_label_optional_rpm_60_multiplier_1(sim):
    created = new_key(sim)
    assert created["rpmLimit"] == 60
    item = listed(sim, created["id"])
    assert (item["rpmLimit"], item["displayMultiplier"], item["concurrentLimit"]) == (60, 1, 5)
    assert isinstance(item["label"], str)


def test_list_holds_every_active_key_and_only_those(sim):
    created = [new_key(sim, label=f"Many {n}") for n in range(25)]
    api(sim, "DELETE", f"/sub-keys/{created[0]['id']}")
    ids = {item["id"] for item in exact(api(sim, "GET", "/sub-keys"))["subKeys"]}
    assert {key["id"] for key in created[1:]} <= ids
    assert created[0]["id"] not in ids


def test_numbers_are_accepted_as_json_numbers_or_numeric_strings(sim):
    created = new_key(sim, budgetVirtual="2.5", rpmLimit="30", displayMultiplier="4")
    item = listed(sim, created["id"])
    assert (item["budgetVirtual"], item["rpmLimit"], item["displayMultiplier"]) == (Decimal("2.5"), 30, 4)
    before = figures(sim)
    response = api(sim, "PUT", f"/sub-keys/{created['id']}",
                   json={"addBudgetVirtual": "0.1", "rpmLimit": "12", "displayMultiplier": "1.5"})
    assert response.status_code == 200
    item = exact(response)
    assert (item["budgetVirtual"], item["rpmLimit"], item["displayMultiplier"]) == (Decimal("2.6"), 12, Decimal("1.5"))
    # Decimals, never floats: 0.1 moves exactly 0.1.
    assert figures(sim) == (before[0], before[1] + Decimal("0.1"), before[2] - Decimal("0.1"))


def test_a_long_label_is_kept_whole(sim):
    label = "Client with a very long name " * 6  # 174 characters: the reference sets no maximum
    created = new_key(sim, label=label)
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
    before, count = figures(sim), len(exact(api(sim, "GET", "/sub-keys"))["subKeys"])
    response = api(sim, "POST", "/sub-keys", json=body)
    assert_error(response, 400)
    assert isinstance(response.json()["error"], str)
    assert figures(sim) == before
    assert len(exact(api(sim, "GET", "/sub-keys"))["subKeys"]) == count


@pytest.mark.parametrize("raw", ["{", "not json", "[]", "null", "42", '{"budgetVirtual": 5,}'])
def test_malformed_json_answers_400(sim, raw):
    response = api(sim, "POST", "/sub-keys", data=raw, headers={"Content-Type": "application/json"})
    assert_error(response, 400)


# -- PUT and DELETE /sub-keys/:id ------------------------------------------------------------


@pytest.mark.parametrize("rpm", [1, 60])
def test_put_accepts_rpm_limit_bounds(sim, rpm):
    created = new_key(sim)
    response = api(sim, "PUT", f"/sub-keys/{created['id']}", json={"rpmLimit": rpm})
    assert response.status_code == 200
    assert listed(sim, created["id"])["rpmLimit"] == rpm


def test_put_changes_label_and_multiplier(sim):
    created = new_key(sim, label="Old")
    response = api(sim, "PUT", f"/sub-keys/{created['id']}", json={"label": "New", "displayMultiplier": 1})
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
    created = new_key(sim, label="Before")
    before_item, before = listed(sim, created["id"]), figures(sim)
    response = api(sim, "PUT", f"/sub-keys/{created['id']}", json=body)
    assert_error(response, 400)
    assert listed(sim, created["id"]) == before_item
    assert figures(sim) == before


def test_put_with_malformed_json_answers_400(sim):
    created = new_key(sim)
    assert_error(api(sim, "PUT", f"/sub-keys/{created['id']}", data="{oops"), 400)


@pytest.mark.parametrize("kwargs", [{}, {"json": {}}, {"json": {"label": None, "rpmLimit": None}}])
def test_put_without_fields_changes_nothing(sim, kwargs):
    created = new_key(sim, label="Same", rpmLimit=20)
    before_item = listed(sim, created["id"])
    response = api(sim, "PUT", f"/sub-keys/{created['id']}", **kwargs)
    assert response.status_code == 200
    assert listed(sim, created["id"]) == before_item


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_unknown_id_answers_404_with_an_error_body(sim, method):
    response = api(sim, method, f"/sub-keys/{uuid.uuid4()}", json={"label": "x"})
    assert_error(response, 404)
    assert isinstance(response.json()["error"], str)


def test_delete_twice_answers_404_the_second_time(sim):
    created = new_key(sim, budgetVirtual="0.3")
    before = figures(sim)
    assert api(sim, "DELETE", f"/sub-keys/{created['id']}").status_code == 200
    after = (before[0], before[1] - Decimal("0.3"), before[2] + Decimal("0.3"))
    assert figures(sim) == after
    assert_error(api(sim, "DELETE", f"/sub-keys/{created['id']}"), 404)
    assert figures(sim) == after


def test_trailing_slashes_are_accepted(sim):
    assert api(sim, "GET", "/balance/").status_code == 200
    assert api(sim, "GET", "/sub-keys/").status_code == 200
    created = exact(api(sim, "POST", "/sub-keys/", json={"budgetVirtual": 1}))
    assert api(sim, "PUT", f"/sub-keys/{created['id']}/", json={"label": "slash"}).status_code == 200
    assert api(sim, "GET", "/usage-logs/").status_code == 200


# -- GET /usage-logs ---------------------------------------------------------------------------


def test_usage_logs_shape_and_defaults(sim):
    spend(sim, "0.0023", inputTokens=1500, outputTokens=800)
    response = api(sim, "GET", "/usage-logs")
    assert response.status_code == 200
    body = exact(response)
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
        spend(sim, "0.0001")
    capped = exact(api(sim, "GET", "/usage-logs?limit=500"))
    assert capped["pagination"]["limit"] == 100
    assert len(capped["data"]) == min(100, capped["pagination"]["total"])
    first, second = (exact(api(sim, "GET", f"/usage-logs?limit=2&page={page}")) for page in (1, 2))
    assert (first["pagination"]["page"], second["pagination"]["page"], first["pagination"]["limit"]) == (1, 2, 2)
    assert len(first["data"]) == len(second["data"]) == 2
    assert not {r["request_id"] for r in first["data"]} & {r["request_id"] for r in second["data"]}
    beyond = exact(api(sim, "GET", "/usage-logs?page=100000000000000000000000"))
    assert beyond["data"] == []


def test_usage_logs_come_newest_first(sim):
    key = new_key(sim, budgetVirtual=1)
    older = spend(sim, "0.0001", key["id"], createdAt="2025-06-01T12:00:00Z")
    newest = spend(sim, "0.0002", key["id"])
    oldest = spend(sim, "0.0003", key["id"], createdAt="2025-01-01T00:00:00Z")
    rows = exact(api(sim, "GET", f"/usage-logs?subKeyId={key['id']}"))["data"]
    assert [row["request_id"] for row in rows] == [r["request_id"] for r in (newest, older, oldest)]
    client_rows = exact(api(sim, "GET", "/sub-key/usage-logs", key=key["key"]))["data"]
    assert [row["request_id"] for row in client_rows] == [r["request_id"] for r in (newest, older, oldest)]


def test_usage_logs_filter_by_sub_key_and_account_only(sim):
    first, second = new_key(sim), new_key(sim)
    mine = spend(sim, "0.001", first["id"])
    theirs = spend(sim, "0.001", second["id"])
    account = spend(sim, "0.001")
    rows = exact(api(sim, "GET", f"/usage-logs?subKeyId={first['id']}&limit=100"))["data"]
    assert [row["request_id"] for row in rows] == [mine["request_id"]]
    for flag in ("true", "1", "True"):
        ids = {row["request_id"] for row in exact(api(sim, "GET", f"/usage-logs?accountOnly={flag}&limit=100"))["data"]}
        assert account["request_id"] in ids and not ids & {mine["request_id"], theirs["request_id"]}
    everything = {row["request_id"]
                  for row in exact(api(sim, "GET", "/usage-logs?accountOnly=false&limit=100"))["data"]}
    assert {mine["request_id"], theirs["request_id"], account["request_id"]} <= everything


@pytest.mark.parametrize("query", ["page=0", "page=-1", "page=x", "limit=0", "limit=-5", "limit=x",
                                   "accountOnly=maybe"])
def test_bad_usage_log_parameters_answer_400(sim, query):
    assert_error(api(sim, "GET", f"/usage-logs?{query}"), 400)


def test_blank_parameters_count_as_not_given(sim):
    body = exact(api(sim, "GET", "/usage-logs?page=&limit=&accountOnly=&subKeyId="))
    assert (body["pagination"]["page"], body["pagination"]["limit"]) == (1, 20)


def test_unknown_sub_key_id_filter_answers_404(sim):
    assert_error(api(sim, "GET", f"/usage-logs?subKeyId={uuid.uuid4()}"), 404)


# -- what a Client Key sees ------------------------------------------------------------------


def test_client_balance_shows_the_reference_example_times_4(fresh):
    sim = fresh
    created = new_key(sim, budgetVirtual=50, label="Client A", displayMultiplier=4)
    spend(sim, "12.5", created["id"], inputTokens=1000, outputTokens=500)
    response = api(sim, "GET", "/sub-key/balance", key=created["key"])
    assert response.status_code == 200
    body = exact(response)
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
    created = new_key(sim, displayMultiplier=4)
    row = spend(sim, "0.0023", created["id"], inputTokens=1500, outputTokens=800)
    client = exact(api(sim, "GET", "/sub-key/usage-logs", key=created["key"]))
    assert set(client) == {"data", "pagination"}
    assert (client["pagination"]["page"], client["pagination"]["limit"], client["pagination"]["total"],
            client["pagination"]["pages"]) == (1, 20, 1, 1)
    client_row = client["data"][0]
    assert set(client_row) == LOG_FIELDS | {"key_id"}
    assert (client_row["request_id"], client_row["cost_usdc"], client_row["key_id"]) == (
        row["request_id"], Decimal("0.0092"), created["keyId"])
    account_row = exact(api(sim, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"][0]
    assert account_row["cost_usdc"] == Decimal("0.0023")


def test_client_view_follows_a_multiplier_change(sim):
    created = new_key(sim, budgetVirtual="0.1")
    spend(sim, "0.01", created["id"])
    assert exact(api(sim, "GET", "/sub-key/balance", key=created["key"]))["spent"] == Decimal("0.01")
    api(sim, "PUT", f"/sub-keys/{created['id']}", json={"displayMultiplier": "2.5"})
    body = exact(api(sim, "GET", "/sub-key/balance", key=created["key"]))
    assert (body["budget"], body["spent"], body["remaining"]) == (Decimal("0.25"), Decimal("0.025"), Decimal("0.225"))


def test_client_usage_logs_page_and_cap(sim):
    created = new_key(sim)
    for _ in range(3):
        spend(sim, "0.0001", created["id"])
    body = exact(api(sim, "GET", "/sub-key/usage-logs?limit=2&page=2", key=created["key"]))
    assert (body["pagination"]["page"], body["pagination"]["limit"], body["pagination"]["total"],
            body["pagination"]["pages"]) == (2, 2, 3, 2)
    assert len(body["data"]) == 1
    assert exact(api(sim, "GET", "/sub-key/usage-logs?limit=1000", key=created["key"]))["pagination"]["limit"] == 100
    assert_error(api(sim, "GET", "/sub-key/usage-logs?page=0", key=created["key"]), 400)


# -- inference ----------------------------------------------------------------------------------


def test_models_list_through_the_sdk_with_either_key(sim):
    for key in (new_key(sim)["key"], sim.account_key):
        ids = {model.id for model in sdk(sim, key).models.list()}
        assert "claude-sonnet-4-6" in ids


def test_chat_completion_through_the_sdk_is_logged_and_charged(sim):
    created = new_key(sim, budgetVirtual=1, displayMultiplier=4)
    before = figures(sim)
    completion = sdk(sim, created["key"]).chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    assert completion.choices[0].message.content
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    rows = exact(api(sim, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"]
    assert len(rows) == 1
    row = rows[0]
    assert (row["input_tokens"], row["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert row["cost_usdc"] > 0
    item = listed(sim, created["id"])
    assert item["spentVirtual"] == row["cost_usdc"]
    after = figures(sim)
    assert after[2] == before[2]  # a key's spending comes out of locked, not available
    assert before[0] - after[0] == pytest.approx(row["cost_usdc"], abs=Decimal("0.0001"))

    client_row = exact(api(sim, "GET", "/sub-key/usage-logs", key=created["key"]))["data"][0]
    assert (client_row["request_id"], client_row["cost_usdc"]) == (row["request_id"], row["cost_usdc"] * 4)
    today = exact(api(sim, "GET", "/sub-key/balance", key=created["key"]))["usage"]["today"]
    assert (today["requests"], today["inputTokens"], today["outputTokens"]) == (1, usage.prompt_tokens,
                                                                                usage.completion_tokens)


def test_account_key_inference_spends_from_available(sim):
    before = figures(sim)
    sdk(sim, sim.account_key).chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    after = figures(sim)
    assert after[1] == before[1] and after[0] < before[0] and after[2] < before[2]
    assert exact(api(sim, "GET", "/usage-logs?accountOnly=true"))["data"][0]["cost_usdc"] > 0


def test_past_the_rpm_limit_the_sdk_gets_429_at_once(sim):
    client = sdk(sim, new_key(sim, rpmLimit=2)["key"])  # the SDK's default retries stay on
    for _ in range(2):
        client.chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES)
    assert time.monotonic() - started < 5
    assert raised.value.status_code == 429
    assert "error" in raised.value.response.json()


def test_a_spent_budget_is_refused(sim):
    created = new_key(sim, budgetVirtual="0.01")
    spend(sim, "0.01", created["id"])
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
    assert_error(api(sim, "GET", "/no-such-endpoint"), 404)


def test_unknown_method_answers_json(sim):
    response = api(sim, "PROPFIND", "/balance")
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
        response = api(sim, "GET", "/balance")
    finally:
        requests.delete(f"{sim.base_url}/_sim/faults", timeout=10)
    assert_error(response, 500)
    assert isinstance(response.json()["error"], str)


def test_chunked_request_body_is_read(sim):
    response = api(sim, "POST", "/sub-keys", data=iter([b'{"budgetVirtual": ', b'1, "label": "Chunked"}']))
    assert response.status_code == 200
    assert exact(response)["label"] == "Chunked"
    assert api(sim, "GET", "/balance").status_code == 200  # the connection is still in step


def test_sim_usage_accepts_the_log_rows_field_names(sim):
    created = new_key(sim)
    response = requests.post(f"{sim.base_url}/_sim/usage", timeout=10, json={
        "sub_key_id": created["id"], "cost_usdc": 0.0023, "input_tokens": 1500, "output_tokens": 800,
        "created_at": "2025-06-01T12:00:00Z"})
    assert response.status_code == 200, response.text
    row = exact(api(sim, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"][0]
    assert (row["cost_usdc"], row["input_tokens"], row["output_tokens"], row["created_at"]) == (
        Decimal("0.0023"), 1500, 800, "2025-06-01T12:00:00Z")
