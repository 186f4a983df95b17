"""Usage logs from the mirror: every request with its client, filtered, totalled and exported as CSV."""

import datetime
import re
from functools import lru_cache

from django.db.models import Q, Sum
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers

from accounts.roles import console_required
from analytics.permissions import can_see_margins
from dashboard.forms import ACCOUNT_ONLY, UsageLogQueryForm
from dashboard.key_rows import URL_ID_STAND_IN
from lib.csv_export import csv_download
from lib.forms import describe_refused_export
from lib.htmx import wants_fragment
from lib.markup import format_row
from lib.money import count, duration, model_cell, multiplier, usd_cost
from lib.paging import CountedPaginator
from lib.times import local_row_date
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
UUID_PATTERN = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# A row of the table. Built here (format_row), not in the template: eight filters, a
# {% url %} and a date a row made the template engine most of what the table cost.
LOG_ROW_FIELDS = (
    "created_at", "model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "cost",
    "billed", "multiplier", "duration_ms", "request_id",
    "key", "key__sub_key_id", "key__label", "key__key_id_short", "key__deleted_at",
)
LOG_ROW_HTML = (
    "<tr>\n"
    '<td data-label="{l_time}">{created_at}</td>\n'
    '<td data-label="{l_client}">{client}</td>\n'
    '<td data-label="{l_model}">{model}</td>\n'
    '<td class="num" data-label="{l_input}">{input_tokens}</td>\n'
    '<td class="num" data-label="{l_output}">{output_tokens}</td>\n'
    '<td class="num" data-label="{l_cache}">{cache_read_tokens} / {cache_write_tokens}</td>\n'
    "{cost}"
    '<td class="num" data-label="{l_billed}">{billed}{multiplier}</td>\n'
    '<td class="num" data-label="{l_duration}">{duration}</td>\n'
    '<td data-label="{l_request_id}"><code class="truncate" title="{request_id}">{request_id}</code></td>\n'
    "</tr>\n"
)


def _get_row_labels():
    """Each cell's column name, which a phone shows beside the value when the table becomes cards."""
    return {
        "l_time": _("Time"), "l_client": _("Client"), "l_model": _("Model"), "l_input": _("Input"),
        "l_output": _("Output"), "l_cache": _("Cache read / write"),
        "l_billed": _("Billed"), "l_duration": _("Duration"), "l_request_id": _("Request id"),
    }


def _get_client_keys(client):
    """The keys a client filter means: a key id, or labels equal to it, else containing it."""
    if UUID_PATTERN.match(client):
        return KeySnapshot.objects.filter(sub_key_id=client)
    exact = KeySnapshot.objects.filter(label__iexact=client)
    if exact.exists():
        return exact
    return KeySnapshot.objects.filter(label__icontains=client)


def _get_filters(query):
    """Q objects for the usage rows and for the rollups that total them (same filter, two tables)."""
    rows, rollups = Q(), Q()
    client = query["client"]
    if client == ACCOUNT_ONLY:
        rows &= Q(key__isnull=True)
        rollups &= Q(key__isnull=True)
    elif client:
        keys = _get_client_keys(client)
        rows &= Q(key__in=keys)
        rollups &= Q(key__in=keys)
    if query["model"]:
        rows &= _model_named(query["model"])
        rollups &= _model_named(query["model"])
    if query["date_from"]:
        rows &= Q(created_at__gte=_start_of_utc_day(query["date_from"]))
        rollups &= Q(day__gte=query["date_from"])
    if query["date_to"]:
        rows &= Q(created_at__lt=_start_of_utc_day(query["date_to"] + datetime.timedelta(days=1)))
        rollups &= Q(day__lte=query["date_to"])
    return rows, rollups


def _start_of_utc_day(day):
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def _get_totals(rollup_filter):
    """Totals of the filtered rows, summed from the daily rollups (never from the rows themselves)."""
    return DailyRollup.objects.filter(rollup_filter).aggregate(
        requests=Sum("requests", default=0),
        input_tokens=Sum("input_tokens", default=0),
        output_tokens=Sum("output_tokens", default=0),
        cache_read_tokens=Sum("cache_read_tokens", default=0),
        cache_write_tokens=Sum("cache_write_tokens", default=0),
        cost=Sum("cost", default=0),
        billed=Sum("billed", default=0),
    )


def _model_named(name):
    """Rows of the model as customers name it: "claude-sonnet-4-6" also matches the dated
    "claude-sonnet-4-6-20250929" and "gpt-4o-mini" the "gpt-4o-mini-2024-07-18" the logs hold
    (the prefix narrows by index, the pattern makes it exact)."""
    date = "([0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2})"
    dated = Q(model__startswith=f"{name}-") & Q(model__regex=f"^{re.escape(name)}-{date}$")
    return Q(model=name) | dated


def _render_client(log, detail_pattern):
    """The row's client: a link to its key, a deleted key's name, or the Account Key."""
    if log["key"] is None:
        return mark_safe('<span class="muted">Account Key</span>')
    name = log["key__label"] or log["key__key_id_short"]
    if log["key__deleted_at"] is not None:
        return format_row('<span class="truncate" title="{}">{}</span> <span class="muted">(deleted)</span>', name, name)
    return format_row('<a class="truncate" href="{}" title="{}">{}</a>', detail_pattern.replace(URL_ID_STAND_IN, log["key__sub_key_id"]), name, name)


LOG_ROW_COST_HTML = '<td class="num" data-label="{}">{}</td>\n'


def _render_rows(logs, show_margins):
    """The page's rows (of ``logs.values(*LOG_ROW_FIELDS)``) as HTML; real cost and multiplier only with ``show_margins``."""
    detail_pattern = reverse("console:key_detail", args=[URL_ID_STAND_IN])
    labels = _get_row_labels()
    cost_label = _("Cost (USD)")
    return mark_safe("".join(
        format_row(
            LOG_ROW_HTML,
            created_at=local_row_date(log["created_at"], "Y-m-d H:i:s T"),
            client=_render_client(log, detail_pattern),
            model=model_cell(log["model"]),
            input_tokens=count(log["input_tokens"]),
            output_tokens=count(log["output_tokens"]),
            cache_read_tokens=count(log["cache_read_tokens"]),
            cache_write_tokens=count(log["cache_write_tokens"]),
            cost=format_row(LOG_ROW_COST_HTML, cost_label, usd_cost(log["cost"])) if show_margins else "",
            billed=usd_cost(log["billed"]),
            multiplier=format_row(' <span class="muted">×{}</span>', multiplier(log["multiplier"]))
            if show_margins and log["multiplier"] != 1 else "",
            duration=duration(log["duration_ms"]),
            request_id=log["request_id"],
            **labels,
        )
        for log in logs
    ))


def _get_query(request):
    query_form = UsageLogQueryForm(request.GET)
    query = query_form.get_query()
    row_filter, rollup_filter = _get_filters(query)
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
    totals = _get_totals(rollup_filter)
    # The table reads only what it shows, as values: no model instances for a page of rows and their keys.
    paginator = CountedPaginator(rows.values(*LOG_ROW_FIELDS), query["limit"], totals["requests"])
    page = paginator.get_page(query["page"])
    context = {
        "query_form": query_form,
        "query": query,
        "page": page,
        "totals": totals,
        "is_past_end": query["page"] > paginator.num_pages and totals["requests"] > 0,
        "rows": _render_rows(page.object_list, can_see_margins(request.user)),
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
