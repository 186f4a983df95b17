"""Leases: locks shared by every consumer that expire, so a consumer killed mid-task cannot hold one forever.

Huey's own task locks never expire (a killed consumer's lock stays until someone runs
`run_huey --flush-locks`, which also frees the locks of consumers still running), and
its lock TTLs need Redis 7.4+ and do not exist on SQLite storage. So a lease is a row in
the database every consumer already shares: taking it is one conditional UPDATE of an
expired row or one INSERT of a new one, each atomic on SQLite and PostgreSQL, so of two
consumers asking at once exactly one gets it. The holder keeps it up as it works (checked
after every page of a sync and before every rule of an automation pass, renewed once a
third of the lease has gone by) and deletes it when done;
a holder killed mid-task leaves it to expire, and the next consumer takes it over then.

Take a lease outside a transaction: inside one, other consumers would not see it until
the transaction commits.
"""

import functools
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.db.models.sql import Query

from work.models import Lease

# A lease is renewed at the first step after a third of it has gone by, so any one step
# may take up to two thirds of it (200 s): an upstream read with its retries takes about
# a minute at the default timeouts (DEROUTER_CONNECT_TIMEOUT + DEROUTER_READ_TIMEOUT, three
# tries), writing a batch of pages seconds. A killed consumer's work waits this long at most.
LEASE_SECONDS = 300
WAIT_POLL_SECONDS = 0.2


class LeaseHeld(Exception):
    """Another consumer holds this lease, and it has not expired."""


class LeaseLost(LeaseHeld):
    """Our lease expired and another consumer took it over: stop, the work is theirs now."""


@dataclass
class HeldLease:
    name: str
    holder: str
    seconds: int
    renewed_at: float = field(default_factory=time.monotonic)

    def renew(self):
        """Push the expiry out again; raises LeaseLost when another consumer has taken the lease over."""
        renewed = Lease.objects.filter(name=self.name, holder=self.holder).update(expires_at=_from_now(self.seconds))
        if not renewed:
            raise LeaseLost(self.name)
        self.renewed_at = time.monotonic()

    def keep(self):
        """Renew once a third of the lease has gone by: cheap enough to call after every step of the work."""
        if time.monotonic() - self.renewed_at >= self.seconds / 3:
            self.renew()


def _from_now(seconds):
    """The database's clock plus ``seconds``: consumers on machines whose clocks differ agree on expiry."""
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


@functools.cache
def _clock(vendor, seconds):
    """The database's clock now and ``seconds`` from now, as SQL with its parameters, for ``vendor``.

    Compiled by the ORM once: a lease is taken at the start of every sync, and built each
    time its two statements took longer to build than to run.
    """
    query = Query(Lease)
    compiler = query.get_compiler(connection=connection)
    now = compiler.compile(Now().resolve_expression(query))
    then = compiler.compile(_from_now(seconds).resolve_expression(query))
    return now, then


def _take(name, seconds):
    """The lease if it is free or expired, else None."""
    holder = uuid.uuid4().hex
    (now, now_params), (then, then_params) = _clock(connection.vendor, seconds)
    table = connection.ops.quote_name(Lease._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET holder = %s, taken_at = {now}, expires_at = {then}"
            f" WHERE name = %s AND expires_at <= {now}",
            [holder, *now_params, *then_params, name, *now_params],
        )
        if cursor.rowcount:
            return HeldLease(name, holder, seconds)
        cursor.execute(
            f"INSERT INTO {table} (name, holder, taken_at, expires_at) VALUES (%s, %s, {now}, {then})"
            " ON CONFLICT (name) DO NOTHING",
            [name, holder, *now_params, *then_params],
        )
        if cursor.rowcount:
            return HeldLease(name, holder, seconds)
    return None


@contextmanager
def held(name, seconds=LEASE_SECONDS, wait_seconds=0):
    """Hold the lease ``name`` for the block; call the yielded lease's ``keep`` after every step of the work.

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
        _release(lease)


def _release(lease):
    """Delete the lease if it is still ours: one taken over after it expired belongs to its new holder.

    A plain statement: QuerySet.delete() first looks for related rows and signals, ten
    times the cost of the delete itself, at the end of every sync.
    """
    table = connection.ops.quote_name(Lease._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE name = %s AND holder = %s", [lease.name, lease.holder])
