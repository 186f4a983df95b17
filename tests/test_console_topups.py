"""Top-ups against the live simulator: confirm step, one-time tokens, caps, faults, ledger and CSV."""

import csv
import io
import json
import re
import time
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from ledger.models import AuditEvent, Outcome, TopUp
from derouter import client as derouter
from lib import stored_text
from lib.money import money
from tests.helpers import budget_of

pytestmark = pytest.mark.django_db

TOKEN_FIELD = re.compile(r'name="token" value="([0-9a-f-]{36})"')


def topup_url(sub_key_id):
    return reverse("console:key_topup", args=[sub_key_id])


def form_token(response):
    return TOKEN_FIELD.search(response.content.decode()).group(1)


def review(http, sub_key_id, amount, note="INV-1001", token=None):
    return http.post(topup_url(sub_key_id), {"amount": amount, "note": note, "token": token or str(uuid.uuid4())})


def confirm(http, sub_key_id, amount, note="INV-1001", token=None):
    data = {"amount": amount, "note": note, "token": token or str(uuid.uuid4()), "confirm": "1"}
    return http.post(topup_url(sub_key_id), data)


def test_a_top_up_moves_the_budget_by_exactly_the_amount(owner_client, make_key):
    key = make_key("10", label="Acme")
    available_before = derouter.get_balance().available

    form_page = owner_client.get(topup_url(key.id))
    assert form_page.status_code == 200
    token = form_token(form_page)
    response = confirm(owner_client, key.id, "2.5", token=token)

    assert response.status_code == 302
    assert response["Location"] == reverse("console:key_detail", args=[key.id])
    assert budget_of(key.id) == Decimal("12.5")
    assert derouter.get_balance().available == available_before - Decimal("2.5")
    topup = TopUp.objects.get()
    assert (topup.outcome, topup.amount, topup.note, str(topup.token)) == (Outcome.OK, Decimal("2.5"), "INV-1001", token)
    assert topup.budget_before == Decimal("10")
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.sub_key_id) == (AuditEvent.Action.TOPUP, Outcome.OK, key.id)
    assert event.changes == {"budget": ["10", "12.5"]}


def test_the_result_names_the_new_budget(owner_client, make_key):
    key = make_key("10", label="Acme")
    response = owner_client.post(
        topup_url(key.id), {"amount": "5", "note": "INV-5", "token": str(uuid.uuid4()), "confirm": "1"}, follow=True
    )
    assert response.redirect_chain == [(reverse("console:key_detail", args=[key.id]), 302)]
    assert "its budget went from $10.00 to $15.00" in response.content.decode()


def test_the_confirm_step_sends_nothing_upstream(owner_client, make_key):
    key = make_key("10", label="Acme")
    available = derouter.get_balance().available

    response = review(owner_client, key.id, "4")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Confirm the top-up" in page
    assert "$10.00 → <strong>$14.00</strong>" in page
    assert f"→ {money(available - 4)}" in page
    assert 'name="confirm"' in page
    assert budget_of(key.id) == Decimal("10")
    assert not TopUp.objects.exists()


def test_the_same_confirmed_form_twice_moves_money_once(owner_client, make_key):
    key = make_key("10", label="Acme")
    token = str(uuid.uuid4())

    first = confirm(owner_client, key.id, "3", token=token)
    second = confirm(owner_client, key.id, "3", token=token)

    assert first.status_code == 302
    assert second.status_code == 200
    page = second.content.decode()
    assert "already submitted" in page
    assert 'class="badge ok"' in page
    assert budget_of(key.id) == Decimal("13")
    assert TopUp.objects.count() == 1
    assert AuditEvent.objects.count() == 1


@pytest.mark.parametrize("amount", ["0", "-5", "1.23456", "ten", ""])
def test_an_invalid_amount_is_refused_with_nothing_sent(owner_client, make_key, amount):
    key = make_key("10", label="Acme")

    response = confirm(owner_client, key.id, amount)

    assert response.status_code == 400
    assert 'id="id_amount_error"' in response.content.decode()
    assert budget_of(key.id) == Decimal("10")
    assert not TopUp.objects.exists()


def test_a_missing_reference_is_refused(owner_client, make_key):
    key = make_key("10", label="Acme")
    response = confirm(owner_client, key.id, "1", note="  ")
    assert response.status_code == 400
    assert 'id="id_note_error"' in response.content.decode()
    assert not TopUp.objects.exists()


def test_more_than_available_is_refused_and_recorded(owner_client, make_key):
    key = make_key("10", label="Acme")
    too_much = derouter.get_balance().available + 1

    reviewed = review(owner_client, key.id, str(too_much))
    assert reviewed.status_code == 400
    assert "is available" in reviewed.content.decode()
    assert not TopUp.objects.exists()

    response = confirm(owner_client, key.id, str(too_much))

    assert response.status_code == 400
    assert "was refused" in response.content.decode()
    assert budget_of(key.id) == Decimal("10")
    topup = TopUp.objects.get()
    assert topup.outcome == Outcome.REFUSED
    assert "available" in stored_text.read_in_english(topup.message)
    event = AuditEvent.objects.get()
    assert (event.outcome, event.message) == (Outcome.REFUSED, topup.message)


def test_the_upstream_refusal_is_recorded_with_its_message(owner_client, make_key, simulator):
    key = make_key("10", label="Acme")
    simulator.inject("error", path="/sub-keys/", method="PUT", status=400)

    response = confirm(owner_client, key.id, "1")

    assert response.status_code == 400
    assert "Simulated server error" in response.content.decode()
    assert TopUp.objects.get().outcome == Outcome.REFUSED
    assert AuditEvent.objects.get().message == "Simulated server error"
    assert budget_of(key.id) == Decimal("10")


def test_staff_cannot_top_up_past_their_daily_cap(staff_client, staff, make_key):
    staff.console_profile.daily_topup_cap = Decimal("10")
    staff.console_profile.save()
    key = make_key("10", label="Acme")

    first = confirm(staff_client, key.id, "6")
    second = confirm(staff_client, key.id, "6")

    assert first.status_code == 302
    assert second.status_code == 400
    assert "daily top-up limit" in second.content.decode()
    assert budget_of(key.id) == Decimal("16")
    assert list(TopUp.objects.values_list("outcome", flat=True)) == [Outcome.OK]


def test_staff_see_the_cap_at_the_review_step(staff_client, staff, make_key):
    staff.console_profile.daily_topup_cap = Decimal("5")
    staff.console_profile.save()
    key = make_key("10", label="Acme")

    response = review(staff_client, key.id, "6")

    assert response.status_code == 400
    assert "$5.00 more today" in response.content.decode()


def test_owners_have_no_cap(owner_client, make_key, settings):
    settings.STAFF_DAILY_TOPUP_CAP = Decimal("1")
    key = make_key("10", label="Acme")

    assert confirm(owner_client, key.id, "3").status_code == 302
    assert confirm(owner_client, key.id, "3").status_code == 302
    assert budget_of(key.id) == Decimal("16")


def test_a_write_that_times_out_is_unknown_and_never_retried(owner_client, make_key, simulator, settings):
    key = make_key("10", label="Acme")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys/", method="PUT", delay=1.5)

    response = confirm(owner_client, key.id, "2")

    assert response.status_code == 503
    page = response.content.decode()
    assert "Outcome unknown" in page
    assert "may or may not have happened" in page
    assert "Budget now" in page
    assert TopUp.objects.get().outcome == Outcome.UNKNOWN
    assert AuditEvent.objects.get().outcome == Outcome.UNKNOWN
    time.sleep(1.5)
    settings.DEROUTER_READ_TIMEOUT = 5
    assert budget_of(key.id) == Decimal("12")


def test_an_upstream_error_on_the_write_is_recorded_as_unknown(owner_client, make_key, simulator):
    key = make_key("10", label="Acme")
    simulator.inject("error", path="/sub-keys/", method="PUT", status=500)

    response = confirm(owner_client, key.id, "2")

    assert response.status_code == 503
    assert "may or may not have happened" in response.content.decode()
    topup = TopUp.objects.get()
    assert topup.outcome == Outcome.UNKNOWN
    assert "Simulated server error" in stored_text.read_in_english(topup.message)
    assert budget_of(key.id) == Decimal("10")


def test_an_htmx_top_up_answers_with_the_fragment_and_a_refresh_event(owner_client, make_key):
    key = make_key("10", label="Acme")

    response = owner_client.post(
        topup_url(key.id),
        {"amount": "1", "note": "INV-9", "token": str(uuid.uuid4()), "confirm": "1"},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"subKeysChanged": {}}
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="topup"')
    assert "$11.00" in page


def test_an_unknown_key_id_is_a_404_without_an_upstream_call(owner_client, simulator):
    # Were the upstream asked, this fault would turn the page into a 503.
    simulator.inject("error", path="/sub-keys", method="GET", status=500, times=0)
    malformed_url = "/dashboard/keys/not-a-key/topup/"
    assert owner_client.get(malformed_url).status_code == 404
    data = {"amount": "1", "note": "INV-1001", "token": str(uuid.uuid4()), "confirm": "1"}
    assert owner_client.post(malformed_url, data).status_code == 404
    simulator.clear_faults()
    assert owner_client.get(topup_url(str(uuid.uuid4()))).status_code == 404


def test_top_ups_need_a_csrf_token(owner, make_key):
    key = make_key("10", label="Acme")
    http = Client(enforce_csrf_checks=True)
    http.force_login(owner)

    refused = confirm(http, key.id, "1")
    assert refused.status_code == 403

    form_page = http.get(topup_url(key.id))
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form_page.content.decode()).group(1)
    accepted = http.post(
        topup_url(key.id),
        {"amount": "1", "note": "INV-1", "token": form_token(form_page), "confirm": "1", "csrfmiddlewaretoken": csrf},
    )
    assert accepted.status_code == 302
    assert budget_of(key.id) == Decimal("11")


def make_topup(owner, note="INV-1", outcome=Outcome.OK, amount="5", sub_key_id=None, label="Acme"):
    return TopUp.objects.create(
        token=uuid.uuid4(),
        actor=owner,
        actor_name=owner.username,
        sub_key_id=sub_key_id or str(uuid.uuid4()),
        key_label=label,
        key_id_short="sk-ant-abc...",
        amount=Decimal(amount),
        note=note,
        outcome=outcome,
    )


def read_csv(response):
    assert response.streaming
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))


def test_the_csv_export_escapes_formulas(owner_client, owner):
    for note in ("=HYPERLINK(\"http://evil\")", "+1+1", "-2", "@SUM(A1)", "INV-7 Café"):
        make_topup(owner, note=note)

    response = owner_client.get(reverse("console:ledger_csv"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="derouter-topups-')
    rows = read_csv(response)
    assert rows[0][:6] == ["created_at_utc", "actor", "key_label", "key_id", "sub_key_id", "amount_usd"]
    notes = {row[6] for row in rows[1:]}
    assert notes == {"'=HYPERLINK(\"http://evil\")", "'+1+1", "'-2", "'@SUM(A1)", "INV-7 Café"}
    assert {row[5] for row in rows[1:]} == {"5.0000"}


def test_the_csv_export_follows_the_ledger_filter(owner_client, owner):
    wanted = str(uuid.uuid4())
    make_topup(owner, note="mine", sub_key_id=wanted)
    make_topup(owner, note="mine refused", sub_key_id=wanted, outcome=Outcome.REFUSED)
    make_topup(owner, note="other")

    response = owner_client.get(reverse("console:ledger_csv"), {"sub_key_id": wanted, "outcome": "ok"})

    assert [row[6] for row in read_csv(response)[1:]] == ["mine"]


def test_the_ledger_lists_filters_and_pages(owner_client, owner):
    wanted = str(uuid.uuid4())
    for number in range(55):
        make_topup(owner, note=f"bulk-{number}")
    make_topup(owner, note="the one", sub_key_id=wanted, label="<script>alert(1)</script>")

    first = owner_client.get(reverse("console:ledger"))
    assert first.status_code == 200
    assert "page 1 of 2" in first.content.decode()
    assert "the one" in first.content.decode()

    filtered = owner_client.get(reverse("console:ledger"), {"sub_key_id": wanted})
    page = filtered.content.decode()
    assert "the one" in page and "bulk-" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page

    fragment = owner_client.get(reverse("console:ledger"), {"page": "2"}, headers={"HX-Request": "true"})
    assert fragment.content.decode().lstrip().startswith('<section id="ledger"')
    assert "page 2 of 2" in fragment.content.decode()

    assert owner_client.get(reverse("console:ledger"), {"page": "999"}).status_code == 200
    assert owner_client.get(reverse("console:ledger"), {"sub_key_id": "nope"}).status_code == 400


def test_staff_see_the_ledger(staff_client):
    assert staff_client.get(reverse("console:ledger")).status_code == 200
    assert staff_client.get(reverse("console:ledger_csv")).status_code == 200


def test_signed_out_users_are_sent_to_sign_in(client, make_key):
    key = make_key("10", label="Acme")
    for url in (topup_url(key.id), reverse("console:ledger"), reverse("console:ledger_csv")):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/login/")
