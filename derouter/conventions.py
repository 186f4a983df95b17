"""The conventions derouter follows where its reference is silent, as check_upstream stored them.

Read them with ``current()``: a frozen ``Conventions``. Until the probe has run, it holds the
reference's reading (amounts in real dollars, multiplier and rpm settable at any time, writes
answering 200 with a body) with ``probed_at`` None, and reclaim counted as not supported (the
reference does not list it). ``derouter.client`` converts amounts with it, so everything above
the client deals in real dollars.
"""

import contextvars
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import DatabaseError

from derouter.models import StoredConventions

logger = logging.getLogger(__name__)

REAL, CUSTOMER = "real", "customer"
# When a displayMultiplier is kept: at creation and after, only at creation, only after, never.
ANYTIME, AT_CREATION, AFTER_CREATION, NEVER = "anytime", "creation", "after", "never"
# What derouter does with a field: keeps it, answers success without keeping it, refuses it (4xx).
APPLIED, IGNORED, REFUSED, UNKNOWN = "applied", "ignored", "refused", "unknown"
WRITES = ("create", "update", "delete")
MICRO = Decimal("0.000001")


def _reference_statuses():
    return {write: 200 for write in WRITES}


def _reference_bodies():
    return {write: True for write in WRITES}


@dataclass(frozen=True)
class Conventions:
    """How derouter reads amounts and which writes it keeps.

    amounts: REAL (``*Virtual`` fields are dollars of the reseller's balance) or CUSTOMER (they are
    the customer's figures, real times the key's displayMultiplier).
    multiplier: ANYTIME, AT_CREATION, AFTER_CREATION or NEVER; multiplier_put says what a PUT of
    displayMultiplier got (APPLIED, IGNORED or REFUSED).
    limits_settable: whether rpmLimit is kept (False: fixed at 60 rpm / 5 concurrent).
    write_statuses / write_bodies: per write (create, update, delete), the success status and
    whether a body came with it.
    reclaim: what PUT reduceBudgetVirtual got (APPLIED, IGNORED, REFUSED, or UNKNOWN before a probe).
    """

    amounts: str = REAL
    multiplier: str = ANYTIME
    multiplier_put: str = APPLIED
    limits_settable: bool = True
    write_statuses: dict = field(default_factory=_reference_statuses)
    write_bodies: dict = field(default_factory=_reference_bodies)
    reclaim: str = UNKNOWN
    probed_at: datetime | None = None
    base_url: str = ""
    simulated: bool = False

    @property
    def probed(self):
        return self.probed_at is not None

    @property
    def probed_for_real(self):
        """Probed against a derouter that is not our simulator."""
        return self.probed and not self.simulated

    @property
    def multiplier_at_creation(self):
        return self.multiplier in (ANYTIME, AT_CREATION)

    @property
    def multiplier_after_creation(self):
        return self.multiplier in (ANYTIME, AFTER_CREATION)

    @property
    def reclaim_supported(self):
        return self.reclaim == APPLIED

    def to_wire(self, real, multiplier):
        """A real-dollar amount as the ``*Virtual`` figure to send for a key at this multiplier."""
        real = Decimal(real)
        if self.amounts == CUSTOMER:
            return (real * Decimal(multiplier)).quantize(MICRO, ROUND_HALF_UP)
        return real

    def to_real(self, wire, multiplier):
        """A ``*Virtual`` figure derouter sent (or takes) for a key at this multiplier, in real dollars."""
        wire = Decimal(wire)
        if self.amounts == CUSTOMER:
            return (wire / Decimal(multiplier or 1)).quantize(MICRO, ROUND_HALF_UP)
        return wire


REFERENCE = Conventions()
# What the probe assumes while it finds out: figures sent and read as they are.
AS_SENT = REFERENCE
_assumed = contextvars.ContextVar("assumed_conventions", default=None)


@contextmanager
def assuming(conventions):
    """Inside, ``current()`` is ``conventions`` whatever is stored (the probe works on raw figures)."""
    token = _assumed.set(conventions)
    try:
        yield
    finally:
        _assumed.reset(token)


def current():
    """The stored conventions, or the reference's reading (not probed) if check_upstream never ran."""
    assumed = _assumed.get()
    if assumed is not None:
        return assumed
    try:
        # The one row by its key: first() would order by it as well, work the query can do without.
        row = next(iter(StoredConventions.objects.filter(pk=1)[:1]), None)
    except (DatabaseError, RuntimeError):
        # No database at hand: an outage (no money moves then: its ledger row cannot be written),
        # or a caller without one (a bench script, a test without database access).
        logger.debug("the stored upstream conventions could not be read; assuming the reference's")
        return REFERENCE
    if row is None:
        return REFERENCE
    return Conventions(
        amounts=row.amounts, multiplier=row.multiplier, multiplier_put=row.multiplier_put,
        limits_settable=row.limits_settable, write_statuses=dict(row.write_statuses),
        write_bodies=dict(row.write_bodies), reclaim=row.reclaim, probed_at=row.probed_at,
        base_url=row.base_url, simulated=row.simulated,
    )


def store(found, run=None):
    """Keep what a probe found (a Conventions with probed_at set) as the current conventions."""
    StoredConventions.objects.update_or_create(pk=1, defaults={
        "probed_at": found.probed_at, "base_url": found.base_url, "simulated": found.simulated,
        "amounts": found.amounts, "multiplier": found.multiplier, "multiplier_put": found.multiplier_put,
        "limits_settable": found.limits_settable, "write_statuses": found.write_statuses,
        "write_bodies": found.write_bodies, "reclaim": found.reclaim, "run": run,
    })
