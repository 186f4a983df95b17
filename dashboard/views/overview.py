"""The console's front page: money, keys at a glance, keys running low, latest top-ups."""

from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from accounts.roles import console_required
from analytics.panels import get_business_summary
from analytics.permissions import can_see_margins, get_key_figures
from dashboard.models import TopUp
from derouter import client
from derouter import conventions as upstream_conventions
from derouter.client import Unavailable
from mirror.models import KeySnapshot
from mirror.reads import as_sub_key, get_summary_after_first_sync_request

LATEST_TOPUPS = 5


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
    summary = get_summary_after_first_sync_request()
    low_keys = KeySnapshot.objects.in_bulk(summary.low_key_ids)
    balance = _get_balance()
    show_margins = can_see_margins(request.user)
    context = {
        "balance": balance,
        "key_count": summary.key_count,
        "total_allocated": summary.total_allocated,
        "total_spent": summary.total_spent,
        # Each with its money as this user may see it (the client's figures when margins are hidden).
        "low_keys": [
            (key, get_key_figures(key, show_margins))
            for key in (as_sub_key(low_keys[pk]) for pk in summary.low_key_ids if pk in low_keys)
        ],
        "more_low_keys": max(summary.low_count - len(summary.low_key_ids), 0),
        "latest_topups": TopUp.objects.all()[:LATEST_TOPUPS],
        "conventions": upstream_conventions.current(),
        "business": get_business_summary(show_margins, balance.available if balance else None),
    }
    return render(request, "dashboard/overview.html", context)
