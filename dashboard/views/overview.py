"""The console's front page: money, keys at a glance, keys running low, latest top-ups."""

from django.conf import settings
from django.db.models import Case, Count, DecimalField, ExpressionWrapper, F, Sum, Value, When
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts.roles import console_required
from analytics.panels import get_business_summary
from analytics.permissions import can_see_margins
from dashboard.models import TopUp
from derouter import client
from derouter.client import Unavailable
from mirror.models import KeySnapshot
from mirror.reads import as_sub_key, request_first_sync_if_empty

LATEST_TOPUPS = 5
LOW_KEYS_SHOWN = 10


def _get_low_keys():
    """Snapshot keys under the low-budget threshold, the emptiest (by share used) first."""
    used_share = Case(
        When(budget__lte=0, then=Value(1)),
        default=ExpressionWrapper(F("spent") / F("budget"), output_field=DecimalField()),
        output_field=DecimalField(),
    )
    low = KeySnapshot.objects.active().filter(remaining__lt=F("budget") * settings.LOW_BUDGET_THRESHOLD)
    return low.annotate(used_share=used_share).order_by("-used_share", "remaining", "sub_key_id")


def _get_balance():
    """The account's balance from derouter, or None while it cannot be reached (the rest is local)."""
    try:
        return client.get_balance()
    except Unavailable:
        return None


@console_required
@require_http_methods(["GET", "HEAD"])
def overview(request):
    """Balance, locked and available; key count, allocated and spent; keys running low; latest top-ups."""
    request_first_sync_if_empty()
    totals = KeySnapshot.objects.active().aggregate(
        key_count=Count("id"), total_allocated=Sum("budget", default=0), total_spent=Sum("spent", default=0)
    )
    low_keys = _get_low_keys()
    shown_low = [as_sub_key(snapshot) for snapshot in low_keys[:LOW_KEYS_SHOWN]]
    balance = _get_balance()
    context = {
        "balance": balance,
        **totals,
        "low_keys": shown_low,
        "more_low_keys": max(low_keys.count() - LOW_KEYS_SHOWN, 0) if len(shown_low) == LOW_KEYS_SHOWN else 0,
        "latest_topups": TopUp.objects.all()[:LATEST_TOPUPS],
        "business": get_business_summary(can_see_margins(request.user), balance.available if balance else None),
    }
    return render(request, "dashboard/overview.html", context)
