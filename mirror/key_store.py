"""Writing the key snapshot: every Client Key as derouter reported it, the summary row, the balance.

Keys are written as derouter described them (a refresh, or the answer to a write we made);
every write to the snapshot ends by updating the summary row the overview reads. A full
Client Key is never stored in clear: its SHA-256, to match a pasted key, and the key
encrypted (lib.encryption), for the reads that need it.
"""

import hashlib
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Case, Count, DecimalField, ExpressionWrapper, F, Sum, Value, When
from django.utils import timezone

from lib import encryption
from mirror.models import AccountBalance, KeySnapshot, SnapshotSummary

# How many keys running low the summary names (what the overview lists).
LOW_KEYS_LISTED = 10
# lib.encryption's purpose for the Client Keys the snapshot keeps.
SECRET_PURPOSE = "mirror-client-key"


def secret_digest(secret_text):
    """SHA-256 of a full Client Key: lets a pasted key be matched without storing it."""
    return hashlib.sha256(secret_text.encode()).hexdigest()


def encrypt_secret(secret_text):
    """A full Client Key as the snapshot keeps it (empty for none)."""
    return encryption.encrypt(secret_text, SECRET_PURPOSE) if secret_text else ""


def decrypt_secret(snapshot):
    """The key's full secret from the snapshot, or None when it holds none (or one under an old SECRET_KEY)."""
    return encryption.decrypt(snapshot.secret_encrypted, SECRET_PURPOSE) if snapshot.secret_encrypted else None


def snapshot_fields(sub_key, seen_at):
    """The snapshot's columns for a key as derouter described it (a derouter.client.SubKey)."""
    return {
        "label": sub_key.label,
        "key_id_short": sub_key.key_id,
        "secret_sha256": secret_digest(sub_key.secret.reveal()) if sub_key.secret.reveal() else "",
        "budget": sub_key.budget,
        "spent": sub_key.spent,
        "remaining": sub_key.remaining,
        "rpm_limit": sub_key.rpm_limit,
        "concurrent_limit": sub_key.concurrent_limit,
        "display_multiplier": sub_key.display_multiplier,
        "refreshed_at": seen_at,
        "deleted_at": None,
    }


def get_low_keys():
    """Active keys under the low-budget threshold, the emptiest (by share used) first."""
    used_share = Case(
        When(budget__lte=0, then=Value(1)),
        default=ExpressionWrapper(F("spent") / F("budget"), output_field=DecimalField()),
        output_field=DecimalField(),
    )
    low = KeySnapshot.objects.active().filter(remaining__lt=F("budget") * settings.LOW_BUDGET_THRESHOLD)
    return low.annotate(used_share=used_share).order_by("-used_share", "remaining", "sub_key_id")


def summarize_snapshot():
    """Recount the active keys into the summary row; every write to the snapshot ends with this.

    One pass over the keys per change (a refresh, or a write we made), so that every page
    view reads a single row instead.
    """
    totals = KeySnapshot.objects.active().aggregate(
        key_count=Count("id"), total_allocated=Sum("budget", default=0), total_spent=Sum("spent", default=0)
    )
    low = get_low_keys()
    SnapshotSummary.objects.update_or_create(
        pk=1,
        defaults={
            **totals,
            "low_count": low.count(),
            "low_key_ids": list(low.values_list("pk", flat=True)[:LOW_KEYS_LISTED]),
            "computed_at": timezone.now(),
        },
    )


def get_summary():
    """The summary row, counted now if the snapshot was never summarized."""
    # The one row by its key: sliced, not first(), which would order by it as well.
    summary = next(iter(SnapshotSummary.objects.filter(pk=1)[:1]), None)
    if summary is None:
        summarize_snapshot()
        summary = SnapshotSummary.objects.get(pk=1)
    return summary


def _summary_figures(sub_key_id):
    """(budget, spent, remaining) of an active key of the snapshot, or None."""
    return KeySnapshot.objects.active().filter(sub_key_id=sub_key_id).values_list("budget", "spent", "remaining").first()


def _is_low(figures):
    budget, _, remaining = figures
    return remaining < budget * settings.LOW_BUDGET_THRESHOLD


def _update_summary(before, after):
    """Bring the summary row up to date after one active key changed from ``before`` to ``after`` (figures or None).

    A write moves one key: its difference is added to the totals in one statement, so a money
    step costs the same at any number of keys. A key that is, or was, running low changes the
    list of low keys: that (rarer) case, and a summary never counted, are recounted in full.
    """
    if before is None or after is None or _is_low(before) or _is_low(after):
        summarize_snapshot()
        return
    changed = SnapshotSummary.objects.filter(pk=1).update(
        total_allocated=F("total_allocated") + (after[0] - before[0]),
        total_spent=F("total_spent") + (after[1] - before[1]),
        computed_at=timezone.now(),
    )
    if not changed:
        summarize_snapshot()


def upsert_key(sub_key, seen_at=None):
    """Record one key as derouter just reported it (a derouter.client.SubKey); return its snapshot.

    A write's answer may leave out createdAt: a known creation time is then kept, and a
    key first seen that way is dated now (the next refresh brings derouter's own time).
    """
    seen_at = seen_at or timezone.now()
    fields = snapshot_fields(sub_key, seen_at)
    if sub_key.secret.reveal():
        fields["secret_encrypted"] = encrypt_secret(sub_key.secret.reveal())
    else:
        # An answer that leaves the secret out keeps the one held.
        del fields["secret_sha256"]
    if sub_key.created_at is not None:
        fields["created_at"] = sub_key.created_at
    with transaction.atomic():
        before = _summary_figures(sub_key.id)
        snapshot, _ = KeySnapshot.objects.update_or_create(
            sub_key_id=sub_key.id, defaults=fields, create_defaults={**fields, "created_at": sub_key.created_at or seen_at}
        )
        _update_summary(before, (snapshot.budget, snapshot.spent, snapshot.remaining))
    return snapshot


def insert_created_key(created):
    """Record a key we just created (a derouter.client.CreatedSubKey): nothing spent yet."""
    now = timezone.now()
    with transaction.atomic():
        snapshot, _ = KeySnapshot.objects.update_or_create(
            sub_key_id=created.id,
            defaults={
                "label": created.label,
                "key_id_short": created.key_id,
                "secret_sha256": secret_digest(created.secret.reveal()) if created.secret.reveal() else "",
                "secret_encrypted": encrypt_secret(created.secret.reveal()),
                "budget": created.budget,
                "spent": Decimal(0),
                "remaining": created.budget,
                "rpm_limit": created.rpm_limit,
                "concurrent_limit": created.concurrent_limit,
                "display_multiplier": created.display_multiplier,
                "created_at": now,
                "refreshed_at": now,
                "deleted_at": None,
            },
        )
        summarize_snapshot()
    return snapshot


def record_balance(balance, read_at=None):
    """Keep the account's balance as derouter just reported it (a derouter.client.Balance)."""
    AccountBalance.objects.update_or_create(
        pk=1,
        defaults={"balance": balance.balance, "locked": balance.locked, "available": balance.available,
                  "read_at": read_at or timezone.now()},
    )


def mark_deleted(sub_key_id, deleted_at=None):
    """Keep a deleted key's row (its history and statements survive), marked deleted."""
    with transaction.atomic():
        KeySnapshot.objects.filter(sub_key_id=sub_key_id, deleted_at__isnull=True).update(
            deleted_at=deleted_at or timezone.now()
        )
        summarize_snapshot()
