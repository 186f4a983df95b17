"""One pager for every paged list: what ``templates/lib/_pager.html`` renders.

A view builds a ``Pager`` from a Django ``Page`` (our own rows) or from the page
numbers derouter sent (usage logs); the partial shows the summary and the
previous/next links, which keep the rest of the query string.
"""

from dataclasses import dataclass

from django.core.paginator import Paginator
from django.http import QueryDict
from django.utils.functional import cached_property
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy


@dataclass(frozen=True)
class Pager:
    """The summary line and the links of one page of a list; a link is None at either end."""

    summary: str
    previous_url: str | None = None
    next_url: str | None = None
    # Time-ordered lists page towards older rows; a sorted table pages forwards.
    previous_label: str = gettext_lazy("← Newer")
    next_label: str = gettext_lazy("Older →")


class CountedPaginator(Paginator):
    """A paginator told its count (e.g. from the mirror's daily rollups) instead of counting the rows."""

    def __init__(self, object_list, per_page, count):
        super().__init__(object_list, per_page)
        self._known_count = count

    @cached_property
    def count(self):
        return self._known_count


def get_page_counting_short_lists(rows, per_page, number):
    """``Paginator(rows, per_page).get_page(number)``, without a COUNT query when page 1 holds every row.

    Reading one row more than a page tells whether the list fits on its first page (most
    do); only a longer list is then counted, and its first page is the rows already read.
    """
    if number != 1:
        return Paginator(rows, per_page).get_page(number)
    head = list(rows[: per_page + 1])
    if len(head) <= per_page:
        return CountedPaginator(head, per_page, len(head)).get_page(1)
    paginator = CountedPaginator(rows, per_page, rows.count())
    return paginator._get_page(head[:per_page], 1, paginator)


def page_summary(counted, number, pages):
    """"12 top-ups · page 1 of 2"; ``counted`` is the count with its noun, already in the reader's language."""
    return _("%(counted)s · page %(page)s of %(pages)s") % {"counted": counted, "page": number, "pages": pages}


def page_url(request, page, base="", params=None):
    """This request's URL (or ``base``) with ``page`` (and ``params``) set in its query string.

    Spelling out the other parameters (``params``) keeps a page size in the address
    even when the request relied on its default, so a shared link shows the same rows.
    """
    query = QueryDict(mutable=True)
    query["page"] = page
    for name, values in request.GET.lists():
        if name != "page":
            query.setlist(name, values)
    for name, value in (params or {}).items():
        query[name] = value
    return f"{base}?{query.urlencode()}"


def make_pager(request, *, page, pages, summary, base="", params=None, **labels):
    """A pager for page ``page`` of ``pages``; links keep the request's other query parameters."""
    return Pager(
        summary=summary,
        previous_url=page_url(request, page - 1, base, params) if 1 < page <= pages else None,
        next_url=page_url(request, page + 1, base, params) if page < pages else None,
        **labels,
    )


def pager_for_page(request, page, counted_noun):
    """A pager for a Django ``Page`` of rows: "12 top-ups · page 1 of 2".

    ``counted_noun`` is ``ngettext_lazy("%(count)s top-up", "%(count)s top-ups", "count")``: the
    plural rules of some languages need the whole phrase, not a noun and an "s".
    """
    count = page.paginator.count
    summary = page_summary(counted_noun % {"count": count}, page.number, page.paginator.num_pages)
    return make_pager(request, page=page.number, pages=page.paginator.num_pages, summary=summary)


def pager_for_log_page(request, logs, summary, base=""):
    """A pager for one page of derouter's usage logs (anything with page, pages and limit); links keep the page size."""
    return make_pager(request, page=logs.page, pages=logs.pages, summary=summary, base=base, params={"limit": logs.limit})


def sort_state(current, column, biggest_first=False):
    """(``column``'s aria-sort direction under the ``current`` sort, the sort its header's link asks for).

    A column not sorted by yet sorts ascending, or ``biggest_first`` (numbers are most useful so).
    """
    if current == column:
        return "ascending", f"-{column}"
    if current == f"-{column}":
        return "descending", column
    return "", f"-{column}" if biggest_first else column
