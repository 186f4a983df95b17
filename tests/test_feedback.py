"""Feedback after every action, helpful answers to stray GETs, error pages that keep the navigation."""

import re
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from dashboard.forms import MULTIPLIER_MESSAGE
from lib.forms import PLAIN_DECIMAL_MESSAGE
from ledger.models import AuditEvent
from derouter import conventions as upstream_conventions
from derouter import client as derouter_client
from accounts.portal_sessions import get_time_zone_choices

pytestmark = pytest.mark.django_db

OOB_TOAST = re.compile(r'<div data-hx-swap-oob="beforeend:#toasts">\s*<div class="toast toast-success">\s*<p>([^<]+)</p>')
PAGE_TOAST = re.compile(r'<div id="toasts"[^>]*aria-live="polite"[^>]*>\s*<div class="toast toast-success">\s*<p>([^<]+)</p>')


def confirm_top_up(http, sub_key_id, amount, **headers):
    data = {"amount": amount, "note": "INV-7", "token": str(uuid.uuid4()), "confirm": "1"}
    return http.post(reverse("console:key_topup", args=[sub_key_id]), data, headers=headers)


# ---------------------------------------------------------------- toasts


def test_a_top_up_in_the_dialog_answers_with_a_toast_outside_the_dialog(owner_client, make_key):
    key = make_key("10", label="Toast Co")
    response = confirm_top_up(owner_client, key.id, "2.5", HX_Request="true")
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-dialog-done' in body
    assert OOB_TOAST.search(body).group(1) == "Added $2.50 to Toast Co: its budget went from $10.00 to $12.50."
    # Shown once: the next page does not repeat it.
    assert "toast-success" not in owner_client.get(reverse("console:key_list")).content.decode()


# Bug: on the top-up page itself the result replaced the form with "Added $2.50 to ..." and a toast said it again.
def test_a_top_up_on_its_own_page_says_it_once(owner_client, make_key):
    key = make_key("10", label="Once Co")
    page_url = f"http://testserver{reverse('console:key_topup', args=[key.id])}"
    response = confirm_top_up(owner_client, key.id, "2.5", HX_Request="true", HX_Current_URL=page_url)
    body = response.content.decode()
    assert response.status_code == 200 and "Added $2.50 to Once Co" in body
    assert body.count("Added $2.50 to Once Co") == 1 and not OOB_TOAST.search(body)
    assert "toast-success" not in owner_client.get(reverse("console:key_list")).content.decode()


def test_a_plain_top_up_shows_its_toast_on_the_page_it_leads_to(owner_client, make_key):
    key = make_key("10", label="Plain Toast Co")
    response = confirm_top_up(owner_client, key.id, "1")
    page = owner_client.get(response["Location"]).content.decode()
    assert PAGE_TOAST.search(page).group(1) == "Added $1.00 to Plain Toast Co: its budget went from $10.00 to $11.00."


def test_an_edit_in_the_dialog_answers_with_a_toast(owner_client, make_key):
    key = make_key("10", label="Edit Toast Co")
    data = {"label": "Edit Toast Co", "rpm_limit": "30", "display_multiplier": "1"}
    response = owner_client.post(reverse("console:key_edit", args=[key.id]), data, headers={"HX-Request": "true"})
    assert OOB_TOAST.search(response.content.decode())


def test_a_fragment_without_news_carries_no_toast(owner_client, make_key):
    make_key("10", label="Quiet Co")
    body = owner_client.get(reverse("console:key_list"), headers={"HX-Request": "true"}).content.decode()
    assert "data-hx-swap-oob=\"beforeend:#toasts\"" not in body


# ---------------------------------------------------------------- error pages keep the navigation


def test_a_404_in_the_console_keeps_the_console_navigation(owner_client):
    response = owner_client.get("/dashboard/keys/3f1c2a9e-0000-4000-8000-000000000000/")
    body = response.content.decode()
    assert response.status_code == 404
    assert '<nav class="nav console-nav" aria-label="Console">' in body and 'href="/dashboard/">Overview</a></p>' in body


def test_a_403_keeps_the_console_navigation(staff):
    staff_client = Client()
    staff_client.force_login(staff)
    response = staff_client.get(reverse("console:key_create"))
    assert response.status_code == 403
    assert '<nav class="nav console-nav" aria-label="Console">' in response.content.decode()


def test_derouter_down_keeps_the_console_navigation(owner_client, simulator):
    simulator.inject("error", path="/balance", status=503, times=10)
    response = owner_client.get(reverse("console:key_create"))
    assert response.status_code == 503
    assert '<nav class="nav console-nav" aria-label="Console">' in response.content.decode()


def test_a_signed_out_visitor_gets_the_plain_404(client):
    body = client.get("/nowhere/").content.decode()
    assert 'aria-label="Console"' not in body and 'href="/">Home</a>' in body


# ---------------------------------------------------------------- stray GETs


def test_get_on_the_portal_time_zone_goes_to_the_logs(client, make_key):
    key = make_key("1")
    client.post("/portal/login/", {"client_key": key.secret.reveal()})
    assert client.get("/portal/timezone/")["Location"] == "/portal/logs/"


def test_a_time_zone_change_keeps_the_rows_per_page(client, make_key):
    key = make_key("1")
    client.post("/portal/login/", {"client_key": key.secret.reveal()})
    response = client.post("/portal/timezone/", {"tz": "Europe/Berlin", "limit": "50"})
    assert response["Location"] == "/portal/logs/?limit=50"
    body = client.get("/portal/logs/?limit=50").content.decode()
    assert '<input type="hidden" name="limit" id="tz-limit" value="50">' in body


def test_empty_logs_offer_no_download(client, make_key):
    key = make_key("1")
    client.post("/portal/login/", {"client_key": key.secret.reveal()})
    body = client.get("/portal/logs/").content.decode()
    assert "No requests yet" in body and "Download CSV" not in body


def test_the_time_zone_list_has_no_legacy_aliases_and_is_grouped_by_region():
    choices = get_time_zone_choices()
    assert choices[0] == ("UTC", "UTC")
    regions = dict(choices[1:])
    assert set(regions) <= {"Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
    names = {name for zones in regions.values() for name, _ in zones}
    assert {"Europe/Berlin", "Asia/Tokyo", "America/Argentina/Buenos_Aires"} <= names
    assert not names & {"US/Eastern", "Etc/GMT+5", "EST", "Japan", "Canada/Pacific"}
    assert ("America/Argentina/Buenos_Aires", "Argentina / Buenos Aires") in regions["America"]


# ---------------------------------------------------------------- the create form


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("budget", "abc", PLAIN_DECIMAL_MESSAGE),
        ("budget", "", "Enter what the customer gets, what you pay, or both."),
        ("rpm_limit", "abc", "Requests per minute must be a whole number from 1 to 60."),
        ("rpm_limit", "61", "Requests per minute must be a whole number from 1 to 60."),
        ("display_multiplier", "abc", PLAIN_DECIMAL_MESSAGE),
        ("display_multiplier", "0.5", MULTIPLIER_MESSAGE),
        ("display_multiplier", "1001", MULTIPLIER_MESSAGE),
    ],
)
def test_the_create_form_says_what_is_wrong_in_our_words(owner_client, field, value, message):
    data = {"label": "Wording", "budget": "5", "rpm_limit": "", "display_multiplier": "", field: value}
    response = owner_client.post(reverse("console:key_create"), data)
    assert response.status_code == 400
    assert str(message) in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_a_key_is_created_with_its_multiplier(owner_client):
    data = {"label": "Marked up by feedback", "budget": "5", "rpm_limit": "", "display_multiplier": "1.5"}
    # The reference's reading, whatever an earlier probe of the shared simulator left stored.
    with upstream_conventions.assuming(upstream_conventions.REFERENCE):
        response = owner_client.post(reverse("console:key_create"), data)
    assert response.status_code == 200
    assert "×1.5" in response.content.decode()
    created = next(key for key in derouter_client.list_sub_keys() if key.label == "Marked up by feedback")
    assert created.display_multiplier == Decimal("1.5")
    # The markup goes with the create itself; a second write follows only where derouter did not keep it.
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))[0] == "create"


def test_money_and_counts_are_typed_in_text_fields_with_a_numeric_keyboard(owner_client):
    body = owner_client.get(reverse("console:key_create")).content.decode()
    assert re.search(r'<input type="text" name="budget"[^>]*inputmode="decimal"', body)
    assert re.search(r'<input type="text" name="rpm_limit"[^>]*inputmode="numeric"', body)
