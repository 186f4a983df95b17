"""Usage logs from the mirror: every request with its client, filtered, totalled and exported as CSV."""

import datetime
from functools import lru_cache

from django.shortcuts import render
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.roles import console_required
from analytics.permissions import can_see_margins
from dashboard.forms import UsageLogQueryForm
from dashboard.log_rows import LOG_ROW_FIELDS, get_filters, get_totals, render_rows
from lib.csv_export import csv_download
from lib.forms import describe_refused_export
from lib.htmx import wants_fragment
from lib.markup import format_row
from lib.paging import CountedPaginator
from mirror.models import DailyRollup, KeySnapshot, UsageRecord
from mirror.reads import request_first_sync_if_empty

CSV_COLUMNS = (
    "request_id", "created_at", "key_id", "key_label", "model", "input_tokens", "output_tokens",
    "cache_read_tokens", "cache_write_tokens", "duration_ms", "cost_usd", "multiplier", "billed",
)
BILLED_CSV_COLUMNS = tuple(column for column in CSV_COLUMNS if column not in ("cost_usd", "multiplier"))
# The client picker offers every label up to this many keys, past it the labels matching what was typed.
CLIENT_OPTIONS_ALL_UP_TO = 200
CLIENT_OPTIONS_SHOWN = 20
def _get_query(request):
    query_form = UsageLogQueryForm(request.GET)
    query = query_form.get_query()
    row_filter, rollup_filter = get_filters(query)
    rows = UsageRecord.objects.filter(row_filter).select_related("key").order_by("-created_at", "-id")
    return query_form, query, rows, rollup_filter


def _get_models():
    return list(DailyRollup.objects.order_by("model").values_list("model", flat=True).distinct())


# The filter fields Django renders as widgets (the client field is written in the template).
WIDGET_FIELDS = ("model", "date_from", "date_to", "limit")


def _render_widgets(form):
    """{field name: its widget as HTML} for the filter fields of ``form``."""
    return {name: str(form[name]) for name in WIDGET_FIELDS}


@lru_cache(maxsize=256)
def _render_valid_widgets(values, models):
    """The widgets of a valid filter form of these values and model choices, rendered once per process.

    Django renders each widget from templates (most of the filter bar's cost); without errors
    they show only the values submitted and the models offered, which key this cache.
    """
    form = UsageLogQueryForm(dict(zip(WIDGET_FIELDS, values)))
    form.set_model_choices(models)
    return _render_widgets(form)


def _get_widgets(form, models):
    if form.errors:
        return _render_widgets(form)
    return _render_valid_widgets(tuple(form.data.get(name) for name in WIDGET_FIELDS), tuple(models))


def _get_client_option_tags(labels):
    """The picker's <option>s for these labels (a loop of the template cost more than the rest of the bar)."""
    return mark_safe("".join(format_row('<option value="{}"></option>', label) for label in labels))


def _get_client_options(typed=""):
    """Labels for the client picker: those containing what was typed, else every label of a small account."""
    keys = KeySnapshot.objects.exclude(label="")
    if typed:
        keys = keys.filter(label__icontains=typed)
    elif keys[: CLIENT_OPTIONS_ALL_UP_TO + 1].count() > CLIENT_OPTIONS_ALL_UP_TO:
        # Counting at most one past the limit keeps this check as cheap at 20,000 keys as at 20.
        return []
    labels = keys.order_by("label").values_list("label", flat=True).distinct()
    return list(labels[:CLIENT_OPTIONS_SHOWN] if typed else labels)


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def usage_logs(request):
    """All mirrored requests, newest first, with their client; filter by client, model and UTC days."""
    request_first_sync_if_empty()
    query_form, query, rows, rollup_filter = _get_query(request)
    totals = get_totals(rollup_filter)
    # The table reads only what it shows, as values: no model instances for a page of rows and their keys.
    paginator = CountedPaginator(rows.values(*LOG_ROW_FIELDS), query["limit"], totals["requests"])
    page = paginator.get_page(query["page"])
    context = {
        "query_form": query_form,
        "query": query,
        "page": page,
        "totals": totals,
        "is_past_end": query["page"] > paginator.num_pages and totals["requests"] > 0,
        "rows": render_rows(page.object_list, can_see_margins(request.user)),
    }
    status = 400 if query_form.errors else 200
    if wants_fragment(request):
        return render(request, "dashboard/_logs.html", context, status=status)
    models = _get_models()
    query_form.set_model_choices(models)
    context["widgets"] = _get_widgets(query_form, models)
    context["client_option_tags"] = _get_client_option_tags(_get_client_options(query["client"]))
    return render(request, "dashboard/usage_logs.html", context, status=status)


@console_required
@require_http_methods(["GET", "HEAD"])
def usage_log_clients(request):
    """The client picker's suggestions for what was typed (htmx replaces the datalist)."""
    typed = UsageLogQueryForm(request.GET).get_query()["client"]
    return render(
        request, "dashboard/_client_options.html", {"client_option_tags": _get_client_option_tags(_get_client_options(typed))}
    )


def _csv_rows(rows, show_margins):
    """The export's rows; without ``show_margins``, no real cost or multiplier column (only what was billed)."""
    yield CSV_COLUMNS if show_margins else BILLED_CSV_COLUMNS
    for row in rows.iterator(chunk_size=2000):
        fields = _csv_fields(row)
        yield fields if show_margins else fields[:-3] + fields[-1:]


def _csv_fields(row):
    key = row.key
    return (
        row.request_id,
        row.created_at.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        key.sub_key_id if key else "",
        key.label if key else "Account Key",
        row.model,
        row.input_tokens,
        row.output_tokens,
        row.cache_read_tokens,
        row.cache_write_tokens,
        row.duration_ms,
        _plain(row.cost),
        _plain(row.multiplier),
        _plain(row.billed),
    )


def _plain(amount):
    """A Decimal without padding zeros or an exponent: 0.00230000 as 0.0023, 10 as 10."""
    return format(amount.normalize(), "f")


@console_required
@require_http_methods(["GET", "HEAD"])
def usage_logs_csv(request):
    """Exactly the filtered rows (every page) as a CSV download, streamed row by row."""
    query_form, _, rows, _ = _get_query(request)
    if query_form.errors:
        # A filter that was not understood must not widen the download to every row.
        return render(request, "400.html", {"message": describe_refused_export(query_form)}, status=400)
    return csv_download(_csv_rows(rows, can_see_margins(request.user)), f"derouter-usage-{timezone.now():%Y%m%d-%H%M%S}.csv")
