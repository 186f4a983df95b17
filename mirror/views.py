"""The mirror in the console: the Refresh control and the sync status panel."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import gettext_lazy as _

from accounts.roles import console_required
from lib.htmx import render_page_or_fragment, wants_fragment
from lib.queue import enqueue_or_warn
from mirror import passes
from mirror.forms import MAX_POLLS, RefreshPollForm
from mirror.reads import get_freshness, get_last_pass, get_sync_progress
from work.models import TaskRun

RECENT_RUNS = 25


def _get_safe_next(request):
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return "console:overview"


def _poll_url(since, tries, next_url):
    """Where the freshness line asks again whether the worker has refreshed the snapshot."""
    query = {"since": since.isoformat() if since else "", "tries": tries, "next": next_url}
    return f"{reverse('console:mirror_refresh_poll')}?{urlencode(query)}"


@console_required
@require_POST
def mirror_refresh(request):
    """Ask the worker to refresh the key snapshot (and sync usage) now; nothing is read from the browser.

    With htmx the freshness line then asks every few seconds whether the worker is done and,
    once it is, reloads the page with the new figures (see ``mirror_refresh_poll``).
    """
    enqueue_or_warn(passes.refresh_mirror)
    if wants_fragment(request):
        freshness = get_freshness()
        next_url = request.POST.get("next", "")
        context = {
            "freshness": freshness, "refresh_queued": True, "next_url": next_url,
            "poll_url": _poll_url(freshness.as_of, 1, next_url),
        }
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


@console_required
@require_http_methods(["GET"])
def mirror_refresh_poll(request):
    """The freshness line while a refresh is under way: the page reloads once the snapshot is newer than
    it was, and the line stops asking after MAX_POLLS with a plain word that the worker is not done yet."""
    form = RefreshPollForm(request.GET)
    if not form.is_valid():
        return render(request, "mirror/_freshness.html", {"freshness": get_freshness()}, status=400)
    since, tries = form.cleaned_data["since"], form.cleaned_data["tries"] or 0
    freshness = get_freshness()
    next_url = request.GET.get("next", "")
    if freshness.as_of is not None and (since is None or freshness.as_of > since):
        response = render(request, "mirror/_freshness.html", {"freshness": freshness, "next_url": next_url})
        response["HX-Refresh"] = "true"
        return response
    context = {"freshness": freshness, "next_url": next_url, "refresh_queued": True}
    if tries < MAX_POLLS:
        context["poll_url"] = _poll_url(since, tries + 1, next_url)
    else:
        context["refresh_late"] = True
    return render(request, "mirror/_freshness.html", context)
