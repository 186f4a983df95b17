"""Filters and tags for the analytics pages: percentages, changes against the previous period, days left, the day table's rows."""

from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from analytics.forecast import BURN_DAYS, describe_days_left
from lib.markup import format_row
from lib.money import count, money, money_in_unit
from lib.times import row_date

register = template.Library()

ONE_PLACE = Decimal("0.1")
MINUS = "\u2212"


def _one_place(value):
    return value.quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


@register.filter
def percent(value):
    """A share or margin in percent with one decimal: "12.5%"; a dash when there is none."""
    if value is None:
        return "—"
    text = f"{_one_place(Decimal(value)):,}%"
    return text.replace("-", MINUS)


@register.filter
def change(change):
    """A Change as "+12.5%" or "−3.0%"; "new" when the previous period had none."""
    if change is None:
        return ""
    if change.percent is None:
        return _("new") if change.current else _("no change")
    rounded = _one_place(change.percent)
    if rounded == 0:
        return _("no change")
    return f"+{rounded:,}%" if rounded > 0 else f"{MINUS}{abs(rounded):,}%"


@register.filter
def change_points(change):
    """A change of a percentage, in percentage points: "+2.1 pts"."""
    if change is None or change.current is None or change.previous is None:
        return ""
    rounded = _one_place(Decimal(change.current) - Decimal(change.previous))
    if rounded == 0:
        return _("no change")
    if rounded > 0:
        return _("+%(points)s pts") % {"points": rounded}
    return _("%(minus)s%(points)s pts") % {"minus": MINUS, "points": abs(rounded)}


@register.filter
def trend(change):
    """"up", "down" or "" for a Change, to colour it."""
    if change is None or change.percent is None:
        return ""
    return "up" if change.percent > 0 else "down" if change.percent < 0 else ""


@register.filter
def days_left(days):
    """How long money lasts, in words: "about 4 days", "less than a day", "not at this rate"."""
    return describe_days_left(days)


@register.filter
def per_day(seven_day_total):
    """A key's spend over the forecast's seven days, as a daily average."""
    return Decimal(seven_day_total) / BURN_DAYS


@register.simple_tag
def trend_note(figure_change, compared_with, points=False):
    """Under a headline figure: its change against the previous period (nothing when there is none to show).

    A tag rather than an include, and format_row rather than format_html: the headline shows up to six of them.
    """
    if not figure_change:
        return ""
    text = change_points(figure_change) if points else change(figure_change)
    # One sentence to translate: each language orders the change and the period its own way.
    note = _("%(change)s vs %(compared)s") % {"change": text, "compared": compared_with}
    return format_row('<div class="trend {}">{}</div>', trend(figure_change), note)


@register.simple_tag
def figure_cells(totals, share, show_margins):
    """The figures of one row of a per-client or per-model table, as <td>s (a tag: an include cost more than the row)."""
    cells = [count(totals.requests), count(totals.tokens)]
    if show_margins:
        cells.append(money(totals.spend))
    cells.append(money(totals.billed))
    if show_margins:
        cells.append(money(totals.margin))
    cells.append(percent(share))
    return mark_safe("\n".join(format_row('<td class="num">{}</td>', cell) for cell in cells))


@register.simple_tag
def daily_figure_rows(rows, requests=False, spend=False, billed="", unit=""):
    """The rows of a chart's table of figures per day (analytics/_daily_figure.html), as HTML.

    Built here rather than in a loop of the template: a month of days, each with its date
    and two or three figures, was most of what the overview and analytics spent rendering.
    Each row is one format_row of the columns shown, put together once for all the rows.
    """
    cells = ['<tr><th scope="row">{day}</th>']
    if requests:
        cells.append('<td class="num">{requests}</td>')
    if spend:
        cells.append('<td class="num">{spend}</td>')
    if billed:
        cells.append('<td class="num">{billed}</td>')
    row_html = "".join(cells) + "</tr>\n"
    html = []
    for row in rows:
        totals = row.totals
        html.append(format_row(
            row_html,
            day=row_date(row.day, "Y-m-d"),
            requests=count(totals.requests) if requests else "",
            spend=money(totals.spend) if spend else "",
            billed=(money_in_unit(totals.billed, unit) if unit else money(totals.billed)) if billed else "",
        ))
    return mark_safe("".join(html))
