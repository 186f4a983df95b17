"""The audit trail: every change attempted in the console, who, when, what and how it ended."""

from dataclasses import dataclass

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.roles import console_required
from dashboard.forms import AuditQueryForm
from dashboard.models import AuditEvent
from dashboard.templatetags.money import usd

EVENTS_PER_PAGE = 50


@dataclass(frozen=True)
class Change:
    """One changed field of an audit event, as "field: before → after"."""

    field: str
    before: object
    after: object


def _get_shown_value(name, value):
    """Money fields (stored as strings) shown as dollars, everything else as stored."""
    if value is not None and "budget" in name:
        return usd(value) or value
    return value


def _get_changes(event):
    """The event's ``changes`` JSON as a list of Change, tolerating odd shapes."""
    if not isinstance(event.changes, dict):
        return []
    changes = []
    for name, values in event.changes.items():
        before, after = values if isinstance(values, (list, tuple)) and len(values) == 2 else (None, values)
        changes.append(
            Change(name.replace("_", " "), _get_shown_value(name, before), _get_shown_value(name, after))
        )
    return changes


def _get_key_choices():
    """Every key the trail knows, with a label it was recorded under (no upstream call)."""
    labels = {}
    events = AuditEvent.objects.exclude(sub_key_id="").order_by()
    for sub_key_id, label, key_id_short in events.values_list("sub_key_id", "key_label", "key_id_short").distinct():
        labels[sub_key_id] = f"{label} ({key_id_short})" if label and key_id_short else label or key_id_short or sub_key_id
    return sorted(labels.items(), key=lambda item: item[1].casefold())


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def audit_trail(request):
    """Every create, edit, top-up, reveal and delete, newest first, filtered by action, outcome and key."""
    query_form = AuditQueryForm(request.GET)
    query = query_form.get_query()
    events = AuditEvent.objects.all()
    if query["action"]:
        events = events.filter(action=query["action"])
    if query["outcome"]:
        events = events.filter(outcome=query["outcome"])
    if query["sub_key_id"]:
        events = events.filter(sub_key_id=str(query["sub_key_id"]))
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "query_form": query_form,
        "query": query,
        "page": page,
        "rows": [(event, _get_changes(event)) for event in page.object_list],
    }
    if request.htmx and not request.htmx.boosted:
        # htmx swaps only 2xx answers, so a fragment always comes back as 200.
        return render(request, "dashboard/_audit.html", context)
    query_form.set_key_choices(_get_key_choices())
    return render(request, "dashboard/audit_trail.html", context, status=400 if query_form.errors else 200)
