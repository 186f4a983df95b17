"""The mirror in the console: the Refresh control and the sync status panel."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import gettext_lazy as _

from accounts.roles import console_required
from lib.htmx import render_page_or_fragment, wants_fragment
from lib.queue import enqueue_or_warn
from mirror import passes
from mirror.reads import get_freshness, get_last_pass, get_sync_progress
from work.models import TaskRun

RECENT_RUNS = 25


def _get_safe_next(request):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "console:overview"


@console_required
@require_POST
def mirror_refresh(request):
    """Ask the worker to refresh the key snapshot (and sync usage) now; nothing is read from the browser."""
    enqueue_or_warn(passes.refresh_mirror)
    if wants_fragment(request):
        context = {"freshness": get_freshness(), "refresh_queued": True, "next_url": request.POST.get("next", "")}
        return render(request, "mirror/_freshness.html", context)
    messages.info(request, _("Refresh asked for: the worker is reading the keys from derouter."))
    return redirect(_get_safe_next(request))


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def sync_status(request):
    """Last refresh, rows mirrored, the first sync's progress and recent task runs with their errors."""
    progress = get_sync_progress()
    context = {
        "progress": progress,
        "freshness": get_freshness(),
        "last_pass": get_last_pass(),
        "runs": TaskRun.objects.all()[:RECENT_RUNS],
    }
    return render_page_or_fragment(request, "mirror/sync_status.html", "mirror/_sync_status.html", context)
