"""Forms answer mistakes in our own words, saying what each field expects, never Django's stock wording."""

import pytest
from django.test import Client

from accounts.forms import ConsoleLoginForm, InvitationForm
from analytics.forms import PeriodForm
from automation.forms import AutoTopUpRuleForm, KeyExpiryForm, WebhookEndpointForm
from branding.forms import BrandingForm
from portal.forms import PortalLoginForm, TimeZoneForm

pytestmark = pytest.mark.django_db

STOCK_WORDING = (
    "This field is required",
    "Enter a number",
    "Enter a whole number",
    "Enter a valid",
    "Select a valid choice",
    "Ensure this value",
    "Please enter a correct",
)


def _errors(form):
    form.is_valid()
    return {name: " ".join(messages) for name, messages in form.errors.items()}


def _assert_own_wording(errors):
    for name, text in errors.items():
        assert not any(stock in text for stock in STOCK_WORDING), f"{name}: {text}"


def test_automation_forms_say_what_each_field_expects():
    rule = _errors(AutoTopUpRuleForm({"name": "", "threshold": "", "amount": "5", "max_times": "many"}, key_choices=[("k", "Key")]))
    assert rule["sub_key_id"] == "Choose a key from the list."
    assert rule["name"].startswith("Give it a name of at most 120 characters")
    assert rule["max_times"] == "A whole number from 1 to 100,000, or empty for no limit."
    assert rule["threshold"] == "Enter the threshold in dollars, e.g. 25 or 12.50."
    expiry = _errors(KeyExpiryForm({"sub_key_id": "x", "expires_at": "soon", "remind_days": "400", "notify_email": "ana"}))
    assert expiry["expires_at"] == "Enter the date and time the key expires, in UTC, e.g. 2026-12-31 18:00."
    assert expiry["remind_days"] == "A whole number of days from 0 to 365, e.g. 3."
    assert expiry["notify_email"].startswith("Enter the customer's email address")
    webhook = _errors(WebhookEndpointForm({"url": "not a url", "events": []}))
    assert webhook["events"] == "Tick at least one event to send."
    for errors in (rule, expiry, webhook):
        _assert_own_wording(errors)


def test_sign_in_invitation_branding_period_and_portal_forms_use_our_wording(rf):
    login = _errors(ConsoleLoginForm(rf.post("/login/"), data={"username": "", "password": ""}))
    assert login == {"username": "Enter your console username.", "password": "Enter your password."}
    invitation = _errors(InvitationForm({"email": "ana", "role": "boss", "daily_topup_cap": "lots"}))
    assert invitation["email"] == "Enter an email address, e.g. ana@example.com."
    assert invitation["role"] == "Choose a role: owner or staff."
    branding = _errors(BrandingForm({"product_name": "x" * 61, "inference_base_url": "no such address"}))
    assert branding["product_name"].startswith("Keep the product name to 60 characters")
    assert branding["inference_base_url"].startswith("Enter the address as an https:// link")
    period = _errors(PeriodForm({"period": "custom", "start": "2026-02-30", "end": "x"}, today=None))
    assert period == {"start": "Enter the day as YYYY-MM-DD, e.g. 2026-10-01.", "end": "Enter the day as YYYY-MM-DD, e.g. 2026-10-01."}
    assert _errors(PortalLoginForm({"client_key": ""})) == {"client_key": "Paste your Client Key: it starts with sk-."}
    assert _errors(TimeZoneForm({"tz": "Mars/Olympus"}))["tz"] == "Choose a time zone from the list, e.g. Europe/Berlin."
    for errors in (login, invitation, branding, period):
        _assert_own_wording(errors)


def test_a_wrong_password_is_answered_in_our_words(owner):
    response = Client().post("/login/", {"username": "olivia", "password": "not-it"})
    html = response.content.decode()
    assert "That username and password do not match a console user." in html
    assert "Please enter a correct" not in html


def test_a_day_that_does_not_exist_is_not_sent_back_into_the_date_picker(owner_client):
    response = owner_client.get("/dashboard/analytics/?period=custom&start=2026-13-40&end=2026-01-02")
    html = response.content.decode()
    assert response.status_code == 400 and "Enter the day as YYYY-MM-DD" in html
    # The picker is not refilled with it (the language menu's return address may still carry the query).
    assert 'value="2026-13-40"' not in html and 'value="2026-01-02"' in html
