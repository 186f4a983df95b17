"""What the worker reads from derouter before it acts, and from the mirror's rollups."""

import datetime
import uuid
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from mirror.models import DailyRollup

TOKEN_NAMESPACE = uuid.UUID("0d6f4f54-3c2a-4a57-8c53-5a4c2b7e9f10")
BURN_DAYS = 7


def token_for(kind, rule_id, part):
    """The one-time token of one automatic money move: the same for every worker that tries it."""
    return uuid.uuid5(TOKEN_NAMESPACE, f"{kind}:{rule_id}:{part}")


def get_daily_burn(today=None):
    """USD spent per day over the last seven full UTC days, from the mirror's rollups."""
    today = today or timezone.now().astimezone(datetime.UTC).date()
    start = today - datetime.timedelta(days=BURN_DAYS)
    total = DailyRollup.objects.filter(day__gte=start, day__lt=today).aggregate(total=Sum("cost"))["total"]
    return (total or Decimal(0)) / BURN_DAYS
