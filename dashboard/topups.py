"""The one road for money: every move of a Client Key's budget, with its ledger row and audit event.

Staff top-ups, budget-request approvals, automatic top-ups and allowance refills all call
``top_up``; nothing else asks derouter to add budget. A move:

1. writes its ledger row (outcome pending) under the form's one-time token, which is
   unique, so a double click, a reload or two workers on one occasion move money once;
2. takes the key's money lock (``key_lock``: a lease row in the database, so it holds
   across processes and machines, and a killed holder's lock expires);
3. under the lock, reads derouter's budget for the key, first settles the key's earlier
   moves from it, then records it on the row as ``budget_before`` with the move's place
   in the key's order (``sequence``) and writes the audit event (pending);
4. sends the PUT once, never retried, and records its outcome (ok, refused, or unknown
   when the answer never came) on the row and the event before letting the lock go.

Settlement (``settle_key``, ``settling_locks``, in ``dashboard.settlement``; the lock and the
row records both share are in ``dashboard.money_rows``): with the key's lock held and its budget
read, the key's moves are walked in their order. Each ``budget_before`` is an observation
of derouter's budget taken with no other move in flight; between two observations the
budget rose by the moves derouter answered "ok" plus the unknown ones that landed in
between, so the rise left over names exactly which unknown moves landed there (of several
sets adding up to it, the likeliest: ``_likelier``; each rise goes to one set, each move to one
rise). That holds under any interleaving of moves, slow answers and timeouts. An unknown move not seen by
WRITE_SETTLE_SECONDS after it was sent is settled "not applied" (an inferred outcome);
one derouter shows applied later still (a late write, within LATE_WRITE_HORIZON_SECONDS)
is re-settled as applied, with an audit event that says so.

Deletes (the console's, expiry's, a rotation's) return a key's remaining budget to the
balance: they read that remaining and send the DELETE inside ``key_lock_for_return``,
under the same lock, so no top-up lands between the read and the delete, and a rotation
carries over exactly what the old key held. While a move on the key may still land, the
key is not deleted (a deleted key's budget could never settle it). The return is a ledger
line of its own (``record_return``, kind "return"), settled with the delete's audit event.

A reclaim (``reclaim``: part of a key's unspent budget back to the available balance, where
check_upstream found derouter supports it) is a move like a top-up with a negative amount:
the same ledger, token, lock and settlement. Every move answered "ok" is read back (the
answer's key, or the key list when the answer carried none): a budget derouter left where
it was is recorded "not applied" on the row and, field by field, on its audit event.

Public functions (kept stable for the reconciliation and the fault-and-race harness):
``top_up``, ``reclaim``, ``find_attempt``, ``key_lock``, ``key_lock_for_return``, ``settle_key``,
``settling_locks``, ``has_unsettled_moves``, ``get_topped_up_today``, ``get_cap_left_today``,
``record_return``, ``set_returned``.
"""

import datetime
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max, Sum
from django.utils import timezone
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from accounts.models import ConsoleProfile
from accounts.roles import get_topup_cap
from dashboard.money_rows import (
    MONEY_LOCK_SECONDS,
    KeyBusy,
    action_of,
    finish_move,
    key_lock,
    lock_name,
    moves_of,
    read_key,
    record_event,
)
from dashboard.settlement import has_unsettled_moves, settle_key, settle_walk, settling_locks
from dashboard.upstream import get_live_balance
from derouter import client
from derouter import conventions as upstream_conventions
from derouter.client import DerouterError
from ledger import audit
from ledger.formtokens import check_form_token
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome, TopUp
from ledger.outcomes import outcome_of_write_error
from lib import stored_text
from lib.money import exact_usd, usd
from lib.text import cut
from mirror import snapshot as mirror_snapshot

# The service's public names, those of its settlement and its lock included: callers ask this module.
__all__ = [
    "MONEY_LOCK_SECONDS", "KeyBusy", "MovesUnsettled", "ReclaimNotSupported", "TopUpAttempt", "TopUpNotAllowed",
    "TopUpReview", "find_attempt", "get_cap_left_today", "get_topped_up_today", "has_unsettled_moves", "key_lock",
    "key_lock_for_return", "lock_name", "reclaim", "record_return", "review", "set_returned", "settle_key",
    "settling_locks", "top_up",
]

# Top-ups that took or may have taken money count against a staff member's cap.
CAP_COUNTED_OUTCOMES = (Outcome.OK, Outcome.PENDING, Outcome.UNKNOWN)


class TopUpNotAllowed(Exception):
    """The top-up was refused before anything was written or sent (the daily cap)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class MovesUnsettled(Exception):
    """A move on the key may still land: the key must not be deleted before its outcome is known.

    Its ``message`` is a note (``lib.stored_text``): callers store it, and read it to show it.
    """

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
    # Reclaims (negative amounts) take money back: they do not give a staff member more to top up.
    total = TopUp.objects.filter(
        actor=user, created_at__gte=_start_of_today_utc(), outcome__in=CAP_COUNTED_OUTCOMES, amount__gt=0
    ).aggregate(total=Sum("amount"))["total"]
    return total or 0


def get_cap_left_today(user):
    """USD the user may still top up today, or None when unlimited."""
    cap = get_topup_cap(user)
    if cap is None:
        return None
    return max(cap - get_topped_up_today(user), 0)


def find_attempt(token, sub_key, action=AuditEvent.Action.TOPUP):
    """The ledger row of an earlier use of this form token on this key, or None.

    Raises TokenUsedElsewhere when the token was first used for another key or action
    (a top-up's token is no reclaim's, and the other way round).
    """
    check_form_token(token, action, sub_key.id)
    return TopUp.objects.filter(token=token).first()


# ---------------------------------------------------------------- the key's money lock



# ---------------------------------------------------------------- moving money


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
        earlier = find_attempt(token, sub_key, action_of(amount))
        if earlier is not None:
            return earlier, False
        topped_up_today = get_topped_up_today(user) if cap is not None else 0
        if cap is not None and topped_up_today + amount > cap:
            left = max(cap - topped_up_today, 0)
            raise TopUpNotAllowed(
                gettext("This would exceed your daily top-up limit of %(cap)s: you can top up %(left)s more today (UTC).")
                % {"cap": exact_usd(cap), "left": exact_usd(left)}
            )
        over_available = available is not None and amount > available
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
                    outcome=Outcome.REFUSED if over_available else Outcome.PENDING,
                    message=(
                        stored_text.note(
                            gettext_noop("Only %(available)s of the account's balance is available; %(amount)s was asked for."),
                            available=usd(available), amount=exact_usd(amount),
                        )
                        if over_available
                        else ""
                    ),
                )
        except IntegrityError:
            # Another request with the same token won the race: show its outcome (if it was for this key).
            return find_attempt(token, sub_key, action_of(amount)), False
    return row, True



def _opposite_move_open(row):
    """Whether a move of the other sign on the key was sent and its outcome is not known yet."""
    sent = moves_of(row.sub_key_id).filter(outcome__in=UNSETTLED_OUTCOMES, sent_at__isnull=False).exclude(pk=row.pk)
    return (sent.filter(amount__gt=0) if row.amount < 0 else sent.filter(amount__lt=0)).exists()


def _next_sequence(sub_key_id):
    latest = TopUp.objects.filter(sub_key_id=str(sub_key_id)).aggregate(latest=Max("sequence"))["latest"]
    return (latest or 0) + 1


def _send_under_lock(row, audit_note, check):
    """With the key's lock held: read the budget, settle earlier moves, check, record, PUT once, record the outcome."""
    row.refresh_from_db(fields=["outcome", "message"])
    if row.outcome != Outcome.PENDING:
        # While this move waited for the lock, a settlement judged it never sent: it stays so.
        return
    if AuditEvent.objects.filter(
        sub_key_id=str(row.sub_key_id), action=AuditEvent.Action.DELETE, outcome__in=UNSETTLED_OUTCOMES
    ).exists():
        # The key may be gone any moment: a top-up landing then could never be settled.
        finish_move(row, Outcome.REFUSED, stored_text.note(gettext_noop("Not sent: a delete of this key is not settled yet; try again once it is.")), audit_note)
        return
    try:
        read_at = timezone.now()
        current = read_key(row.sub_key_id)
    except DerouterError as error:
        failure = outcome_of_write_error(error)
        finish_move(row, Outcome.REFUSED, stored_text.note(
            gettext_noop("Not sent: derouter's budget for the key could not be read first (%(error)s)."), error=error.message,
        ), audit_note)
        if failure.needs_error_page:
            raise
        return
    if current is None:
        finish_move(row, Outcome.REFUSED, stored_text.note(gettext_noop("Not sent: derouter no longer lists the key.")), audit_note)
        return
    settle_walk(row.sub_key_id, current, read_at, exclude_pk=row.pk)
    if _opposite_move_open(row):
        # Open moves of opposite signs can cancel out between two reads of the budget, and settling from
        # derouter's budgets could then not tell "both landed" from "neither" (found by the harness).
        finish_move(row, Outcome.REFUSED, stored_text.note(gettext_noop(
            "Not sent: an earlier money move on this key the other way is not settled yet; try again in a minute.")), audit_note)
        return
    problem = check(current) if check else ""
    if not problem and row.amount < 0 and -row.amount > current.remaining:
        problem = stored_text.note(
            gettext_noop("the key has only %(unspent)s unspent; %(amount)s cannot be taken back."),
            unspent=exact_usd(max(current.remaining, Decimal(0))), amount=exact_usd(-row.amount),
        )
    if problem:
        finish_move(row, Outcome.REFUSED, stored_text.note(gettext_noop("Not sent: %(problem)s"), problem=problem), audit_note)
        return
    row.budget_before = current.budget
    row.customer_amount = row.amount * current.display_multiplier
    row.sequence = _next_sequence(row.sub_key_id)
    row.sent_at = timezone.now()
    row.save(update_fields=["budget_before", "customer_amount", "sequence", "sent_at"])
    record_event(row, Outcome.PENDING, audit_note)
    try:
        if row.amount < 0:
            answer = client.reclaim_budget(row.sub_key_id, -row.amount, key_multiplier=current.display_multiplier)
        else:
            answer = client.update_sub_key(row.sub_key_id, add_budget=row.amount, key_multiplier=current.display_multiplier)
    except DerouterError as error:
        failure = outcome_of_write_error(error)
        finish_move(row, failure.outcome, failure.message, audit_note)
        if failure.is_unknown:
            # It may have happened: the worker reads the keys again so the snapshot shows the truth.
            mirror_snapshot.record_write_answer(None)
        if failure.needs_error_page:
            raise
        return
    kept = _read_back(row, answer)
    if kept is not None and _same_amount(kept.budget, row.budget_before) and row.amount:
        # derouter answered success and left the budget where it was: the move did not happen.
        asked = row.budget_before + row.amount
        finish_move(row, Outcome.REFUSED, stored_text.note(
            gettext_noop("Not applied: derouter answered success, but the key's budget stayed %(budget)s (%(asked)s was asked for)."),
            budget=exact_usd(kept.budget), asked=exact_usd(asked),
        ), audit_note,
                not_applied={"budget": (asked, kept.budget)})
    else:
        finish_move(row, Outcome.OK, audit_note=audit_note)
    mirror_snapshot.record_write_answer(kept)


def _read_back(row, answer):
    """The key after the move as derouter reports it: its answer, or the key list when the answer carried no key."""
    if answer is not None:
        return answer
    try:
        return read_key(row.sub_key_id)
    except DerouterError:
        return None  # derouter answered success; with nothing to compare, its answer stands


def _same_amount(first, second):
    """Equal to the ledger's precision (amounts converted from the customer's units may differ in the sixth decimal)."""
    return abs(first - second) < Decimal("0.0001")


def top_up(
    user, sub_key, amount, note, token, available, audit_note="", lock_wait_seconds=None, check=None
):
    """Add ``amount`` to the key's budget once for this token; return a TopUpAttempt.

    ``available`` is the account's available balance just read: more than that is
    refused here, without asking the upstream; None leaves that check to derouter
    (the console's confirm step, which must not spend a round trip reading it). Raises TopUpNotAllowed over the
    user's daily cap; AuthFailed and RateLimited are recorded, then raised again
    for the error page. ``audit_note`` leads the audit event's message (what asked
    for the top-up, e.g. a budget request). When another move on the key keeps its
    lock past ``lock_wait_seconds`` (MONEY_LOCK_WAIT_SECONDS when None) nothing is
    sent and the row says so (refused).
    ``check(current_key)``, if given, runs under the key's lock once earlier moves are
    settled, with the key as derouter reports it then: a non-empty answer (why the
    move is no longer wanted, e.g. an earlier attempt landed late) refuses it unsent.
    Call it outside a transaction (the key's lock must be seen by other processes).
    """
    return _move(user, sub_key, amount, note, token, available, audit_note, lock_wait_seconds, check)


class ReclaimNotSupported(Exception):
    """derouter was not found to support reclaiming budget (check_upstream): nothing was written or sent."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def reclaim(user, sub_key, amount, note, token, lock_wait_seconds=None):
    """Move ``amount`` of the key's unspent budget back to the available balance, once for this token.

    The same road as a top-up (ledger row first, the key's lock, one PUT, settlement from
    derouter's budgets), recorded as a negative amount. Refused unsent where check_upstream did
    not find reclaiming supported (ReclaimNotSupported) or the key has less unspent than asked.
    """
    if not upstream_conventions.current().reclaim_supported:
        raise ReclaimNotSupported(_("derouter was not found to support reclaiming budget on this account "
                                    "(run check_upstream); to take a key's budget back, delete the key."))
    return _move(user, sub_key, -Decimal(amount), note, token, None, "", lock_wait_seconds, None)


def _move(user, sub_key, amount, note, token, available, audit_note, lock_wait_seconds, check):
    row, is_new = _reserve(user, sub_key, amount, note, token, available)
    if not is_new:
        return TopUpAttempt(row, repeated=True)
    if row.outcome == Outcome.REFUSED:
        finish_move(row, Outcome.REFUSED, row.message, audit_note=audit_note)
        return TopUpAttempt(row)
    try:
        with key_lock(row.sub_key_id, lock_wait_seconds):
            _send_under_lock(row, audit_note, check)
    except KeyBusy:
        finish_move(row, Outcome.REFUSED, stored_text.note(gettext_noop("Not sent: another money move on this key is under way; try again in a moment.")), audit_note)
    return TopUpAttempt(row)


@contextmanager
def key_lock_for_return(sub_key_id, wait_seconds=None):
    """Hold the key's money lock for a move of its whole remaining budget (a delete, a rotation's carry-over).

    Yields the key as derouter reports it now, read under the lock once the key's earlier
    moves are settled from it (None when derouter no longer lists it): its ``remaining`` is
    what a delete made inside the block returns to the available balance, and no top-up can
    land on the key between that read and the delete. Record the delete's outcome inside the
    block too. Raises KeyBusy when another move keeps the lock past ``wait_seconds``,
    MovesUnsettled when a move's outcome cannot be told yet (its request may still land, and
    a deleted key's budget could never tell), and DerouterError when derouter cannot list
    the keys (nothing was sent then). An earlier delete of the key whose outcome is not known
    yet is a move that may still land too: no second delete goes out before it is settled.
    """
    with key_lock(sub_key_id, wait_seconds):
        read_at = timezone.now()
        current = read_key(sub_key_id)
        settle_walk(sub_key_id, current, read_at)
        open_row = moves_of(sub_key_id).filter(outcome__in=UNSETTLED_OUTCOMES).first()
        if current is not None and open_row is not None:
            raise MovesUnsettled(stored_text.note(
                gettext_noop("the top-up of %(amount)s on %(when)s UTC is not settled yet, and a deleted key's budget "
                             "can no longer tell whether it landed; try again in a minute."),
                amount=exact_usd(open_row.amount), when=f"{open_row.created_at:%Y-%m-%d %H:%M}",
            ))
        open_delete = _settle_earlier_deletes(sub_key_id, current, read_at)
        if open_delete is not None:
            # Once the key is gone, every unsettled delete of it would look done: one at a time, never blind.
            raise MovesUnsettled(stored_text.note(
                gettext_noop("an earlier delete of this key (%(when)s UTC) is not settled yet; try again in a minute."),
                when=f"{open_delete.created_at:%Y-%m-%d %H:%M}",
            ))
        yield current


def _settle_earlier_deletes(sub_key_id, current, now):
    """Settle the key's unsettled deletes from ``current`` (read under its lock); return one that may still land.

    With derouter still listing the key, a delete sent WRITE_SETTLE_SECONDS ago or more did not
    happen (as ``dashboard.keywrites`` settles it); a younger one may still land, and is returned.
    With the key gone there is nothing more to send, and the settling task says which did it.
    """
    if current is None:
        return None
    still_open = None
    deletes = AuditEvent.objects.filter(
        sub_key_id=str(sub_key_id), action=AuditEvent.Action.DELETE, outcome__in=UNSETTLED_OUTCOMES
    )
    for event in deletes:
        if (now - event.created_at).total_seconds() >= settings.WRITE_SETTLE_SECONDS:
            audit.finish(event, Outcome.REFUSED, message=stored_text.note(
                gettext_noop("Not applied: derouter still lists the key (checked %(when)s UTC, before another delete)."),
                when=f"{now:%Y-%m-%d %H:%M}",
            ))
        else:
            still_open = event
    return still_open


def _as_reference(note):
    """What asked for a delete (a note, or plain text) as its return line's reference: whole when it fits, else its English cut.

    A note cut short would be neither a note nor words: its reader would see its JSON.
    """
    limit = TopUp._meta.get_field("note").max_length
    return note if len(note) <= limit else cut(stored_text.read_in_english(note), limit)


def record_return(user, current, token, note=""):
    """The ledger line of a delete's return, written pending just before the DELETE, inside ``key_lock_for_return``.

    ``current`` is the key read under its lock: its remaining is what goes back to the
    available balance (a negative amount on the key's ledger, as a reclaim's). The delete's
    audit event carries the same token, and settling it settles this line
    (``ledger.audit.finish``); ``set_returned`` then records derouter's own figure when
    its answer gives one. A return changes no budget: settlement walks never count it.
    """
    return TopUp.objects.create(
        token=token,
        kind=TopUp.Kind.RETURN,
        actor=user if user.is_authenticated else None,
        actor_name=user.get_username(),
        sub_key_id=current.id,
        key_label=current.label[:200],
        key_id_short=current.key_id[:64],
        amount=-max(current.remaining, Decimal(0)),
        customer_amount=-max(current.remaining, Decimal(0)) * current.display_multiplier,
        note=_as_reference(note),
        budget_before=current.budget,
        sent_at=timezone.now(),
    )


def set_returned(row, refunded, multiplier):
    """Record derouter's answer to the delete on its return line: done, and what it returned when it says.

    ``refunded`` is derouter's figure (None when its answer does not give one: the read before stands).
    Call it once the delete's event is settled "ok".
    """
    row.outcome_inferred = False
    fields = ["outcome_inferred"]
    if refunded is not None:
        row.amount = -refunded
        row.customer_amount = -refunded * multiplier
        fields += ["amount", "customer_amount"]
    row.save(update_fields=fields)



# ---------------------------------------------------------------- reviewing a top-up before it is confirmed


@dataclass(frozen=True)
class TopUpReview:
    """What a top-up's confirm step says before any money moves.

    ``balance`` is the account's as derouter reports it now; ``cap_left`` the user's top-up
    limit left today (None: unlimited); ``errors`` form field -> why the amount cannot go ahead.
    """

    balance: object
    cap_left: Decimal | None
    errors: dict

    @property
    def is_allowed(self):
        return not self.errors


def review(user, amount):
    """Check a top-up of ``amount`` against the user's cap left today and the available balance read now."""
    balance = get_live_balance()
    cap_left = get_cap_left_today(user)
    errors = {}
    if cap_left is not None and amount > cap_left:
        errors["amount"] = _(
            "That is over your daily top-up limit: you can top up at most %(exact_usd)s more today (UTC)."
        ) % {"exact_usd": exact_usd(cap_left)}
    elif amount > balance.available:
        errors["amount"] = _("Only %(available)s of the account's balance is available.") % {
            "available": usd(balance.available)
        }
    return TopUpReview(balance, cap_left, errors)
