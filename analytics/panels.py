"""What the analytics includes show: chart data, and the panels other pages include.

Chart data goes to the browser through ``json_script``; money stays a decimal
string there, and every chart has a table of the same numbers beside it.
"""

from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from analytics import figures, forecast
from analytics.statements import get_statement_months
from lib.money import unit_is_symbol
from mirror.models import KeySnapshot

SPARKLINE_DAYS = 30
KEY_CHART_DAYS = 30
RUNNING_OUT_SHOWN = 10
KEY_STATEMENT_MONTHS = 12


def _money(value):
    return format(value, "f")


def _day_labels(daily):
    """The days' labels, and whether the last is today: a day not over yet, so "so far", drawn dashed."""
    labels = [row.day.isoformat() for row in daily]
    is_partial = bool(daily) and daily[-1].day >= timezone.now().date()
    if is_partial:
        labels[-1] = _("%(day)s (so far)") % {"day": labels[-1]}
    return labels, is_partial


def get_daily_chart(daily, show_spend, title):
    """Billed (and, for those who may see it, real spend) per day; today, not over yet, marked "so far"."""
    datasets = [{"label": _("Billed"), "data": [_money(row.totals.billed) for row in daily]}]
    if show_spend:
        datasets.insert(0, {"label": _("Spend (real cost)"), "data": [_money(row.totals.spend) for row in daily]})
    labels, is_partial = _day_labels(daily)
    return {
        "type": "line",
        "title": title,
        "money": True,
        "labels": labels,
        "partial_last": is_partial,
        "datasets": datasets,
    }


def get_model_chart(by_model, show_spend, title):
    datasets = [{"label": _("Billed"), "data": [_money(row.totals.billed) for row in by_model]}]
    if show_spend:
        datasets.insert(0, {"label": _("Spend (real cost)"), "data": [_money(row.totals.spend) for row in by_model]})
    return {
        "type": "bar",
        "title": title,
        "money": True,
        "labels": [row.model for row in by_model],
        "datasets": datasets,
    }


def get_sparkline(daily, show_spend):
    """Real spend per day; billed instead for those who may not see real costs."""
    name, label = ("spend", _("Spend")) if show_spend else ("billed", _("Billed"))
    if show_spend:
        title = ngettext("Spend per day, last %(days)s day", "Spend per day, last %(days)s days", len(daily))
    else:
        title = ngettext("Billed per day, last %(days)s day", "Billed per day, last %(days)s days", len(daily))
    labels, is_partial = _day_labels(daily)
    return {
        "type": "sparkline",
        "title": title % {"days": len(daily)},
        "money": True,
        "labels": labels,
        "partial_last": is_partial,
        "datasets": [{"label": label, "data": [_money(getattr(row.totals, name)) for row in daily]}],
    }


def get_business_summary(show_margins, available, today=None):
    """The overview's panel: this month's figures, a 30-day sparkline, keys running out, the account's runway."""
    today = today or figures.today_utc()
    month = figures.get_month_to_date(today)
    last_days = figures.get_last_days(SPARKLINE_DAYS, today)
    burn_days = figures.get_last_days(forecast.BURN_DAYS, today)
    days = figures.DaySums(min(month.previous().start, last_days.start, burn_days.start), today)
    daily = days.daily(last_days)
    # The candidates are active keys, so those of them that spent are get_burning_keys(today), read in one query less.
    spend = forecast.get_spending_keys(today)
    candidates = forecast.get_running_out_candidates(spend)
    burns = {key.pk: spend[key.pk] for key in candidates if key.pk in spend}
    running_out = forecast.get_keys_running_out(today, burns=burns, candidates=candidates)
    if available is None:
        account_forecast = None
    else:
        remaining = {key.pk: key.remaining for key in candidates if key.pk in burns}
        account_forecast = forecast.get_account_forecast(
            available, today, burns, remaining=remaining, own_spent=days.own_spend(burn_days)
        )
    return {
        "headline": days.headline(month),
        "show_margins": show_margins,
        "daily": daily,
        "sparkline": get_sparkline(daily, show_margins),
        "running_out": running_out[:RUNNING_OUT_SHOWN],
        "more_running_out": max(len(running_out) - RUNNING_OUT_SHOWN, 0),
        "account_forecast": account_forecast,
        "soon_days": forecast.SOON_DAYS,
    }


def get_key_analytics(sub_key_id, show_margins, today=None, key=None):
    """The key page's panel: 30 days of usage, figures per model, margin, forecast, statements.

    ``key`` is the key's snapshot when the caller has it. Per day and per model (and their
    chart) are worked out only when the template reads ``figures``: the template caches them
    until ``version`` changes (the window's totals, as for the portal's panel).
    """
    key = key or KeySnapshot.objects.filter(sub_key_id=sub_key_id).first()
    if key is None:
        return {"key_snapshot": None}
    today = today or figures.today_utc()
    period = figures.get_last_days(KEY_CHART_DAYS, today)
    # The seven days of the forecast's pace lie inside the period: one query sums both.
    sums = figures.client_rollups(period, key).aggregate(**figures.SUMS, burn_spend=forecast.burn_spend_sum(today))
    totals = figures.Totals.from_sums(sums)

    def get_figures():
        daily = figures.get_daily(period, key)
        return {
            "daily": daily,
            "daily_chart": get_daily_chart(daily, show_margins, _("Usage per day, last 30 days")),
            "by_model": figures.get_by_model(period, key),
            "statement_months": get_statement_months(key, today)[:KEY_STATEMENT_MONTHS],
        }

    return {
        "key_snapshot": key,
        "show_margins": show_margins,
        "period": period,
        "totals": totals,
        "version": f"{key.sub_key_id}:{period.start}:{totals.requests}:{totals.billed}:{show_margins}",
        "figures": SimpleLazyObject(get_figures),
        "forecast": forecast.key_forecast_from(key, sums["burn_spend"], today),
    }


class PortalUsagePanel:
    """The portal home's usage panel for the client's own key snapshot, in its units.

    ``version`` changes whenever the panel would: it reads only the key's rollups over the
    last 30 UTC days, which only ever gain rows, so the window's request count and billed
    total (one indexed query) say whether anything changed. The rest (per day, per model,
    chart data) is worked out only when a template reads ``figures``: a cached panel does not.
    ``unit`` is the portal's money unit (branding): the chart's axis and tooltips read in it too.
    """

    def __init__(self, key, unit, today=None):
        self.key = key
        self.unit = unit
        self.period = figures.get_last_days(KEY_CHART_DAYS, today or figures.today_utc())
        self.totals = figures.get_totals(self.period, key)
        self.version = f"{key.sub_key_id}:{self.period.start}:{self.totals.requests}:{self.totals.billed}:{unit}"
        self.figures = SimpleLazyObject(self._get_figures)

    def _get_figures(self):
        daily = figures.get_daily(self.period, self.key)
        daily_chart = get_daily_chart(daily, False, _("Your usage per day, last 30 days"))
        if unit_is_symbol(self.unit):
            daily_chart["unit_before"] = self.unit
        else:
            daily_chart["unit_after"] = f" {self.unit}"
        return {
            "period": self.period,
            "daily": daily,
            "daily_chart": daily_chart,
            "by_model": figures.get_by_model(self.period, self.key),
            "totals": self.totals,
        }
