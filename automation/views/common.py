"""Helpers shared by the automation views."""

from automation.upstream import refresh_snapshot
from derouter import client
from mirror.models import KeySnapshot


def get_key_choices():
    """(sub_key_id, "label (sk-ant-…)") for every active key, from the snapshot (refreshed once if empty)."""
    snapshots = KeySnapshot.objects.active().order_by("label", "sub_key_id")
    if not snapshots.exists():
        refresh_snapshot(client.list_sub_keys())
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
