"""Top up a Client Key at most once per form, with a ledger line for every attempt.

The ledger row is committed (outcome pending) before the upstream is asked, and its
token is unique: a double click, a reload or a retry of the same form finds the row
and shows its outcome instead of moving money a second time. The upstream call is
made once and never retried; a write whose answer never came stays "unknown".
"""

import datetime
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import ConsoleProfile
from accounts.roles import get_topup_cap
from dashboard import audit
from dashboard.models import AuditEvent, Outcome, TopUp
from dashboard.outcomes import outcome_of_write_error
from derouter import client
from derouter.client import DerouterError
from lib.money import exact_usd

# Top-ups that took or may have taken money count against a staff member's cap.
CAP_COUNTED_OUTCOMES = (Outcome.OK, Outcome.PENDING, Outcome.UNKNOWN)


class TopUpNotAllowed(Exception):
    """The top-up was refused before anything was written or sent (the daily cap)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class TopUpAttempt:
    """What became of a confirmed top-up form.

    ``repeated`` is True when the form's token had been used before: ``topup`` is
    then the first attempt's ledger row and nothing was sent upstream this time.
    """

    topup: TopUp
    repeated: bool = False


def _start_of_today_utc():
    now = timezone.now().astimezone(datetime.UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def get_topped_up_today(user):
    """USD the user topped up today (UTC), counting pending and unknown attempts."""
    total = TopUp.objects.filter(
        actor=user, created_at__gte=_start_of_today_utc(), outcome__in=CAP_COUNTED_OUTCOMES
    ).aggregate(total=Sum("amount"))["total"]
    return total or 0


def get_cap_left_today(user):
    """USD the user may still top up today, or None when unlimited."""
    cap = get_topup_cap(user)
    if cap is None:
        return None
    return max(cap - get_topped_up_today(user), 0)


def find_attempt(token):
    """The ledger row of an earlier use of this form token, or None."""
    return TopUp.objects.filter(token=token).first()


def _reserve(user, sub_key, amount, note, token, available):
    """Write the ledger row before any money moves; return (row, is_new).

    Inside one transaction: lock the user's profile so two top-ups by the same
    staff member cannot both squeeze under the cap, check the cap, then insert.
    """
    with transaction.atomic():
        # The worker (automation.actors.WorkerActor) is not a signed-in user: its rules set its limits.
        cap = get_topup_cap(user) if user.is_authenticated else None
        if cap is not None:
            ConsoleProfile.objects.select_for_update().get(user=user)
        earlier = find_attempt(token)
        if earlier is not None:
            return earlier, False
        topped_up_today = get_topped_up_today(user) if cap is not None else 0
        if cap is not None and topped_up_today + amount > cap:
            left = max(cap - topped_up_today, 0)
            raise TopUpNotAllowed(
                f"This would exceed your daily top-up limit of {exact_usd(cap)}: you can top up {exact_usd(left)} more today (UTC)."
            )
        over_available = amount > available
        try:
            with transaction.atomic():
                row = TopUp.objects.create(
                    token=token,
                    actor=user if user.is_authenticated else None,
                    actor_name=user.get_username(),
                    sub_key_id=sub_key.id,
                    key_label=sub_key.label[:200],
                    key_id_short=sub_key.key_id[:64],
                    amount=amount,
                    note=note,
                    budget_before=sub_key.budget,
                    outcome=Outcome.REFUSED if over_available else Outcome.PENDING,
                    message=(
                        f"Only {exact_usd(available)} of the account's balance is available; {exact_usd(amount)} was asked for."
                        if over_available
                        else ""
                    ),
                )
        except IntegrityError:
            # Another request with the same token won the race: show its outcome.
            return TopUp.objects.get(token=token), False
    return row, True


def _finish(row, user, sub_key, outcome, message="", audit_note=""):
    row.outcome = outcome
    row.message = message
    row.save(update_fields=["outcome", "message"])
    audit.record(
        user,
        AuditEvent.Action.TOPUP,
        outcome,
        sub_key=sub_key,
        changes={"budget": (sub_key.budget, sub_key.budget + row.amount)},
        message=" ".join(part for part in (audit_note, message) if part),
    )


def top_up(user, sub_key, amount, note, token, available, audit_note=""):
    """Add ``amount`` to the key's budget once for this token; return a TopUpAttempt.

    ``available`` is the account's available balance just read: more than that is
    refused here, without asking the upstream. Raises TopUpNotAllowed over the
    user's daily cap; AuthFailed and RateLimited are recorded, then raised again
    for the error page. ``audit_note`` leads the audit event's message (what asked
    for the top-up, e.g. a budget request).
    """
    row, is_new = _reserve(user, sub_key, amount, note, token, available)
    if not is_new:
        return TopUpAttempt(row, repeated=True)
    if row.outcome == Outcome.REFUSED:
        _finish(row, user, sub_key, Outcome.REFUSED, row.message, audit_note=audit_note)
        return TopUpAttempt(row)
    try:
        client.update_sub_key(sub_key.id, add_budget=amount)
    except DerouterError as error:
        failure = outcome_of_write_error(error)
        _finish(row, user, sub_key, failure.outcome, failure.message, audit_note=audit_note)
        if failure.needs_error_page:
            raise
    else:
        _finish(row, user, sub_key, Outcome.OK, audit_note=audit_note)
    return TopUpAttempt(row)
