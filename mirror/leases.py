"""Leases: locks shared by every consumer that expire, so a consumer killed mid-task cannot hold one forever.

Huey's own task locks never expire (a killed consumer's lock stays until someone runs
`run_huey --flush-locks`, which also frees the locks of consumers still running), and
its lock TTLs need Redis 7.4+ and do not exist on SQLite storage. So a lease is a row in
the database every consumer already shares: taking it is one conditional UPDATE of an
expired row or one INSERT of a new one, each atomic on SQLite and PostgreSQL, so of two
consumers asking at once exactly one gets it. The holder renews it as it works (after
every page of a sync, before every rule of an automation pass) and deletes it when done;
a holder killed mid-task leaves it to expire, and the next consumer takes it over then.

Take a lease outside a transaction: inside one, other consumers would not see it until
the transaction commits.
"""

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now

from mirror.models import Lease

# Longer than any step between two renewals can take: an upstream read with its retries
# (DEROUTER_CONNECT_TIMEOUT + DEROUTER_READ_TIMEOUT, three tries: about a minute at the
# defaults) and the writes of one page. A killed consumer's work waits this long at most.
LEASE_SECONDS = 300
WAIT_POLL_SECONDS = 0.2


class LeaseHeld(Exception):
    """Another consumer holds this lease, and it has not expired."""


class LeaseLost(LeaseHeld):
    """Our lease expired and another consumer took it over: stop, the work is theirs now."""


@dataclass(frozen=True)
class HeldLease:
    name: str
    holder: str
    seconds: int

    def renew(self):
        """Push the expiry out again; raises LeaseLost when another consumer has taken the lease over."""
        renewed = Lease.objects.filter(name=self.name, holder=self.holder).update(expires_at=_from_now(self.seconds))
        if not renewed:
            raise LeaseLost(self.name)


def _from_now(seconds):
    """The database's clock plus ``seconds``: consumers on machines whose clocks differ agree on expiry."""
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def _take(name, seconds):
    """The lease if it is free or expired, else None."""
    holder = uuid.uuid4().hex
    taken_over = Lease.objects.filter(name=name, expires_at__lte=Now()).update(
        holder=holder, taken_at=Now(), expires_at=_from_now(seconds)
    )
    if not taken_over:
        try:
            with transaction.atomic():
                Lease.objects.create(name=name, holder=holder, taken_at=Now(), expires_at=_from_now(seconds))
        except IntegrityError:
            return None
    return HeldLease(name, holder, seconds)


@contextmanager
def held(name, seconds=LEASE_SECONDS, wait_seconds=0):
    """Hold the lease ``name`` for the block (renew it with the yielded lease's ``renew``).

    Raises LeaseHeld when another consumer still holds it after ``wait_seconds``.
    """
    deadline = time.monotonic() + wait_seconds
    while (lease := _take(name, seconds)) is None:
        if time.monotonic() >= deadline:
            raise LeaseHeld(name)
        time.sleep(WAIT_POLL_SECONDS)
    try:
        yield lease
    finally:
        # Only our own: a lease taken over after it expired belongs to its new holder.
        Lease.objects.filter(name=name, holder=lease.holder).delete()
