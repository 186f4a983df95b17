"""The budget request queue: staff approve (one top-up within their cap) or decline with a reason."""

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import gettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from accounts.roles import console_required
from automation import budget_requests
from automation.forms import DeclineForm
from automation.models import BudgetRequest
from analytics.permissions import can_see_margins
from dashboard.topups import get_cap_left_today
from dashboard.upstream import upstream_write_deadline
from lib.htmx import render_page_or_fragment
from lib.money import usd
from lib.paging import pager_for_page

QUEUE_PAGE_SIZE = 50


def _get_request_or_404(pk):
    return get_object_or_404(BudgetRequest, pk=pk)


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def queue(request):
    return _render_queue(request)


def _render_queue(request, status=200):
    """Waiting requests first, then the decided ones, newest first; claimed approvals move on from their top-ups first."""
    budget_requests.settle_open()
    waiting = (BudgetRequest.Status.PENDING, *budget_requests.OPEN_APPROVALS)
    pending = BudgetRequest.objects.filter(status__in=waiting).select_related("topup").order_by("created_at", "id")
    decided = BudgetRequest.objects.exclude(status__in=waiting).select_related("topup")
    page = Paginator(decided, QUEUE_PAGE_SIZE).get_page(request.GET.get("page"))
    pager = pager_for_page(request, page, ngettext_lazy("%(count)s decided request", "%(count)s decided requests", "count"))
    context = {"pending": pending, "page": page, "pager": pager, "decline_form": DeclineForm()}
    return render_page_or_fragment(request, "automation/requests.html", "automation/_requests.html", context, status)


def _refuse(request, message, status):
    """The queue again, with why the decision was not taken, under its status (400 or 409)."""
    messages.error(request, message)
    return _render_queue(request, status=status)


def _render_confirm(request, budget_request, status=200, problem=""):
    """The confirm step: the amount in real money and in the customer's units, before any money moves."""
    context = {
        "item": budget_request,
        "problem": problem,
        "cap_left": get_cap_left_today(request.user),
        "shows_margins": can_see_margins(request.user),
    }
    return render_page_or_fragment(request, "automation/request_approve.html", "automation/_request_approve.html", context, status)


@console_required
@require_http_methods(["GET", "HEAD", "POST"])
@upstream_write_deadline
def approve(request, pk):
    """Approve in two steps: the confirm step (nothing moves), then a POST with ``confirm``: the one top-up."""
    budget_request = _get_request_or_404(pk)
    if budget_request.status != BudgetRequest.Status.PENDING:
        return _refuse(request, budget_requests.describe_decision(budget_request), 409)
    if request.method != "POST" or "confirm" not in request.POST:
        problem = budget_requests.check_approval(budget_request, request.user)
        return _render_confirm(request, budget_request, status=400 if problem else 200, problem=problem)
    try:
        outcome = budget_requests.approve(budget_request, request.user)
    except budget_requests.DecisionConflict as conflict:
        return _refuse(request, conflict.message, 409)
    except budget_requests.RequestNotAllowed as refusal:
        return _render_confirm(request, budget_request, status=400, problem=refusal.message)
    budget_request.refresh_from_db()
    if not can_see_margins(request.user) and budget_request.status in SETTLING_OR_APPROVED:
        outcome = _describe_in_customer_units(budget_request)
    if budget_request.status == BudgetRequest.Status.APPROVED:
        messages.success(request, outcome)
    elif budget_request.status == BudgetRequest.Status.CONFIRMING:
        messages.warning(request, outcome)
    else:
        messages.error(request, outcome)
    return redirect("automation:requests")


SETTLING_OR_APPROVED = (BudgetRequest.Status.APPROVED, BudgetRequest.Status.CONFIRMING)


def _describe_in_customer_units(budget_request):
    """The approval's outcome without the real amount the service's sentence names (for staff who may not see margins)."""
    amount = usd(budget_request.amount)
    label = budget_request.key_label or budget_request.key_id_short
    if budget_request.status == BudgetRequest.Status.APPROVED:
        return gettext("Approved: %(amount)s in the customer's units added to %(key)s.") % {"amount": amount, "key": label}
    return gettext(
        "Approved: the top-up of %(amount)s in the customer's units to %(key)s is being confirmed; the customer is told "
        "once it is known to have landed. Do not approve it again meanwhile."
    ) % {"amount": amount, "key": label}


@console_required
@require_POST
def decline(request, pk):
    budget_request = _get_request_or_404(pk)
    form = DeclineForm(request.POST)
    if not form.is_valid():
        return _refuse(request, _("Give the customer a reason to decline."), 400)
    try:
        budget_requests.decline(budget_request, request.user, form.cleaned_data["reason"])
    except budget_requests.DecisionConflict as conflict:
        return _refuse(request, conflict.message, 409)
    messages.success(request, _("Declined request #%(pk)s.") % {"pk": budget_request.pk})
    return redirect("automation:requests")
