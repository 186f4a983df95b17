"""A deleted key's page: when and by whom it went, what its budget returned, and its history; nothing to change.

Links from the audit trail, the ledger and the usage logs still lead to a key after it is deleted:
the snapshot keeps it, marked, with its final figures. Answered 200, not 410: the page itself is
there to read (the key is gone, its record is not). An id the snapshot never held stays a 404.
"""

from django.db.models import Sum
from django.shortcuts import render
from django_htmx.http import HttpResponseClientRefresh

from analytics.permissions import can_see_margins, get_key_figures, hide_margin_changes
from ledger import audit
from ledger.models import AuditEvent, Outcome, TopUp
from lib.htmx import wants_fragment
from lib.money import to_decimal
from mirror.models import DailyRollup


def _get_deletion(sub_key_id):
    """The console's delete of the key that derouter confirmed, and the budget it returned (None when unrecorded)."""
    deletion = (
        AuditEvent.objects.filter(sub_key_id=sub_key_id, action=AuditEvent.Action.DELETE, outcome=Outcome.OK).first()
    )
    returned = None
    if deletion is not None:
        returned = to_decimal((deletion.changes.get("budget_returned") or [None, None])[1])
    return deletion, returned


def deleted_key_detail(request, snapshot, history_rows):
    """The page of a key the snapshot marks deleted (called by the key page for such a key)."""
    # A fragment asked for by a page opened before the delete (its usage log, its live budget):
    # the whole page reloads and shows this one instead.
    if wants_fragment(request):
        return HttpResponseClientRefresh()
    show_margins = can_see_margins(request.user)
    deletion, returned = _get_deletion(snapshot.sub_key_id)
    if returned is not None and not show_margins:
        # In the client's units, as the key's other figures are for whoever may not see margins.
        returned *= snapshot.display_multiplier
    usage = DailyRollup.objects.filter(key=snapshot).aggregate(requests=Sum("requests", default=0), cost=Sum("cost"))
    context = {
        "key": snapshot,
        "deletion": deletion,
        "returned": returned,
        "figures": get_key_figures(snapshot, show_margins),
        "usage": usage,
        "topups": TopUp.objects.filter(sub_key_id=snapshot.sub_key_id)[:history_rows],
        "audit_rows": [
            (event, hide_margin_changes(audit.describe_changes(event), show_margins))
            for event in AuditEvent.objects.filter(sub_key_id=snapshot.sub_key_id)[:history_rows]
        ],
    }
    return render(request, "dashboard/key_deleted.html", context)
