"""Customers ask for more budget from the portal; staff approve (one top-up) or decline.

A request is a small state machine:

    pending --approve--> approving --top-up ok--> approved      (customer emailed, webhook)
                                   --unknown---> confirming --settled ok--> approved
                                                            --settled not applied--> pending
                                   --refused---> pending (the next approval uses a fresh token)
    pending --decline--> declined                                (customer emailed, webhook)

Approve and decline are exclusive: each claims the request with one conditional update
from "pending", so of two staff members clicking at once the first wins and the second
is told so (``DecisionConflict``, a 409 for the page). "Approved" is written, and the
customer emailed, only once the top-up is known to have landed. The top-up goes through
the money service (``dashboard.topups.top_up``) with a token derived from the request and
its approval attempt, so approve clicked twice tops up once, and under the key's lock it
is refused unsent if an earlier attempt of the same request landed late after all.
Approval obeys MAX_KEY_BUDGET and the staff member's daily cap (``check_approval``).
``settle_open`` moves claimed requests on from their top-ups' settled outcomes (the
automation pass and the queue page run it); a claim whose approval died before any
money moved is released after CLAIM_SECONDS.
"""

import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils import translation
from django.utils.translation import gettext, gettext_lazy, gettext_noop
from django.utils.translation import gettext_lazy as _

from automation import notify, webhooks
from automation.models import BudgetRequest
from automation.upstream import token_for
from dashboard import topups
from dashboard.upstream import get_sub_key_now
from derouter import client
from derouter.client import DerouterError
from ledger.models import UNSETTLED_OUTCOMES, Outcome, TopUp
from lib import stored_text
from lib.money import exact_usd, usd
from branding.language import language_for_key
from lib.queue import enqueue_or_warn

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


def _notify(budget_request, subject, body, **values):
    """Email the customer about its request, in the language it reads the portal in."""
    if budget_request.email:
        with translation.override(language_for_key(budget_request.sub_key_id)):
            subject, body = str(subject), str(body) % values
        recipient = budget_request.email
        transaction.on_commit(lambda: enqueue_or_warn(notify.send_customer_email, subject, body, recipient))


def submit(snapshot, amount, note, email):
    """Record a customer's request for ``amount`` in its display units."""
    pending = BudgetRequest.objects.filter(sub_key_id=snapshot.sub_key_id, status=BudgetRequest.Status.PENDING)
    if pending.count() >= MAX_PENDING_PER_KEY:
        raise RequestNotAllowed(gettext("You have %(count)s requests waiting already; wait for a decision first.")
                                % {"count": MAX_PENDING_PER_KEY})
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


# An approval that claimed a request and then died before its top-up was written frees it after this long.
CLAIM_SECONDS = topups.MONEY_LOCK_SECONDS + 60
OPEN_APPROVALS = (BudgetRequest.Status.APPROVING, BudgetRequest.Status.CONFIRMING)


class DecisionConflict(Exception):
    """Another staff member decided (or is deciding) the request first."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def describe_decision(budget_request):
    """What happened to a request that is no longer waiting, for the staff member who came second."""
    values = {"number": budget_request.pk, "who": budget_request.decided_by_name or gettext("someone")}
    Status = BudgetRequest.Status
    if budget_request.status == Status.APPROVED:
        return gettext("Request #%(number)s was already approved by %(who)s.") % values
    if budget_request.status == Status.DECLINED:
        return gettext("Request #%(number)s was already declined by %(who)s.") % values
    if budget_request.status == Status.APPROVING:
        return gettext("Request #%(number)s is being approved by %(who)s: its top-up is on its way.") % values
    if budget_request.status == Status.CONFIRMING:
        return gettext("Request #%(number)s was approved by %(who)s and its top-up is being confirmed.") % values
    return gettext("Request #%(number)s is waiting for a decision.") % values


def check_approval(budget_request, user):
    """Why ``user`` may not approve this request now (over MAX_KEY_BUDGET or their daily cap), or ""."""
    amount = budget_request.real_amount
    if amount <= 0:
        return _("The request is for less than $0.0001 in real money; decline it.")
    if amount > settings.MAX_KEY_BUDGET:
        return gettext("The request is over the %(most)s one top-up may add; decline it and ask for a smaller "
                       "amount.") % {"most": usd(settings.MAX_KEY_BUDGET)}
    cap_left = topups.get_cap_left_today(user)
    if cap_left is not None and amount > cap_left:
        return gettext("That is over your daily top-up limit: you can top up at most %(left)s more today (UTC).") % {
            "left": exact_usd(cap_left)}
    return ""


def _attempt_tokens(budget_request, attempts):
    return [token_for("budget-request", budget_request.pk, attempt) for attempt in range(attempts)]


def _landed_earlier_attempt(budget_request):
    """A top-up of an earlier approval attempt of this request that landed after all (a late write), or None."""
    tokens = _attempt_tokens(budget_request, budget_request.approve_attempts + 1)
    return TopUp.objects.filter(token__in=tokens, outcome=Outcome.OK).order_by("created_at", "id").first()


def _release(budget_request, message, next_attempt=False):
    """Back to "pending" from an approval that moved no money; ``next_attempt`` when its token is used up."""
    fields = {"status": BudgetRequest.Status.PENDING, "message": message, "claimed_at": None, "decided_by": None, "decided_by_name": ""}
    if next_attempt:
        fields["approve_attempts"] = F("approve_attempts") + 1
    BudgetRequest.objects.filter(pk=budget_request.pk, status__in=OPEN_APPROVALS).update(**fields)
    budget_request.refresh_from_db()


def _mark_approved(budget_request, topup):
    """Approved, once its top-up is known to have landed: the webhook and the customer's email go now."""
    decided = BudgetRequest.objects.filter(
        pk=budget_request.pk, status__in=(*OPEN_APPROVALS, BudgetRequest.Status.PENDING)
    ).update(status=BudgetRequest.Status.APPROVED, topup=topup, decided_at=timezone.now(), message="")
    budget_request.refresh_from_db()
    if not decided:
        return
    if not budget_request.decided_by_name:
        BudgetRequest.objects.filter(pk=budget_request.pk).update(decided_by_name=topup.actor_name, decided_by=topup.actor)
        budget_request.refresh_from_db()
    webhooks.emit("budget.approved", _event_data(budget_request), f"budget-request:{budget_request.pk}:approved")
    _notify(
        budget_request,
        gettext_lazy("Your budget request was approved"),
        gettext_lazy("Your request for %(amount)s more on %(key)s was approved and added to your key."),
        amount=usd(budget_request.amount),
        key=budget_request.key_label or budget_request.key_id_short,
    )


def _follow_topup(budget_request, topup):
    """Move a claimed request on from its top-up's outcome; return a sentence for the staff member."""
    if topup.outcome == Outcome.OK:
        _mark_approved(budget_request, topup)
        customer = topup.customer_amount if topup.customer_amount is not None else budget_request.amount
        return _("Approved: %(customer)s for the customer, %(cost)s from your balance, added to %(key)s.") % {
            "customer": usd(customer), "cost": usd(topup.amount),
            "key": budget_request.key_label or budget_request.key_id_short}
    if topup.outcome == Outcome.REFUSED:
        landed = _landed_earlier_attempt(budget_request)
        if landed is not None:
            _mark_approved(budget_request, landed)
            return gettext("Approved: an earlier approval's top-up of %(amount)s landed after all.") % {
                "amount": usd(landed.amount)}
        _release(budget_request, stored_text.note(gettext_noop("The top-up was refused: %(reason)s"), reason=topup.message),
                 next_attempt=True)
        return stored_text.read(budget_request.message)
    BudgetRequest.objects.filter(pk=budget_request.pk, status__in=OPEN_APPROVALS).update(
        status=BudgetRequest.Status.CONFIRMING, topup=topup, message=topup.message
    )
    budget_request.refresh_from_db()
    return gettext(
        "derouter did not confirm the top-up of %(amount)s (%(reason)s): the request is being confirmed. It is marked "
        "approved, and the customer told, once the top-up is known to have landed; do not approve it again meanwhile."
    ) % {"amount": usd(topup.amount), "reason": stored_text.read(topup.message) or gettext("no answer yet")}


def approve(budget_request, user):
    """Claim the request and top the key up once for it; return a sentence for the staff member.

    Raises DecisionConflict when it is no longer waiting (another staff member
    decided first), RequestNotAllowed over MAX_KEY_BUDGET or the daily cap (nothing
    claimed or sent), and derouter's errors from before any money moved (the claim
    is released first).
    """
    problem = check_approval(budget_request, user)
    if problem:
        raise RequestNotAllowed(problem)
    claimed = BudgetRequest.objects.filter(pk=budget_request.pk, status=BudgetRequest.Status.PENDING).update(
        status=BudgetRequest.Status.APPROVING,
        claimed_at=timezone.now(),
        decided_by=user,
        decided_by_name=user.get_username(),
    )
    budget_request.refresh_from_db()
    if not claimed:
        raise DecisionConflict(describe_decision(budget_request))
    try:
        sub_key = get_sub_key_now(budget_request.sub_key_id)
        if sub_key is None:
            _release(budget_request, stored_text.note(gettext_noop("The key no longer exists at derouter; decline the request.")))
            return stored_text.read(budget_request.message)
        if sub_key.display_multiplier != budget_request.multiplier:
            # The confirm step priced the request at the multiplier it was made under: a cost worked out at
            # another one is not what was confirmed, so nothing moves until it is confirmed at this one.
            BudgetRequest.objects.filter(pk=budget_request.pk).update(multiplier=sub_key.display_multiplier)
            _release(budget_request, stored_text.note(gettext_noop(
                "The key's markup changed since the customer asked: the request is priced again at the key's markup "
                "now; review it and approve again.")))
            return stored_text.read(budget_request.message)
        balance = client.get_balance()
        token = token_for("budget-request", budget_request.pk, budget_request.approve_attempts)
        attempt = topups.top_up(
            user, sub_key, budget_request.real_amount,
            stored_text.note(gettext_noop("Budget request #%(number)s"), number=budget_request.pk), token, balance.available,
            audit_note=stored_text.note(gettext_noop("Budget request #%(number)s."), number=budget_request.pk),
            check=lambda current: _why_no_longer_wanted(budget_request),
        )
    except topups.TopUpNotAllowed as refusal:
        _release(budget_request, refusal.message)
        raise RequestNotAllowed(refusal.message) from refusal
    except DerouterError as error:
        # Nothing was sent for this request yet (a write's errors are recorded on its ledger row instead).
        _release(budget_request, stored_text.note(gettext_noop("derouter could not be asked: %(reason)s"), reason=error.message))
        raise
    BudgetRequest.objects.filter(pk=budget_request.pk).update(topup=attempt.topup)
    return _follow_topup(budget_request, attempt.topup)


def _why_no_longer_wanted(budget_request):
    """Under the key's lock, once earlier moves are settled: an earlier attempt that landed late makes this one unwanted."""
    if _landed_earlier_attempt(budget_request) is not None:
        return stored_text.note(gettext_noop("an earlier approval of this request landed after all."))
    return ""


def settle_open(now=None):
    """Move every claimed request on from its top-up's settled outcome; return how many changed.

    Approvals whose top-up is settled become approved (or wait again, when not applied);
    a claim with no top-up written after CLAIM_SECONDS (its approval died first) is
    released; a request waiting again whose earlier top-up landed late is approved.
    Reads only the database: the top-ups themselves are settled by the money service.
    """
    now = now or timezone.now()
    changed = 0
    for budget_request in BudgetRequest.objects.filter(status__in=OPEN_APPROVALS):
        token = token_for("budget-request", budget_request.pk, budget_request.approve_attempts)
        topup = budget_request.topup or TopUp.objects.filter(token=token).first()
        if topup is None:
            claimed_at = budget_request.claimed_at or budget_request.created_at
            if now - claimed_at >= datetime.timedelta(seconds=CLAIM_SECONDS):
                _release(budget_request, stored_text.note(
                    gettext_noop("The approval was interrupted before any money moved; approve it again.")))
                changed += 1
            continue
        if topup.outcome in UNSETTLED_OUTCOMES:
            if budget_request.status == BudgetRequest.Status.APPROVING and topup.outcome == Outcome.UNKNOWN:
                _follow_topup(budget_request, topup)
                changed += 1
            continue
        _follow_topup(budget_request, topup)
        changed += 1
    for budget_request in BudgetRequest.objects.filter(status=BudgetRequest.Status.PENDING, approve_attempts__gt=0):
        landed = _landed_earlier_attempt(budget_request)
        if landed is not None:
            _mark_approved(budget_request, landed)
            changed += 1
    return changed


def decline(budget_request, user, reason):
    """Decline once with a reason; raises DecisionConflict when it is not waiting (approved or being approved)."""
    decided = BudgetRequest.objects.filter(pk=budget_request.pk, status=BudgetRequest.Status.PENDING).update(
        status=BudgetRequest.Status.DECLINED,
        decided_at=timezone.now(),
        decided_by=user,
        decided_by_name=user.get_username(),
        decline_reason=reason,
    )
    budget_request.refresh_from_db()
    if not decided:
        raise DecisionConflict(describe_decision(budget_request))
    webhooks.emit("budget.declined", _event_data(budget_request), f"budget-request:{budget_request.pk}:declined")
    _notify(
        budget_request,
        gettext_lazy("Your budget request was declined"),
        gettext_lazy("Your request for %(amount)s more on %(key)s was declined: %(reason)s"),
        amount=usd(budget_request.amount),
        key=budget_request.key_label or budget_request.key_id_short,
        reason=reason,
    )


def pending_count():
    return BudgetRequest.objects.filter(status=BudgetRequest.Status.PENDING).count()
