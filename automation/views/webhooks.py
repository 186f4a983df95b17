"""Console pages for webhook endpoints: register (secret shown once), deliveries, send again."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import ngettext_lazy
from django.utils.translation import gettext_lazy as _

from accounts.roles import owner_required
from automation import webhooks
from automation.audit_changes import audited_values, record_added, record_changed, record_removed
from automation.forms import WebhookEndpointForm
from automation.models import WebhookDelivery, WebhookEndpoint
from lib.htmx import render_page_or_fragment
from lib.paging import pager_for_page

DELIVERIES_PAGE_SIZE = 50


def _get_endpoint_or_404(pk):
    return get_object_or_404(WebhookEndpoint, pk=pk)


@owner_required
@require_http_methods(["GET", "HEAD", "POST"])
def endpoint_list(request):
    """Registered endpoints and a form for a new one; a new endpoint's secret is shown once."""
    endpoints = WebhookEndpoint.objects.all()
    if request.method != "POST":
        return render(request, "automation/webhooks.html", {"form": WebhookEndpointForm(), "endpoints": endpoints})
    form = WebhookEndpointForm(request.POST)
    if not form.is_valid():
        return render(request, "automation/webhooks.html", {"form": form, "endpoints": endpoints}, status=400)
    endpoint, secret = webhooks.create_endpoint(
        form.cleaned_data["url"],
        form.cleaned_data["events"],
        description=form.cleaned_data["description"],
        created_by_name=request.user.get_username(),
    )
    record_added(request.user, endpoint)
    response = render(request, "automation/webhook_created.html", {"endpoint": endpoint, "secret": secret})
    add_never_cache_headers(response)
    response["Cache-Control"] = "no-store"
    return response


@owner_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def endpoint_detail(request, pk):
    """One endpoint's delivery log: status, attempts, response code, and "send again"."""
    endpoint = _get_endpoint_or_404(pk)
    page = Paginator(endpoint.deliveries.all(), DELIVERIES_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"endpoint": endpoint, "page": page, "pager": pager_for_page(request, page, ngettext_lazy("%(count)s delivery", "%(count)s deliveries", "count"))}
    return render_page_or_fragment(request, "automation/webhook_detail.html", "automation/_deliveries.html", context)


@owner_required
@require_POST
def endpoint_toggle(request, pk):
    endpoint = _get_endpoint_or_404(pk)
    before = audited_values(endpoint)
    endpoint.enabled = not endpoint.enabled
    endpoint.save(update_fields=["enabled"])
    record_changed(request.user, before, endpoint)
    if endpoint.enabled:
        messages.success(request, _("Enabled %(url)s.") % {"url": endpoint.url})
    else:
        messages.success(request, _("Paused %(url)s.") % {"url": endpoint.url})
    return redirect("automation:webhook_detail", pk=endpoint.pk)


@owner_required
@require_POST
def endpoint_delete(request, pk):
    endpoint = _get_endpoint_or_404(pk)
    endpoint.delete()
    record_removed(request.user, endpoint)
    messages.success(request, _("Removed %(url)s and its delivery log.") % {"url": endpoint.url})
    return redirect("automation:webhooks")


@owner_required
@require_POST
def delivery_send_again(request, pk):
    delivery = get_object_or_404(WebhookDelivery, pk=pk)
    if webhooks.send_again(delivery):
        messages.success(request, _("Queued %(event_type)s for sending again.") % {"event_type": delivery.event_type})
    else:
        messages.info(request, _("That delivery is still under way; it will be retried on its own."))
    return redirect("automation:webhook_detail", pk=delivery.endpoint_id)
