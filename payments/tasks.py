"""Money-in background work, run by the Huey consumer."""

import logging

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task
from django.utils.translation import gettext_noop

from payments import codes, orders, reconcile
from lib.stored_text import lines, note
from work import leases
from work.runs import tracked

logger = logging.getLogger(__name__)


@db_periodic_task(crontab(minute="*"))
def settle_held_codes():
    """Every minute: finish codes held while their top-up was unknown (their ledger rows are settled by the console's task).

    Idempotent: each step is a conditional UPDATE from the state it expects, so two consumers
    running it at once settle each code once.
    """
    if not codes.has_held_codes():
        return
    with tracked("payments.settle_held_codes") as run:
        settled = codes.settle_held_codes()
        run.detail = (note(gettext_noop("%(count)s settled"), count=len(settled)) if settled
                      else note(gettext_noop("Nothing could be settled yet.")))


ORDERS_LEASE = "payments-check-orders"
# How the run names each count of orders.check_stuck_orders (stored as notes, read in the reader's language).
ORDER_COUNTS = {
    "credited": gettext_noop("%(count)s credited"),
    "still crediting": gettext_noop("%(count)s still crediting"),
    "failed": gettext_noop("%(count)s failed"),
    "expired": gettext_noop("%(count)s expired"),
}


@db_periodic_task(crontab(minute="*"))
def check_orders():
    """Every minute, one consumer at a time: credit paid orders left uncredited, retry refused credits with backoff,
    ask Stripe about orders left unpaid, expire the oldest."""
    if not orders.has_orders_to_check():
        return
    try:
        with leases.held(ORDERS_LEASE) as lease, tracked("payments.check_orders") as run:
            done = orders.check_stuck_orders(keep=lease.keep)
            run.detail = lines(*(note(ORDER_COUNTS[what], count=count) for what, count in done.items() if count)) or note(
                gettext_noop("Nothing to do."))
    except leases.LeaseHeld:
        logger.info("order check skipped: another consumer is running one")


CHECK_LEASE = "payments-money-in-check"


def _check(requested_by):
    try:
        with leases.held(CHECK_LEASE), tracked("payments.check_money_in") as run:
            record = reconcile.check(requested_by=requested_by)
            run.detail = lines(note(gettext_noop("%(count)s problems"), count=record.problems.count()), record.error)
    except leases.LeaseHeld:
        logger.info("money-in check skipped: another consumer is running one")


@db_periodic_task(crontab(hour="3", minute="23"))
def check_money_in_daily():
    """Every day: Stripe's payments and refunds against orders, codes and the ledger (the reconciliation page lists it)."""
    _check(note(gettext_noop("the daily schedule")))


@db_task()
def check_money_in_now(requested_by):
    """A check a person asked for from the reconciliation page."""
    _check(requested_by)
