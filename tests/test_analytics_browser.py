"""Analytics in headless Chromium: charts drawn under the CSP, tables without JavaScript, sorting in place."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.helpers import sign_in
from tests.mirror_helpers import mirrored_key, usage

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def business():
    today = timezone.now().date()
    acme = mirrored_key("Acme", multiplier="4")
    globex = mirrored_key("Globex", multiplier="2")
    for days_ago in range(10):
        usage(acme, today - timedelta(days=days_ago), "0.25", count=2)
    usage(globex, today, "0.1", count=9, model="claude-opus-4-1")
    return acme


def test_charts_are_drawn_without_csp_violations_and_their_tables_fold_away(live_server, page, owner, business):
    problems = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.click("nav >> text=Analytics")
    expect(page.locator("h1")).to_have_text("Analytics")
    for chart in ("#daily-chart", "#model-chart"):
        expect(page.locator(chart)).to_be_visible()
        expect(page.locator(chart)).to_have_attribute("data-drawn", "true")
    expect(page.locator("figure:has(#daily-chart) details")).not_to_have_attribute("open", "")
    assert not problems, problems

    page.click("#client-table th >> text=Requests")
    expect(page.locator("#client-table th[aria-sort=descending]")).to_contain_text("Requests")
    page.click("#client-table th >> text=Requests")
    expect(page.locator("#client-table th[aria-sort=ascending]")).to_contain_text("Requests")
    expect(page.locator("#client-table tbody tr").first).to_contain_text("Globex")
    assert page.url.endswith("?sort=requests")

    page.goto(f"{live_server.url}/dashboard/")
    expect(page.locator("#spend-sparkline")).to_have_attribute("data-drawn", "true")
    page.goto(f"{live_server.url}/dashboard/keys/{business.sub_key_id}/statements/{timezone.now():%Y-%m}/")
    expect(page.locator("h1")).to_contain_text("Statement for")
    assert not problems, problems


def test_without_javascript_the_tables_show_the_numbers(live_server, page_without_javascript, owner, business):
    page = page_without_javascript
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/analytics/?period=7d")
    expect(page.locator("#daily-chart")).to_be_hidden()
    expect(page.locator("details[data-chart-table] table").first).to_be_visible()
    expect(page.locator("details[data-chart-table] table").first).to_contain_text("$2.00")
    page.click("#client-table th >> text=Client")
    expect(page.locator("#client-table tbody tr").first).to_contain_text("Acme")


def test_the_page_fits_a_phone_without_sideways_scrolling(live_server, browser, owner, business):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(10_000)
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    for path in ("/dashboard/analytics/", f"/dashboard/keys/{business.sub_key_id}/statements/{timezone.now():%Y-%m}/"):
        page.goto(live_server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    context.close()


def test_a_full_months_statement_prints_on_one_a4_page(live_server, page, owner):
    today = timezone.now().date()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    key = mirrored_key("Printing client", multiplier="3", created=last_month_end.replace(day=1) - timedelta(days=5))
    for day in range(last_month_end.day):
        for model in ("claude-sonnet-4-6", "claude-opus-4-1", "claude-haiku-4-5"):
            usage(key, last_month_end.replace(day=day + 1), "0.123456", model=model)
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/{key.sub_key_id}/statements/{last_month_end:%Y-%m}/")
    expect(page.locator("h1")).to_contain_text("Statement for")
    page.emulate_media(media="print")
    expect(page.locator(".topbar")).to_be_hidden()
    pdf = page.pdf(format="A4", prefer_css_page_size=True)
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1
