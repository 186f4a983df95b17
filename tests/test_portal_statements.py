"""The client's own statements and usage chart in the portal, from the mirror, agreeing with its own logs."""

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from analytics.forms import first_of_month
from derouter import client as derouter_client
from mirror.models import KeySnapshot
from tests.mirror_helpers import mirror_from_simulator

pytestmark = pytest.mark.django_db

MULTIPLIER = Decimal("2.5")
COSTS = ["0.000123", "0.004567", "0.1", "0.000001"]


def _today():
    return timezone.now().date()


def _last_month():
    return first_of_month(first_of_month(_today()) - timedelta(days=1))


def _stamp(when):
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def customer(make_key, simulator):
    """A key on a x2.5 multiplier with usage last month and in the last days, mirrored, created two months ago."""
    created = make_key("1", label="Portal customer")
    derouter_client.update_sub_key(created.id, display_multiplier=MULTIPLIER)
    last_month = datetime.combine(_last_month() + timedelta(days=3), datetime.min.time(), tzinfo=UTC)
    for index, cost in enumerate(COSTS * 3):
        simulator.add_usage(created.id, cost, createdAt=_stamp(last_month + timedelta(hours=index)))
    recent = datetime.now(UTC) - timedelta(days=1)
    simulator.add_usage(created.id, "0.0333", createdAt=_stamp(recent), model="claude-opus-4-1")
    simulator.chat(created.secret.reveal())
    mirror_from_simulator(created.id)
    KeySnapshot.objects.filter(sub_key_id=created.id).update(created_at=datetime.now(UTC) - timedelta(days=70))
    browser = Client()
    assert browser.post("/portal/login/", {"client_key": created.secret.reveal()}).status_code == 302
    yield created, browser
    derouter_client.delete_sub_key(created.id)


def _own_logs(secret):
    logs, page = [], 1
    while True:
        usage_page = derouter_client.get_client_usage_logs(secret, page=page, limit=100)
        logs += usage_page.logs
        if not usage_page.has_next:
            return logs
        page += 1


def test_the_client_lists_and_downloads_its_past_months_and_the_total_matches_its_logs(customer):
    created, browser = customer
    month = _last_month()
    listing = browser.get("/portal/statements/").content.decode()
    assert f'href="/portal/statements/{month:%Y-%m}/"' in listing
    assert f"/portal/statements/{_today():%Y-%m}/" not in listing

    page = browser.get(f"/portal/statements/{month:%Y-%m}/")
    assert page.status_code == 200 and f"Statement for {month:%B %Y}" in page.content.decode()
    response = browser.get(f"/portal/statements/{month:%Y-%m}.csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    own = [log for log in _own_logs(created.secret.reveal()) if first_of_month(log.created_at.date()) == month]
    assert rows[-1][0] == "total" and rows[-1][2] == str(len(own)) == str(len(COSTS) * 3)
    assert Decimal(rows[-1][5]) == sum((log.cost for log in own), start=Decimal(0))


def test_the_portal_home_charts_30_days_by_model_in_the_clients_units(customer):
    created, browser = customer
    html = browser.get("/portal/").content.decode()
    assert 'id="portal-daily-chart-data"' in html
    since = _today() - timedelta(days=29)
    own = [log for log in _own_logs(created.secret.reveal()) if log.created_at.date() >= since]
    opus = sum((log.cost for log in own if log.model.startswith("claude-opus")), start=Decimal(0))
    assert opus == Decimal("0.08325")
    section = html[html.index('id="portal-models"'):]
    assert "$0.08325" in section[: section.index("</table>")]


def _portal_usage_panel(browser):
    """The usage panel's HTML, without the nonces that change with every response."""
    html = browser.get("/portal/").content.decode()
    panel = html[html.index('id="portal-usage"'):html.index("</section>", html.index('id="portal-usage"'))]
    return re.sub(r' nonce="[^"]*"', "", panel)


def test_the_portal_usage_panel_shows_rows_as_soon_as_the_sync_mirrors_them(customer, simulator):
    created, browser = customer
    before = _portal_usage_panel(browser)
    assert before == _portal_usage_panel(browser)
    simulator.add_usage(created.id, "0.5", model="claude-haiku-4-5")
    assert _portal_usage_panel(browser) == before  # not mirrored yet: the panel reads the mirror
    mirror_from_simulator(created.id)
    after = _portal_usage_panel(browser)
    assert "claude-haiku-4-5" in after and "claude-haiku-4-5" not in before
    assert "$1.25" in after  # 0.5 at x2.5, in the client's units


def test_each_client_sees_only_its_own_usage_panel(customer, make_key):
    _, browser = customer
    stranger = make_key("1", label="Stranger")
    mirror_from_simulator(stranger.id)
    browser_of_stranger = Client()
    browser_of_stranger.post("/portal/login/", {"client_key": stranger.secret.reveal()})
    assert "claude-opus-4-1" in _portal_usage_panel(browser)
    assert "claude-opus-4-1" not in _portal_usage_panel(browser_of_stranger)
    derouter_client.delete_sub_key(stranger.id)


def test_another_clients_statement_is_out_of_reach_and_bad_months_are_clear(customer, make_key):
    _, browser = customer
    assert browser.get("/portal/statements/2999-01/").status_code == 404
    response = browser.get("/portal/statements/January/")
    assert response.status_code == 400 and "is not a month" in response.content.decode()
    stranger = make_key("1", label="Stranger")
    browser_of_stranger = Client()
    browser_of_stranger.post("/portal/login/", {"client_key": stranger.secret.reveal()})
    response = browser_of_stranger.get(f"/portal/statements/{_last_month():%Y-%m}/")
    # The stranger's own key is new: it has no statement for last month, and never sees the customer's.
    assert response.status_code == 404 and "Portal customer" not in response.content.decode()
    derouter_client.delete_sub_key(stranger.id)


def test_statements_need_a_portal_session(client):
    response = client.get("/portal/statements/")
    assert response.status_code == 302 and response["Location"] == "/portal/login/"


def test_the_clients_statement_is_in_the_resellers_brand_and_unit(customer, settings):
    from branding.models import Branding

    _, browser = customer
    settings.RESELLER_NAME = "Northwind AI"
    Branding(product_name="Acme AI", money_unit="credits", accent_color="#0b7285").save()
    html = browser.get(f"/portal/statements/{_last_month():%Y-%m}/").content.decode()
    head = html[html.index('class="statement-head"'):html.index('id="summary-title"')]
    assert "Acme AI" in head and "Northwind AI" not in head
    assert "/portal/brand/colors-" in html
    assert " credits</td>" in html and "$" not in html[html.index('class="statement"'):]
    assert "derouter" not in html.lower()


def test_the_portal_usage_panel_and_its_chart_read_in_the_resellers_unit(customer):
    from branding.models import Branding

    _, browser = customer
    Branding(money_unit="credits").save()
    html = browser.get("/portal/").content.decode()
    panel = html[html.index('id="portal-daily-chart-data"') - 2000:html.index("Monthly statements")]
    assert "$" not in panel.replace('"$"', "")
    assert re.search(r"credits(</span>)? in all", html) and '"unit_after": " credits"' in html
    Branding(money_unit="€").save()
    html = browser.get("/portal/").content.decode()
    assert '"unit_before": "€"' in html or '"unit_before": "\\u20ac"' in html


def test_the_portal_counts_usage_by_the_model_name_the_customer_sends(customer, simulator):
    """derouter logs dated names ("claude-sonnet-4-6-20250514"); the customer sent "claude-sonnet-4-6"."""
    from mirror.models import DailyRollup

    created, browser = customer
    simulator.add_usage(created.id, "0.1", createdAt=_stamp(datetime.now(UTC) - timedelta(days=1)), model="claude-sonnet-4-6")
    mirror_from_simulator(created.id)
    # A second dated release of the same model, as derouter logs after an upgrade (the simulator knows one per name).
    logged = DailyRollup.objects.filter(key__sub_key_id=created.id, model__startswith="claude-sonnet-4-6-").latest("day")
    assert logged.model != "claude-sonnet-4-6"
    DailyRollup.objects.create(day=logged.day, key=logged.key, model="claude-sonnet-4-6-20990101", requests=2, billed=Decimal("1"))
    for url, start in (("/portal/", 'id="portal-models"'), (f"/portal/statements/{_today():%Y-%m}/", 'id="by-model-title"')):
        html = browser.get(url).content.decode()
        table = html[html.index(start):]
        table = table[: table.index("</table>")]
        assert logged.model not in table and "20990101" not in table, url
        assert table.count(">claude-sonnet-4-6</th>") == 1, url
