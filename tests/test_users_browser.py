"""Browser journeys: an owner invites a staff member who enrols two-factor and tops up within the cap; a disabled user is out at once."""

import base64
import re
from decimal import Decimal

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from tests.helpers import budget_of, new_page, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def code_from_secret(secret_text):
    """What the invitee's authenticator app shows for the key printed on the page."""
    secret = secret_text.replace(" ", "")
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return f"{TOTP(key).token():06d}"


def test_an_invited_staff_member_enrols_two_factor_and_tops_up_within_the_cap(page, browser, live_server, owner, make_key):
    key = make_key("10", label="Journey customer")
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.click("nav >> summary:has-text('More')")
    page.click("nav >> text=Users")
    page.fill("#id_email", "casey@example.com")
    page.select_option("#id_role", "staff")
    page.fill("#id_daily_topup_cap", "25")
    page.click("#invite")
    link = page.input_value("#invitation-link")
    assert "/invite/" in link

    invitee = new_page(browser)
    try:
        invitee.goto(link)
        invitee.fill("#id_username", "casey")
        invitee.fill("#id_password1", "casey-long-pass-42")
        invitee.fill("#id_password2", "casey-long-pass-42")
        invitee.click("#accept-invitation")
        expect(invitee.locator("h1")).to_have_text("Set up two-factor sign-in")
        expect(invitee.locator("img.qr-code")).to_be_visible()
        invitee.fill("#id_code", code_from_secret(invitee.input_value("#totp-secret")))
        invitee.click("#confirm-two-factor")
        expect(invitee.locator("h1")).to_have_text("Your recovery codes")
        assert invitee.locator(".recovery-codes li").count() == 10

        invitee.goto(f"{live_server.url}/dashboard/keys/{key.id}/topup/")
        invitee.fill("#id_amount", "30")
        invitee.fill("#id_note", "INV-CAP")
        invitee.click("text=Review the top-up")
        expect(invitee.locator("#topup")).to_contain_text("That is over your daily top-up limit")
        invitee.fill("#id_amount", "20")
        invitee.click("text=Review the top-up")
        invitee.click("#confirm-topup")
        expect(invitee.locator("#topup h1")).to_contain_text("Top-up of $20.00")
        assert budget_of(key.id) == Decimal("30")
        # Staff do not see the users page.
        assert invitee.goto(f"{live_server.url}/dashboard/users/").status == 403
    finally:
        invitee.context.close()


def test_a_disabled_users_open_session_stops_on_its_next_request(page, browser, live_server, owner, staff):
    staff_page = new_page(browser)
    try:
        sign_in(staff_page, live_server, "sam", "staff-pass-1234")
        sign_in(page, live_server, "olivia", "owner-pass-1234")
        page.goto(f"{live_server.url}/dashboard/users/{staff.pk}/")
        page.click("#disable-user")
        expect(page.locator(".messages")).to_contain_text("disabled")

        staff_page.click("nav >> text=Client Keys")
        expect(staff_page).to_have_url(re.compile(r"/login/"))
    finally:
        staff_page.context.close()
