"""Customers ask for more budget from the portal; staff approve (one top-up) or decline.

Approving goes through the top-up service with a token derived from the request and its
approval attempt, so approve clicked twice (or by two staff members at once) tops up
once; an approval derouter refused can be tried again with the next attempt's token.
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from automation import notify, webhooks
from automation.models import BudgetRequest
from automation.upstream import get_live_key, token_for
from dashboard import topups
from derouter import client
from ledger.models import Outcome
from lib.money import usd

MAX_PENDING_PER_KEY = 5


class RequestNotAllowed(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def _event_data(budget_request):
    return {
        "request_id": budget_request.pk,
        "sub_key_id": budget_request.sub_key_id,
        "label": budget_request.key_label,
        "key_id": budget_request.key_id_short,
        "amount_shown": budget_request.amount,
        "amount_usd": budget_request.real_amount,
        "note": budget_request.note,
        "status": budget_request.status,
        "decided_by": budget_request.decided_by_name,
        "decline_reason": budget_request.decline_reason,
    }


def _notify(budget_request, subject, body):
    if budget_request.email:
        recipient = budget_request.email
        transaction.on_commit(lambda: notify.send_customer_email(subject, body, recipient))


def submit(snapshot, amount, note, email):
    """Record a customer's request for ``amount`` in its display units."""
    pending = BudgetRequest.objects.filter(sub_key_id=snapshot.sub_key_id, status=BudgetRequest.Status.PENDING)
    if pending.count() >= MAX_PENDING_PER_KEY:
        raise RequestNotAllowed(f"You have {MAX_PENDING_PER_KEY} requests waiting already; wait for a decision first.")
    budget_request = BudgetRequest.objects.create(
        sub_key_id=snapshot.sub_key_id,
        key_label=snapshot.label,
        key_id_short=snapshot.key_id_short,
        amount=amount,
        multiplier=snapshot.display_multiplier,
        note=note,
        email=email,
    )
    webhooks.emit("budget.requested", _event_data(budget_request), f"budget-request:{budget_request.pk}:requested")
    return budget_request


def approve(budget_request, user):
    """Top the key up once for this request; return a sentence for the staff member.

    Raises topups.TopUpNotAllowed over the staff member's daily cap.
    """
    if budget_request.status != BudgetRequest.Status.PENDING:
        return f"Request #{budget_request.pk} was already {budget_request.get_status_display().lower()}."
    sub_key = get_live_key(budget_request.sub_key_id)
    if sub_key is None:
        return "The key no longer exists at derouter; decline the request."
    balance = client.get_balance()
    token = token_for("budget-request", budget_request.pk, budget_request.approve_attempts)
    note = f"Budget request #{budget_request.pk}"
    attempt = topups.top_up(
        user, sub_key, budget_request.real_amount, note, token, balance.available, audit_note=f"{note}."
    )
    topup = attempt.topup
    if topup.outcome == Outcome.REFUSED:
        # This attempt's token is used up: the next approval gets a new one.
        BudgetRequest.objects.filter(pk=budget_request.pk, approve_attempts=budget_request.approve_attempts).update(
            approve_attempts=F("approve_attempts") + 1, message=topup.message
        )
        return f"The top-up was refused: {topup.message}"
    decided = BudgetRequest.objects.filter(pk=budget_request.pk, status=BudgetRequest.Status.PENDING).update(
        status=BudgetRequest.Status.APPROVED,
        topup=topup,
        decided_at=timezone.now(),
        decided_by=user,
        decided_by_name=user.get_username(),
        message=topup.message,
    )
    budget_request.refresh_from_db()
    if decided:
        webhooks.emit("budget.approved", _event_data(budget_request), f"budget-request:{budget_request.pk}:approved")
        _notify(
            budget_request,
            "Your budget request was approved",
            f"Your request for {usd(budget_request.amount)} more on {budget_request.key_label or budget_request.key_id_short} "
            "was approved and added to your key.",
        )
    if topup.outcome == Outcome.UNKNOWN:
        return f"Approved, but derouter did not confirm the top-up of {usd(topup.amount)}: check the ledger before doing anything else."
    return f"Approved: {usd(topup.amount)} added to {sub_key.label or sub_key.key_id}."


def decline(budget_request, user, reason):
    """Decline once with a reason; False when it had been decided already."""
    decided = BudgetRequest.objects.filter(pk=budget_request.pk, status=BudgetRequest.Status.PENDING).update(
        status=BudgetRequest.Status.DECLINED,
        decided_at=timezone.now(),
        decided_by=user,
        decided_by_name=user.get_username(),
        decline_reason=reason,
    )
    if not decided:
        return False
    budget_request.refresh_from_db()
    webhooks.emit("budget.declined", _event_data(budget_request), f"budget-request:{budget_request.pk}:declined")
    _notify(
        budget_request,
        "Your budget request was declined",
        f"Your request for {usd(budget_request.amount)} more on {budget_request.key_label or budget_request.key_id_short} "
        f"was declined: {reason}",
    )
    return True


def pending_count():
    return BudgetRequest.objects.filter(status=BudgetRequest.Status.PENDING).count()
