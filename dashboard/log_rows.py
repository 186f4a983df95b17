"""The usage log's rows from the mirror: the filter a query means, its totals, and each row as HTML."""

import datetime
import re
from decimal import Decimal

from django.db.models import Q, Sum
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from dashboard.forms import ACCOUNT_ONLY
from dashboard.key_rows import URL_ID_STAND_IN
from lib.markup import fill_in, format_row
from lib.money import count, duration, model_cell, multiplier, usd_cost
from lib.times import local_row_date
from mirror.models import DailyRollup, KeySnapshot

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
    '<td data-label="{l_request_id}"><code class="truncate" title="{request_id}" data-copyable>{request_id}</code></td>\n'
    "</tr>\n"
)


def _get_row_markup():
    """A row's markup with each cell's column name (which a phone shows beside the value when the table
    becomes cards) filled in, in the reader's language: once a page, not once a row."""
    return fill_in(
        LOG_ROW_HTML,
        l_time=_("Time"), l_client=_("Client"), l_model=_("Model"), l_input=_("Input"),
        l_output=_("Output"), l_cache=_("Cache read / write"),
        l_billed=_("Billed"), l_duration=_("Duration"), l_request_id=_("Request id"),
    )


def _get_client_keys(client):
    """The keys a client filter means: a key id, or labels equal to it, else containing it."""
    if UUID_PATTERN.match(client):
        return KeySnapshot.objects.filter(sub_key_id=client)
    exact = KeySnapshot.objects.filter(label__iexact=client)
    if exact.exists():
        return exact
    return KeySnapshot.objects.filter(label__icontains=client)


def get_filters(query):
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


# Each a plain sum, None when no rollup matches: a default (a COALESCE around each sum) took Django
# a quarter again of the work of building the query, so the zeros are filled in here.
TOTALS = {
    "requests": (Sum("requests"), 0),
    "input_tokens": (Sum("input_tokens"), 0),
    "output_tokens": (Sum("output_tokens"), 0),
    "cache_read_tokens": (Sum("cache_read_tokens"), 0),
    "cache_write_tokens": (Sum("cache_write_tokens"), 0),
    "cost": (Sum("cost"), Decimal(0)),
    "billed": (Sum("billed"), Decimal(0)),
}


def get_totals(rollup_filter):
    """Totals of the filtered rows, summed from the daily rollups (never from the rows themselves)."""
    sums = DailyRollup.objects.filter(rollup_filter).aggregate(**{name: total for name, (total, _zero) in TOTALS.items()})
    return {name: zero if sums[name] is None else sums[name] for name, (_total, zero) in TOTALS.items()}


def _model_named(name):
    """Rows of the model as customers name it: "claude-sonnet-4-6" also matches the dated
    "claude-sonnet-4-6-20250929" and "gpt-4o-mini" the "gpt-4o-mini-2024-07-18" the logs hold
    (the prefix narrows by index, the pattern makes it exact)."""
    date = "([0-9]{8}|[0-9]{4}-[0-9]{2}-[0-9]{2})"
    dated = Q(model__startswith=f"{name}-") & Q(model__regex=f"^{re.escape(name)}-{date}$")
    return Q(model=name) | dated


def _render_client(log, detail_pattern):
    """The row's client: a link to its key (a deleted key's page says what became of it), or the Account Key."""
    if log["key"] is None:
        return format_row('<span class="muted">{}</span>', _("Account Key"))
    name = log["key__label"] or log["key__key_id_short"]
    link = format_row('<a class="truncate" href="{}" title="{}">{}</a>', detail_pattern.replace(URL_ID_STAND_IN, log["key__sub_key_id"]), name, name)
    if log["key__deleted_at"] is not None:
        return format_row('{} <span class="badge">{}</span>', link, _("deleted"))
    return link


LOG_ROW_COST_HTML = '<td class="num" data-label="{l_cost}">{cost}</td>\n'


def render_rows(logs, show_margins):
    """The page's rows (of ``logs.values(*LOG_ROW_FIELDS)``) as HTML; real cost and multiplier only with ``show_margins``."""
    detail_pattern = reverse("console:key_detail", args=[URL_ID_STAND_IN])
    row_markup = _get_row_markup()
    cost_markup = fill_in(LOG_ROW_COST_HTML, l_cost=_("Cost (USD)"))
    return mark_safe("".join(
        format_row(
            row_markup,
            created_at=local_row_date(log["created_at"], "Y-m-d H:i:s T"),
            client=_render_client(log, detail_pattern),
            model=model_cell(log["model"]),
            input_tokens=count(log["input_tokens"]),
            output_tokens=count(log["output_tokens"]),
            cache_read_tokens=count(log["cache_read_tokens"]),
            cache_write_tokens=count(log["cache_write_tokens"]),
            cost=format_row(cost_markup, cost=usd_cost(log["cost"])) if show_margins else "",
            billed=usd_cost(log["billed"]),
            multiplier=format_row(' <span class="muted">×{}</span>', multiplier(log["multiplier"]))
            if show_margins and log["multiplier"] != 1 else "",
            duration=duration(log["duration_ms"]),
            request_id=log["request_id"],
        )
        for log in logs
    ))
