"""Browser journeys in headless Chromium: a staff top-up clicked twice, and paging through usage logs."""

import re
import time
from decimal import Decimal

import pytest

from ledger.models import Outcome, TopUp
from tests.helpers import budget_of, sign_in

# Playwright's sync API keeps an event loop running in this thread; the ORM
# calls these tests make between page actions are still synchronous.

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_until_settled(seconds=5):
    """Wait until no top-up is pending: the server has finished every post it received."""
    deadline = time.monotonic() + seconds
    while TopUp.objects.filter(outcome=Outcome.PENDING).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def fill_and_review(page, live_server, sub_key_id, amount, note):
    page.goto(f"{live_server.url}/dashboard/keys/{sub_key_id}/topup/")
    page.fill("#id_amount", amount)
    page.fill("#id_note", note)
    page.click("text=Review the top-up")
    page.wait_for_selector("#confirm-topup")


def test_a_double_clicked_top_up_happens_once(page, live_server, staff, make_key):
    key = make_key("10", label="Browser customer")
    sign_in(page, live_server, "sam", "staff-pass-1234")
    fill_and_review(page, live_server, key.id, "4", "INV-2024-77")
    assert "$10.00 → $14.00" in page.inner_text("#topup")

    page.dblclick("#confirm-topup")

    page.wait_for_selector("#topup .alert-success")
    wait_until_settled()
    assert "$14.00" in page.inner_text("#topup")
    assert budget_of(key.id) == Decimal("14")
    assert list(TopUp.objects.values_list("outcome", "note")) == [(Outcome.OK, "INV-2024-77")]

    page.goto(f"{live_server.url}/dashboard/topups/")
    assert page.locator("#ledger tbody tr").count() == 1
    assert "INV-2024-77" in page.inner_text("#ledger")


def test_without_javascript_a_double_submitted_top_up_happens_once(page_without_javascript, live_server, staff, make_key):
    page = page_without_javascript
    key = make_key("10", label="No-JS customer")
    sign_in(page, live_server, "sam", "staff-pass-1234")
    fill_and_review(page, live_server, key.id, "3", "INV-NOJS")

    # Without JavaScript nothing disables the button: both posts reach the server.
    page.dblclick("#confirm-topup")
    page.wait_for_selector("#topup .alert, .messages")
    wait_until_settled()

    assert budget_of(key.id) == Decimal("13")
    assert TopUp.objects.count() == 1
    page.goto(f"{live_server.url}/dashboard/topups/?sub_key_id={key.id}")
    assert page.locator("#ledger tbody tr").count() == 1


def test_browsing_usage_logs(page, live_server, owner, make_key, simulator, sync_mirror):
    key = make_key("10", label="Busy customer")
    simulator.add_usage(key.id, "0.0023", count=25, inputTokens=100, outputTokens=50)
    sync_mirror(key.id)
    sign_in(page, live_server, "olivia", "owner-pass-1234")

    page.goto(f"{live_server.url}/dashboard/logs/")
    page.fill("#id_client", key.id)
    page.press("#id_client", "Enter")
    page.wait_for_url(re.compile(rf".*client={key.id}.*"))
    page.wait_for_selector("text=page 1 of 2")
    assert page.locator("#logs tbody tr").count() == 20

    page.click("#logs a[rel=next]")
    page.wait_for_url(re.compile(r".*page=2.*"))
    page.wait_for_selector("text=page 2 of 2")
    assert page.locator("#logs tbody tr").count() == 5

    page.select_option("#id_limit", "50")
    page.wait_for_url(re.compile(r".*limit=50.*"))
    page.wait_for_selector("text=page 1 of 1")
    assert page.locator("#logs tbody tr").count() == 25

    page.reload()
    assert page.locator("#logs tbody tr").count() == 25
