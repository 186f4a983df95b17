"""The audit trail: every change attempted in the console, who, when, what and how it ended."""

from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import ngettext_lazy

from accounts.roles import console_required
from analytics.permissions import can_see_margins, hide_margin_changes
from dashboard.forms import AuditQueryForm
from ledger.audit import describe_changes
from ledger.models import AuditEvent, Outcome
from lib.htmx import wants_fragment
from lib.paging import pager_for_page
from mirror.models import KeySnapshot

EVENTS_PER_PAGE = 50
MARGIN_ACTIONS = (AuditEvent.Action.USER_MARGINS,)


def _get_key_choices():
    """Every key the trail knows, with a label it was recorded under (no upstream call)."""
    labels = {}
    events = AuditEvent.objects.exclude(sub_key_id="").order_by()
    for sub_key_id, label, key_id_short in events.values_list("sub_key_id", "key_label", "key_id_short").distinct():
        labels[sub_key_id] = f"{label} ({key_id_short})" if label and key_id_short else label or key_id_short or sub_key_id
    return sorted(labels.items(), key=lambda item: item[1].casefold())


def _get_deleted_ids(sub_key_ids):
    """Which of these keys the console has deleted (a delete recorded as ok)."""
    if not sub_key_ids:
        return set()
    deleted = AuditEvent.objects.filter(
        action=AuditEvent.Action.DELETE, outcome=Outcome.OK, sub_key_id__in=sub_key_ids
    ).values_list("sub_key_id", flat=True)
    return set(deleted)


def _get_pageless_ids(deleted_ids):
    """Deleted keys the snapshot does not hold: they have no page (a deleted key the snapshot keeps has one)."""
    if not deleted_ids:
        return set()
    return deleted_ids - set(KeySnapshot.objects.filter(sub_key_id__in=deleted_ids).values_list("sub_key_id", flat=True))


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def audit_trail(request):
    """Every create, edit, top-up, reveal and delete, newest first, filtered by action, outcome and key."""
    query_form = AuditQueryForm(request.GET)
    show_margins = can_see_margins(request.user)
    events = AuditEvent.objects.all()
    if not show_margins:
        # Who may see margins is itself about margins: not shown to those who may not.
        events = events.exclude(action__in=MARGIN_ACTIONS)
        query_form.hide_actions(MARGIN_ACTIONS)
    query = query_form.get_query()
    if query["action"]:
        events = events.filter(action=query["action"])
    if query["outcome"]:
        events = events.filter(outcome=query["outcome"])
    if query["sub_key_id"]:
        events = events.filter(sub_key_id=str(query["sub_key_id"]))
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    shown_ids = {event.sub_key_id for event in page.object_list if event.sub_key_id}
    deleted_ids = _get_deleted_ids(shown_ids)
    context = {
        "deleted_ids": deleted_ids,
        # A deleted key the snapshot never held has no page: named without a link.
        "pageless_ids": _get_pageless_ids(deleted_ids),
        "query_form": query_form,
        "query": query,
        "page": page,
        "pager": pager_for_page(request, page, ngettext_lazy("%(count)s event", "%(count)s events", "count")),
        "rows": [(event, hide_margin_changes(describe_changes(event), show_margins)) for event in page.object_list],
    }
    status = 400 if query_form.errors else 200
    if wants_fragment(request):
        return render(request, "dashboard/_audit.html", context, status=status)
    query_form.set_key_choices(_get_key_choices())
    return render(request, "dashboard/audit_trail.html", context, status=status)
