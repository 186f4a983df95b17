"""The console's front page: money, keys at a glance, keys running low, latest top-ups."""

from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.roles import console_required, is_owner
from analytics.panels import get_business_summary
from analytics.permissions import can_see_margins, get_key_figures
from dashboard.upstream import get_live_balance
from derouter import conventions as upstream_conventions
from derouter.client import AuthFailed, DerouterError
from ledger.models import TopUp
from lib.htmx import wants_fragment
from mirror.models import KeySnapshot
from mirror.reads import as_sub_key, get_mirrored_balance, get_summary_after_first_sync_request

LATEST_TOPUPS = 5
# The balance block's id: htmx asks the page for it once the page is shown (see _render_live_balance).
LIVE_BALANCE_TARGET = "account-balance"


def _render_live_balance(request):
    """The balance block as derouter reports it now; the last one read, said so, when derouter cannot answer."""
    status = 200
    try:
        context = {"balance": get_live_balance(), "live": True}
    except AuthFailed:
        context = {"balance": get_mirrored_balance(), "account_key_rejected": True,
                   "show_account_key_hint": is_owner(request.user)}
        status = 502
    except DerouterError:
        context = {"balance": get_mirrored_balance(), "unreachable": True}
    return render(request, "dashboard/_balance.html", context, status=status)


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request", "HX-Target")
def overview(request):
    """Balance, locked and available; key count, allocated and spent; keys running low; latest top-ups.

    Everything comes from the mirror, so the page answers at once whatever derouter does;
    the balance (as last read, with its age) is then filled in live by htmx.
    """
    if wants_fragment(request) and request.htmx.target == LIVE_BALANCE_TARGET:
        return _render_live_balance(request)
    summary = get_summary_after_first_sync_request()
    low_keys = KeySnapshot.objects.in_bulk(summary.low_key_ids)
    balance = get_mirrored_balance()
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
