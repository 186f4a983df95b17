"""The console's Upstream page: the conventions check_upstream found, when and where, and its recent runs."""

from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.roles import console_required
from derouter import conventions
from derouter.models import ProbeRun
from derouter.probe import describe_amounts, describe_limits, describe_multiplier, describe_reclaim, describe_writes

RECENT_PROBES = 10


@console_required
@require_http_methods(["GET", "HEAD"])
def upstream(request):
    """Reads only the console's own tables: nothing waits on derouter."""
    current = conventions.current()
    context = {
        "conventions": current,
        "described": [
            (_("Amounts"), describe_amounts(current)),
            (_("Markup"), describe_multiplier(current)),
            (_("Rate limits"), describe_limits(current)),
            (_("Write answers"), describe_writes(current)),
            (_("Reclaim budget"), describe_reclaim(current)),
        ],
        "runs": ProbeRun.objects.prefetch_related("steps")[:RECENT_PROBES],
    }
    return render(request, "dashboard/upstream.html", context)
