"""Settling a key's money moves whose outcome was not known, and late ones, from derouter's budgets.

With the key's lock held and its budget read, the key's moves are walked in their order
(``settle_walk``): each ``budget_before`` is an observation of derouter's budget taken with no
other move in flight, so the rise between two observations, less the moves derouter answered
"ok", names which moves of unknown outcome landed in between (the likeliest set: ``_likelier``).
An unknown move not seen by WRITE_SETTLE_SECONDS after it was sent is settled "not applied";
one derouter shows applied later still (within LATE_WRITE_HORIZON_SECONDS) is re-settled as
applied, with an audit event that says so. ``dashboard.topups`` is the service's front door:
it settles a key's earlier moves before each move, and names ``settle_key``, ``settling_locks``
and ``has_unsettled_moves`` for its callers.
"""

import datetime
import itertools
from contextlib import ExitStack, contextmanager
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_noop

from dashboard.money_rows import KeyBusy, finish_move, key_lock, moves_of, read_key, record_event
from ledger import audit
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome, TopUp
from lib import stored_text
from lib.money import exact_usd

# An unknown-outcome move is tried against more than this many candidates only one by one.
MAX_EXHAUSTIVE_CANDIDATES = 10


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
    return moves_of(sub_key_id).filter(_open_filter(now))


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
        event = record_event(row, outcome)
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
        changes=audit.LATE_WRITE_CHANGES,
        message=stored_text.note(
            gettext_noop("Late write: the top-up of %(amount)s on %(when)s UTC was recorded as not applied, "
                         "and derouter applied it later. Re-settled as applied. %(message)s"),
            amount=exact_usd(row.amount), when=f"{row.created_at:%Y-%m-%d %H:%M}", message=message,
        ),
        actor_name=row.actor_name,
    )


def settle_walk(sub_key_id, current_key, now, exclude_pk=None):
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
    checked_at = f"{now:%Y-%m-%d %H:%M}"
    for row in open_rows:
        if row.budget_before is None and row.outcome == Outcome.PENDING and _is_settled(row, now):
            # Its holder never read the budget under the key's lock, so it never sent the PUT.
            finish_move(row, Outcome.REFUSED, stored_text.note(gettext_noop("Not sent: the request ended before it asked derouter.")))
            settled.append(row)
    if current_key is None:
        for row in open_rows:
            if row.outcome == Outcome.PENDING and row.budget_before is not None and _is_settled(row, now):
                _settle(row, Outcome.UNKNOWN, stored_text.note(
                    gettext_noop("Cannot be checked: the key is gone from derouter. Check the account's balance.")
                ))
                settled.append(row)
        return settled
    sent = [row for row in open_rows if row.budget_before is not None]
    if not sent:
        return settled
    chain = [
        row
        for row in _in_key_order(moves_of(sub_key_id).filter(budget_before__isnull=False))
        if row.pk != exclude_pk
    ]
    # From the first move whose landing is not certain (one judged landed recently may
    # have landed later than judged): every rise since then is explained from there.
    uncertain = {row.pk for row in sent} | set(
        moves_of(sub_key_id).filter(outcome=Outcome.OK, outcome_inferred=True)
        .filter(_recent(now))
        .values_list("pk", flat=True)
    )
    start = next(index for index, row in enumerate(chain) if row.pk in uncertain)
    chain = chain[start:]
    landed = {row.pk for row in _find_landed(chain, current_key.budget, {row.pk for row in sent})}
    budget_now = exact_usd(current_key.budget)
    for row in sent:
        checked = stored_text.note(
            gettext_noop("(checked %(when)s UTC: budget %(before)s before, %(now)s now)"),
            when=checked_at, before=exact_usd(row.budget_before), now=budget_now,
        )
        confirmed = stored_text.note(gettext_noop("Confirmed from the key's budget %(checked)s."), checked=checked)
        if row.pk in landed and row.outcome == Outcome.REFUSED:
            _settle_late(row, confirmed)
        elif row.pk in landed and row.outcome != Outcome.OK:
            _settle(row, Outcome.OK, confirmed)
        elif row.pk not in landed and row.outcome in UNSETTLED_OUTCOMES and _is_settled(row, now):
            _settle(row, Outcome.REFUSED, stored_text.note(
                gettext_noop("Not applied: the key's budget did not go up by %(amount)s %(checked)s."),
                amount=exact_usd(row.amount), checked=checked,
            ))
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
            return settle_walk(sub_key_id, read_key(sub_key_id), read_at)
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
                settled += settle_walk(sub_key_id, by_id.get(sub_key_id), read_at)
            return settled

        yield settle_from

