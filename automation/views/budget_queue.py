"""The budget request queue: staff approve (one top-up within their cap) or decline with a reason."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import ngettext_lazy

from accounts.roles import console_required
from automation import budget_requests
from automation.forms import DeclineForm
from automation.models import BudgetRequest
from dashboard.topups import TopUpNotAllowed
from lib.htmx import render_page_or_fragment
from lib.paging import pager_for_page

QUEUE_PAGE_SIZE = 50


def _get_request_or_404(pk):
    return get_object_or_404(BudgetRequest, pk=pk)


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def queue(request):
    """Waiting requests first, then the decided ones, newest first."""
    pending = BudgetRequest.objects.filter(status=BudgetRequest.Status.PENDING).order_by("created_at", "id")
    decided = BudgetRequest.objects.exclude(status=BudgetRequest.Status.PENDING).select_related("topup")
    page = Paginator(decided, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    pager = pager_for_page(request, page, ngettext_lazy("%(count)s decided request", "%(count)s decided requests", "count"))
    context = {"pending": pending, "page": page, "pager": pager, "decline_form": DeclineForm()}
    return render_page_or_fragment(request, "automation/requests.html", "automation/_requests.html", context)


@console_required
@require_POST
def approve(request, pk):
    budget_request = _get_request_or_404(pk)
    try:
        outcome = budget_requests.approve(budget_request, request.user)
    except TopUpNotAllowed as refusal:
        messages.error(request, refusal.message)
        return redirect("automation:requests")
    budget_request.refresh_from_db()
    if budget_request.status == BudgetRequest.Status.APPROVED:
        messages.success(request, outcome)
    else:
        messages.error(request, outcome)
    return redirect("automation:requests")


@console_required
@require_POST
def decline(request, pk):
    budget_request = _get_request_or_404(pk)
    form = DeclineForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the customer a reason to decline.")
        return redirect("automation:requests")
    if budget_requests.decline(budget_request, request.user, form.cleaned_data["reason"]):
        messages.success(request, f"Declined request #{budget_request.pk}.")
    else:
        messages.info(request, f"Request #{budget_request.pk} was already decided.")
    return redirect("automation:requests")
