"""Keyboard-only journeys: create a key, top one up in the dialog, sort, and reveal + copy in the portal."""

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import new_page, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# How many Tab presses a journey may take to reach a control before it counts as unreachable.
MAX_TABS = 60


def focused(page):
    return page.evaluate("document.activeElement && (document.activeElement.id || document.activeElement.textContent.trim())")


def tab_to(page, text):
    """Press Tab until the focused element's text (or id) is ``text``; fail if it never comes."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if focused(page) == text:
            return
    raise AssertionError(f"{text!r} is not reachable with Tab")


def test_the_first_tab_offers_to_skip_the_navigation(live_server, page, owner):
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/new/")
    page.keyboard.press("Tab")
    assert focused(page) == "Skip to content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert focused(page) == "id_label"


def test_owner_creates_a_key_by_keyboard_and_lands_on_the_first_error(live_server, page, owner):
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/new/")
    tab_to(page, "id_label")
    page.keyboard.type("Keyboard Customer")
    page.keyboard.press("Tab")
    page.keyboard.type("abc")
    tab_to(page, "id_display_multiplier")
    page.keyboard.type("1.5")
    page.keyboard.press("Enter")

    expect(page.locator("#id_budget")).to_be_focused()
    expect(page.locator("main")).to_contain_text("Type a plain number such as 25 or 12.50")
    page.keyboard.press("Control+A")
    page.keyboard.type("5")
    page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text("Key created: Keyboard Customer")
    expect(page.locator("dl.details")).to_contain_text("×1.5")


def test_staff_tops_up_in_the_dialog_by_keyboard_and_a_toast_confirms(live_server, page, staff, make_key):
    make_key("10", label="Dialog Keys Co")
    sign_in(page, live_server, "sam", "staff-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/?q=Dialog+Keys")
    tab_to(page, "Top up")
    page.keyboard.press("Enter")

    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#id_amount")).to_be_focused()
    expect(dialog).to_contain_text("Available to add")
    page.keyboard.type("2")
    page.keyboard.press("Tab")
    page.keyboard.type("INV-KEYS")
    page.keyboard.press("Enter")
    expect(dialog.locator("#confirm-topup")).to_be_visible()
    tab_to(page, "confirm-topup")
    page.keyboard.press("Enter")

    expect(dialog).to_be_hidden()
    toast = page.locator("#toasts .toast-success")
    expect(toast).to_have_text(re.compile(r"Added \$2\.00 to Dialog Keys Co: its budget went from \$10\.00 to \$12\.00\."))
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)


def test_sorting_by_keyboard_keeps_focus_on_the_sort_link(live_server, page, owner, make_key):
    make_key("3", label="Sort A")
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/")
    tab_to(page, "Budget")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"sort=budget"))
    expect(page.locator('[data-sort-column="budget"]')).to_be_focused()


def test_customer_reveals_the_key_and_copies_a_working_snippet_by_keyboard(live_server, browser, make_key):
    key = make_key("1", label="Copy Customer")
    secret = key.secret.reveal()
    page = new_page(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        page.goto(f"{live_server.url}/portal/login/")
        page.fill("#id_client_key", secret)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/portal/$"))
        assert secret not in page.content()

        tab_to(page, "Reveal key")
        page.keyboard.press("Enter")
        expect(page.locator("#client-key-value")).to_have_text(secret)
        expect(page.locator("#snippet-shell")).to_contain_text(f'export OPENAI_API_KEY="{secret}"')
        expect(page.locator("#client-key [data-copy-target]")).to_be_focused()

        shell_copy = page.locator('[data-copy-target="#snippet-shell"]')
        shell_copy.focus()
        page.keyboard.press("Enter")
        expect(shell_copy).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == f'export OPENAI_API_KEY="{secret}"'
    finally:
        page.context.close()


def test_a_shortened_request_id_has_a_copy_button_that_says_copied(live_server, browser, make_key, simulator):
    secret = make_key("1", label="Copy Ids Customer").secret.reveal()
    simulator.chat(secret, count=1)
    page = new_page(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        page.goto(f"{live_server.url}/portal/login/")
        page.fill("#id_client_key", secret)
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"/portal/$"))
        page.goto(f"{live_server.url}/portal/logs/")
        request_id = page.locator("#logs [data-copyable]").first.get_attribute("title")
        assert request_id
        copy = page.get_by_role("button", name=f"Copy {request_id}")
        copy.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_role("status").filter(has_text="Copied")).to_have_count(1)
        assert page.evaluate("navigator.clipboard.readText()") == request_id
    finally:
        page.context.close()
