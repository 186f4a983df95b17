"""Monthly statements: budget, top-ups and usage of a calendar month in the client's units, as HTML and CSV."""

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from analytics.forms import first_of_month
from analytics.statements import build_statement
from ledger.models import Outcome, TopUp
from derouter import client as derouter_client
from mirror import key_store
from tests.helpers import tiny_png
from tests.mirror_helpers import mirror_from_simulator, mirrored_key, usage

pytestmark = pytest.mark.django_db


def _today():
    return timezone.now().date()


def _last_month():
    return first_of_month(first_of_month(_today()) - timedelta(days=1))


def _url(key, month, suffix="/"):
    return f"/dashboard/keys/{key.sub_key_id}/statements/{month}{suffix}"


def _topup(key, amount, when, outcome=Outcome.OK, note="INV-1"):
    topup = TopUp.objects.create(
        token=uuid.uuid4(), actor_name="olivia", sub_key_id=key.sub_key_id, amount=Decimal(amount), note=note, outcome=outcome
    )
    TopUp.objects.filter(pk=topup.pk).update(created_at=when)


@pytest.fixture
def client_key():
    """A key on a x4 multiplier, with usage and top-ups last month and this month."""
    last_month = _last_month()
    key = mirrored_key("Acme", budget="30", remaining="20", multiplier="4", created=last_month - timedelta(days=40))
    usage(key, last_month + timedelta(days=2), "0.0023", count=2)
    usage(key, last_month + timedelta(days=2), "1.25", model="claude-opus-4-1", input_tokens=2000, output_tokens=300)
    usage(key, last_month + timedelta(days=9), "0.75")
    usage(key, first_of_month(_today()), "3")
    at = datetime.combine(last_month + timedelta(days=5), datetime.min.time(), tzinfo=UTC)
    _topup(key, "5", at)
    _topup(key, "100", at, outcome=Outcome.REFUSED)
    _topup(key, "2", datetime.combine(first_of_month(_today()), datetime.min.time(), tzinfo=UTC))
    return key


def test_a_statement_adds_up_in_the_clients_units(client_key):
    statement = build_statement(client_key, _last_month(), _today())
    # Today 20 real left; since last month's start 2.0046 + 3 used and 5 + 2 topped up: 18.0046 real at the start.
    assert statement.opening == Decimal("72.0184")
    assert [topup.amount for topup in statement.topups] == [Decimal(20)]
    assert statement.total.billed == Decimal("0.0092") * 2 + Decimal(5) + Decimal(3)
    assert statement.total.requests == 4
    assert statement.closing == statement.opening + Decimal(20) - statement.total.billed
    assert [model for model, _ in statement.by_model] == ["claude-opus-4-1", "claude-sonnet-4-6"]
    assert len(statement.by_day) == 2 and statement.is_complete


def test_the_statement_page_is_printable_html_with_the_resellers_name(owner_client, client_key, settings, upstream_calls):
    settings.RESELLER_NAME = "Northwind AI"
    month = _last_month()
    response = owner_client.get(_url(client_key, f"{month:%Y-%m}"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Northwind AI" in html and f"Statement for {month:%B %Y}" in html
    assert "$72.0184" in html and "+$20.00" in html and "INV-1" in html
    assert "$8.0184" in html  # usage billed
    assert 'href="/static/css/analytics.css"' in html
    assert f'{month:%Y-%m}.csv' in html
    assert upstream_calls() == 0


def test_the_csv_has_a_row_per_day_and_model_and_a_total(staff_client, client_key):
    month = _last_month()
    response = staff_client.get(_url(client_key, f"{month:%Y-%m}", ".csv"))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["date", "model", "requests", "input_tokens", "output_tokens", "billed"]
    third = (month + timedelta(days=2)).isoformat()
    assert rows[1] == [third, "claude-opus-4-1", "1", "2000", "300", "5.000000"]
    assert rows[2] == [third, "claude-sonnet-4-6", "2", "200", "100", "0.018400"]
    assert rows[3][0] == (month + timedelta(days=9)).isoformat()
    assert rows[-1] == ["total", "", "4", "2300", "450", "8.018400"]


def test_a_key_created_during_the_month_opens_with_its_first_budget(owner_client):
    key = mirrored_key("New", budget="10", remaining="9", created=first_of_month(_today()))
    usage(key, _today(), "1")
    html = owner_client.get(_url(key, f"{_today():%Y-%m}")).content.decode()
    assert "Budget when the key was created" in html and "$10.00" in html
    assert "month to date" in html


@pytest.mark.parametrize(
    ("month", "status", "message"),
    [
        ("2026-13", 400, "is not a month"),
        ("26-01", 400, "is not a month"),
        ("2999-01", 404, "that month has not begun"),
        ("2001-01", 404, "the key was created on"),
    ],
)
def test_a_month_without_a_statement_is_a_clear_4xx(owner_client, client_key, month, status, message, upstream_calls):
    for suffix in ("/", ".csv"):
        response = owner_client.get(_url(client_key, month, suffix))
        assert response.status_code == status
        assert message in response.content.decode()
    assert upstream_calls() == 0


def test_an_unknown_key_has_no_statement(owner_client):
    response = owner_client.get(f"/dashboard/keys/{uuid.uuid4()}/statements/2026-01/")
    assert response.status_code == 404
    assert "There is no such key." in response.content.decode()


def test_a_deleted_key_keeps_its_statements(owner_client, client_key):
    key_store.mark_deleted(client_key.sub_key_id)
    assert owner_client.get(_url(client_key, f"{_last_month():%Y-%m}")).status_code == 200


def _clients_own_total(secret):
    """What the client sums from its own /sub-key/usage-logs for this month."""
    total, page, month_start = Decimal(0), 1, first_of_month(_today())
    while True:
        logs = derouter_client.get_client_usage_logs(secret, page=page, limit=100)
        total += sum((log.cost for log in logs.logs if log.created_at.date() >= month_start), start=Decimal(0))
        if not logs.has_next:
            return total
        page += 1


def test_the_statement_total_equals_what_the_client_sees_in_its_own_usage_logs(owner_client, simulator, make_key):
    created = make_key(budget="50", label="Exact client")
    derouter_client.update_sub_key(created.id, display_multiplier=Decimal("1.3333"))
    costs = ["0.000123", "0.001001", "0.000007", "0.333333", "0.000001", "1.234567"]
    midnight = datetime.combine(_today(), datetime.min.time(), tzinfo=UTC)
    for index, cost in enumerate(costs * 4):
        when = midnight + timedelta(seconds=index + 1)
        simulator.add_usage(created.id, cost, createdAt=when.strftime("%Y-%m-%dT%H:%M:%SZ"), model="claude-sonnet-4-6")
    simulator.chat(created.secret.reveal(), count=2)
    key = mirror_from_simulator(created.id)

    response = owner_client.get(_url(key, f"{_today():%Y-%m}", ".csv"))
    total_row = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[-1]
    assert total_row[0] == "total" and total_row[2] == str(len(costs) * 4 + 2)
    assert Decimal(total_row[5]) == _clients_own_total(created.secret.reveal())


def _brand(product_name="Acme AI", money_unit="credits", accent_color="#0b7285"):
    from branding.models import Branding

    Branding(
        product_name=product_name, money_unit=money_unit, accent_color=accent_color,
        logo=tiny_png(), logo_content_type="image/png",
    ).save()


def test_the_statement_carries_the_resellers_branding_not_ours(owner_client, client_key, settings):
    settings.RESELLER_NAME = "Northwind AI"
    _brand()
    html = owner_client.get(_url(client_key, f"{_last_month():%Y-%m}")).content.decode()
    head = html[html.index('class="statement-head"'):html.index('id="summary-title"')]
    assert "Acme AI" in head and "Northwind AI" not in head
    assert 'class="brand-logo"' in head and "/portal/brand/logo-" in head
    assert "/portal/brand/colors-" in html  # the accent colour's stylesheet
    assert "72.0184 credits" in html and "+20.00 credits" in html and "$72" not in html
    assert "Amounts are in credits" in html


def test_without_a_product_name_the_statement_falls_back_to_the_reseller_name_setting(owner_client, client_key, settings):
    settings.RESELLER_NAME = "Northwind AI"
    _brand(product_name="", money_unit="€", accent_color="")
    html = owner_client.get(_url(client_key, f"{_last_month():%Y-%m}")).content.decode()
    assert "Northwind AI" in html and "€72.0184" in html and "/portal/brand/colors-" not in html


def test_with_neither_a_product_name_nor_a_reseller_name_the_statement_names_no_one(owner_client, client_key, settings):
    settings.RESELLER_NAME = ""
    _brand(product_name="", money_unit="", accent_color="")
    html = owner_client.get(_url(client_key, f"{_last_month():%Y-%m}")).content.decode()
    head = html[html.index('class="statement-brand"'):html.index("</p>", html.index('class="statement-brand"'))]
    assert "<strong>" not in head and "derouter" not in head
