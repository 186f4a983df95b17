"""The key list: searching the snapshot, and each row and column header built as HTML, once per page.

Built here (``lib.markup.format_row``), not in templates: a dozen filters, an include and
three dates a row made the template engine most of the key list's cost. The key page
shows one key's row (its usage bar) the same way.
"""

from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from urllib.parse import urlencode

from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from analytics.forecast import annotate_days_left, describe_days_left, get_days_left_of
from analytics.permissions import get_key_figures
from dashboard.forms import KEY_SORT_COLUMNS, KeyListQueryForm
from dashboard.upstream import is_running_low
from derouter import client
from lib.markup import fill_in, format_row
from lib.money import money, multiplier
from lib.paging import Pager, page_summary, sort_state
from lib.times import row_date
from mirror.models import KeySnapshot
from mirror.reads import search_keys

URL_ID_STAND_IN = "00000000-0000-0000-0000-000000000000"

# A key's budget used, as the key list's rows and the key page show it (KeyRow.usage_bar).
USAGE_BAR_HTML = (
    '<progress class="usage{state}" max="100" value="{used}" title="{used}% used">{used}% used</progress>'
)


@dataclass(frozen=True)
class KeyRow:
    """A key as the list shows it, with its usage already judged."""

    key: client.SubKey
    used_percent: int
    is_low: bool
    is_out: bool
    detail_url: str
    topup_url: str
    edit_url: str
    # Days until its remaining budget is spent at its last 7 days' pace; None: not at this rate.
    days_left: Decimal | None = None

    @property
    def usage_bar(self):
        """The budget used, as a bar coloured low or out (the key list's rows and the key page)."""
        state = " out" if self.is_out else " low" if self.is_low else ""
        return format_row(USAGE_BAR_HTML, state=state, used=self.used_percent)


# A key's pages, by URL name: the key list's row links and the key page's actions.
KEY_URL_NAMES = (
    "console:key_detail", "console:key_topup", "console:key_edit", "console:key_reveal",
    "console:key_reclaim", "console:key_delete", "automation:key_rotate",
)


# Pages that take a key to start from in their query string (the key page's "Automate this key" links).
KEY_QUERY_URL_NAMES = ("automation:alert_rules", "automation:auto_topups", "automation:allowances", "automation:expiries")


@lru_cache(maxsize=4)
def _get_key_url_patterns(script_prefix):
    """Reversed once per process and script prefix (reverse() reads it): the URL patterns do not change."""
    patterns = {name.partition(":")[2]: reverse(name, args=[URL_ID_STAND_IN]) for name in KEY_URL_NAMES}
    patterns.update({name.partition(":")[2]: f"{reverse(name)}?key={URL_ID_STAND_IN}" for name in KEY_QUERY_URL_NAMES})
    return patterns


def get_row_url_patterns():
    """A key's URLs (by view name: key_detail, key_topup, key_edit...) with a stand-in id.

    Filling in each row's id is a string replace; a {% url %} per link and row was a
    good part of the key list's rendering time, and of the key page's.
    """
    return _get_key_url_patterns(get_script_prefix())


def get_key_urls(sub_key_id):
    """One key's URLs by view name, as the key page links them (``key_urls.key_edit``)."""
    return {name: pattern.replace(URL_ID_STAND_IN, sub_key_id) for name, pattern in get_row_url_patterns().items()}


def get_key_row(sub_key, url_patterns, days_left=None):
    return KeyRow(
        key=sub_key,
        used_percent=int(sub_key.used_fraction * 100),
        is_low=is_running_low(sub_key),
        is_out=sub_key.remaining <= 0,
        detail_url=url_patterns["key_detail"].replace(URL_ID_STAND_IN, sub_key.id),
        topup_url=url_patterns["key_topup"].replace(URL_ID_STAND_IN, sub_key.id),
        edit_url=url_patterns["key_edit"].replace(URL_ID_STAND_IN, sub_key.id),
        days_left=days_left,
    )


# A row of the key list. Built here (format_row), not in the template: a dozen filters,
# an include and three dates a row made the template engine most of the page's cost.
KEY_ROW_HTML = (
    '<tr>\n'
    '<td class="label-cell"><a class="truncate" href="{detail_url}" title="{label}"{label_is_a_name}>{label}</a>{badge}</td>\n'
    '<td class="mono" data-label="{l_key}">{key_id}</td>\n'
    '<td class="num" data-label="{l_budget}">{budget}</td>\n'
    '<td class="num" data-label="{l_spent}">{spent}</td>\n'
    '<td class="num" data-label="{l_remaining}">{remaining}</td>\n'
    '<td class="usage-cell">{usage_bar}</td>\n'
    '<td data-label="{l_days_left}">{days_left}</td>\n'
    '<td class="num secondary-cell" data-label="{l_rpm}">{rpm_limit}</td>\n'
    '<td class="num secondary-cell" data-label="{l_concurrent}">{concurrent_limit}</td>\n'
    "{multiplier}"
    '<td class="secondary-cell" data-label="{l_created}">{created}</td>\n'
    '<td class="row-actions">\n'
    '<a class="button small" href="{topup_url}" data-hx-get="{topup_url}" data-hx-target="#key-dialog-body" '
    'data-hx-swap="innerHTML">{l_top_up}</a>{edit}\n'
    "</td>\n"
    "</tr>\n"
)
KEY_ROW_EDIT_HTML = (
    '\n<a class="button small secondary" href="{edit_url}" data-hx-get="{edit_url}" data-hx-target="#key-dialog-body" '
    'data-hx-swap="innerHTML">{l_edit}</a>'
)
TRANSLATE_NO = mark_safe(' translate="no"')
KEY_ROW_CREATED_HTML = '<time datetime="{}" title="{}">{}</time>'


# Columns that would show or order by the markup: not for whoever may not see margins.
MARGIN_SORT_COLUMNS = {"display_multiplier"}
KEY_ROW_MULTIPLIER_HTML = '<td class="num secondary-cell" data-label="{l_multiplier}">×{multiplier}</td>\n'


def render_key_row(row, show_edit, show_margins, markup):
    """One row of the key list as HTML; ``show_edit`` for owners, who may edit keys.

    Without ``show_margins`` the money is the client's (analytics.permissions.as_client_sees)
    and the multiplier is left out. ``markup``: get_row_markup(), made once for a page of rows.
    """
    key = row.key
    figures = get_key_figures(key, show_margins)
    if key.created_at:
        created_at = timezone.localtime(key.created_at)
        created = format_row(
            KEY_ROW_CREATED_HTML,
            row_date(created_at, r"Y-m-d\TH:i:sO"),
            row_date(created_at, "Y-m-d H:i T"),
            row_date(created_at, "Y-m-d"),
        )
    else:
        created = "—"
    return format_row(
        markup["row"],
        detail_url=row.detail_url,
        label=key.label or markup["no_label"],
        # A label is a name the reseller typed: no translation (a browser's, or our check for English) touches it.
        label_is_a_name=TRANSLATE_NO if key.label else "",
        badge=format_row(' <span class="badge low">{}</span>', markup["empty"] if row.is_out else markup["low"]) if row.is_low else "",
        key_id=key.key_id,
        budget=money(figures.budget),
        spent=money(figures.spent),
        remaining=money(figures.remaining),
        usage_bar=row.usage_bar,
        days_left=describe_days_left(row.days_left),
        rpm_limit=key.rpm_limit,
        concurrent_limit=key.concurrent_limit,
        multiplier=format_row(markup["multiplier"], multiplier=multiplier(key.display_multiplier)) if show_margins else "",
        created=created,
        topup_url=row.topup_url,
        edit=format_row(markup["edit"], edit_url=row.edit_url) if show_edit else "",
    )


def get_row_markup():
    """The rows' markup with their words in the reader's language filled in, once a page: each cell's
    column name (which a phone shows beside the value when the list becomes cards), the badges."""
    return {
        "row": fill_in(
            KEY_ROW_HTML,
            l_key=_("Key"), l_budget=_("Budget"), l_spent=_("Spent"), l_remaining=_("Remaining"),
            l_days_left=_("Days left"), l_rpm=_("Requests per minute"), l_concurrent=_("Concurrent"),
            l_created=_("Created"), l_top_up=_("Top up"),
        ),
        "multiplier": fill_in(KEY_ROW_MULTIPLIER_HTML, l_multiplier=_("Multiplier")),
        "edit": fill_in(KEY_ROW_EDIT_HTML, l_edit=_("Edit")),
        "no_label": _("(no label)"),
        "empty": _("empty"),
        "low": _("low"),
    }


def _is_sorted_by_days_left(sort):
    return sort.removeprefix("-") == "days_left"


# What a row of the list reads of a snapshot (as_sub_key): converting the times it does not show
# (first seen, refreshed, deleted) cost more than building the row.
KEY_LIST_FIELDS = (
    "sub_key_id", "label", "key_id_short", "budget", "spent", "remaining", "rpm_limit", "concurrent_limit",
    "display_multiplier", "created_at",
)


def search_key_list(query):
    """The snapshot keys of one search and sort; sorting by days left annotates every key with it, in SQL."""
    keys = KeySnapshot.objects.only(*KEY_LIST_FIELDS)
    if _is_sorted_by_days_left(query["sort"]):
        keys = annotate_days_left(keys)
    return search_keys(query["q"], query["sort"], keys=keys)


def get_days_left(snapshots, sort):
    """{snapshot pk: days left} of one page of keys: the sort's own annotation when sorted by it, else one query."""
    if _is_sorted_by_days_left(sort):
        return {snapshot.pk: snapshot.days_left for snapshot in snapshots}
    return get_days_left_of(snapshots)


@lru_cache(maxsize=4)
def _get_list_path(script_prefix):
    """Reversed once per process and script prefix, as the rows' URL patterns are: a page links the list a dozen times."""
    return reverse("console:key_list")


def get_list_url(list_url=None, **query):
    """The key list URL for a search, sort and page, leaving out defaults (``list_url``: the list's path, if known)."""
    defaults = KeyListQueryForm.defaults
    params = {name: value for name, value in query.items() if value != defaults[name]}
    url = list_url or _get_list_path(get_script_prefix())
    return f"{url}?{urlencode(params)}" if params else url


# The column headers: links that sort by the column; built here with the rows (see KEY_ROW_HTML).
SORT_HEADER_HTML = (
    '<th{number_class} {aria_sort}>\n'
    '<a href="{url}" data-hx-get="{url}" data-hx-push-url="true" data-sort-column="{column}">{title}{arrow}</a>\n'
    "</th>\n"
)
SORT_ARROWS = {"ascending": " ▲", "descending": " ▼", "": ""}


def render_sort_headers(query, show_margins):
    """Each column's header: its title, a link that sorts by it, and its current direction (aria-sort)."""
    list_url = _get_list_path(get_script_prefix())
    html = []
    for column, title in KEY_SORT_COLUMNS.items():
        if column in MARGIN_SORT_COLUMNS and not show_margins:
            continue
        direction, next_sort = sort_state(query["sort"], column)
        html.append(format_row(
            SORT_HEADER_HTML,
            number_class=mark_safe(' class="num"') if column not in ("label", "key_id", "days_left", "created_at") else "",
            aria_sort=format_row('aria-sort="{}"', direction) if direction else "",
            url=get_list_url(list_url, q=query["q"], sort=next_sort, page=1),
            column=column,
            title=title,
            arrow=SORT_ARROWS[direction],
        ))
        if column == "remaining":
            html.append(format_row("<th>{}</th>\n", _("Usage")))
    return mark_safe("".join(html))


def get_list_pager(query, page, total_keys):
    """The key list's pager: which keys of how many, and links that keep the search and sort."""
    numbers = {"first": page.start_index(), "last": page.end_index(), "count": page.paginator.count, "total": total_keys}
    if query["q"]:
        shown = _("%(first)s–%(last)s of %(count)s matching keys (%(total)s in all)") % numbers
    else:
        shown = _("%(first)s–%(last)s of %(count)s keys") % numbers
    return Pager(
        summary=page_summary(shown, page.number, page.paginator.num_pages),
        previous_url=get_list_url(q=query["q"], sort=query["sort"], page=page.number - 1) if page.has_previous() else None,
        next_url=get_list_url(q=query["q"], sort=query["sort"], page=page.number + 1) if page.has_next() else None,
        previous_label=_("Previous"),
        next_label=_("Next"),
    )
