"""Money typed into the console: plain decimals only, limits from the reference, a confirm step for large budgets."""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from dashboard.forms import KeyEditForm, TopUpForm
from lib.forms import PLAIN_DECIMAL_MESSAGE
from derouter import client as derouter_client

pytestmark = pytest.mark.django_db

NOT_PLAIN = [
    "1e3",
    "1E3",
    "1_000",
    "1,000",
    "+5",
    "-5",
    ".5",
    "5.",
    "1.2.3",
    "١٢",  # Arabic-Indic digits
    "１２",  # fullwidth digits
    "१२",  # Devanagari digits
    "12 000",
    "Infinity",
    "NaN",
    "0x10",
]


@pytest.mark.parametrize("typed", NOT_PLAIN)
def test_money_fields_accept_only_plain_decimals(typed):
    form = TopUpForm({"amount": typed, "note": "INV-1"})
    assert not form.is_valid()
    assert form.errors["amount"] == [PLAIN_DECIMAL_MESSAGE]


@pytest.mark.parametrize("typed, value", [("25", "25"), ("12.50", "12.50"), (" 7.0001 ", "7.0001"), ("0.5", "0.5")])
def test_plain_decimals_are_read_exactly(typed, value):
    form = TopUpForm({"amount": typed, "note": "INV-1"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == Decimal(value)


def test_the_message_says_what_is_allowed():
    assert "digits" in PLAIN_DECIMAL_MESSAGE and "one decimal point" in PLAIN_DECIMAL_MESSAGE


@pytest.mark.parametrize("typed", ["1e3", "1_000", "+5", "١٠٠٠"])
def test_an_exponent_budget_creates_no_key(owner_client, typed):
    before = len(derouter_client.list_sub_keys())
    response = owner_client.post(reverse("console:key_create"), {"label": "Trick", "budget": typed, "rpm_limit": "60"})
    assert response.status_code == 400
    assert "plain number" in response.content.decode()
    assert len(derouter_client.list_sub_keys()) == before


def test_a_budget_over_the_ceiling_is_refused(owner_client, settings):
    settings.MAX_KEY_BUDGET = Decimal("500")
    before = len(derouter_client.list_sub_keys())
    response = owner_client.post(reverse("console:key_create"), {"label": "Big", "budget": "500.01", "rpm_limit": "60"})
    assert response.status_code == 400
    assert "at most $500" in response.content.decode()
    assert len(derouter_client.list_sub_keys()) == before


def test_a_top_up_over_the_ceiling_is_refused(settings):
    settings.MAX_KEY_BUDGET = Decimal("500")
    form = TopUpForm({"amount": "600", "note": "INV-1"})
    assert not form.is_valid()


@pytest.mark.parametrize("multiplier, valid", [("1", True), ("1000", True), ("1000.0001", False), ("999999", False), ("0.5", False), ("1e2", False)])
def test_the_multiplier_is_between_1_and_1000(multiplier, valid):
    form = KeyEditForm({"label": "", "rpm_limit": "60", "display_multiplier": multiplier})
    assert form.is_valid() is valid


def test_a_large_budget_asks_for_confirmation_before_any_money_moves(owner_client, settings):
    settings.CONFIRM_BUDGET_ABOVE = Decimal("50")
    before = len(derouter_client.list_sub_keys())
    data = {"label": "Large", "budget": "60", "rpm_limit": "60", "token": str(uuid.uuid4())}
    response = owner_client.post(reverse("console:key_create"), data)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Confirm a large budget" in body and "$60.00" in body
    assert len(derouter_client.list_sub_keys()) == before

    created = owner_client.post(reverse("console:key_create"), {**data, "confirm": "1"})
    assert created.status_code == 200 and "Large" in created.content.decode()
    assert len(derouter_client.list_sub_keys()) == before + 1
    # The same confirmed form again moves no money.
    owner_client.post(reverse("console:key_create"), {**data, "confirm": "1"})
    assert len(derouter_client.list_sub_keys()) == before + 1


def test_a_budget_under_the_threshold_needs_no_confirmation(owner_client, settings):
    settings.CONFIRM_BUDGET_ABOVE = Decimal("50")
    before = len(derouter_client.list_sub_keys())
    response = owner_client.post(reverse("console:key_create"), {"label": "Small", "budget": "5", "rpm_limit": "60"})
    assert response.status_code == 200
    assert len(derouter_client.list_sub_keys()) == before + 1


def test_change_on_the_confirm_step_goes_back_to_the_form(owner_client, settings):
    settings.CONFIRM_BUDGET_ABOVE = Decimal("50")
    data = {"label": "Changed", "budget": "60", "rpm_limit": "60", "token": str(uuid.uuid4()), "edit": "1"}
    response = owner_client.post(reverse("console:key_create"), data)
    assert "New Client Key" in response.content.decode()
