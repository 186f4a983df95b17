"""When the money runs out at the current pace: per key, and for the account as a whole.

A key's pace is its real spend over the last seven UTC days (today included) from
the rollups; its remaining budget comes from the key snapshot.
"""

from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_FLOOR, Decimal

from django.db.models import Case, DecimalField, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from analytics import rollup_sql
from analytics.figures import ZERO, today_utc
from mirror.models import DailyRollup, KeySnapshot

BURN_DAYS = 7
# Keys running out within this many days are listed on the overview.
SOON_DAYS = 7
# Past this, a date says nothing useful: "not at this rate".
HORIZON_DAYS = 3650

_MONEY = DecimalField(max_digits=24, decimal_places=8)


@dataclass(frozen=True)
class Forecast:
    """A remaining amount, the pace it is spent at (per day), and how long it lasts."""

    remaining: Decimal
    burn_per_day: Decimal
    days_left: Decimal | None
    today: object

    @property
    def runs_out_on(self):
        if self.days_left is None:
            return None
        return self.today + timedelta(days=int(self.days_left.to_integral_value(rounding=ROUND_FLOOR)))

    @property
    def is_out(self):
        return self.days_left is not None and self.days_left <= 0


def burn_start(today):
    """The first of the seven UTC days (today the last) whose spend sets a key's pace."""
    return today - timedelta(days=BURN_DAYS - 1)


def days_left_at(remaining, burn_per_day):
    """Days until ``remaining`` is spent at ``burn_per_day``; None when never (or not within the horizon)."""
    if remaining <= 0:
        return ZERO
    if burn_per_day <= 0:
        return None
    days = remaining / burn_per_day
    return days if days <= HORIZON_DAYS else None


def get_key_forecast(key, today=None):
    """The forecast of one key snapshot."""
    today = today or today_utc()
    spent = DailyRollup.objects.filter(key=key, day__gte=burn_start(today), day__lte=today).aggregate(
        total=burn_spend_sum(today)
    )["total"]
    return key_forecast_from(key, spent, today)


def burn_spend_sum(today):
    """The aggregate of the last seven days' real spend, also right in a query of a key's rollups over a longer period."""
    return Coalesce(Sum("cost", filter=Q(day__gte=burn_start(today), day__lte=today)), Value(ZERO), output_field=_MONEY)


def key_forecast_from(key, burn_spend, today):
    """The forecast of one key snapshot from its real spend of the last seven days (from burn_start(today) on)."""
    burn = Decimal(burn_spend) / BURN_DAYS
    return Forecast(key.remaining, burn, days_left_at(key.remaining, burn), today)


def annotate_days_left(queryset, today=None):
    """Annotate key snapshots with ``burn_7d`` (real spend over 7 days) and ``days_left``.

    ``days_left`` is NULL for a key that spent nothing in those days, 0 for one
    with nothing left; sort with ``F("days_left").asc(nulls_last=True)``.
    """
    today = today or today_utc()
    spent = (
        DailyRollup.objects.filter(key=OuterRef("pk"), day__gte=burn_start(today), day__lte=today)
        .order_by()
        .values("key")
        .annotate(total=Sum("cost"))
        .values("total")
    )
    return queryset.annotate(
        burn_7d=Coalesce(Subquery(spent, output_field=_MONEY), Value(ZERO), output_field=_MONEY)
    ).annotate(
        days_left=Case(
            When(remaining__lte=0, then=Value(ZERO)),
            When(burn_7d__gt=0, then=F("remaining") * Value(Decimal(BURN_DAYS)) / F("burn_7d")),
            default=None,
            output_field=DecimalField(max_digits=30, decimal_places=8),
        )
    )


def _get_spend_by_key(today, **rollup_filters):
    """{snapshot pk: real spend over the last seven days} of the keys whose rollups the filters pick."""
    rows = (
        DailyRollup.objects.filter(day__gte=burn_start(today), day__lte=today, **rollup_filters)
        .values("key")
        .annotate(total=Sum("cost"))
    )
    return {row["key"]: Decimal(row["total"]) for row in rows}


def get_burning_keys(today):
    """{snapshot pk: real spend over the last seven days} of the active keys that spent anything in them.

    Reads only the rollups of those days, so its cost follows the keys in use, not every key there
    is; which of them are still active is a second look-up by key, as joining the snapshot in the
    same query led SQLite to walk every active key instead.
    """
    spend = get_spending_keys(today)
    if not spend:
        return {}
    active = set(KeySnapshot.objects.active().filter(pk__in=list(spend)).values_list("pk", flat=True))
    return {pk: total for pk, total in spend.items() if pk in active}


def get_days_left_of(keys, today=None):
    """{pk: days left} of a few key snapshots (a page of the key list): one query of their rollups.

    The same figures ``annotate_days_left`` gives in SQL, for keys already read (rollup_sql's
    statement: Django took longer to build the grouped sum than the database to run it).
    """
    today = today or today_utc()
    spend = rollup_sql.spend_by_key(burn_start(today), today, [key.pk for key in keys])
    days = {}
    for key in keys:
        burn_7d = spend.get(key.pk, ZERO)
        if key.remaining <= 0:
            days[key.pk] = ZERO
        elif burn_7d > 0:
            days[key.pk] = key.remaining * BURN_DAYS / burn_7d
        else:
            days[key.pk] = None
    return days


def get_spending_keys(today):
    """{snapshot pk: real spend over the last seven days} of the keys that spent anything in them, deleted ones too."""
    return {pk: total for pk, total in _get_spend_by_key(today, key__isnull=False).items() if total > 0}


def get_running_out_candidates(burns):
    """The active keys that can run out: those that spent lately (``burns``) or have nothing left."""
    return list(KeySnapshot.objects.active().filter(Q(remaining__lte=0) | Q(pk__in=list(burns))))


def get_keys_running_out(today=None, within_days=SOON_DAYS, burns=None, candidates=None):
    """Active key snapshots whose budget runs out within ``within_days`` at their pace, soonest first.

    Each carries ``burn_7d`` and ``days_left``. Only keys that spent lately, or have
    nothing left, can run out, so only those are read. ``burns``: get_burning_keys(today),
    and ``candidates``: get_running_out_candidates(burns), when the caller already has them.
    """
    today = today or today_utc()
    burns = get_burning_keys(today) if burns is None else burns
    candidates = get_running_out_candidates(burns) if candidates is None else candidates
    running_out = []
    for key in candidates:
        key.burn_7d = burns.get(key.pk, ZERO)
        key.days_left = days_left_at(key.remaining, key.burn_7d / BURN_DAYS)
        if key.days_left is not None and key.days_left <= within_days:
            running_out.append(key)
    return sorted(running_out, key=lambda key: (key.days_left, key.label, key.pk))


def get_account_days_left(available, keys, own_burn_per_day):
    """Days until the available balance is gone if every key kept its pace.

    ``keys`` are (remaining, burn per day) pairs. A key spends its own budget
    first; once that is gone, keeping its pace means topping it up from the
    available balance, which the Account Key's own use draws on all along. So the
    available balance is drawn at the Account Key's pace plus the pace of every key
    already spent up, a rate that grows at each key's run-out day.
    """
    if available <= 0:
        return ZERO
    run_outs = sorted((max(remaining, ZERO) / burn, burn) for remaining, burn in keys if burn > 0)
    drawn, since, rate = ZERO, ZERO, own_burn_per_day
    for run_out_day, burn in run_outs:
        if rate > 0 and drawn + rate * (run_out_day - since) >= available:
            break
        drawn += rate * (run_out_day - since)
        since, rate = run_out_day, rate + burn
    if rate <= 0:
        return None
    days = since + (available - drawn) / rate
    return days if days <= HORIZON_DAYS else None


def get_own_spent(today):
    """What the Account Key itself spent (real cost) over the last seven days."""
    return DailyRollup.objects.filter(key__isnull=True, day__gte=burn_start(today), day__lte=today).aggregate(
        total=Coalesce(Sum("cost"), Value(ZERO), output_field=_MONEY)
    )["total"]


def get_account_forecast(available, today=None, burns=None, remaining=None, own_spent=None):
    """The account's forecast: how long the available balance lasts if every active key kept its pace.

    ``remaining``: {pk: remaining budget} of the keys in ``burns``, and ``own_spent``:
    get_own_spent(today), when the caller has already read them.
    """
    today = today or today_utc()
    burns = get_burning_keys(today) if burns is None else burns
    if remaining is None:
        remaining = dict(KeySnapshot.objects.filter(pk__in=list(burns)).values_list("pk", "remaining"))
    pairs = [(Decimal(left), burns[pk] / BURN_DAYS) for pk, left in remaining.items()]
    own_burn = Decimal(get_own_spent(today) if own_spent is None else own_spent) / BURN_DAYS
    total_burn = own_burn + sum((burn for _, burn in pairs), start=ZERO)
    return Forecast(available, total_burn, get_account_days_left(available, pairs, own_burn), today)


def describe_days_left(days):
    """How long money lasts, in words: "about 4 days", "less than a day", "not at this rate"."""
    if days is None:
        return _("not at this rate")
    days = Decimal(days)
    if days <= 0:
        return _("already spent")
    if days < 1:
        return _("less than a day")
    if days > 365:
        return _("over a year")
    whole = int(days.to_integral_value(rounding=ROUND_FLOOR))
    return ngettext("about %(days)d day", "about %(days)d days", whole) % {"days": whole}
