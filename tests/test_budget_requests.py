"""Budget requests as a state machine: a confirm step in both units, exclusive decisions, "approved" only once the money landed."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils import timezone

from automation import budget_requests
from automation.models import BudgetRequest
from dashboard import keywrites
from ledger.models import Outcome, TopUp
from lib import stored_text
from tests.helpers import budget_of, eventually


def make_request(created, amount="4", multiplier=Decimal(1), email="customer@example.com"):
    return BudgetRequest.objects.create(
        sub_key_id=created.id, key_label=created.label, key_id_short=created.key_id,
        amount=Decimal(amount), multiplier=multiplier, note="Launch week", email=email,
    )


def approve_url(request):
    return f"/dashboard/automation/requests/{request.pk}/approve/"


def decline_url(request):
    return f"/dashboard/automation/requests/{request.pk}/decline/"


def settle():
    """What the worker does every minute: settle the top-ups, then move approvals on from them."""
    keywrites.resolve_unsettled_writes(late_writes=True)
    budget_requests.settle_open()


def emails_saying(word):
    return [email for email in mail.outbox if word in email.subject]


@pytest.mark.django_db
def test_approve_first_shows_a_confirm_step_in_real_money_and_in_the_customers_units(owner_client, make_key):
    created = make_key(budget="2", label="Marked up")
    request = make_request(created, amount="10", multiplier=Decimal(2))

    response = owner_client.post(approve_url(request))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Approve request #" in page and "$5.00" in page and "$10.00" in page
    assert 'name="confirm"' in page
    assert TopUp.objects.count() == 0 and budget_of(created.id) == Decimal(2)
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.PENDING


@pytest.mark.django_db
def test_approval_obeys_max_key_budget(owner_client, make_key, settings):
    settings.MAX_KEY_BUDGET = Decimal(100)
    created = make_key(budget="2", label="Too big")
    request = make_request(created, amount="250000")

    response = owner_client.post(approve_url(request), {"confirm": "1"})

    assert response.status_code == 400
    body = response.content.decode()
    assert "over the $100.00 one top-up may add" in body
    assert "MAX_KEY_BUDGET" not in body  # a settings name means nothing to a business user
    assert TopUp.objects.count() == 0 and budget_of(created.id) == Decimal(2)
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.PENDING


@pytest.mark.django_db
def test_decline_after_approval_is_a_409_that_says_so(owner_client, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="2", label="Approved first")
    request = make_request(created)
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.post(approve_url(request), {"confirm": "1"}).status_code == 302
        response = owner_client.post(decline_url(request), {"reason": "Too late"})

    assert response.status_code == 409
    assert "was already approved by olivia" in response.content.decode()
    request.refresh_from_db()
    assert (request.status, request.decline_reason) == (BudgetRequest.Status.APPROVED, "")
    assert len(emails_saying("approved")) == 1 and emails_saying("declined") == []


@pytest.mark.django_db(transaction=True)
def test_decline_while_an_approvals_top_up_is_in_flight_loses_and_the_money_and_status_agree(owner, staff, make_key, simulator):
    created = make_key(budget="2", label="Raced")
    request = make_request(created)
    simulator.inject("slow", path=f"/sub-keys/{created.id}", method="PUT", delay=1.5, times=1)
    results = {}

    def approve():
        try:
            results["approve"] = budget_requests.approve(BudgetRequest.objects.get(pk=request.pk), owner)
        finally:
            connection.close()

    approver = threading.Thread(target=approve)
    approver.start()
    eventually(lambda: TopUp.objects.filter(sub_key_id=created.id).exists())
    with pytest.raises(budget_requests.DecisionConflict) as conflict:
        budget_requests.decline(BudgetRequest.objects.get(pk=request.pk), staff, "No")
    approver.join()

    assert "is being approved by olivia" in conflict.value.message
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.APPROVED
    assert budget_of(created.id) == Decimal(6)
    assert len(emails_saying("approved")) == 1 and emails_saying("declined") == []


@pytest.mark.django_db
def test_an_approval_with_an_unknown_outcome_is_being_confirmed_and_approved_once_it_landed(
    owner_client, make_key, simulator, settings, django_capture_on_commit_callbacks
):
    created = make_key(budget="2", label="Slow approval")
    request = make_request(created)
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path=f"/sub-keys/{created.id}", method="PUT", delay=1.5, times=1)

    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(approve_url(request), {"confirm": "1"})
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.CONFIRMING
    assert mail.outbox == []
    queue = owner_client.get("/dashboard/automation/requests/").content.decode()
    assert "Being confirmed" in queue
    customer = Client()
    customer.post("/portal/login/", {"client_key": created.secret.reveal()})
    assert "Being confirmed" in customer.get("/portal/requests/").content.decode()

    eventually(lambda: budget_of(created.id) == Decimal(6))
    with django_capture_on_commit_callbacks(execute=True):
        settle()
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.APPROVED and request.topup.outcome == Outcome.OK
    assert len(emails_saying("approved")) == 1


@pytest.mark.django_db
def test_an_approval_whose_top_up_settles_not_applied_waits_again_and_the_customer_hears_nothing(
    owner_client, make_key, simulator, settings, django_capture_on_commit_callbacks
):
    created = make_key(budget="2", label="Lost approval")
    request = make_request(created)
    simulator.inject("drop", path=f"/sub-keys/{created.id}", method="PUT", times=1)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(approve_url(request), {"confirm": "1"})
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.CONFIRMING

    settings.WRITE_SETTLE_SECONDS = 0
    with django_capture_on_commit_callbacks(execute=True):
        settle()
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.PENDING
    assert "not applied" in stored_text.read_in_english(request.message).lower() or "refused" in stored_text.read_in_english(request.message).lower()
    assert mail.outbox == []

    # Approving again moves the money once, under a new token.
    with django_capture_on_commit_callbacks(execute=True):
        assert owner_client.post(approve_url(request), {"confirm": "1"}).status_code == 302
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.APPROVED
    assert budget_of(created.id) == Decimal(6)
    assert TopUp.objects.filter(outcome=Outcome.OK).count() == 1
    assert len(emails_saying("approved")) == 1


@pytest.mark.django_db
def test_a_claim_whose_approval_died_before_any_money_moved_is_released(owner, make_key):
    created = make_key(budget="2", label="Died")
    request = make_request(created)
    BudgetRequest.objects.filter(pk=request.pk).update(
        status=BudgetRequest.Status.APPROVING, decided_by_name="olivia",
        claimed_at=timezone.now() - timedelta(seconds=budget_requests.CLAIM_SECONDS + 1),
    )
    budget_requests.settle_open()
    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.PENDING
    assert "interrupted" in request.message


@pytest.mark.django_db
def test_a_second_approval_is_told_it_came_second_and_moves_nothing(owner, staff, make_key):
    created = make_key(budget="2", label="Double")
    request = make_request(created)
    budget_requests.approve(BudgetRequest.objects.get(pk=request.pk), owner)
    with pytest.raises(budget_requests.DecisionConflict) as conflict:
        budget_requests.approve(BudgetRequest.objects.get(pk=request.pk), staff)
    assert "already approved by olivia" in conflict.value.message
    assert TopUp.objects.count() == 1 and budget_of(created.id) == Decimal(6)


# ---------------------------------------------------------------- priced both ways, as top-ups are


@pytest.fixture
def marked_up(simulator):
    """A key at ×1.3 (as derouter's guide suggests), mirrored, deleted after."""
    from derouter import client as derouter_client
    from mirror import snapshot as mirror_snapshot

    created = derouter_client.create_sub_key(Decimal("5"), label="Priced both ways", display_multiplier=Decimal("1.3"))
    mirror_snapshot.refresh_snapshot()
    yield created
    derouter_client.delete_sub_key(created.id)


@pytest.mark.django_db
def test_the_queue_and_the_confirm_step_show_what_the_customer_gets_and_what_the_balance_pays(owner_client, marked_up):
    waiting = make_request(marked_up, amount="13", multiplier=Decimal("1.3"))
    decided = make_request(marked_up, amount="6.5", multiplier=Decimal("1.3"))
    BudgetRequest.objects.filter(pk=decided.pk).update(status=BudgetRequest.Status.DECLINED, decided_by_name="sam")

    queue = owner_client.get("/dashboard/automation/requests/").content.decode()
    assert "The customer gets" in queue and "Your balance pays" in queue
    assert "$13.00" in queue and "$10.00" in queue and "$6.50" in queue and "$5.00" in queue
    confirm = owner_client.get(approve_url(waiting)).content.decode()
    assert "$13.00" in confirm and "$10.00" in confirm and "at ×1.3" in confirm
    assert "$3.00 (23.1% of the customer" in confirm


@pytest.mark.django_db
def test_an_approval_debits_the_cost_top_ups_would_and_says_both_figures(owner_client, marked_up, django_capture_on_commit_callbacks):
    from lib.pricing import price_from

    request = make_request(marked_up, amount="2", multiplier=Decimal("1.3"))
    with django_capture_on_commit_callbacks(execute=True):
        answer = owner_client.post(approve_url(request), {"confirm": "1"}, follow=True).content.decode()

    topup = TopUp.objects.get()
    # 2 / 1.3 = 1.538461...: to the ledger's four decimals as a top-up typed as the customer's amount rounds it.
    assert topup.amount == price_from(customer=Decimal("2"), multiplier=Decimal("1.3")).cost == Decimal("1.5385")
    assert "Approved: $2.00 for the customer, $1.54 from your balance" in answer
    (email,) = emails_saying("approved")
    assert "$2.00" in email.body and "1.54" not in email.body  # the customer never hears the reseller's cost


@pytest.mark.django_db
def test_a_request_made_under_another_markup_is_priced_again_before_any_money_moves(owner_client, marked_up):
    request = make_request(marked_up, amount="13", multiplier=Decimal(1))

    owner_client.post(approve_url(request), {"confirm": "1"})

    request.refresh_from_db()
    assert request.status == BudgetRequest.Status.PENDING and "markup changed" in request.message
    assert request.multiplier == Decimal("1.3") and request.real_amount == Decimal("10.0000")
    assert TopUp.objects.count() == 0 and budget_of(marked_up.id) == Decimal(5)


@pytest.mark.django_db
def test_a_chinese_staff_member_reads_the_decisions_outcomes_and_the_stored_reason_in_chinese(owner_client, make_key, simulator):
    created = make_key(budget="2", label="Chinese staff")
    approved = make_request(created)
    BudgetRequest.objects.filter(pk=approved.pk).update(status=BudgetRequest.Status.APPROVED, decided_by_name="olivia")
    owner_client.cookies["language"] = "zh-hans"

    response = owner_client.post(decline_url(approved), {"reason": "Too late"})

    assert response.status_code == 409
    assert f"申请 #{approved.pk} 已由 olivia 批准。" in response.content.decode()

    # A reason stored by the worker (in no one's language) is read in the reader's.
    refused = make_request(created)
    simulator.inject("error", status=400, path="/sub-keys/", method="PUT")
    owner_client.post(approve_url(refused), {"confirm": "1"})
    refused.refresh_from_db()
    assert refused.status == BudgetRequest.Status.PENDING
    page = owner_client.get("/dashboard/automation/requests/").content.decode()
    assert "充值被拒绝" in page and "The top-up was refused" not in page
