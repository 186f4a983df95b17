"""Top-ups and edits from the Client Keys list: in a dialog with JavaScript, as plain pages without it."""

import json
import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from ledger.models import Outcome, TopUp
from derouter import client as derouter_client
from tests.helpers import budget_of, sign_in


def key_row(page, label):
    return page.locator("#keys tbody tr", has_text=label)


def budget_cell(page, label):
    """The Budget column of a key's row in the list."""
    return key_row(page, label).locator("td").nth(2)


def mark_page_as_loaded_once(page):
    """Set a flag that a full page load would wipe out."""
    page.evaluate("window.loadedOnce = true")


def still_the_same_page_load(page):
    return page.evaluate("window.loadedOnce === true")


# ---------------------------------------------------------------- browser journeys


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_owner_tops_up_a_row_in_a_dialog_and_the_table_refreshes(live_server, page, owner, make_key):
    key = make_key("10", label="Dialog customer")
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/?q=Dialog")
    expect(budget_cell(page, "Dialog customer")).to_have_text("$10.00")
    mark_page_as_loaded_once(page)

    key_row(page, "Dialog customer").get_by_role("link", name="Top up", exact=True).click()
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#id_amount").fill("5")
    dialog.locator("#id_note").fill("INV-DIALOG-1")
    dialog.get_by_role("button", name="Review the top-up").click()
    expect(dialog.locator("#topup")).to_contain_text("$10.00 → $15.00")
    dialog.locator("#confirm-topup").click()

    expect(dialog).to_be_hidden()
    expect(budget_cell(page, "Dialog customer")).to_have_text("$15.00")
    assert still_the_same_page_load(page)
    expect(page).to_have_url(re.compile(r"/dashboard/keys/\?q=Dialog$"))
    assert budget_of(key.id) == Decimal("15")
    assert list(TopUp.objects.values_list("outcome", "note")) == [(Outcome.OK, "INV-DIALOG-1")]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_an_unknown_top_up_outcome_stays_on_screen_in_the_dialog(live_server, page, owner, make_key, simulator):
    key = make_key("10", label="Unknown customer")
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/?q=Unknown")

    key_row(page, "Unknown customer").get_by_role("link", name="Top up", exact=True).click()
    dialog = page.locator("#key-dialog")
    dialog.locator("#id_amount").fill("2")
    dialog.locator("#id_note").fill("INV-UNKNOWN")
    dialog.get_by_role("button", name="Review the top-up").click()
    simulator.inject("error", path=f"/sub-keys/{key.id}", method="PUT", status=500)
    dialog.locator("#confirm-topup").click()

    expect(dialog.locator("#topup")).to_contain_text("may or may not have happened")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_without_javascript_the_row_top_up_is_a_plain_page(page_without_javascript, live_server, owner, make_key):
    page = page_without_javascript
    key = make_key("10", label="Plain customer")
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/?q=Plain")
    key_row(page, "Plain customer").get_by_role("link", name="Top up", exact=True).click()

    expect(page).to_have_url(re.compile(rf"/dashboard/keys/{key.id}/topup/$"))
    page.fill("#id_amount", "4")
    page.fill("#id_note", "INV-PLAIN-1")
    page.click("text=Review the top-up")
    expect(page.locator("#topup")).to_contain_text("$10.00 → $14.00")
    page.click("#confirm-topup")

    expect(page.locator(".messages")).to_contain_text("its budget went from $10.00 to $14.00")
    page.goto(f"{live_server.url}/dashboard/keys/?q=Plain")
    expect(budget_cell(page, "Plain customer")).to_have_text("$14.00")
    assert budget_of(key.id) == Decimal("14")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_owner_edits_a_row_in_a_dialog_and_the_table_refreshes(live_server, page, owner, make_key):
    key = make_key("10", label="Editable customer")
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/?q=Editable")
    mark_page_as_loaded_once(page)

    key_row(page, "Editable customer").get_by_role("link", name="Edit", exact=True).click()
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#id_rpm_limit").fill("0")
    dialog.get_by_role("button", name="Save").click()
    expect(dialog.locator(".errorlist")).to_be_visible()

    dialog.locator("#id_rpm_limit").fill("30")
    dialog.locator("#id_label").fill("Editable customer renamed")
    dialog.get_by_role("button", name="Save").click()

    expect(dialog).to_be_hidden()
    expect(key_row(page, "Editable customer renamed").locator("td").nth(7)).to_have_text("30")
    assert still_the_same_page_load(page)
    edited = next(sub_key for sub_key in derouter_client.list_sub_keys() if sub_key.id == key.id)
    assert (edited.label, edited.rpm_limit) == ("Editable customer renamed", 30)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_staff_rows_offer_top_up_but_not_edit(live_server, page, staff, make_key):
    make_key("10", label="Staff row")
    sign_in(page, live_server, "sam", "staff-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/?q=Staff%20row")
    row = key_row(page, "Staff row")
    expect(row.get_by_role("link", name="Top up", exact=True)).to_be_visible()
    expect(row.get_by_role("link", name="Edit", exact=True)).to_have_count(0)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_key_log_paging_is_kept_in_the_address(live_server, page, owner, make_key, simulator, sync_mirror):
    key = make_key("10", label="Paged logs")
    simulator.add_usage(key.id, "0.001", count=25, inputTokens=10, outputTokens=5)
    sync_mirror(key.id)
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/{key.id}/")
    expect(page.locator("#key-logs tbody tr")).to_have_count(20)

    page.click("#key-logs a[rel=next]")
    expect(page).to_have_url(re.compile(rf"/dashboard/keys/{key.id}/\?page=2&limit=20$"))
    expect(page.locator("#key-logs tbody tr")).to_have_count(5)
    page.reload()
    expect(page.locator("#key-logs tbody tr")).to_have_count(5)

    page.select_option("#logs-limit", "50")
    expect(page).to_have_url(re.compile(r"limit=50"))
    expect(page.locator("#key-logs tbody tr")).to_have_count(25)
    page.reload()
    expect(page.locator("#key-logs tbody tr")).to_have_count(25)


# ---------------------------------------------------------------- the fragments behind them


@pytest.mark.django_db
def test_an_htmx_list_request_gets_the_table_that_refreshes_itself_at_the_same_query(owner_client, make_key):
    key = make_key("1", label="Fragment row")
    response = owner_client.get(reverse("console:key_list"), {"q": "Fragment row", "sort": "label"}, headers={"HX-Request": "true"})

    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and 'id="key-dialog"' not in body
    assert 'data-hx-trigger="subKeysChanged from:body"' in body
    assert 'data-hx-get="/dashboard/keys/?q=Fragment+row&amp;sort=label"' in body
    topup_url = reverse("console:key_topup", args=[key.id])
    assert f'href="{topup_url}" data-hx-get="{topup_url}" data-hx-target="#key-dialog-body"' in body


@pytest.mark.django_db
def test_the_full_list_page_carries_the_key_dialog(owner_client):
    body = owner_client.get(reverse("console:key_list")).content.decode()
    assert '<dialog id="key-dialog"' in body and 'id="key-dialog-body"' in body


@pytest.mark.django_db
def test_an_htmx_edit_form_posts_in_place_and_a_save_refreshes_the_list(owner_client, make_key):
    key = make_key("1", label="Edited in place")
    url = reverse("console:key_edit", args=[key.id])

    form = owner_client.get(url, headers={"HX-Request": "true"})
    assert "<html" not in form.content.decode()
    assert f'data-hx-post="{url}"' in form.content.decode()

    data = {"label": "Edited in place", "rpm_limit": "12", "display_multiplier": "1"}
    saved = owner_client.post(url, data, headers={"HX-Request": "true"})
    assert saved.status_code == 200
    assert json.loads(saved["HX-Trigger"]) == {"subKeysChanged": {}}
    assert "data-dialog-done" in saved.content.decode()
    assert "Saved the changes to Edited in place." in saved.content.decode()

    unchanged = owner_client.post(url, data, headers={"HX-Request": "true"})
    assert "data-dialog-done" in unchanged.content.decode() and "HX-Trigger" not in unchanged

    invalid = owner_client.post(url, {**data, "rpm_limit": "0"}, headers={"HX-Request": "true"})
    assert invalid.status_code == 400
    assert "<html" not in invalid.content.decode() and "data-dialog-done" not in invalid.content.decode()


@pytest.mark.django_db
def test_an_htmx_edit_of_a_vanished_key_goes_to_the_list_with_a_full_page_load(owner_client, make_key, simulator):
    key = make_key("1", label="Vanishing")
    simulator.inject("error", path=f"/sub-keys/{key.id}", method="PUT", status=404)
    data = {"label": "Vanishing", "rpm_limit": "12", "display_multiplier": "1"}
    response = owner_client.post(reverse("console:key_edit", args=[key.id]), data, headers={"HX-Request": "true"})
    assert response["HX-Redirect"] == reverse("console:key_list")


@pytest.mark.django_db
def test_only_a_top_up_that_went_through_closes_the_dialog(owner_client, make_key, simulator):
    key = make_key("10", label="Closing")
    url = reverse("console:key_topup", args=[key.id])

    def confirm(amount):
        data = {"amount": amount, "note": "INV", "token": str(uuid.uuid4()), "confirm": "1"}
        return owner_client.post(url, data, headers={"HX-Request": "true"}).content.decode()

    assert "data-dialog-done" in confirm("1")
    simulator.inject("error", path=f"/sub-keys/{key.id}", method="PUT", status=500)
    assert "data-dialog-done" not in confirm("1")
