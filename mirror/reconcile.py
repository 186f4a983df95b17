"""Reconciliation: a key's mirrored total real cost must equal the spend derouter reports for it."""

from decimal import Decimal

from django.db.models import F, Sum

from mirror.models import DailyRollup, KeySnapshot

# The snapshot holds spend to six places; rollups sum exact row costs (on SQLite through
# floating point), so both are compared at the snapshot's precision.
SPENT_PLACES = Decimal("0.000001")


def mirrored_cost_of(snapshot):
    """The real cost of every mirrored row of one key, from its rollups."""
    return as_mirrored_cost(DailyRollup.objects.filter(key=snapshot).aggregate(total=Sum("cost"))["total"])


def as_mirrored_cost(total):
    """A sum of rollup costs (None for no rollups) at the snapshot's precision, for a caller that summed them itself."""
    return (total or Decimal(0)).quantize(SPENT_PLACES)


def mirrored_costs():
    """Mirrored real cost per key id (KeySnapshot.pk -> Decimal), summed from the rollups."""
    rows = DailyRollup.objects.filter(key__isnull=False).values("key").annotate(total=Sum("cost"))
    return {row["key"]: row["total"].quantize(SPENT_PLACES) for row in rows}


def difference(snapshot, mirrored):
    """Spend not (yet) mirrored: positive when rows are missing, negative when the mirror holds more."""
    return snapshot.spent - mirrored


def difference_text(snapshot, mirrored):
    gap = difference(snapshot, mirrored)
    if not gap:
        return "reconciled"
    return f"spent {snapshot.spent} but mirrored rows cost {mirrored} (difference {gap:+})"


def disagreements(snapshots=None):
    """Keys (all, or of the given queryset) whose mirrored real cost differs from their spend: [(snapshot, mirrored)]."""
    costs = mirrored_costs()
    found = []
    for snapshot in (snapshots if snapshots is not None else KeySnapshot.objects.all()).order_by("label", "sub_key_id"):
        mirrored = costs.get(snapshot.pk, Decimal(0).quantize(SPENT_PLACES))
        if difference(snapshot, mirrored):
            found.append((snapshot, mirrored))
    return found


def gaps(snapshots=None):
    """Keys whose last sync recorded their current spend as mirrored, yet whose rows cost otherwise: [(snapshot, mirrored)].

    A key that spent since its last sync merely waits for the next; one whose mirror claims
    to be in step and is not has lost rows (or holds extra ones). Refresh the snapshot first.
    """
    in_step = (snapshots if snapshots is not None else KeySnapshot.objects.all()).filter(
        deleted_at__isnull=True, sync__backfill_complete=True, sync__synced_spent=F("spent")
    )
    return disagreements(in_step)
