"""The console's front page: money, keys at a glance, keys running low, latest top-ups."""

from decimal import Decimal

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts.roles import console_required
from analytics.panels import get_business_summary
from analytics.permissions import can_see_margins
from dashboard.models import TopUp
from dashboard.upstream import get_sub_keys, is_running_low
from derouter import client

LATEST_TOPUPS = 5
LOW_KEYS_SHOWN = 10


def _get_low_keys(sub_keys):
    """Keys under the low-budget threshold, the emptiest (by share left) first."""
    low = [sub_key for sub_key in sub_keys if is_running_low(sub_key)]
    return sorted(low, key=lambda sub_key: (-sub_key.used_fraction, sub_key.remaining, sub_key.id))


@console_required
@require_http_methods(["GET", "HEAD"])
def overview(request):
    """Balance, locked and available; key count, allocated and spent; keys running low; latest top-ups."""
    balance = client.get_balance()
    sub_keys = get_sub_keys()
    low_keys = _get_low_keys(sub_keys)
    context = {
        "balance": balance,
        "key_count": len(sub_keys),
        "total_allocated": sum((sub_key.budget for sub_key in sub_keys), start=Decimal(0)),
        "total_spent": sum((sub_key.spent for sub_key in sub_keys), start=Decimal(0)),
        "low_keys": low_keys[:LOW_KEYS_SHOWN],
        "more_low_keys": max(len(low_keys) - LOW_KEYS_SHOWN, 0),
        "latest_topups": TopUp.objects.all()[:LATEST_TOPUPS],
        "business": get_business_summary(can_see_margins(request.user), balance.available),
    }
    return render(request, "dashboard/overview.html", context)
