"""The business figures, summed from the mirror's daily rollups (never from usage rows or the upstream).

A rollup holds one key x model x UTC day, so every query here reads at most
keys x models x days rows, however many requests were made: the pages cost the
same at ten thousand mirrored requests as at a million.

Client figures leave out the Account Key's own use (rollups without a key): that is
the reseller's own spending, billed to nobody.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import ngettext

from analytics import rollup_sql
from analytics.forms import Period
from lib.money import model_alias
from mirror.models import BILLED_PLACES, COST_PLACES, DailyRollup, KeySnapshot

HUNDRED = Decimal(100)
ZERO = Decimal(0)

def today_utc():
    return timezone.now().date()


@dataclass(frozen=True)
class Totals:
    """Requests, tokens and money of some rollups; spend is real cost, billed what clients were shown."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    spend: Decimal = ZERO
    billed: Decimal = ZERO

    @classmethod
    def add(cls, many):
        """The totals of several Totals (each already rounded to its places, so the sum is exact), at those places."""
        many = list(many)
        return cls(
            requests=sum(totals.requests for totals in many),
            input_tokens=sum(totals.input_tokens for totals in many),
            output_tokens=sum(totals.output_tokens for totals in many),
            spend=sum((totals.spend for totals in many), start=ZERO).quantize(COST_PLACES),
            billed=sum((totals.billed for totals in many), start=ZERO).quantize(BILLED_PLACES),
        )

    @property
    def tokens(self):
        return self.input_tokens + self.output_tokens

    @property
    def margin(self):
        return self.billed - self.spend

    @property
    def margin_percent(self):
        """Margin as a share of what was billed; None when nothing was."""
        return self.margin / self.billed * HUNDRED if self.billed else None


@dataclass(frozen=True)
class Change:
    """A figure for a period and the same figure for the period before it."""

    current: Decimal
    previous: Decimal

    @property
    def percent(self):
        """The change in percent; None when there is nothing to compare with."""
        if not self.previous:
            return None
        return (Decimal(self.current) - Decimal(self.previous)) / abs(Decimal(self.previous)) * HUNDRED


@dataclass(frozen=True)
class Headline:
    """The period's totals against the previous period of the same length."""

    period: Period
    totals: Totals
    previous_totals: Totals

    @property
    def compared_with(self):
        days = self.period.days
        return ngettext("the day before", "the %(days)s days before", days) % {"days": days}

    def change(self, name):
        return Change(getattr(self.totals, name), getattr(self.previous_totals, name))

    @cached_property
    def changes(self):
        names = ("spend", "billed", "margin", "margin_percent", "requests", "tokens")
        # Margin % is None in a period that billed nothing: then there is nothing to compare.
        return {
            name: self.change(name)
            for name in names
            if getattr(self.totals, name) is not None and getattr(self.previous_totals, name) is not None
        }


@dataclass(frozen=True)
class DayFigures:
    day: object
    totals: Totals


@dataclass(frozen=True)
class ModelFigures:
    model: str
    totals: Totals
    share: Decimal | None


@dataclass(frozen=True)
class ClientFigures:
    key: KeySnapshot
    totals: Totals
    share: Decimal | None


def client_rollups(period, key=None):
    """The rollups of Client Keys (or of one key) on the period's days."""
    rollups = DailyRollup.objects.filter(day__gte=period.start, day__lte=period.end)
    if key is not None:
        return rollups.filter(key=key)
    return rollups.filter(key__isnull=False)


def get_totals(period, key=None):
    return Totals(*rollup_sql.totals(period.start, period.end, key))


def get_key_totals_since(period, key, since):
    """(Totals of one key's rollups over the period, its real spend from the day ``since`` on), summed here.

    A key has at most a rollup per day and model in the period: reading them takes a third
    of the work Django does to build the aggregate query that would sum them (the key page).
    """
    rows = client_rollups(period, key).values_list("day", "requests", "input_tokens", "output_tokens", "cost", "billed")
    requests = input_tokens = output_tokens = 0
    spend = billed = spend_since = ZERO
    for day, day_requests, day_input, day_output, day_cost, day_billed in rows:
        requests += day_requests
        input_tokens += day_input
        output_tokens += day_output
        spend += day_cost
        billed += day_billed
        if day >= since:
            spend_since += day_cost
    totals = Totals(requests, input_tokens, output_tokens, spend.quantize(COST_PLACES), billed.quantize(BILLED_PLACES))
    return totals, spend_since


def get_daily(period, key=None):
    """Figures for every day of the period, days without use included as zeros."""
    by_day = rollup_sql.by_day(period.start, period.end, key)
    return [DayFigures(day, Totals(*by_day[day]) if day in by_day else Totals()) for day in period.each_day()]


class DaySums:
    """Every UTC day's figures from one day to another, Client Keys' and the Account Key's own apart.

    One query for what a page would otherwise ask in four (a period's totals, the period
    before, its days, the Account Key's own spend): each of those is a sum of these days,
    and each day's sums are already rounded to their places, so adding them is exact.
    """

    def __init__(self, start, end):
        clients, own = rollup_sql.by_day_and_owner(start, end)
        self.clients = {day: Totals(*sums) for day, sums in clients.items()}
        self.own = {day: Totals(*sums) for day, sums in own.items()}

    @staticmethod
    def _in(by_day, period):
        return Totals.add(totals for day, totals in by_day.items() if period.start <= day <= period.end)

    def totals(self, period):
        """Client Keys' figures over the period, as ``get_totals``."""
        return self._in(self.clients, period)

    def headline(self, period):
        """The period against the one before it (both within the days read)."""
        return Headline(period, self.totals(period), self.totals(period.previous()))

    def daily(self, period):
        """As ``get_daily``: every day of the period, days without use as zeros."""
        return [DayFigures(day, self.clients.get(day, Totals())) for day in period.each_day()]

    def own_spend(self, period):
        """What the Account Key itself spent over the period (real cost)."""
        return self._in(self.own, period).spend


def _share(part, whole):
    return part / whole * HUNDRED if whole else None


def get_by_model(period, key=None):
    """Figures per model as customers name it in their requests, the most billed first.

    The dated names derouter logs ("claude-sonnet-4-6-20260101") count under the name sent
    ("claude-sonnet-4-6"), as the usage logs show them (lib.money.model_alias).
    """
    grouped = defaultdict(list)
    for model, sums in rollup_sql.by_model(period.start, period.end, key):
        grouped[model_alias(model)].append(Totals(*sums))
    rows = [(model, Totals.add(many)) for model, many in grouped.items()]
    total_billed = sum((totals.billed for _, totals in rows), start=ZERO)
    rows.sort(key=lambda row: (-row[1].billed, row[0]))
    return [ModelFigures(model, totals, _share(totals.billed, total_billed)) for model, totals in rows]


def get_clients(period, sort):
    """Figures per Client Key, sorted in SQL ("-" for descending): a list to page, read a page at a time."""
    return rollup_sql.ClientSums(period.start, period.end, sort)


def get_client_rows(sums, total_billed):
    """The client table's rows for one page of ``get_clients``, each with its key (what the table shows of it)."""
    rows = []
    for key, key_sums in sums:
        totals = Totals(*key_sums)
        rows.append(ClientFigures(key, totals, _share(totals.billed, total_billed)))
    return rows


def get_month_to_date(today=None):
    """This UTC month so far, against the same number of days just before it."""
    today = today or today_utc()
    return Period(today.replace(day=1), today)


def get_last_days(days, today=None):
    today = today or today_utc()
    return Period(today - timedelta(days=days - 1), today)


# Panels that packages above analytics add to the analytics page (money in: payments registers one when
# its app is ready): each is called with the period and answers (template name, context).
PERIOD_PANELS = []


def register_period_panel(panel):
    if panel not in PERIOD_PANELS:
        PERIOD_PANELS.append(panel)
