"""Reconciliation: the console's records against derouter's own figures, every key, every difference with its amount.

Three checks, from one read of derouter's key list and balance:

- **ledger**: each key's budget at derouter against what the console recorded: the budget
  it created the key with (or, for a key the console did not create, its budget at the
  opening) plus every confirmed move since;
- **mirror**: each key's mirrored usage against the spend derouter reports for it (the
  mirror is caught up first, so a difference is a gap, not lag);
- **account**: the account's available balance, moved since the opening, against what the
  moves explain: budgets of new keys and top-ups out, returns of deleted keys in, the
  Account Key's own use out. derouter gives the balance to four decimals, so a gap within
  the rounding of two readings (0.0001) is no difference.

A key with a move whose outcome is not settled yet is not compared (it is counted as
waiting); neither is the account while any move is unsettled. A difference seen once may be
a move landing between two reads, so a run that finds some reads everything again and keeps
only those found twice.
"""

import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_noop
from huey.contrib.djhuey import db_task

from dashboard.models import KeyOpening, ReconcileDifference, ReconcileOpening, ReconcileRun
from derouter import client
from ledger.models import UNSETTLED_OUTCOMES, AuditEvent, Outcome, TopUp
from lib.money import exact_usd, to_decimal
from lib.stored_text import lines, note, read_in_english
from mirror import snapshot as mirror_snapshot
from mirror import sync as mirror_sync
from mirror.models import ACCOUNT_SCOPE, DailyRollup, KeySnapshot
from work import leases

PLACES = Decimal("0.000001")
# derouter's /balance says four decimals: each of two readings is rounded by up to half of this.
BALANCE_PLACES = Decimal("0.0001")
RUN_LEASE = "dashboard.reconcile"
RUN_LEASE_SECONDS = 600
# Before the second read of a run that found differences: a move in flight lands meanwhile.
RECHECK_DELAY_SECONDS = 1
Kind = ReconcileDifference.Kind


class RunBusy(Exception):
    """Another reconciliation is running."""


@dataclass(frozen=True)
class Difference:
    """One difference; ``detail`` is a note (``lib.stored_text``), stored with the run and read by each reader."""

    kind: str
    amount: Decimal
    detail: str
    sub_key_id: str = ""
    label: str = ""
    key_id_short: str = ""

    @property
    def identity(self):
        return (self.kind, self.sub_key_id)

    def describe(self):
        """The difference in English, for ``manage.py reconcile``'s output."""
        who = f"{self.label or self.key_id_short} ({self.sub_key_id})" if self.sub_key_id else "account"
        sign = "+" if self.amount > 0 else ""
        return f"{Kind(self.kind).label}: {who}: {sign}{exact_usd(self.amount)}: {read_in_english(self.detail)}"


@dataclass
class Report:
    """What a run found; ``notes`` are notes (``lib.stored_text``) of what it could not compare."""

    differences: list = field(default_factory=list)
    keys_checked: int = 0
    keys_waiting: int = 0
    notes: list = field(default_factory=list)


def _exact(value):
    return Decimal(value or 0).quantize(PLACES)


# ---------------------------------------------------------------- what the console recorded


def _sum_by(rows):
    """{name: exact sum} of (name, amount) pairs, summed here: SQLite sums decimals through floating point."""
    totals = defaultdict(Decimal)
    for name, amount in rows:
        totals[name] += Decimal(amount)
    return defaultdict(Decimal, {name: _exact(total) for name, total in totals.items()})


def _confirmed_net_by_key():
    """The ledger's net of confirmed moves per key id (top-ups and reclaims: what changed its budget)."""
    return _sum_by(
        TopUp.objects.filter(outcome=Outcome.OK, kind=TopUp.Kind.MOVE).values_list("sub_key_id", "amount").iterator()
    )


def _confirmed_returns_by_key():
    """What the ledger records deletes returned to the balance, per key id (positive)."""
    lines = TopUp.objects.filter(outcome=Outcome.OK, kind=TopUp.Kind.RETURN).values_list("sub_key_id", "amount")
    return {sub_key_id: -amount for sub_key_id, amount in _sum_by(lines.iterator()).items()}


def _created_by_console():
    """{key id: (budget it was created with, when)} for every key the console created (forms, rotations)."""
    created = {}
    events = AuditEvent.objects.filter(action=AuditEvent.Action.CREATE, outcome=Outcome.OK).exclude(sub_key_id="")
    for sub_key_id, changes, created_at in events.values_list("sub_key_id", "changes", "created_at"):
        budget = (changes or {}).get("budget", [None, None])[1]
        if budget is not None:
            created[sub_key_id] = (_exact(to_decimal(budget)), created_at)
    return created


def _unsettled_key_ids():
    return set(TopUp.objects.filter(outcome__in=UNSETTLED_OUTCOMES).values_list("sub_key_id", flat=True))


def _has_unsettled_key_writes():
    return AuditEvent.objects.filter(
        outcome__in=UNSETTLED_OUTCOMES, action__in=(AuditEvent.Action.CREATE, AuditEvent.Action.DELETE)
    ).exists()


def _mirrored_cost_by_key():
    rollups = DailyRollup.objects.filter(key__isnull=False).values_list("key__sub_key_id", "cost")
    return _sum_by(rollups.iterator(chunk_size=2000))


def _mirrored_account_usage():
    return _sum_by(DailyRollup.objects.filter(key__isnull=True).values_list("key", "cost"))[None]


# ---------------------------------------------------------------- catching the mirror up


def _catch_up_mirror(sub_keys):
    """Bring the mirror up to date for the keys whose spend moved, and the account; notes of what could not be."""
    notes = []
    try:
        mirror_snapshot.refresh_snapshot(sub_keys=sub_keys, asked_at=timezone.now(), wait_seconds=30)
    except mirror_sync.ScopeBusy:
        notes.append(note(gettext_noop("The key snapshot was being refreshed by the worker; compared as it stood.")))
    mirrored = _mirrored_cost_by_key()
    scopes = [sub_key.id for sub_key in sub_keys if _exact(sub_key.spent) != mirrored[sub_key.id]]
    for scope in [*scopes, ACCOUNT_SCOPE]:
        try:
            mirror_sync.sync_scope(scope, wait_seconds=30)
        except (mirror_sync.ScopeBusy, KeySnapshot.DoesNotExist):
            notes.append(note(gettext_noop("The usage of %(scope)s could not be caught up first (the worker holds it)."), scope=scope))
        except client.DerouterError as error:
            notes.append(note(gettext_noop("The usage of %(scope)s could not be caught up first: %(error)s"),
                              scope=scope, error=error.message))
    return notes


# ---------------------------------------------------------------- the opening


def has_opening():
    return ReconcileOpening.objects.exists()


def open_books(sub_keys, balance):
    """Record where counting starts: derouter's figures now and the ledger's net per key now."""
    net = _confirmed_net_by_key()
    now = timezone.now()
    with transaction.atomic():
        ReconcileOpening.objects.all().delete()
        KeyOpening.objects.all().delete()
        ReconcileOpening.objects.create(
            opened_at=now, balance=balance.balance, locked=balance.locked, available=balance.available,
            account_usage=_mirrored_account_usage(),
        )
        KeyOpening.objects.bulk_create(
            [KeyOpening(sub_key_id=sub_key.id, budget=_exact(sub_key.budget), ledger_net=net[sub_key.id], opened_at=now)
             for sub_key in sub_keys],
            batch_size=500,
        )


# ---------------------------------------------------------------- the checks


def _expected_budget(sub_key_id, created, openings, net):
    """What the console's records say the key's budget is, or None when it has no record of the key."""
    if sub_key_id in created:
        return created[sub_key_id][0] + net[sub_key_id]
    opening = openings.get(sub_key_id)
    if opening is not None:
        return _exact(opening.budget) + net[sub_key_id] - _exact(opening.ledger_net)
    return None


def _compare(sub_keys, balance):
    """One pass of the three checks over derouter's figures just read."""
    report = Report()
    net = _confirmed_net_by_key()
    created = _created_by_console()
    openings = {opening.sub_key_id: opening for opening in KeyOpening.objects.all()}
    mirrored = _mirrored_cost_by_key()
    waiting = _unsettled_key_ids()
    listed = {sub_key.id: sub_key for sub_key in sub_keys}

    for sub_key in sub_keys:
        who = {"sub_key_id": sub_key.id, "label": sub_key.label, "key_id_short": sub_key.key_id}
        report.keys_checked += 1
        spend_gap = _exact(sub_key.spent) - mirrored[sub_key.id]
        if spend_gap:
            report.differences.append(Difference(
                Kind.MIRROR, spend_gap,
                note(gettext_noop("derouter reports %(spent)s spent; the mirrored rows cost %(mirrored)s."),
                     spent=exact_usd(sub_key.spent), mirrored=exact_usd(mirrored[sub_key.id])),
                **who,
            ))
        if sub_key.id in waiting:
            report.keys_waiting += 1
            continue
        expected = _expected_budget(sub_key.id, created, openings, net)
        if expected is None:
            report.differences.append(Difference(
                Kind.LEDGER, _exact(sub_key.budget),
                note(gettext_noop("derouter lists this key with a budget of %(budget)s; the console did not create it "
                                  "and has no record of it."), budget=exact_usd(sub_key.budget)),
                **who,
            ))
        elif _exact(sub_key.budget) != expected:
            report.differences.append(Difference(
                Kind.LEDGER, _exact(sub_key.budget) - expected,
                note(gettext_noop("derouter's budget is %(budget)s; the ledger's confirmed moves make it %(expected)s."),
                     budget=exact_usd(sub_key.budget), expected=exact_usd(expected)),
                **who,
            ))

    opening = ReconcileOpening.objects.first()
    if waiting or _has_unsettled_key_writes():
        report.notes.append(note(gettext_noop("The account's balance was not compared: some moves are not settled yet.")))
        return report
    # Every key the console knows of since the opening: those listed then, and those it created after.
    known = set(openings) | {key_id for key_id, (_, at) in created.items() if at >= opening.opened_at}
    moved_out = Decimal(0)
    returned = Decimal(0)
    returns = _confirmed_returns_by_key()
    for sub_key_id in known:
        expected = _expected_budget(sub_key_id, created, openings, net)
        moved_out += expected - (_exact(openings[sub_key_id].budget) if sub_key_id in openings else 0)
        if sub_key_id in returns:
            returned += returns[sub_key_id]
        elif sub_key_id not in listed:
            # Deleted with no return in the ledger (outside the console): its budget less its mirrored usage.
            returned += max(expected - mirrored[sub_key_id], Decimal(0))
    account_use = _mirrored_account_usage() - _exact(opening.account_usage)
    expected_available = _exact(opening.available) - moved_out + returned - account_use
    gap = (_exact(balance.available) - expected_available).quantize(BALANCE_PLACES)
    if abs(gap) > BALANCE_PLACES:
        report.differences.append(Difference(
            Kind.ACCOUNT, gap,
            note(
                gettext_noop("derouter's available balance is %(available)s; from %(opening)s at the opening (%(when)s UTC), "
                             "%(moved_out)s allocated to keys, %(returned)s returned by deleted keys and %(account_use)s "
                             "of the Account Key's own use make it %(expected)s."),
                available=exact_usd(balance.available), opening=exact_usd(opening.available),
                when=f"{opening.opened_at:%Y-%m-%d %H:%M}", moved_out=exact_usd(moved_out), returned=exact_usd(returned),
                account_use=exact_usd(account_use), expected=exact_usd(expected_available),
            ),
        ))
    return report


def _read_derouter():
    return client.list_sub_keys(), client.get_balance()


def reconcile(catch_up=True, reopen=False):
    """Compare everything once (twice when the first pass finds differences); return a Report.

    The first run, or one asked to ``reopen``, records the opening instead of comparing
    the account; it waits for unsettled moves, as the opening must not count them half.
    Raises DerouterError when derouter cannot be read.
    """
    sub_keys, balance = _read_derouter()
    notes = _catch_up_mirror(sub_keys) if catch_up else []
    if reopen or not has_opening():
        if _unsettled_key_ids() or _has_unsettled_key_writes():
            return Report(notes=[*notes, note(gettext_noop("Not opened yet: some moves are not settled. Run again once they are."))])
        open_books(sub_keys, balance)
        notes.append(note(gettext_noop("Opened: counting starts from derouter's figures now.")))
    report = _compare(sub_keys, balance)
    if report.differences:
        time.sleep(RECHECK_DELAY_SECONDS)
        sub_keys, balance = _read_derouter()
        if catch_up:
            _catch_up_mirror([sub_key for sub_key in sub_keys if sub_key.id in {d.sub_key_id for d in report.differences}])
        first_seen = {difference.identity for difference in report.differences}
        report = _compare(sub_keys, balance)
        report.differences = [difference for difference in report.differences if difference.identity in first_seen]
    report.notes[:0] = notes
    return report


def run(run_record=None, requested_by="", catch_up=True, reopen=False):
    """Reconcile under the run lease and store the result on a ReconcileRun (given, or new); return it.

    Raises RunBusy when another run holds the lease, DerouterError (recorded as failed first).
    """
    record = run_record or ReconcileRun.objects.create(requested_by=requested_by)
    try:
        with leases.held(RUN_LEASE, seconds=RUN_LEASE_SECONDS):
            report = reconcile(catch_up=catch_up, reopen=reopen)
    except leases.LeaseHeld:
        _finish(record, ReconcileRun.Status.FAILED, error=note(gettext_noop("Another reconciliation was running; this one did not start.")))
        raise RunBusy() from None
    except client.DerouterError as error:
        _finish(record, ReconcileRun.Status.FAILED, error=note(gettext_noop("derouter could not be read: %(error)s"), error=error.message))
        raise
    ReconcileDifference.objects.bulk_create(
        [ReconcileDifference(run=record, kind=d.kind, sub_key_id=d.sub_key_id, key_label=d.label[:200],
                             key_id_short=d.key_id_short[:64], amount=d.amount, detail=d.detail)
         for d in report.differences],
        batch_size=500,
    )
    status = ReconcileRun.Status.DIFFERENCES if report.differences else ReconcileRun.Status.RECONCILED
    _finish(record, status, keys_checked=report.keys_checked, keys_waiting=report.keys_waiting,
            difference_count=len(report.differences), notes=lines(*report.notes) if report.notes else "")
    record.report = report
    return record


def _finish(record, status, **fields):
    fields.update(status=status, finished_at=timezone.now())
    for name, value in fields.items():
        setattr(record, name, value)
    record.save(update_fields=list(fields))


def last_run():
    return ReconcileRun.objects.first()


@db_task(retries=2, retry_delay=60)
def run_reconciliation(run_id):
    """The worker's task: run the reconciliation a person asked for (its ReconcileRun row was written "running" already)."""
    record = ReconcileRun.objects.filter(pk=run_id, status=ReconcileRun.Status.RUNNING).first()
    if record is None:
        return
    try:
        run(record)
    except RunBusy:
        pass
    except client.DerouterError:
        # Recorded as failed on the run; the next hourly run (or a person) tries again.
        pass


# ---------------------------------------------------------------- further checks of higher layers

# Checks that packages above this one add (money in: payments registers one when the app is ready).
# Each has ``page_section()`` -> (template name, context) for the reconciliation page and
# ``run_for_command()`` -> (lines, how many problems) for ``manage.py reconcile``.
FURTHER_CHECKS = []


def register_further_check(check):
    if check not in FURTHER_CHECKS:
        FURTHER_CHECKS.append(check)
