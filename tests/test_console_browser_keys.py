"""Client Key journeys in headless Chromium: create and copy, edit the multiplier, delete, staff refused."""

import re

import pytest
from playwright.sync_api import expect

from derouter import client as derouter_client
from tests.helpers import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_owner_creates_copies_edits_and_deletes_a_key(live_server, page, owner, simulator):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, live_server, "olivia", "owner-pass-1234")

    page.click("text=Client Keys")
    page.click("text=New key")
    page.fill("#id_label", "Browser client")
    page.fill("#id_budget", "20")
    page.click("button:has-text('Create key')")

    expect(page.locator("h1")).to_contain_text("Key created")
    secret = page.locator("#full-key").inner_text().strip()
    assert secret.startswith("sk-ant-")
    page.click("button:has-text('Copy key')")
    expect(page.locator("button:has-text('Copied')")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret

    created = next(key for key in derouter_client.list_sub_keys() if key.secret.reveal() == secret)
    simulator.add_usage(created.id, "10")

    page.click("text=Go to the key's page")
    expect(page.locator("h1")).to_contain_text("Browser client")
    assert secret not in page.content()

    page.click("a:has-text('Edit')")
    dialog = page.locator("#edit-dialog")
    expect(dialog).to_be_visible()
    dialog.locator("#id_display_multiplier").fill("4")
    expect(dialog.locator(".multiplier-preview")).to_contain_text("$10.00 spent shows as $40.00")
    dialog.locator("button:has-text('Save')").click()
    expect(page.locator(".messages")).to_contain_text("Saved the changes")
    expect(page.locator("dl.details")).to_contain_text(["×4"])

    page.click("a:has-text('Delete')")
    expect(page.locator("h1")).to_contain_text("Delete this key?")
    expect(page.locator("main")).to_contain_text("$10.00")
    page.click("button:has-text('Delete Browser client')")
    expect(page.locator(".messages")).to_contain_text("Deleted Browser client")
    assert all(key.id != created.id for key in derouter_client.list_sub_keys())


def test_search_swaps_only_the_table(live_server, page, owner, make_key):
    make_key("1", label="Needle in the list")
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/")
    page.fill("#key-search", "Needle in the")
    expect(page.locator("#keys")).to_contain_text("Needle in the list")
    expect(page).to_have_url(re.compile(r"q=Needle"))
    page.fill("#key-search", "nothing-is-called-this")
    expect(page.locator("#keys")).to_contain_text("No keys match")


def test_staff_cannot_open_the_create_page(live_server, page, staff):
    sign_in(page, live_server, "sam", "staff-pass-1234")
    response = page.goto(f"{live_server.url}/dashboard/keys/new/")
    assert response.status == 403
    expect(page.locator("h1")).to_contain_text("Not allowed")
