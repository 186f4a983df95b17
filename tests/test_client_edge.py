"""The client survives Cloudflare in front of derouter and answers shaped unlike the reference's."""

import json
import threading
from datetime import datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from derouter import client, conventions
from mirror import snapshot as mirror_snapshot
from mirror.models import KeySnapshot


def faults_left(simulator):
    return requests.get(f"{simulator.base_url}/_sim/faults", timeout=5).json()["faults"]


def budget_of(sub_key_id):
    return next(key.budget for key in client.list_sub_keys() if key.id == sub_key_id)


# -- Cloudflare's pages are never a verdict on a key ------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_an_html_401_or_403_is_derouter_unreachable_not_a_refused_key(simulator, status):
    simulator.inject("cloudflare", status=status, path="/balance", times=5)
    with pytest.raises(client.EdgeUnavailable) as raised:
        client.get_balance()
    assert not isinstance(raised.value, client.AuthFailed)
    assert "Cloudflare" in raised.value.message


def test_an_html_403_on_a_client_key_call_is_not_a_refused_key(simulator):
    created = client.create_sub_key(Decimal("1"), label="Edge customer")
    simulator.inject("cloudflare", status=403, path="/sub-key/balance", times=5)
    with pytest.raises(client.EdgeUnavailable):
        client.get_client_balance(created.secret.reveal())


def test_derouters_own_401_still_says_the_key_was_refused():
    with pytest.raises(client.AuthFailed):
        client.get_client_balance("sk-ant-not-a-key")


@pytest.mark.parametrize("status", [520, 521, 522, 523, 524])
def test_a_read_is_retried_past_cloudflares_5xx(simulator, status):
    simulator.inject("cloudflare", status=status, path="/balance", times=1)
    assert client.get_balance().available >= 0
    assert faults_left(simulator) == []


def test_a_read_gives_up_after_the_bounded_retries(simulator, settings):
    simulator.inject("cloudflare", status=524, path="/balance", times=10)
    with pytest.raises(client.Unavailable):
        client.get_balance()
    assert faults_left(simulator)[0]["times"] == 10 - (1 + settings.DEROUTER_GET_RETRIES)


def test_a_read_waits_out_a_short_cloudflare_429(simulator):
    simulator.inject("cloudflare", status=429, retry_after=1, path="/sub-keys", times=1)
    assert isinstance(client.list_sub_keys(), list)
    assert faults_left(simulator) == []


def test_a_long_retry_after_is_not_waited_out(simulator):
    simulator.inject("cloudflare", status=429, retry_after=600, path="/sub-keys", times=5)
    with pytest.raises(client.RateLimited) as raised:
        client.list_sub_keys()
    assert raised.value.from_edge and raised.value.retry_after == 600
    assert faults_left(simulator)[0]["times"] == 4  # asked once, not again


def test_a_524_after_an_applied_write_is_an_unknown_outcome_and_not_retried(simulator):
    created = client.create_sub_key(Decimal("2"), label="Late answer")
    simulator.inject("applied-then-cloudflare", status=524, path="/sub-keys/", method="PUT")
    with pytest.raises(client.OutcomeUnknown) as raised:
        client.update_sub_key(created.id, add_budget=Decimal("1"))
    assert "may or may not" in raised.value.message
    assert budget_of(created.id) == Decimal("3")  # applied once: derouter did it, we did not resend


def test_a_cloudflare_403_on_a_write_was_not_applied_and_says_unreachable(simulator):
    created = client.create_sub_key(Decimal("2"), label="Blocked write")
    simulator.inject("cloudflare", status=403, path="/sub-keys/", method="PUT")
    with pytest.raises(client.EdgeUnavailable):
        client.update_sub_key(created.id, add_budget=Decimal("1"))
    assert budget_of(created.id) == Decimal("2")


# -- writes answered 201/204, with or without a body -----------------------------------------


@pytest.fixture
def answering(private_simulators):
    """answering(**played) -> a private simulator playing those conventions, wired into the settings."""
    return private_simulators


@pytest.mark.parametrize("write_answers", ["created", "empty"])
def test_writes_answered_201_or_204_succeed(answering, write_answers):
    answering(write_answers=write_answers)
    created = client.create_sub_key(Decimal("5"), label=f"Answered {write_answers}")
    assert created.secret.reveal().startswith("sk-ant-") and created.budget == Decimal("5")
    assert client.update_sub_key(created.id, add_budget=Decimal("1")) is None  # 204: read back
    assert budget_of(created.id) == Decimal("6")
    client.delete_sub_key(created.id)
    assert all(key.id != created.id for key in client.list_sub_keys())


def test_a_bodiless_create_that_cannot_be_told_apart_is_an_unknown_outcome(answering):
    answering(write_answers="empty")
    client.create_sub_key(Decimal("5"), label="Twin")
    client.create_sub_key(Decimal("7"), label="Twin")
    with pytest.raises(client.OutcomeUnknown):
        client.create_sub_key(Decimal("5"), label="Twin")


# -- amounts in the customer's units ----------------------------------------------------------


def customer_units_stored(**found):
    conventions.store(conventions.Conventions(amounts=conventions.CUSTOMER, probed_at=datetime.now(timezone.utc),
                                              base_url="http://sim", simulated=True, **found))


@pytest.mark.django_db
def test_customer_units_are_converted_both_ways(answering):
    answering(amounts="customer")
    customer_units_stored()
    before = client.get_balance().available
    created = client.create_sub_key(customer_budget=Decimal("100"), display_multiplier=Decimal("1.25"), label="Cu")
    assert client.get_balance().available == before - 80
    assert created.budget == Decimal("80") and created.display_multiplier == Decimal("1.25")
    assert client.get_client_balance(created.secret.reveal()).budget == Decimal("100")

    client.update_sub_key(created.id, add_budget=Decimal("40"), key_multiplier=Decimal("1.25"))
    assert client.get_balance().available == before - 120
    assert budget_of(created.id) == Decimal("120")
    client.reclaim_budget(created.id, Decimal("20"), key_multiplier=Decimal("1.25"))
    assert client.get_balance().available == before - 100


@pytest.mark.django_db
def test_customer_units_without_the_keys_multiplier_are_refused_before_sending(answering):
    answering(amounts="customer")
    customer_units_stored()
    created = client.create_sub_key(Decimal("8"), display_multiplier=Decimal("1.25"), label="Needs x")
    with pytest.raises(ValueError, match="multiplier"):
        client.update_sub_key(created.id, add_budget=Decimal("1"))
    assert budget_of(created.id) == Decimal("8")


@pytest.mark.django_db
def test_a_marked_up_create_is_refused_where_customer_units_meet_no_multiplier_at_creation(answering):
    answering(amounts="customer", multiplier_at_creation="ignored")
    customer_units_stored(multiplier=conventions.AFTER_CREATION)
    before = client.get_balance().available
    with pytest.raises(client.Rejected):
        client.create_sub_key(Decimal("10"), display_multiplier=Decimal("1.3"), label="Never")
    assert client.get_balance().available == before


def test_reclaim_moves_budget_back():
    created = client.create_sub_key(Decimal("5"), label="Reclaimed")
    before = client.get_balance().available
    client.reclaim_budget(created.id, Decimal("2"))
    assert client.get_balance().available == before + 2
    assert budget_of(created.id) == Decimal("3")


def test_create_sends_the_multiplier_in_the_post():
    created = client.create_sub_key(Decimal("1"), label="Marked up", display_multiplier=Decimal("1.3"))
    assert created.display_multiplier == Decimal("1.3")
    assert client.get_client_balance(created.secret.reveal()).budget == Decimal("1.3")


# -- answers of shapes the reference does not show ------------------------------------------------


class CannedUpstream(BaseHTTPRequestHandler):
    """Answers each path with the JSON body the test put in ``bodies``."""

    bodies = {}

    def do_GET(self):
        body = json.dumps(self.bodies[self.path.split("?")[0]]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def canned(settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), CannedUpstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.DEROUTER_API_BASE = f"http://127.0.0.1:{server.server_address[1]}"
    yield CannedUpstream.bodies
    server.shutdown()
    server.server_close()
    CannedUpstream.bodies.clear()


GOOD_ITEM = {"id": "k1", "label": "A", "keyId": "sk-ant-abc...", "key": "sk-ant-abc-full", "budgetVirtual": "50.5",
             "spentVirtual": 12.5, "remainingVirtual": "38", "rpmLimit": "60", "concurrentLimit": 5,
             "displayMultiplier": "1.3", "createdAt": "2025-01-01T00:00:00Z", "newField": {"x": 1}}


def test_an_odd_key_list_item_is_skipped_and_counted_not_fatal(canned, caplog):
    canned["/sub-keys"] = {"subKeys": [GOOD_ITEM, {**GOOD_ITEM, "id": "k2", "budgetVirtual": [1]},
                                       "not a key", {**GOOD_ITEM, "id": "k3", "key": "sk-ant-other-full"}]}
    keys = client.list_sub_keys()
    assert [key.id for key in keys] == ["k1", "k3"]
    assert [skipped.id for skipped in keys.skipped] == ["k2", ""]
    assert "sk-ant-abc-full" not in caplog.text


def test_money_as_strings_or_numbers(canned):
    canned["/sub-keys"] = {"subKeys": [GOOD_ITEM]}
    key = client.list_sub_keys()[0]
    assert (key.budget, key.spent, key.remaining, key.rpm_limit) == (Decimal("50.5"), Decimal("12.5"),
                                                                      Decimal("38"), 60)
    assert key.display_multiplier == Decimal("1.3")


def test_usage_rows_with_key_id_and_unknown_fields_are_read(canned):
    row = {"request_id": "req_1", "model": "m", "input_tokens": 1, "output_tokens": "2", "cost_usdc": "0.0023",
           "duration_ms": 5, "created_at": "2025-06-01T12:00:00Z", "key_id": "sk-ant-abc...", "region": "eu",
           "cache_read_tokens": 0}
    canned["/usage-logs"] = {"data": [row], "pagination": {"page": 1, "limit": 20, "total": 1, "pages": 1},
                             "extra": True}
    page = client.fetch_usage_logs().decode()
    assert page.logs[0].cost == Decimal("0.0023") and page.logs[0].key_id == "sk-ant-abc..."


@pytest.mark.django_db
def test_a_skipped_key_is_counted_by_the_mirror_and_not_taken_for_deleted(canned):
    other = {**GOOD_ITEM, "id": "k2", "key": "sk-ant-two-full", "keyId": "sk-ant-two..."}
    canned["/sub-keys"] = {"subKeys": [GOOD_ITEM, other]}
    mirror_snapshot.refresh_snapshot()
    canned["/sub-keys"] = {"subKeys": [GOOD_ITEM, {**other, "spentVirtual": {"odd": True}}]}
    result = mirror_snapshot.refresh_snapshot()
    assert result.skipped == 1 and "1 of unexpected shape skipped" in result.describe()
    assert KeySnapshot.objects.get(sub_key_id="k2").deleted_at is None
