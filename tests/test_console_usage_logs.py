"""The console's usage log reads the mirror: client column, filters, totals and the CSV export."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from mirror.models import UsageRecord

pytestmark = pytest.mark.django_db

LOGS_URL = reverse("console:usage_logs")
CSV_URL = reverse("console:usage_logs_csv")


def request_ids(response):
    return set(re.findall(r"<code[^>]*>(req_[^<]+)</code>", response.content.decode()))


def mirrored_ids(sub_key_id):
    return set(UsageRecord.objects.filter(key__sub_key_id=sub_key_id).values_list("request_id", flat=True))


@pytest.fixture
def two_clients(make_key, simulator, sync_mirror):
    first = make_key("5", label="First customer")
    second = make_key("5", label="Second customer")
    simulator.add_usage(first.id, "0.0023", 2, inputTokens=1500, outputTokens=800)
    simulator.add_usage(second.id, "0.5", 1, model="claude-haiku-4-5")
    sync_mirror(first.id, second.id)
    return first, second


def test_each_row_names_its_client_with_a_link_to_the_key(owner_client, two_clients):
    first, second = two_clients

    page = owner_client.get(LOGS_URL, {"limit": 100}).content.decode()

    assert f'<a class="truncate" href="{reverse("console:key_detail", args=[first.id])}" title="First customer">First customer</a>' in page
    assert "Second customer" in page
    for text in ("1,500", "800", "$0.002300", "1 s", "Cache read / write", "Billed"):
        assert text in page


def test_the_client_filter_matches_a_label_typed_in_part_or_in_full(owner_client, two_clients):
    first, second = two_clients

    for typed in ("First customer", "first cust", first.id):
        response = owner_client.get(LOGS_URL, {"client": typed})
        assert request_ids(response) == mirrored_ids(first.id), typed
    page = owner_client.get(LOGS_URL, {"client": "First customer"}).content.decode()
    assert '<datalist id="client-options">' in page and '<option value="First customer">' in page


def test_the_client_picker_suggests_labels_for_what_was_typed(owner_client, two_clients):
    response = owner_client.get(reverse("console:usage_log_clients"), {"client": "second"})
    assert '<option value="Second customer">' in response.content.decode()
    assert "First customer" not in response.content.decode()


def test_the_account_filter_shows_only_the_account_keys_own_requests(owner_client, make_key, simulator, sync_mirror):
    key = make_key("5", label="Customer")
    simulator.add_usage(key.id, "0.01")
    simulator.add_usage(None, "0.02")
    sync_mirror(key.id, "account")

    shown = request_ids(owner_client.get(LOGS_URL, {"client": "account", "limit": 100}))

    assert shown and not shown & mirrored_ids(key.id)
    assert UsageRecord.objects.filter(request_id__in=shown, key__isnull=False).count() == 0


def test_model_and_date_filters_and_the_totals_of_the_filtered_rows(owner_client, two_clients):
    today = datetime.now(UTC).date()
    haiku = UsageRecord.objects.get(key__sub_key_id=two_clients[1].id).model

    page = owner_client.get(LOGS_URL, {"model": haiku, "date_from": today, "date_to": today}).content
    body = page.decode()
    assert "$0.50" in body
    assert len(re.findall(r"<code[^>]*>req_", body)) == UsageRecord.objects.filter(model=haiku).count()

    yesterday = today - timedelta(days=1)
    assert "No requests for these filters" in owner_client.get(
        LOGS_URL, {"date_from": yesterday, "date_to": yesterday}
    ).content.decode()


def test_a_reversed_date_range_is_a_clear_400(owner_client):
    response = owner_client.get(LOGS_URL, {"date_from": "2026-11-20", "date_to": "2026-11-01"})
    assert response.status_code == 400
    assert "before its start" in response.content.decode()


@pytest.mark.parametrize(
    "query",
    [{"page": "abc"}, {"page": "0"}, {"page": "-3"}, {"limit": "7"}, {"limit": "abc"}, {"page": "1e9"},
     {"page": "99999999999999999999"}, {"limit": "1000"}, {"date_from": "yesterday"}],
)
def test_bad_filter_values_are_reported_and_ignored(owner_client, query):
    response = owner_client.get(LOGS_URL, query)
    assert response.status_code == 400
    assert "were not understood" in response.content.decode()


def test_paging_and_a_page_past_the_end(owner_client, make_key, simulator, sync_mirror):
    key = make_key("5", label="Busy")
    simulator.add_usage(key.id, "0.001", 25)
    sync_mirror(key.id)

    first = owner_client.get(LOGS_URL, {"client": key.id, "limit": 20})
    second = owner_client.get(LOGS_URL, {"client": key.id, "limit": 20, "page": 2})
    past = owner_client.get(LOGS_URL, {"client": key.id, "page": 5})

    assert "25 requests · page 1 of 2" in first.content.decode()
    assert len(request_ids(first)) == 20 and len(request_ids(second)) == 5
    assert not request_ids(first) & request_ids(second)
    assert "past the end" in past.content.decode()


def test_an_htmx_request_gets_only_the_fragment(owner_client, two_clients):
    first, _ = two_clients
    response = owner_client.get(LOGS_URL, {"client": first.id}, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith("<section id=\"logs\"") and "<html" not in page
    assert "HX-Request" in response["Vary"]


def test_the_csv_export_holds_exactly_the_filtered_rows(owner_client, make_key, simulator, sync_mirror):
    key = make_key("5", label="=Exported client")
    simulator.add_usage(key.id, "0.0023", 23)
    sync_mirror(key.id)

    response = owner_client.get(CSV_URL, {"client": key.id, "page": 2, "limit": 20})

    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [
        "request_id", "created_at", "key_id", "key_label", "model", "input_tokens", "output_tokens",
        "cache_read_tokens", "cache_write_tokens", "duration_ms", "cost_usd", "multiplier", "billed",
    ]
    assert {row[0] for row in rows[1:]} == mirrored_ids(key.id) and len(rows) == 24
    assert {(row[2], row[3], row[10], row[11]) for row in rows[1:]} == {(key.id, "'=Exported client", "0.0023", "1")}
    assert sum(Decimal(row[12]) for row in rows[1:]) == Decimal("0.0529")


def test_staff_see_the_logs_and_the_export(staff_client):
    assert staff_client.get(LOGS_URL).status_code == 200
    assert staff_client.get(CSV_URL).status_code == 200


@pytest.mark.parametrize("name", ["claude-sonnet-4-6", "gpt-4o-mini"])
def test_the_model_filter_matches_the_dated_names_the_logs_hold(owner_client, make_key, simulator, sync_mirror, name):
    key = make_key("5", label="Dated models")
    simulator.add_usage(key.id, "0.01", 2, model=name)
    simulator.add_usage(key.id, "0.01", 1, model="claude-haiku-4-5")
    sync_mirror(key.id)
    named = UsageRecord.objects.filter(key__sub_key_id=key.id, model__startswith=name)
    assert {record.model for record in named} != {name}, "the simulator logs dated names, as derouter does"

    shown = request_ids(owner_client.get(LOGS_URL, {"model": name, "client": key.id, "limit": 100}))

    assert shown == {record.request_id for record in named} and len(shown) == 2
