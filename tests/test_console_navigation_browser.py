"""The console's top bar: one row at 1280px with every link an owner has, usable by keyboard and on a phone."""

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import new_page, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
# The page's width: a phone zooms out for a too-wide page, and window.innerWidth grows with it.
PAGE_WIDTH = "document.documentElement.scrollWidth"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def _boxes(page, selector):
    return page.locator(selector).evaluate_all("items => items.map(item => item.getBoundingClientRect().toJSON())")


def test_an_owners_top_bar_is_one_row_at_1280px(browser, live_server, owner, simulator):
    page = new_page(browser, **DESKTOP)
    try:
        sign_in(page, live_server, "olivia", "owner-pass-1234")
        # Everything the top bar shows while its menus are closed: brand, links and the three menu buttons
        # (More, the account, the language).
        boxes = _boxes(page, ".topbar .brand, .topbar .nav-links > a, .topbar .nav-menu > summary")
        assert len(boxes) == 11
        middles = [box["y"] + box["height"] / 2 for box in boxes]
        tallest = max(box["height"] for box in boxes)
        assert max(middles) - min(middles) < tallest / 2, f"the top bar's items are on more than one row: {boxes}"
        topbar = _boxes(page, ".topbar")[0]
        assert topbar["height"] < 2 * tallest + 24, f"the top bar is {topbar['height']}px high"
        assert all(box["x"] + box["width"] <= 1280 for box in boxes)
    finally:
        page.context.close()


def test_the_more_menu_opens_by_keyboard_and_closes_with_escape(browser, live_server, owner, simulator):
    page = new_page(browser, **DESKTOP)
    try:
        sign_in(page, live_server, "olivia", "owner-pass-1234")
        more = page.locator(".nav-menu > summary", has_text="More")
        first_link = more.locator("xpath=..").locator(".nav-menu-list a").first
        expect(first_link).to_be_hidden()
        more.focus()
        page.keyboard.press("Enter")
        expect(first_link).to_be_visible()
        page.keyboard.press("Tab")
        expect(first_link).to_be_focused()
        page.keyboard.press("Escape")
        expect(first_link).to_be_hidden()
        expect(more).to_be_focused()
        page.keyboard.press("Enter")
        page.get_by_role("link", name="Portal branding").click()
        expect(page).to_have_url(f"{live_server.url}/dashboard/branding/")
        expect(page.locator(".nav-menu > summary.active", has_text="More")).to_be_visible()
    finally:
        page.context.close()


def test_on_a_phone_the_menus_open_inside_the_screen_and_nothing_scrolls_sideways(browser, live_server, owner, simulator):
    page = new_page(browser, **PHONE)
    try:
        sign_in(page, live_server, "olivia", "owner-pass-1234")
        assert page.evaluate(PAGE_WIDTH) <= 390
        # The daily pages are behind "Menu": hidden until it opens, then every one inside the screen.
        daily = ("Overview", "Client Keys", "Analytics", "Top-ups", "Usage logs", "Automation", "Requests")
        expect(page.get_by_role("link", name="Analytics", exact=True)).to_be_hidden()
        page.locator(".nav-pages > summary").click()
        for name in daily:
            box = page.get_by_role("link", name=name, exact=True).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, f"{name} is off the screen: {box}"
        for name, link in (("More", "Users"), ("olivia", "Two-factor sign-in")):
            page.locator(".nav-menu > summary", has_text=name).click()
            target = page.get_by_role("link", name=link)
            expect(target).to_be_visible()
            box = target.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, f"{link} is off the screen: {box}"
            assert page.evaluate(PAGE_WIDTH) <= 390
        # Opening the account menu closed "More" (and opening "More" closed "Menu").
        expect(page.get_by_role("link", name="Users")).to_be_hidden()
        expect(page.get_by_role("link", name="Analytics", exact=True)).to_be_hidden()
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login/$"))
    finally:
        page.context.close()
