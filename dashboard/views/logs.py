"""Usage logs: every request of the account, paged through the upstream."""

from dataclasses import dataclass

from django.core.cache import cache
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.roles import console_required
from dashboard.forms import ACCOUNT_ONLY, UsageLogQueryForm
from dashboard.upstream import get_sub_keys
from derouter import client
from derouter.client import NotFound

# Only ids and labels are cached, never a key's secret.
KEY_LABELS_CACHE_KEY = "console:usage-logs:key-labels"
KEY_LABELS_SECONDS = 30
COST_MIN_PLACES = 4


@dataclass(frozen=True)
class LogRow:
    """A usage log with its cost written out exactly, in real USD."""

    log: client.UsageLog
    cost_text: str


def _get_cost_text(cost):
    """Write a cost exactly, with at least four decimals: 0.0023 as "$0.0023", never 2.3E-7."""
    whole, _, fraction = format(cost, "f").partition(".")
    return f"${whole}.{fraction.rstrip('0').ljust(COST_MIN_PLACES, '0')}"


def _get_key_labels(wanted_id=""):
    """Every Client Key's id and label, cached briefly; refetched when the wanted id is missing."""
    labels = cache.get(KEY_LABELS_CACHE_KEY)
    if labels is None or (wanted_id and wanted_id not in labels):
        labels = {
            sub_key.id: f"{sub_key.label} ({sub_key.key_id})" if sub_key.label else sub_key.key_id
            for sub_key in get_sub_keys()
        }
        cache.set(KEY_LABELS_CACHE_KEY, labels, KEY_LABELS_SECONDS)
    return labels


def _get_logs(query):
    """One page of logs for the query, or None when the key asked for does not exist."""
    key = query["key"]
    try:
        return client.get_usage_logs(
            query["page"],
            query["limit"],
            sub_key_id=key if key not in ("", ACCOUNT_ONLY) else None,
            account_only=key == ACCOUNT_ONLY,
        )
    except NotFound:
        return None


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def usage_logs(request):
    """All requests, newest first: filter by key or the Account Key's own, page through derouter."""
    query_form = UsageLogQueryForm(request.GET)
    query = query_form.get_query()
    logs = _get_logs(query)
    status = 200
    if "key" in query_form.errors:
        status = 400
    elif logs is None:
        status = 404
    context = {
        "query_form": query_form,
        "query": query,
        "logs": logs,
        "rows": [LogRow(log, _get_cost_text(log.cost)) for log in logs.logs] if logs else [],
        "is_past_end": bool(logs) and logs.pages > 0 and query["page"] > logs.pages,
    }
    if request.htmx and not request.htmx.boosted:
        # htmx swaps only 2xx answers; the fragment itself says what went wrong.
        return render(request, "dashboard/_logs.html", context)

    labels = _get_key_labels(query["key"] if query["key"] != ACCOUNT_ONLY else "")
    key_choices = sorted(labels.items(), key=lambda item: item[1].casefold())
    query_form.set_key_choices(key_choices, extra=[(ACCOUNT_ONLY, "Account Key only")])
    context["key_label"] = labels.get(query["key"], "")
    return render(request, "dashboard/usage_logs.html", context, status=status)
