"""The analytics page: figures for a period from the rollups, charts with tables, clients, who sees margins."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import ConsoleProfile
from analytics import figures
from analytics.forms import Period
from tests.mirror_helpers import mirrored_key, usage

pytestmark = pytest.mark.django_db

URL = "/dashboard/analytics/"


def _today():
    return timezone.now().date()


@pytest.fixture
def business():
    """Two clients with usage this period and the period before, and the Account Key's own use."""
    today = _today()
    acme = mirrored_key("Acme", multiplier="4")
    globex = mirrored_key("Globex", multiplier="1.5")
    usage(acme, today, "0.0023", count=3)
    usage(acme, today - timedelta(days=2), "0.5", model="claude-opus-4-1", input_tokens=1000, output_tokens=200)
    usage(globex, today - timedelta(days=1), "0.000001", count=2)
    usage(globex, today - timedelta(days=40), "2")
    usage(None, today, "9")
    return {"acme": acme, "globex": globex}


def _chart_data(html, element_id):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(match[1])


def test_figures_are_summed_from_the_rollups_with_billed_rounded_per_row(business):
    totals = figures.get_totals(figures.get_last_days(30))
    # Acme: 3 x 0.0023 -> 0.0092 each, 0.5 -> 2.0; Globex: 0.000001 x 1.5 = 0.0000015 -> 0.000002 each.
    assert totals.spend == Decimal("0.506902")
    assert totals.billed == Decimal("2.027604")
    assert totals.margin == Decimal("1.520702")
    assert totals.requests == 6
    assert totals.tokens == 5 * 150 + 1200


def _headline(period):
    """The Client Keys' figures of the period against the period before it, as the analytics page reads them."""
    return figures.DaySums(period.previous().start, period.end).headline(period)


def test_each_figure_is_compared_with_the_previous_period_of_the_same_length(business):
    headline = _headline(figures.get_last_days(30))
    assert headline.period.previous() == Period(headline.period.start - timedelta(days=30), headline.period.start - timedelta(days=1))
    assert headline.previous_totals.spend == Decimal("2")
    assert headline.change("requests").percent == Decimal(500)
    assert headline.change("spend").percent < 0


def test_one_read_of_the_days_gives_the_same_totals_days_and_own_spend_as_a_query_per_period(business):
    today = _today()
    for period in (figures.get_last_days(30), figures.get_last_days(7), Period(today - timedelta(days=45), today)):
        days = figures.DaySums(period.previous().start, period.end)
        assert days.totals(period) == figures.get_totals(period)
        assert days.totals(period.previous()) == figures.get_totals(period.previous())
        assert days.daily(period) == figures.get_daily(period)
    assert figures.DaySums(today, today).own_spend(Period(today, today)) == Decimal(9)


def test_a_period_that_billed_nothing_after_one_that_did_has_no_margin_percent_to_compare(business):
    today = _today()
    quiet = Period(today - timedelta(days=39), today - timedelta(days=10))
    headline = _headline(quiet)
    assert headline.totals.margin_percent is None and headline.previous_totals.margin_percent is not None
    assert "margin_percent" not in headline.changes
    assert headline.changes["billed"].percent == Decimal(-100)


def test_the_owner_sees_spend_billed_margin_and_every_client(owner_client, business, upstream_calls):
    response = owner_client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "$0.506902" in html and "$2.027604" in html and "$1.520702" in html
    assert "75.0%" in html  # margin %
    assert "Acme" in html and "Globex" in html
    assert f'href="/dashboard/keys/{business["acme"].sub_key_id}/"' in html
    assert "the Account Key itself spent $9.00 more" in html
    assert upstream_calls() == 0


def test_daily_and_model_charts_come_with_the_same_numbers_in_tables(owner_client, business):
    html = owner_client.get(URL).content.decode()
    daily = _chart_data(html, "daily-chart-data")
    assert len(daily["labels"]) == 30 and daily["labels"][-1] == f"{_today().isoformat()} (so far)"
    assert daily["partial_last"] is True  # today is not over: not plotted as a drop
    spend, billed = daily["datasets"]
    assert billed["data"][-1] == "0.027600"
    models = _chart_data(html, "model-chart-data")
    assert models["labels"] == ["claude-opus-4-1", "claude-sonnet-4-6"]
    assert html.count("<caption>") >= 3
    assert 'scope="col"' in html and 'scope="row"' in html


def test_charts_load_the_vendored_library_with_the_csp_nonce(owner_client, business):
    response = owner_client.get(URL)
    html = response.content.decode()
    nonce = re.search(r"'nonce-([^']+)'", response["Content-Security-Policy"])[1]
    assert f'src="/static/vendor/chartjs/chart.umd.js" defer nonce="{nonce}"' in html
    assert f'src="/static/js/charts.js" defer nonce="{nonce}"' in html
    assert "<script>" not in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("period=fortnight", "Choose one of the periods in the list."),
        ("period=custom&start=2026-13-01&end=2026-01-01", "Enter the day as YYYY-MM-DD, e.g. 2026-10-01."),
        ("period=custom&start=2026-03-01", "needs both a first and a last day"),
        ("start=2026-03-05&end=2026-03-01", "starts after it ends"),
        ("start=2020-01-01&end=2023-01-01", "longer than two years"),
        ("start=2026-01-01&end=2099-01-01", "ends in the future"),
        ("sort=password", "Choose one of the sort orders in the list."),
    ],
)
def test_a_malformed_period_is_a_400_with_a_clear_message_and_no_upstream_call(owner_client, query, message, upstream_calls):
    response = owner_client.get(f"{URL}?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert upstream_calls() == 0


def test_a_custom_range_and_the_named_periods_choose_their_days(owner_client, business):
    today = _today()
    start = today - timedelta(days=2)
    response = owner_client.get(f"{URL}?period=custom&start={start}&end={today}")
    assert response.status_code == 200
    assert len(_chart_data(response.content.decode(), "daily-chart-data")["labels"]) == 3
    for period, days in (("7d", 7), ("90d", 90), ("this-month", today.day)):
        html = owner_client.get(f"{URL}?period={period}").content.decode()
        assert len(_chart_data(html, "daily-chart-data")["labels"]) == days
    last_month = owner_client.get(f"{URL}?period=last-month").content.decode()
    assert len(_chart_data(last_month, "daily-chart-data")["labels"]) in (28, 29, 30, 31)


def test_the_client_table_sorts_and_answers_htmx_with_the_table_alone(owner_client, business):
    by_requests = owner_client.get(f"{URL}?sort=requests").content.decode()
    assert by_requests.index("Globex") < by_requests.index("Acme")
    fragment = owner_client.get(f"{URL}?sort=-requests", HTTP_HX_REQUEST="true")
    html = fragment.content.decode()
    assert html.lstrip().startswith('<div id="client-table">')
    assert html.index("Acme") < html.index("Globex")
    assert 'aria-sort="descending"' in html
    assert 'data-hx-get="/dashboard/analytics/?sort=requests"' in html


def test_the_client_table_sorts_by_every_column_both_ways_and_reads_one_page_at_a_time():
    today = _today()
    # Each column orders these three differently from at least one other column.
    acme = mirrored_key("Acme", multiplier="4")
    zenith = mirrored_key("Zenith", multiplier="1")
    mid = mirrored_key("Mid", multiplier="2")
    usage(acme, today, "0.01", count=1, input_tokens=9000, output_tokens=10)
    usage(zenith, today, "0.30", count=5, input_tokens=10, output_tokens=10)
    usage(mid, today - timedelta(days=1), "0.02", count=3, input_tokens=100, output_tokens=100)
    mid.deleted_at = timezone.now()
    mid.save(update_fields=["deleted_at"])
    period = figures.get_last_days(7)
    totals = {key.label: figures.get_totals(period, key) for key in (acme, zenith, mid)}
    measures = {
        "label": lambda label: label,
        "requests": lambda label: totals[label].requests,
        "tokens": lambda label: totals[label].tokens,
        "spend": lambda label: totals[label].spend,
        "billed": lambda label: totals[label].billed,
        "margin": lambda label: totals[label].margin,
    }
    for column, measure in measures.items():
        for descending in (False, True):
            sort = f"-{column}" if descending else column
            rows = figures.get_clients(period, sort)[0:50]
            assert [key.label for key, _ in rows] == sorted(totals, key=measure, reverse=descending), sort
    clients = figures.get_clients(period, "-requests")
    assert clients.count() == 3
    (second,) = clients[1:2]
    key, sums = second
    assert (key.label, key.sub_key_id, key.is_deleted) == ("Mid", mid.sub_key_id, True)
    assert figures.Totals(*sums) == totals["Mid"]
    assert not figures.get_clients(Period(today - timedelta(days=30), today - timedelta(days=20)), "label")[0:50]


def test_the_client_table_pages_past_its_first_fifty_clients(owner_client):
    today = _today()
    for number in range(51):
        usage(mirrored_key(f"Client {number:02d}"), today, "0.01", count=number + 1)
    first = owner_client.get(f"{URL}?sort=-requests").content.decode()
    assert "1–50 of 51 clients" in first
    assert "Client 50" in first and "Client 01" in first and "Client 00" not in first
    second = owner_client.get(f"{URL}?sort=-requests&page=2", HTTP_HX_REQUEST="true").content.decode()
    assert "51–51 of 51 clients" in second
    assert "Client 00" in second and "Client 01" not in second


def test_staff_see_analytics_without_real_costs_or_margins(staff_client, business):
    response = staff_client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "$2.027604" in html
    assert "Margin" not in html and "$0.506902" not in html and "Spend (real cost)" not in html
    assert [dataset["label"] for dataset in _chart_data(html, "daily-chart-data")["datasets"]] == ["Billed"]
    # Sorting by a hidden column does not reveal it either.
    assert "Margin" not in staff_client.get(f"{URL}?sort=-margin").content.decode()


def test_staff_an_owner_allowed_see_margins(staff_client, staff, business):
    ConsoleProfile.objects.filter(user=staff).update(can_see_margins=True)
    html = staff_client.get(URL).content.decode()
    assert "Margin" in html and "$1.520702" in html


def test_the_margin_setting_is_off_by_default_and_a_toggle_in_the_admin(client, django_user_model, staff):
    assert staff.console_profile.can_see_margins is False
    admin = django_user_model.objects.create_superuser("root", password="root-pass-1234")
    client.force_login(admin)
    html = client.get(f"/admin/auth/user/{staff.pk}/change/").content.decode()
    assert 'name="console_profile-0-can_see_margins"' in html


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_page_costs_the_same_number_of_queries_for_many_rows(owner_client, business, django_assert_max_num_queries):
    for _ in range(3):
        usage(business["acme"], _today(), "0.01", count=50)
    with django_assert_max_num_queries(20):
        assert owner_client.get(URL).status_code == 200
