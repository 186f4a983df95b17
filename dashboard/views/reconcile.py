"""Reconciliation in the console: the last run's differences and a button to run one now (owners)."""

from datetime import timedelta

from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django.utils.translation import gettext_lazy as _

from accounts.roles import owner_required
from dashboard.models import ReconcileRun
from dashboard.reconcile import FURTHER_CHECKS, RUN_LEASE_SECONDS, run_reconciliation

# The page lists at most this many differences of the last run (it says how many more).
DIFFERENCES_SHOWN = 200


def _get_run_in_progress():
    """A run asked for and not finished, unless it is older than a run can last (its worker died)."""
    recent = timezone.now() - timedelta(seconds=RUN_LEASE_SECONDS)
    return ReconcileRun.objects.filter(status=ReconcileRun.Status.RUNNING, started_at__gte=recent).first()


@owner_required
@require_http_methods(["GET", "HEAD"])
def reconciliation(request):
    """The last finished run with its differences; reads only the console's own tables."""
    last = ReconcileRun.objects.exclude(status=ReconcileRun.Status.RUNNING).first()
    differences = list(last.differences.all()[:DIFFERENCES_SHOWN]) if last else []
    context = {
        "last": last,
        "differences": differences,
        "more": last.difference_count - len(differences) if last else 0,
        "in_progress": _get_run_in_progress(),
        # Sections of the further checks registered from higher layers (money in).
        "further_sections": [check.page_section() for check in FURTHER_CHECKS],
    }
    return render(request, "dashboard/reconciliation.html", context)


@owner_required
@require_POST
def reconciliation_run(request):
    """Ask the worker for a run now; one at a time."""
    if _get_run_in_progress() is not None:
        messages.info(request, _("A reconciliation is running already; its result shows here when it ends."))
        return redirect("console:reconciliation")
    record = ReconcileRun.objects.create(requested_by=request.user.get_username())
    run_reconciliation(record.pk)
    messages.info(request, _("Reconciliation asked for: the worker compares every key with derouter. Reload to see the result."))
    return redirect("console:reconciliation")
