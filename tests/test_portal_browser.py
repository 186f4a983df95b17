"""A customer's journey through the portal in headless Chromium, against the live simulator."""

import csv
from decimal import Decimal

import pytest

from derouter import client as derouter_client
from lib.money import usd

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LABEL = "Browser Buyer Inc"


def test_customer_signs_in_sees_usage_pages_logs_downloads_and_signs_out(live_server, page, simulator, make_key):
    created = make_key("1", label=LABEL)
    derouter_client.update_sub_key(created.id, display_multiplier=Decimal("4"))
    secret = created.secret.reveal()
    simulator.chat(secret, count=25)
    expected = derouter_client.get_client_balance(secret)
    problems = []
    # A CSP refusal (inline script or style) shows up as a console error; a JS failure as a page error.
    page.on("console", lambda message: "Content Security Policy" in message.text and problems.append(message.text))
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{live_server.url}/portal/login/")
    page.fill("#id_client_key", secret)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{live_server.url}/portal/")
    assert page.text_content("h1") == LABEL
    assert page.text_content("[data-testid=budget]") == usd(expected.budget)
    assert page.text_content("[data-testid=spent]") == usd(expected.spent)
    assert page.text_content("[data-testid=remaining]") == usd(expected.remaining)
    assert "25" in page.text_content("#usage-summary")
    assert secret not in page.content()

    page.click("button:has-text('Reveal key')")
    assert page.text_content("#client-key-value") == secret

    page.click("nav >> text=Logs")
    page.wait_for_url("**/portal/logs/**")
    page.wait_for_load_state("networkidle")
    assert page.locator("#logs tbody tr").count() == 20
    page.click("text=Older →")
    page.wait_for_url("**/portal/logs/?page=2*")
    assert page.locator("#logs tbody tr").count() == 5
    assert "Page 2 of 2" in page.text_content("#logs")

    with page.expect_download() as download_info:
        page.click("text=Download CSV")
    download = download_info.value
    with open(download.path(), newline="") as exported:
        rows = list(csv.reader(exported))
    assert download.suggested_filename.endswith(".csv")
    assert rows[0][0] == "time" and len(rows) == 26

    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/portal/login/")
    page.go_back()
    page.wait_for_load_state()
    assert "/portal/login/" in page.url
    content = page.content()
    assert LABEL not in content
    assert usd(expected.budget) not in content
    assert not problems, problems


def test_every_portal_page_works_without_javascript(live_server, page_without_javascript, simulator, make_key):
    page = page_without_javascript
    created = make_key("1", label="No Script Co")
    secret = created.secret.reveal()
    simulator.chat(secret, count=21)
    page.goto(f"{live_server.url}/portal/login/")
    page.fill("#id_client_key", secret)
    page.click("button:has-text('Sign in')")
    assert page.text_content("h1") == "No Script Co"
    page.click("button:has-text('Reveal key')")
    page.wait_for_url("**/portal/reveal/")
    assert page.text_content("#client-key-value") == secret
    page.click("nav >> text=Logs")
    page.select_option("#id_tz", "Asia/Tokyo")
    page.click("button:has-text('Set time zone')")
    assert page.text_content("[data-testid=time-zone]") == "Asia/Tokyo"
    page.click("text=Older →")
    assert page.locator("#logs tbody tr").count() == 1
    page.select_option("#logs-limit", "50")
    page.click("button:has-text('Show')")
    assert page.locator("#logs tbody tr").count() == 21
    page.click("button:has-text('Sign out')")
    assert page.url.endswith("/portal/login/")


@pytest.mark.parametrize("javascript", [True, False], ids=["script", "no-script"])
def test_on_a_phone_the_portal_menu_reaches_every_page_and_sign_out_stays_in_view(browser, live_server, simulator, make_key, javascript):
    from tests.helpers import new_page

    secret = make_key("1", label="Phone Customer").secret.reveal()
    page = new_page(browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, java_script_enabled=javascript)
    try:
        page.goto(f"{live_server.url}/portal/login/")
        page.fill("#id_client_key", secret)
        page.click("button:has-text('Sign in')")
        page.wait_for_url(f"{live_server.url}/portal/")
        sign_out = page.get_by_role("button", name="Sign out")
        names = ("Home", "Logs", "Statements", "More budget", "Redeem a code", "Buy credit")
        for name in names:
            box = sign_out.bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, f"Sign out is off the screen: {box}"
            link = page.get_by_role("link", name=name, exact=True)
            assert not link.is_visible(), f"{name} shows before the menu is opened"
            page.get_by_text("Menu", exact=True).click()
            box = link.bounding_box()
            assert link.is_visible() and box["x"] >= 0 and box["x"] + box["width"] <= 390, f"{name} is off the screen: {box}"
            with page.expect_navigation(url=f"{live_server.url}{link.get_attribute('href')}"):
                link.click()
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
        sign_out.click()
        page.wait_for_url("**/portal/login/")
    finally:
        page.context.close()
