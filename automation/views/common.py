"""Helpers shared by the automation views."""

from mirror import snapshot as mirror_snapshot
from mirror import sync as mirror_sync
from mirror.models import KeySnapshot

# How long a page waits for a snapshot refresh already running elsewhere before it reads the snapshot.
SNAPSHOT_WAIT_SECONDS = 5


def refresh_snapshot_now():
    """Refresh the key snapshot from derouter before reading it (DerouterError when derouter fails).

    A refresh already running elsewhere is waited for; past the wait the page reads
    the snapshot as that refresh leaves it.
    """
    try:
        mirror_snapshot.refresh_snapshot(wait_seconds=SNAPSHOT_WAIT_SECONDS)
    except mirror_sync.ScopeBusy:
        return


def get_key_choices():
    """(sub_key_id, "label (sk-ant-…)") for every active key, from the snapshot (refreshed once if empty)."""
    snapshots = KeySnapshot.objects.active().order_by("label", "sub_key_id")
    if not snapshots.exists():
        refresh_snapshot_now()
    return [
        (snapshot.sub_key_id, f"{snapshot.label or '(no label)'} ({snapshot.key_id_short})")
        for snapshot in snapshots.only("sub_key_id", "label", "key_id_short")
    ]


def get_snapshot(sub_key_id):
    return KeySnapshot.objects.filter(sub_key_id=sub_key_id).first()


def get_key_names():
    """sub_key_id -> the key's label (or short key), for tables of rules."""
    return {
        sub_key_id: label or short
        for sub_key_id, label, short in KeySnapshot.objects.values_list("sub_key_id", "label", "key_id_short")
    }
