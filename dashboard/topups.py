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

Settlement (``settle_key``, ``settling_locks``): with the key's lock held and its budget
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
import itertools
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q, Sum
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _

from accounts.models import ConsoleProfile
from accounts.roles import get_topup_cap
from dashboard.upstream import get_live_balance, get_sub_key_now
from derouter import client
from derouter import conventions as upstream_conventions
from derouter.client import DerouterError
from ledger import audit
from ledger.formtokens import check_form_token
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome, TopUp
from ledger.outcomes import outcome_of_write_error
from lib.money import exact_usd, usd
from mirror import snapshot as mirror_snapshot
from work import leases

# Top-ups that took or may have taken money count against a staff member's cap.
CAP_COUNTED_OUTCOMES = (Outcome.OK, Outcome.PENDING, Outcome.UNKNOWN)
# The key's money lock: a holder killed mid-move frees it after this long. A move holds it
# for one read and one write, each bounded by the client's timeouts (well under a minute).
MONEY_LOCK_SECONDS = 120
# How long a move waits for another move on the same key to finish before giving up.
MONEY_LOCK_WAIT_SECONDS = 10
# An unknown-outcome move is tried against more than this many candidates only one by one.
MAX_EXHAUSTIVE_CANDIDATES = 10


class TopUpNotAllowed(Exception):
    """The top-up was refused before anything was written or sent (the daily cap)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class KeyBusy(Exception):
    """Another money move on this key holds its lock."""


class MovesUnsettled(Exception):
    """A move on the key may still land: the key must not be deleted before its outcome is known."""

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


def _action_of(amount):
    return AuditEvent.Action.RECLAIM if amount < 0 else AuditEvent.Action.TOPUP


# ---------------------------------------------------------------- the key's money lock


def lock_name(sub_key_id):
    return f"money:{sub_key_id}"


@contextmanager
def key_lock(sub_key_id, wait_seconds=None):
    """Hold the key's money lock for the block: one move (or settlement) on the key at a time.

    A lease row in the database (``work.leases``), so it holds across web processes,
    workers and machines; a holder killed mid-move leaves it to expire after
    MONEY_LOCK_SECONDS. Raises KeyBusy when another holder keeps it past ``wait_seconds``
    (MONEY_LOCK_WAIT_SECONDS when None). Not re-entrant: a holder asking again waits on itself.
    Take it outside a transaction: inside one, other processes would not see it.
    """
    wait_seconds = MONEY_LOCK_WAIT_SECONDS if wait_seconds is None else wait_seconds
    with ExitStack() as stack:
        try:
            lease = stack.enter_context(leases.held(lock_name(sub_key_id), MONEY_LOCK_SECONDS, wait_seconds))
        except leases.LeaseHeld as error:
            raise KeyBusy(sub_key_id) from error
        yield lease


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
        earlier = find_attempt(token, sub_key, _action_of(amount))
        if earlier is not None:
            return earlier, False
        topped_up_today = get_topped_up_today(user) if cap is not None else 0
        if cap is not None and topped_up_today + amount > cap:
            left = max(cap - topped_up_today, 0)
            raise TopUpNotAllowed(
                f"This would exceed your daily top-up limit of {exact_usd(cap)}: you can top up {exact_usd(left)} more today (UTC)."
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
                        f"Only {usd(available)} of the account's balance is available; {exact_usd(amount)} was asked for."
                        if over_available
                        else ""
                    ),
                )
        except IntegrityError:
            # Another request with the same token won the race: show its outcome (if it was for this key).
            return find_attempt(token, sub_key, _action_of(amount)), False
    return row, True


def _budget_change(row):
    before = row.budget_before
    return {"budget": (before, None if before is None else before + row.amount)}


def _record_event(row, outcome, message=""):
    """The row's audit event; its token ties the two, so settling one settles both."""
    return audit.record(
        row.actor,
        _action_of(row.amount),
        outcome,
        sub_key_id=row.sub_key_id,
        label=row.key_label,
        key_id_short=row.key_id_short,
        changes=_budget_change(row),
        message=message,
        form_token=row.token,
        actor_name=row.actor_name,
    )


def _finish(row, outcome, message="", audit_note="", not_applied=None):
    """Record how the move ended on its ledger row and its audit event (written now if it was not yet)."""
    row.outcome = outcome
    row.message = message
    row.save(update_fields=["outcome", "message"])
    text = " ".join(str(part) for part in (audit_note, message) if part)
    event = AuditEvent.objects.filter(form_token=row.token).first()
    if event is None:
        event = _record_event(row, outcome, text)
    audit.finish(event, outcome, message=text, not_applied=not_applied)


def _moves(sub_key_id):
    """The key's budget moves: its top-ups and reclaims, not a delete's return (settled with the delete)."""
    return TopUp.objects.filter(sub_key_id=str(sub_key_id), kind=TopUp.Kind.MOVE)


def _read_key(sub_key_id):
    """The key as derouter reports it now, or None when it has no such key (one call at any number of keys)."""
    return get_sub_key_now(sub_key_id)


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
        _finish(row, Outcome.REFUSED, _("Not sent: a delete of this key is not settled yet; try again once it is."), audit_note)
        return
    try:
        read_at = timezone.now()
        current = _read_key(row.sub_key_id)
    except DerouterError as error:
        failure = outcome_of_write_error(error)
        _finish(row, Outcome.REFUSED, f"Not sent: derouter's budget for the key could not be read first ({error.message}).", audit_note)
        if failure.needs_error_page:
            raise
        return
    if current is None:
        _finish(row, Outcome.REFUSED, _("Not sent: derouter no longer lists the key."), audit_note)
        return
    _settle_walk(row.sub_key_id, current, read_at, exclude_pk=row.pk)
    problem = check(current) if check else ""
    if not problem and row.amount < 0 and -row.amount > current.remaining:
        problem = f"the key has only {exact_usd(max(current.remaining, Decimal(0)))} unspent; {exact_usd(-row.amount)} cannot be taken back."
    if problem:
        _finish(row, Outcome.REFUSED, f"Not sent: {problem}", audit_note)
        return
    row.budget_before = current.budget
    row.customer_amount = row.amount * current.display_multiplier
    row.sequence = _next_sequence(row.sub_key_id)
    row.sent_at = timezone.now()
    row.save(update_fields=["budget_before", "customer_amount", "sequence", "sent_at"])
    _record_event(row, Outcome.PENDING, audit_note)
    try:
        if row.amount < 0:
            answer = client.reclaim_budget(row.sub_key_id, -row.amount, key_multiplier=current.display_multiplier)
        else:
            answer = client.update_sub_key(row.sub_key_id, add_budget=row.amount, key_multiplier=current.display_multiplier)
    except DerouterError as error:
        failure = outcome_of_write_error(error)
        _finish(row, failure.outcome, failure.message, audit_note)
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
        _finish(row, Outcome.REFUSED, f"Not applied: derouter answered success, but the key's budget stayed "
                f"{exact_usd(kept.budget)} ({exact_usd(asked)} was asked for).", audit_note,
                not_applied={"budget": (asked, kept.budget)})
    else:
        _finish(row, Outcome.OK, audit_note=audit_note)
    mirror_snapshot.record_write_answer(kept)


def _read_back(row, answer):
    """The key after the move as derouter reports it: its answer, or the key list when the answer carried no key."""
    if answer is not None:
        return answer
    try:
        return _read_key(row.sub_key_id)
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
        _finish(row, Outcome.REFUSED, row.message, audit_note=audit_note)
        return TopUpAttempt(row)
    try:
        with key_lock(row.sub_key_id, lock_wait_seconds):
            _send_under_lock(row, audit_note, check)
    except KeyBusy:
        _finish(row, Outcome.REFUSED, _("Not sent: another money move on this key is under way; try again in a moment."), audit_note)
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
        current = _read_key(sub_key_id)
        _settle_walk(sub_key_id, current, read_at)
        open_row = _moves(sub_key_id).filter(outcome__in=UNSETTLED_OUTCOMES).first()
        if current is not None and open_row is not None:
            raise MovesUnsettled(
                f"the top-up of {exact_usd(open_row.amount)} on {open_row.created_at:%Y-%m-%d %H:%M} UTC is not settled "
                "yet, and a deleted key's budget can no longer tell whether it landed; try again in a minute."
            )
        open_delete = _settle_earlier_deletes(sub_key_id, current, read_at)
        if open_delete is not None:
            # Once the key is gone, every unsettled delete of it would look done: one at a time, never blind.
            raise MovesUnsettled(
                _("an earlier delete of this key (%(when)s UTC) is not settled yet; try again in a minute.")
                % {"when": f"{open_delete.created_at:%Y-%m-%d %H:%M}"}
            )
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
            audit.finish(event, Outcome.REFUSED, message=f"Not applied: derouter still lists the key "
                         f"(checked {now:%Y-%m-%d %H:%M} UTC, before another delete).")
        else:
            still_open = event
    return still_open


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
        note=note[:200],
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


# ---------------------------------------------------------------- settling unknown and late moves


def _sent_at(row):
    return row.sent_at or row.created_at


def _is_settled(row, now):
    """True once the row's request can no longer be running, so "not applied yet" means "not applied"."""
    return (now - _sent_at(row)).total_seconds() >= settings.WRITE_SETTLE_SECONDS


def _may_still_land(row):
    """Moves whose landing derouter never confirmed: unknown ones, and those whose outcome was inferred."""
    return row.outcome in UNSETTLED_OUTCOMES or row.outcome_inferred


def _recent(now):
    """Moves sent within LATE_WRITE_HORIZON_SECONDS: late enough writes are not looked for beyond it."""
    horizon = now - datetime.timedelta(seconds=settings.LATE_WRITE_HORIZON_SECONDS)
    return Q(sent_at__gte=horizon) | Q(sent_at__isnull=True, created_at__gte=horizon)


def _open_filter(now):
    """Moves still to settle, or settled "not applied" recently enough to land late."""
    return Q(outcome__in=UNSETTLED_OUTCOMES) | (Q(outcome=Outcome.REFUSED, outcome_inferred=True) & _recent(now))


def _open_rows(sub_key_id, now):
    return _moves(sub_key_id).filter(_open_filter(now))


def _in_key_order(rows):
    return rows.order_by(F("sequence").asc(nulls_first=True), "created_at", "id")


def _likeliest_first(row):
    """Judged landed before, then moves whose answer never came, then moves settled "not applied" (a late write is rarest)."""
    if row.outcome == Outcome.OK:
        return 0
    return 1 if row.outcome in UNSETTLED_OUTCOMES else 2


def _likelier(combination, waits):
    """How likely ``combination`` is to be what landed in one interval (smaller is likelier).

    Moves judged landed before keep their place (their ledger line counts them already); then
    fewest moves settled "not applied" (a late write is rarest); then the shortest wait: each
    move's wait is how long after it was sent the read opening the interval still did not show
    it, so a move that reads had already missed for a while lands there only as a late write,
    and the combination whose longest wait is shortest is likeliest (two moves just sent rather
    than one an earlier read already missed); then fewest moves, then oldest first.
    """
    priorities = [_likeliest_first(row) for row in combination]
    return (-priorities.count(0), priorities.count(2), max(waits[row.pk] for row in combination), len(combination))


def _landed_among(rise, candidates, waits):
    """The candidates whose amounts add up to ``rise``, the likeliest such combination (``_likelier``).

    ``waits`` maps each candidate to how long after it was sent the interval's opening read was made.
    """
    if rise == 0 or not candidates:  # a reclaim is a negative move: its "rise" is a fall
        return []
    ordered = sorted(candidates, key=_likeliest_first)
    if len(ordered) > MAX_EXHAUSTIVE_CANDIDATES:
        # Moves settled "not applied" within the late-write horizon pile up on a busy key: the moves
        # still open (few: one per request in flight) are tried together first, then one by one.
        still_open = [row for row in ordered if _likeliest_first(row) < 2]
        if len(still_open) <= MAX_EXHAUSTIVE_CANDIDATES:
            found = _adding_up_to(rise, still_open, waits)
            if found:
                return found
        return next(([row] for row in sorted(ordered, key=lambda row: _likelier([row], waits)) if row.amount == rise), [])
    return _adding_up_to(rise, ordered, waits)


def _adding_up_to(rise, ordered, waits):
    """The likeliest combination of ``ordered`` (``_likelier``, then first found) whose amounts add up to ``rise``, or []."""
    matching = (
        list(combination)
        for size in range(1, len(ordered) + 1)
        for combination in itertools.combinations(ordered, size)
        if sum(row.amount for row in combination) == rise
    )
    return min(matching, key=lambda combination: _likelier(combination, waits), default=[])


def _find_landed(chain, current_budget, candidates):
    """Which moves of ``chain`` (in key order, each with its budget before) derouter has applied.

    Between one observation of the budget and the next, it rose by the moves answered
    "ok" plus the moves of unknown outcome that landed in between; what is left of the
    rise after the answered ones picks out those (a rise nothing explains is not ours:
    the reconciliation reports it). Only ``candidates`` (pks: moves this walk may settle,
    and moves judged landed, which must keep a place) can take a rise: a move settled for
    good cannot land again, and giving it a rise would take that rise from the moves that made it.
    """
    landed, in_flight = [], []
    observed, observed_at, answered = chain[0].budget_before, _sent_at(chain[0]), Decimal(0)

    def landed_in_interval(rise):
        waits = {row.pk: (observed_at - _sent_at(row)).total_seconds() for row in in_flight}
        found = _landed_among(rise, in_flight, waits)
        for row in found:
            in_flight.remove(row)
        return found

    for row in chain:
        landed += landed_in_interval(row.budget_before - observed - answered)
        observed, observed_at, answered = row.budget_before, _sent_at(row), Decimal(0)
        if _may_still_land(row) and (row.pk in candidates or row.outcome == Outcome.OK):
            in_flight.append(row)
        elif row.outcome == Outcome.OK:
            answered = row.amount
    landed += landed_in_interval(current_budget - observed - answered)
    return landed


def _settle(row, outcome, message):
    """Record an inferred outcome on the ledger row and its audit event."""
    row.outcome = outcome
    row.outcome_inferred = True
    row.message = message
    row.save(update_fields=["outcome", "outcome_inferred", "message"])
    event = AuditEvent.objects.filter(form_token=row.token).first()
    if event is None:
        event = _record_event(row, outcome)
    audit.finish(event, outcome, message=message)


def _settle_late(row, message):
    """A move settled "not applied" that derouter shows applied after all: applied, and an audit event says so."""
    _settle(row, Outcome.OK, message)
    audit.record(
        None,
        AuditEvent.Action.TOPUP,
        Outcome.OK,
        sub_key_id=row.sub_key_id,
        label=row.key_label,
        key_id_short=row.key_id_short,
        changes={"outcome": (Outcome.REFUSED.value, Outcome.OK.value)},
        message=f"Late write: the top-up of {exact_usd(row.amount)} on {row.created_at:%Y-%m-%d %H:%M} UTC was recorded "
        f"as not applied, and derouter applied it later. Re-settled as applied. {message}",
        actor_name=row.actor_name,
    )


def _settle_walk(sub_key_id, current_key, now, exclude_pk=None):
    """Settle the key's open moves from ``current_key``, read with the key's lock held; return the rows settled.

    ``now`` is when that read began: a move is judged unable to land only if it was sent
    WRITE_SETTLE_SECONDS before it (a slow read ends later, and saw derouter as it was then).
    """
    open_rows = _open_rows(sub_key_id, now)
    if exclude_pk is not None:
        open_rows = open_rows.exclude(pk=exclude_pk)
    open_rows = list(_in_key_order(open_rows))
    if not open_rows:
        return []
    settled = []
    checked_at = f"checked {now:%Y-%m-%d %H:%M} UTC"
    for row in open_rows:
        if row.budget_before is None and row.outcome == Outcome.PENDING and _is_settled(row, now):
            # Its holder never read the budget under the key's lock, so it never sent the PUT.
            _finish(row, Outcome.REFUSED, _("Not sent: the request ended before it asked derouter."))
            settled.append(row)
    if current_key is None:
        for row in open_rows:
            if row.outcome == Outcome.PENDING and row.budget_before is not None and _is_settled(row, now):
                _settle(row, Outcome.UNKNOWN, _("Cannot be checked: the key is gone from derouter. Check the account's balance."))
                settled.append(row)
        return settled
    sent = [row for row in open_rows if row.budget_before is not None]
    if not sent:
        return settled
    chain = [
        row
        for row in _in_key_order(_moves(sub_key_id).filter(budget_before__isnull=False))
        if row.pk != exclude_pk
    ]
    # From the first move whose landing is not certain (one judged landed recently may
    # have landed later than judged): every rise since then is explained from there.
    uncertain = {row.pk for row in sent} | set(
        _moves(sub_key_id).filter(outcome=Outcome.OK, outcome_inferred=True)
        .filter(_recent(now))
        .values_list("pk", flat=True)
    )
    start = next(index for index, row in enumerate(chain) if row.pk in uncertain)
    chain = chain[start:]
    landed = {row.pk for row in _find_landed(chain, current_key.budget, {row.pk for row in sent})}
    budget_now = exact_usd(current_key.budget)
    for row in sent:
        checked = f"({checked_at}: budget {exact_usd(row.budget_before)} before, {budget_now} now)"
        if row.pk in landed and row.outcome == Outcome.REFUSED:
            _settle_late(row, f"Confirmed from the key's budget {checked}.")
        elif row.pk in landed and row.outcome != Outcome.OK:
            _settle(row, Outcome.OK, f"Confirmed from the key's budget {checked}.")
        elif row.pk not in landed and row.outcome in UNSETTLED_OUTCOMES and _is_settled(row, now):
            _settle(row, Outcome.REFUSED, f"Not applied: the key's budget did not go up by {exact_usd(row.amount)} {checked}.")
        else:
            continue
        settled.append(row)
    return settled


def settle_key(sub_key_id, wait_seconds=0):
    """Settle the key's pending, unknown and late moves from its budget as derouter reports it now.

    Takes the key's lock (a move in flight on the key is left to finish: nothing is
    settled then) and reads the key under it. Returns the rows settled; with nothing
    open it asks derouter nothing. Raises DerouterError when derouter cannot list the keys.
    """
    if not _open_rows(sub_key_id, timezone.now()).exists():
        return []
    try:
        with key_lock(sub_key_id, wait_seconds):
            read_at = timezone.now()
            return _settle_walk(sub_key_id, _read_key(sub_key_id), read_at)
    except KeyBusy:
        return []


def _keys_with_open_rows(now, late_writes):
    open_filter = _open_filter(now) if late_writes else Q(outcome__in=UNSETTLED_OUTCOMES)
    return sorted(set(TopUp.objects.filter(open_filter, kind=TopUp.Kind.MOVE).values_list("sub_key_id", flat=True)))


def has_unsettled_moves(late_writes=False):
    """Whether any move is pending or unknown; with ``late_writes``, or could still land late (the worker looks)."""
    return bool(_keys_with_open_rows(timezone.now(), late_writes))


@contextmanager
def settling_locks(late_writes=False):
    """Lock every key with open moves (skipping keys a move holds now); yield ``settle_from(sub_keys, read_at)``.

    Read derouter's key list inside the block, after the locks are taken, and pass it to
    ``settle_from`` with the time the read began: it settles the locked keys from that one list
    and returns the rows settled.
    With ``late_writes`` (the worker's minutely run), keys whose moves were settled "not
    applied" within LATE_WRITE_HORIZON_SECONDS are looked at too; pages leave that to it.
    """
    with ExitStack() as stack:
        held = []
        for sub_key_id in _keys_with_open_rows(timezone.now(), late_writes):
            try:
                stack.enter_context(key_lock(sub_key_id, wait_seconds=0))
            except KeyBusy:
                continue
            held.append(sub_key_id)

        def settle_from(sub_keys, read_at):
            by_id = {sub_key.id: sub_key for sub_key in sub_keys}
            settled = []
            for sub_key_id in held:
                settled += _settle_walk(sub_key_id, by_id.get(sub_key_id), read_at)
            return settled

        yield settle_from


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
