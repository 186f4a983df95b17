"""Analytics pages: the business over a period, and a client's monthly statement (HTML and CSV).

Everything here reads our own tables (the mirror's rollups and snapshots, the
top-up ledger): no page makes an upstream call, so bad input costs nothing upstream.
"""

from functools import lru_cache
from urllib.parse import urlencode

from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers
from django.utils.translation import gettext as _
from django.utils.translation import get_language
from django.utils.translation import ngettext

from accounts.roles import console_required
from analytics import figures, panels
from analytics.forms import CLIENT_SORT_COLUMNS, DEFAULT_CLIENT_SORT, DEFAULT_PERIOD, PeriodForm
from analytics.permissions import can_see_margins
from analytics.statements import NoStatement, find_statement, generate_csv_rows
from lib.csv_export import csv_download
from lib.htmx import wants_fragment
from lib.paging import Pager, get_page_counting_short_lists, sort_state
from mirror.models import KeySnapshot

CLIENTS_PER_PAGE = 50


def _get_analytics_url(query, analytics_url=None, **changes):
    """The analytics URL for the query with some values changed, leaving out defaults (``analytics_url``: its path, if known)."""
    values = {**query, **changes}
    params = {}
    if values["period"] != DEFAULT_PERIOD:
        params["period"] = values["period"]
    if values["period"] == "custom":
        params.update(start=values["range"].start.isoformat(), end=values["range"].end.isoformat())
    if values["sort"] != DEFAULT_CLIENT_SORT:
        params["sort"] = values["sort"]
    if values["page"] != 1:
        params["page"] = values["page"]
    url = analytics_url or reverse("analytics:analytics")
    return f"{url}?{urlencode(params)}" if params else url


def _get_sort_headers(query, show_margins):
    """Each client column's header: title, the URL sorting by it, and its current direction."""
    headers = []
    analytics_url = reverse("analytics:analytics")  # once, not once a column
    for column, title in CLIENT_SORT_COLUMNS.items():
        if column in ("spend", "margin") and not show_margins:
            continue
        direction, next_sort = sort_state(query["sort"], column, biggest_first=column != "label")
        headers.append(
            {
                "column": column,
                "title": title,
                "direction": direction,
                "url": _get_analytics_url(query, analytics_url, sort=next_sort, page=1),
                "is_number": column != "label",
            }
        )
    return headers


def _get_client_context(query, headline, show_margins):
    sort = query["sort"]
    if sort.removeprefix("-") in ("spend", "margin") and not show_margins:
        sort = DEFAULT_CLIENT_SORT
    query = {**query, "sort": sort}
    page = get_page_counting_short_lists(figures.get_clients(query["range"], sort), CLIENTS_PER_PAGE, query["page"])
    return {
        "client_page": page,
        "client_rows": figures.get_client_rows(page.object_list, headline.totals.billed),
        "sort_headers": _get_sort_headers(query, show_margins),
        "client_pager": Pager(
            summary=ngettext(
                "%(first)s–%(last)s of %(count)s client", "%(first)s–%(last)s of %(count)s clients", page.paginator.count
            ) % {"first": page.start_index(), "last": page.end_index(), "count": page.paginator.count},
            previous_url=_get_analytics_url(query, page=page.number - 1) if page.has_previous() else None,
            next_url=_get_analytics_url(query, page=page.number + 1) if page.has_next() else None,
            previous_label=_("Previous"),
            next_label=_("Next"),
        ),
    }


@lru_cache(maxsize=256)
def _render_period_fields(period, start, end, today, language):
    """The period picker's fields for a valid form of these values, as HTML (analytics/_period_fields.html).

    Django renders each widget from templates, a fifth of the page; the fields depend only on
    the values submitted, on today (for what is valid) and on the reader's language (their
    labels), so each is rendered once per process and language.
    """
    form = PeriodForm({"period": period, "start": start, "end": end}, today=today)
    return render_to_string("analytics/_period_fields.html", {"form": form})


def _get_mirrored_key(sub_key_id):
    """The mirrored key, deleted ones included (their statements stay), or None."""
    return KeySnapshot.objects.filter(sub_key_id=sub_key_id).first()


def _render_no_statement(request, message, status):
    return render(request, "analytics/no_statement.html", {"message": message}, status=status)


def _get_statement_or_error(request, sub_key_id, month_text):
    """(statement, None), or (None, an error page) for an unknown key or a month without one."""
    key = _get_mirrored_key(sub_key_id)
    try:
        return find_statement(key, month_text, figures.today_utc(), _("There is no such key.")), None
    except NoStatement as refusal:
        return None, _render_no_statement(request, refusal.message, refusal.status)


@console_required
@require_http_methods(["GET", "HEAD"])
@vary_on_headers("HX-Request")
def analytics(request):
    """Spend, billed, margin, requests and tokens for a period; charts per day and model; a table per client."""
    form = PeriodForm(request.GET, today=figures.today_utc())
    if not form.is_valid():
        return render(request, "analytics/analytics.html", {"form": form}, status=400)
    query = form.cleaned_data
    show_margins = can_see_margins(request.user)
    period_fields = _render_period_fields(*(form.data.get(name) for name in ("period", "start", "end")), form.today, get_language())
    # One query for the period's and the previous period's days (headline, chart, own spend).
    days = figures.DaySums(query["range"].previous().start, query["range"].end)
    headline = days.headline(query["range"])
    context = {
        "form": form,
        "period_fields": period_fields,
        "query": query,
        "show_margins": show_margins,
        "headline": headline,
        **_get_client_context(query, headline, show_margins),
    }
    if wants_fragment(request):
        return render(request, "analytics/_client_table.html", context)
    daily = days.daily(query["range"])
    daily_title = _("Spend and billed per day") if show_margins else _("Billed per day")
    model_title = _("Spend and billed per model") if show_margins else _("Billed per model")
    by_model = figures.get_by_model(query["range"])
    context.update(
        daily=daily,
        by_model=by_model,
        daily_chart=panels.get_daily_chart(daily, show_margins, daily_title),
        model_chart=panels.get_model_chart(by_model, show_margins, model_title),
        own_spend=days.own_spend(query["range"]) if show_margins else None,
        # Panels of higher layers (money in), each (template name, context) for the period.
        period_panels=[panel(query["range"]) for panel in figures.PERIOD_PANELS],
    )
    return render(request, "analytics/analytics.html", context)


@console_required
@require_http_methods(["GET", "HEAD"])
def statement(request, sub_key_id, month):
    """A client's statement for a calendar month (UTC), printable on A4."""
    statement, error = _get_statement_or_error(request, sub_key_id, month)
    if error:
        return error
    csv_url = reverse("analytics:statement_csv", args=[sub_key_id, statement.month.strftime("%Y-%m")])
    return render(request, "analytics/statement.html", {"statement": statement, "csv_url": csv_url, "in_console": True})


@console_required
@require_http_methods(["GET", "HEAD"])
def statement_csv(request, sub_key_id, month):
    """The statement's usage as CSV: a row per day x model, then the total."""
    statement, error = _get_statement_or_error(request, sub_key_id, month)
    if error:
        return error
    label = statement.key.key_id_short.removesuffix("...") or statement.key.sub_key_id
    return csv_download(generate_csv_rows(statement), f"statement-{label}-{statement.month:%Y-%m}.csv")
