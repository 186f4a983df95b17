"""Dates at the ends of the calendar (year 1, year 9999) in any date query are a 400 with a clear message, never a 500."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

EXTREME_RANGES = [
    {"date_to": "9999-12-31"},
    {"date_from": "9999-12-31"},
    {"date_from": "0001-01-01"},
    {"date_from": "0001-01-01", "date_to": "9999-12-31"},
]


def client_that_shows_errors(user):
    browser = Client(raise_request_exception=False)
    browser.force_login(user)
    return browser


@pytest.mark.parametrize("query", EXTREME_RANGES)
@pytest.mark.parametrize("url", ["/dashboard/logs/", "/dashboard/logs/export.csv"])
def test_an_out_of_range_day_in_the_usage_log_or_its_csv_is_a_400_that_says_why(owner, url, query):
    response = client_that_shows_errors(owner).get(url, query)
    assert response.status_code == 400
    assert "between 2000-01-01 and 2100-12-31" in response.content.decode()


def test_an_out_of_range_day_in_the_usage_log_fragment_is_a_400(owner):
    response = client_that_shows_errors(owner).get("/dashboard/logs/", {"date_to": "9999-12-31"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert "between 2000-01-01 and 2100-12-31" in response.content.decode()


def test_a_csv_of_an_invalid_filter_is_refused_not_widened_to_every_row(owner):
    response = client_that_shows_errors(owner).get("/dashboard/logs/export.csv", {"date_from": "2026-13-40"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    "query",
    [
        {"period": "custom", "start": "0001-01-01", "end": "0001-01-02"},
        {"period": "custom", "start": "9999-12-30", "end": "9999-12-31"},
        {"start": "0001-01-01", "end": "2026-01-01"},
    ],
)
def test_an_out_of_range_analytics_period_is_a_400_that_says_why(owner, query):
    response = client_that_shows_errors(owner).get("/dashboard/analytics/", query)
    assert response.status_code == 400
    assert "between 2000-01-01 and 2100-12-31" in response.content.decode()


@pytest.mark.parametrize("month", ["9999-12", "0001-01", "2101-01"])
def test_a_statement_for_a_month_out_of_range_is_a_clear_404(owner, make_key, month):
    key = make_key("1", label="Statement Range")
    browser = client_that_shows_errors(owner)
    for url in (f"/dashboard/keys/{key.id}/statements/{month}/", f"/dashboard/keys/{key.id}/statements/{month}.csv"):
        response = browser.get(url)
        assert response.status_code in (400, 404), (url, response.status_code)


@pytest.mark.parametrize("month", ["9999-12", "0001-01"])
def test_a_portal_statement_for_a_month_out_of_range_is_not_a_500(make_key, month):
    key = make_key("1", label="Portal Statement Range")
    browser = Client(raise_request_exception=False)
    browser.post("/portal/login/", {"client_key": key.secret.reveal()})
    for url in (f"/portal/statements/{month}/", f"/portal/statements/{month}.csv"):
        assert browser.get(url).status_code in (400, 404), url


@pytest.mark.parametrize("expires_at", ["9999-12-31 23:59", "0001-01-01 00:00"])
def test_an_out_of_range_expiry_is_a_form_error(owner, make_key, expires_at):
    key = make_key("1", label="Expiry Range")
    response = client_that_shows_errors(owner).post(
        "/dashboard/automation/expiries/", {"sub_key_id": str(key.id), "expires_at": expires_at}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("query", [{"sub_key_id": "not-a-key"}, {"outcome": "no-such-outcome"}])
def test_a_ledger_csv_of_an_invalid_filter_is_refused_not_widened_to_every_top_up(owner, query):
    response = client_that_shows_errors(owner).get("/dashboard/topups/export.csv", query)
    assert response.status_code == 400
    assert "The export was not made" in response.content.decode()
