"""The portal side of budget requests: a customer asks for more and follows the decision."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django.utils.translation import gettext_lazy as _

from accounts.portal_sessions import portal_login_required
from automation import budget_requests
from automation.forms import BudgetRequestForm
from automation.models import BudgetRequest
from automation.views.common import refresh_snapshot_now
from mirror.key_store import secret_digest
from mirror.models import KeySnapshot

SHOWN_REQUESTS = 20


def _get_portal_snapshot(client_key):
    """The signed-in key's snapshot, matched by the key's digest (refreshed once if unknown)."""
    digest = secret_digest(client_key)
    snapshot = KeySnapshot.objects.active().filter(secret_sha256=digest).first()
    if snapshot is None:
        refresh_snapshot_now()
        snapshot = KeySnapshot.objects.active().filter(secret_sha256=digest).first()
    return snapshot


@never_cache
@portal_login_required
@require_http_methods(["GET", "HEAD", "POST"])
def budget_request(request):
    """Ask for more budget (in the customer's display units) and see earlier requests."""
    snapshot = _get_portal_snapshot(request.portal_key)
    if snapshot is None:
        return render(request, "automation/portal_requests.html", {"unavailable": True}, status=503)
    earlier = BudgetRequest.objects.filter(sub_key_id=snapshot.sub_key_id)[:SHOWN_REQUESTS]
    if request.method != "POST":
        return render(request, "automation/portal_requests.html", {"form": BudgetRequestForm(), "requests": earlier})
    form = BudgetRequestForm(request.POST)
    if form.is_valid():
        try:
            budget_requests.submit(snapshot, form.cleaned_data["amount"], form.cleaned_data["note"], form.cleaned_data["email"])
        except budget_requests.RequestNotAllowed as refusal:
            form.add_error(None, refusal.message)
        else:
            messages.success(request, _("Your request was sent. You will see the decision here."))
            return redirect("portal_requests:budget_request")
    return render(request, "automation/portal_requests.html", {"form": form, "requests": earlier}, status=400)
