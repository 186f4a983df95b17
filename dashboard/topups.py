"""Top up a Client Key at most once per form, with a ledger line for every attempt.

The ledger row is committed (outcome pending) before the upstream is asked, and its
token is unique: a double click, a reload or a retry of the same form finds the row
and shows its outcome instead of moving money a second time. The upstream call is
made once and never retried; a write whose answer never came is "unknown" until
``resolve_pending_topups`` settles it by comparing the key's budget before and after.

Resolving: the key page calls ``resolve_pending_topups`` for its key on every view,
and ``resolve_all_pending_topups`` settles every key at once, for a periodic
worker task (one upstream call). A row stays "pending" or "unknown" only while its
request could still be running (WRITE_SETTLE_SECONDS).
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.models import ConsoleProfile
from accounts.roles import get_topup_cap
from derouter import client
from derouter.client import DerouterError
from ledger import audit
from ledger.formtokens import check_form_token
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome, TopUp
from ledger.outcomes import outcome_of_write_error
from lib.money import exact_usd
from mirror import snapshot as mirror_snapshot

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


def find_attempt(token, sub_key):
    """The ledger row of an earlier use of this form token on this key, or None.

    Raises TokenUsedElsewhere when the token was first used for another key or action.
    """
    check_form_token(token, AuditEvent.Action.TOPUP, sub_key.id)
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
        earlier = find_attempt(token, sub_key)
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
            # Another request with the same token won the race: show its outcome (if it was for this key).
            return find_attempt(token, sub_key), False
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
        # The row's token ties the event to its ledger line, so resolving one settles both.
        form_token=row.token,
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
        answer = client.update_sub_key(sub_key.id, add_budget=amount)
    except DerouterError as error:
        failure = outcome_of_write_error(error)
        _finish(row, user, sub_key, failure.outcome, failure.message, audit_note=audit_note)
        if failure.is_unknown:
            # It may have happened: the worker reads the keys again so the snapshot shows the truth.
            mirror_snapshot.record_write_answer(None)
        if failure.needs_error_page:
            raise
    else:
        _finish(row, user, sub_key, Outcome.OK, audit_note=audit_note)
        mirror_snapshot.record_write_answer(answer)
    return TopUpAttempt(row)


# ---------------------------------------------------------------- resolving pending and unknown top-ups


def _is_settled(row, now):
    """True once the row's request can no longer be running, so "not applied yet" means "not applied"."""
    return (now - row.created_at).total_seconds() >= settings.WRITE_SETTLE_SECONDS


def _settle(row, outcome, message):
    """Record a resolution on the ledger row and on its audit event (written now if the request died first)."""
    row.outcome = outcome
    row.message = message
    row.save(update_fields=["outcome", "message"])
    event = AuditEvent.objects.filter(form_token=row.token).first()
    if event is None:
        event = audit.record(
            row.actor,
            AuditEvent.Action.TOPUP,
            outcome,
            sub_key_id=row.sub_key_id,
            label=row.key_label,
            key_id_short=row.key_id_short,
            changes={"budget": (row.budget_before, None if row.budget_before is None else row.budget_before + row.amount)},
            form_token=row.token,
            actor_name=row.actor_name,
        )
    audit.finish(event, outcome, message=message)


def resolve_pending_topups(sub_key_id, current_key):
    """Settle the key's pending and unknown top-ups from its budget as derouter reports it now.

    ``current_key`` is the key from derouter's list just read, or None when derouter
    no longer lists it. Newest first: the budget now, less what later confirmed
    top-ups added, less the budget before, tells whether this one was applied.
    A row whose request may still be running is left for later. Returns the rows settled.
    """
    now = timezone.now()
    rows = TopUp.objects.filter(sub_key_id=str(sub_key_id), outcome__in=UNSETTLED_OUTCOMES).order_by("-created_at", "-id")
    settled = []
    for row in rows:
        if current_key is None or row.budget_before is None:
            if row.outcome == Outcome.PENDING and _is_settled(row, now):
                _settle(row, Outcome.UNKNOWN, "Cannot be checked: the key is gone from derouter. Check the account's balance.")
                settled.append(row)
            continue
        added_later = TopUp.objects.filter(
            sub_key_id=row.sub_key_id, outcome=Outcome.OK, created_at__gt=row.created_at
        ).aggregate(total=Sum("amount"))["total"] or Decimal(0)
        moved = current_key.budget - added_later - row.budget_before
        checked = f"(checked {now:%Y-%m-%d %H:%M} UTC: budget {exact_usd(row.budget_before)} before, {exact_usd(current_key.budget)} now)"
        if moved >= row.amount:
            _settle(row, Outcome.OK, f"Confirmed from the key's budget {checked}.")
        elif _is_settled(row, now):
            _settle(row, Outcome.REFUSED, f"Not applied: the key's budget did not go up by {exact_usd(row.amount)} {checked}.")
        else:
            continue
        settled.append(row)
    return settled


def resolve_all_pending_topups():
    """Settle every key's pending and unknown top-ups with one upstream call (for a periodic worker task).

    Returns the rows settled; with no unsettled rows it asks derouter nothing.
    Raises DerouterError when derouter cannot list the keys (the task tries again next time).
    """
    sub_key_ids = set(TopUp.objects.filter(outcome__in=UNSETTLED_OUTCOMES).values_list("sub_key_id", flat=True))
    if not sub_key_ids:
        return []
    sub_keys = {sub_key.id: sub_key for sub_key in client.list_sub_keys()}
    settled = []
    for sub_key_id in sorted(sub_key_ids):
        settled += resolve_pending_topups(sub_key_id, sub_keys.get(sub_key_id))
    return settled
