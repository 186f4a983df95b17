"""Priced the way resellers price: any two of the customer's amount, your cost and the markup; the margin shown before money moves."""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from derouter import client
from ledger.models import AuditEvent
from lib.pricing import Price, PriceError, price_from
from tests.helpers import sign_in

CREATE = "console:key_create"


@pytest.fixture
def simulator(simulator):
    """The session's simulator, left with no key these tests made (other tests read its key list)."""
    before = {key.id for key in client.list_sub_keys()}
    yield simulator
    for key in client.list_sub_keys():
        if key.id not in before:
            client.delete_sub_key(key.id)


def test_the_guide_s_example_customer_sees_100_you_pay_60():
    price = price_from(cost=Decimal("60"), customer=Decimal("100"))

    assert price.multiplier == Decimal("1.6667")
    assert (price.margin_percent, price_from(cost=Decimal("60"), multiplier=Decimal("1.3")).customer) == (Decimal("40.0"), Decimal("78.0"))


def test_a_customer_amount_and_a_markup_give_the_cost_in_the_ledger_s_decimals():
    price = price_from(customer=Decimal("13"), multiplier=Decimal("1.3"))

    assert (price.cost, price.customer, price.margin, price.margin_percent) == (
        Decimal("10.0000"), Decimal("13.00000000"), Decimal("3.00000000"), Decimal("23.1"))


@pytest.mark.parametrize("figures", [
    {},
    {"cost": Decimal("10"), "customer": Decimal("5")},
    {"cost": Decimal("10"), "customer": Decimal("13"), "multiplier": Decimal("2")},
])
def test_figures_that_make_no_price_are_refused_with_a_reason(figures):
    with pytest.raises(PriceError) as refused:
        price_from(**figures)
    assert refused.value.message


def test_one_figure_alone_is_a_price_at_no_markup():
    assert price_from(cost=Decimal("5")) == Price(Decimal("5"), Decimal("1"))
    assert price_from(customer=Decimal("5")) == Price(Decimal("5.0000"), Decimal("1"))


@pytest.mark.django_db
def test_the_create_form_previews_the_price_as_it_is_typed(owner_client):
    response = owner_client.get(reverse(CREATE), {"preview": "1", "customer_budget": "100", "budget": "60"},
                                HTTP_HX_REQUEST="true")

    body = response.content.decode()
    assert response.status_code == 200 and 'id="price-preview"' in body and "<html" not in body
    # 60 x 1.6667 (derouter keeps 4 decimals of markup): the customer sees $100.002, shown to the cent with the exact title.
    assert 'title="$100.002">$100.00' in body and "$60.00" in body and "×1.6667" in body
    assert "$40.00</span> (40.0% of the customer's price)" in body


@pytest.mark.django_db
def test_the_preview_says_why_figures_make_no_price(owner_client):
    response = owner_client.get(reverse(CREATE), {"preview": "1", "customer_budget": "5", "budget": "10"},
                                HTTP_HX_REQUEST="true")

    assert "cannot be less than what you pay" in response.content.decode()


@pytest.mark.django_db
def test_without_javascript_show_the_price_renders_it_and_moves_no_money(owner_client, simulator):
    before = client.get_balance().available

    response = owner_client.post(reverse(CREATE), {
        "label": "Priced", "customer_budget": "13", "display_multiplier": "1.3", "token": str(uuid.uuid4()), "edit": "1"})

    body = response.content.decode()
    assert response.status_code == 200 and "$13.00" in body and "$10.00" in body and "23.1%" in body
    assert client.get_balance().available == before and not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_a_key_created_by_the_customer_s_amount_shows_it_at_the_markup_and_costs_the_balance_the_cost(owner_client, simulator):
    before = client.get_balance().available

    response = owner_client.post(reverse(CREATE), {
        "label": "By customer amount", "customer_budget": "13", "display_multiplier": "1.3", "token": str(uuid.uuid4())})

    body = response.content.decode()
    assert response.status_code == 200 and "Your margin" in body and "23.1%" in body
    created = AuditEvent.objects.get(action=AuditEvent.Action.CREATE)
    key = client.get_sub_key(created.sub_key_id)
    assert (key.budget, key.display_multiplier) == (Decimal("10"), Decimal("1.3"))
    assert client.get_client_balance(key.secret.reveal()).budget == Decimal("13")
    assert client.get_balance().available == before - 10


@pytest.mark.django_db
def test_a_markup_and_your_cost_together_may_not_disagree_with_the_customer_s_amount(owner_client, simulator):
    response = owner_client.post(reverse(CREATE), {
        "label": "Disagree", "customer_budget": "13", "budget": "10", "display_multiplier": "2", "token": str(uuid.uuid4())})

    assert response.status_code == 400 and "do not agree" in response.content.decode()
    assert not AuditEvent.objects.exists()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_price_shows_live_while_typing(live_server, page, owner):
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/new/")
    page.fill("#id_budget", "60")
    page.fill("#id_customer_budget", "100")

    expect(page.locator("#price-preview")).to_contain_text("40.0% of the customer's price")
    expect(page.locator("#price-preview")).to_contain_text("×1.6667")


# ---------------------------------------------------------------- top-ups the same way


@pytest.mark.django_db
def test_a_top_up_typed_as_what_the_customer_gets_shows_both_before_confirming_and_the_ledger_keeps_both(owner_client, simulator):
    from ledger.models import TopUp

    key = client.create_sub_key(Decimal("5"), label="Top up by customer", display_multiplier=Decimal("1.3"))
    url = reverse("console:key_topup", args=[key.id])
    token = str(uuid.uuid4())

    confirm = owner_client.post(url, {"customer_amount": "13", "note": "INV-C", "token": token})

    body = confirm.content.decode()
    assert "Confirm the top-up" in body and "$10.00" in body and "$13.00" in body and "at ×1.3" in body
    assert not TopUp.objects.exists()
    owner_client.post(url, {"amount": "10", "note": "INV-C", "token": token, "confirm": "1"})
    row = TopUp.objects.get()
    assert (row.amount, row.customer_amount, row.outcome) == (Decimal("10"), Decimal("13"), "ok")
    assert client.get_client_balance(key.secret.reveal()).budget == Decimal("19.5")


@pytest.mark.django_db
def test_staff_who_may_not_see_margins_are_not_offered_the_customer_s_amount(staff_client, simulator):
    key = client.create_sub_key(Decimal("5"), label="Hidden margins", display_multiplier=Decimal("1.3"))

    body = staff_client.get(reverse("console:key_topup", args=[key.id])).content.decode()

    assert 'name="customer_amount"' not in body


@pytest.mark.django_db
def test_the_ledger_and_its_csv_show_the_customer_s_amount_to_whoever_may_see_margins(owner_client, owner, staff):
    import csv
    import io

    from django.test import Client

    from ledger.models import TopUp

    TopUp.objects.create(token=uuid.uuid4(), actor=owner, actor_name="olivia", sub_key_id=str(uuid.uuid4()), key_label="Acme",
                         amount=Decimal("10"), customer_amount=Decimal("13"), note="INV-L", outcome="ok")

    page = owner_client.get(reverse("console:ledger")).content.decode()
    assert "Customer amount" in page and "$13.00" in page and "$10.00" in page
    rows = list(csv.reader(io.StringIO(b"".join(owner_client.get(reverse("console:ledger_csv")).streaming_content).decode())))
    assert rows[1][rows[0].index("customer_amount")].startswith("13")

    hidden = Client()
    hidden.force_login(staff)  # an owner has not let this staff member see margins
    page = hidden.get(reverse("console:ledger")).content.decode()
    assert "Customer amount" not in page and "$13.00" not in page
    rows = list(csv.reader(io.StringIO(b"".join(hidden.get(reverse("console:ledger_csv")).streaming_content).decode())))
    assert "customer_amount" not in rows[0] and not any(cell.startswith("13") for cell in rows[1])
