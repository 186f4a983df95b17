"""Usage logs: every request of the account, paged through the upstream."""

from django.core.cache import cache
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.roles import console_required
from dashboard.forms import ACCOUNT_ONLY, UsageLogQueryForm
from dashboard.upstream import get_sub_keys
from derouter import client
from derouter.client import NotFound
from lib.htmx import wants_fragment
from lib.paging import make_pager, plural

# Only ids and labels are cached, never a key's secret.
KEY_LABELS_CACHE_KEY = "console:usage-logs:key-labels"
KEY_LABELS_SECONDS = 30
# Past this many keys a select of them all would outweigh the page itself: the
# filter becomes a key-id field (each key's page links here with its id filled in).
KEY_SELECT_LIMIT = 200


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


def _get_pager(request, query, logs):
    if not logs:
        return None
    summary = f"{plural(logs.total, 'request')} · page {query['page']} of {logs.pages} · {logs.limit} per page"
    return make_pager(request, page=query["page"], pages=logs.pages, summary=summary)


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
        "is_past_end": bool(logs) and logs.pages > 0 and query["page"] > logs.pages,
        "pager": _get_pager(request, query, logs),
    }
    if wants_fragment(request):
        return render(request, "dashboard/_logs.html", context, status=status)

    labels = _get_key_labels(query["key"] if query["key"] != ACCOUNT_ONLY else "")
    if len(labels) <= KEY_SELECT_LIMIT:
        key_choices = sorted(labels.items(), key=lambda item: item[1].casefold())
        query_form.set_key_choices(key_choices, extra=[(ACCOUNT_ONLY, "Account Key only")])
    else:
        query_form.fields["key"].widget.attrs["placeholder"] = f"A key's id, or “{ACCOUNT_ONLY}”"
    context["key_label"] = labels.get(query["key"], "")
    return render(request, "dashboard/usage_logs.html", context, status=status)
