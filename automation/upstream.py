"""What the worker reads from derouter before it acts, and the key snapshot it keeps fresh."""

import datetime
import uuid
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from derouter import client
from mirror import ingest
from mirror.models import DailyRollup, KeySnapshot

TOKEN_NAMESPACE = uuid.UUID("0d6f4f54-3c2a-4a57-8c53-5a4c2b7e9f10")
BURN_DAYS = 7
SNAPSHOT_FIELDS = (
    ("label", "label"),
    ("budget", "budget"),
    ("spent", "spent"),
    ("remaining", "remaining"),
    ("rpm_limit", "rpm_limit"),
    ("concurrent_limit", "concurrent_limit"),
    ("display_multiplier", "display_multiplier"),
)


def token_for(kind, rule_id, part):
    """The one-time token of one automatic money move: the same for every worker that tries it."""
    return uuid.uuid5(TOKEN_NAMESPACE, f"{kind}:{rule_id}:{part}")


def get_live_key(sub_key_id):
    """The key as derouter has it now, or None when it does not exist (one upstream call)."""
    return next((sub_key for sub_key in client.list_sub_keys() if sub_key.id == sub_key_id), None)


def refresh_snapshot(sub_keys, now=None):
    """Write what changed in derouter's key list into the mirror's KeySnapshot; return {id: snapshot}."""
    now = now or timezone.now()
    held = {snapshot.sub_key_id: snapshot for snapshot in KeySnapshot.objects.all()}
    current = {}
    for sub_key in sub_keys:
        snapshot = held.get(sub_key.id)
        unchanged = (
            snapshot is not None
            and not snapshot.is_deleted
            and all(getattr(snapshot, mine) == getattr(sub_key, theirs) for mine, theirs in SNAPSHOT_FIELDS)
        )
        current[sub_key.id] = snapshot if unchanged else ingest.upsert_key(sub_key, now)
    for sub_key_id, snapshot in held.items():
        if sub_key_id not in current and not snapshot.is_deleted:
            ingest.mark_deleted(sub_key_id, now)
    return current


def get_daily_burn(today=None):
    """USD spent per day over the last seven full UTC days, from the mirror's rollups."""
    today = today or timezone.now().astimezone(datetime.UTC).date()
    start = today - datetime.timedelta(days=BURN_DAYS)
    total = DailyRollup.objects.filter(day__gte=start, day__lt=today).aggregate(total=Sum("cost"))["total"]
    return (total or Decimal(0)) / BURN_DAYS
