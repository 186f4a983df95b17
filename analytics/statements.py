"""Monthly statements: what a client was billed in a calendar month (UTC), in the client's display units.

Usage comes from the rollups, whose billed amounts are derouter's per-row figures
(real cost times the multiplier, rounded to six places), so a statement's total
equals the costs the client sums from its own /sub-key/usage-logs. Budgets and
top-ups are real money in our records; they are shown times the key's current
multiplier, rounded the way derouter rounds what a client sees. The closing
budget is the opening one plus top-ups minus usage, so the statement adds up.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import DecimalField, Sum, Value
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _

from analytics.figures import ZERO
from analytics.forms import first_of_month, last_of_month, parse_month
from branding.models import Branding
from ledger.models import Outcome, TopUp
from mirror.models import BILLED_PLACES, DailyRollup, billed_amount
from lib.money import model_alias

CSV_HEADER = ("date", "model", "requests", "input_tokens", "output_tokens", "billed")
_MONEY = DecimalField(max_digits=24, decimal_places=8)


class NoStatement(Exception):
    """There is no statement for that key and month; the message says why, the status how to answer."""

    def __init__(self, message, status=404):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass
class UsageLine:
    """Requests, tokens and billed amount of one day, one model, or one day x model."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    billed: Decimal = ZERO

    def add(self, other):
        self.requests += other.requests
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.billed += other.billed

    @property
    def tokens(self):
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class TopUpLine:
    created_at: datetime
    amount: Decimal
    note: str


@dataclass
class Statement:
    key: object
    month: date
    last_day: date
    is_complete: bool
    multiplier: Decimal
    reseller_name: str
    opening: Decimal
    opened_at_creation: bool
    topups: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    by_model: list = field(default_factory=list)
    by_day: list = field(default_factory=list)
    total: UsageLine = field(default_factory=UsageLine)

    @property
    def topups_total(self):
        return sum((topup.amount for topup in self.topups), start=ZERO)

    @property
    def closing(self):
        return self.opening + self.topups_total - self.total.billed


def key_created_on(key):
    """The UTC day the key was created (or first mirrored, when derouter did not say)."""
    return (key.created_at or key.first_seen_at).astimezone(UTC).date()


def check_month(key, month, today):
    """Raise NoStatement when the month has not begun or ended before the key existed."""
    if month > first_of_month(today):
        raise NoStatement(_("There is no statement for %(month)s yet: that month has not begun.") % {"month": f"{month:%Y-%m}"})
    created_on = key_created_on(key)
    if last_of_month(month) < created_on:
        raise NoStatement(
            _("There is no statement for %(month)s: the key was created on %(day)s.")
            % {"month": f"{month:%Y-%m}", "day": f"{created_on:%Y-%m-%d}"}
        )


def get_statement_months(key, today, include_current=True):
    """The months a key has statements for, newest first (the current one, so far, if asked)."""
    months = []
    month = first_of_month(today)
    if not include_current:
        month = first_of_month(month - timedelta(days=1))
    first = first_of_month(key_created_on(key))
    while month >= first:
        months.append(month)
        month = first_of_month(month - timedelta(days=1))
    return months


def _opening_real(key, starts_at):
    """The key's real remaining budget at ``starts_at``: today's, plus usage since, minus top-ups since."""
    used_since = DailyRollup.objects.filter(key=key, day__gte=starts_at.date()).aggregate(
        total=Coalesce(Sum("cost"), Value(ZERO), output_field=_MONEY)
    )["total"]
    topped_up_since = TopUp.objects.filter(
        sub_key_id=key.sub_key_id, outcome=Outcome.OK, kind=TopUp.Kind.MOVE, created_at__gte=starts_at
    ).aggregate(total=Coalesce(Sum("amount"), Value(ZERO), output_field=_MONEY))["total"]
    return key.remaining + Decimal(used_since) - Decimal(topped_up_since)


def find_statement(key, month_text, today, missing_key_message):
    """The statement of a mirrored key (None: not mirrored) for a month written YYYY-MM; NoStatement if none."""
    if key is None:
        raise NoStatement(missing_key_message)
    month = parse_month(month_text)
    if month is None:
        raise NoStatement(_("“%(month)s” is not a month: write it as YYYY-MM, e.g. 2026-10.") % {"month": month_text}, status=400)
    return build_statement(key, month, today)


def build_statement(key, month, today):
    """The statement of a key snapshot for the month starting on ``month``; NoStatement if none."""
    check_month(key, month, today)
    last_day = min(last_of_month(month), today)
    month_starts_at = datetime(month.year, month.month, 1, tzinfo=UTC)
    month_ends_at = datetime.combine(last_of_month(month), datetime.max.time(), tzinfo=UTC)
    multiplier = key.display_multiplier
    statement = Statement(
        key=key,
        month=month,
        last_day=last_day,
        is_complete=last_of_month(month) < today,
        multiplier=multiplier,
        # The portal's product name when the reseller set one: the statement is their paper, not ours.
        reseller_name=Branding.load().product_name or settings.RESELLER_NAME,
        opening=billed_amount(_opening_real(key, month_starts_at), multiplier),
        opened_at_creation=key_created_on(key) >= month,
    )
    topups = TopUp.objects.filter(
        sub_key_id=key.sub_key_id, outcome=Outcome.OK, kind=TopUp.Kind.MOVE,
        created_at__gte=month_starts_at, created_at__lte=month_ends_at,
    ).order_by("created_at", "id")
    statement.topups = [
        TopUpLine(topup.created_at, billed_amount(topup.amount, multiplier), topup.note) for topup in topups
    ]

    rollups = (
        DailyRollup.objects.filter(key=key, day__gte=month, day__lte=last_day)
        .order_by("day", "model")
        .values_list("day", "model", "requests", "input_tokens", "output_tokens", "billed")
    )
    by_model, by_day = defaultdict(UsageLine), defaultdict(UsageLine)
    for day, model, requests, input_tokens, output_tokens, billed in rollups:
        line = UsageLine(requests, input_tokens, output_tokens, Decimal(billed).quantize(BILLED_PLACES))
        statement.lines.append((day, model, line))
        # The customer's paper: per model as they name it in requests (the CSV keeps the dated names).
        by_model[model_alias(model)].add(line)
        by_day[day].add(line)
        statement.total.add(line)
    statement.by_model = sorted(by_model.items(), key=lambda item: (-item[1].billed, item[0]))
    statement.by_day = sorted(by_day.items())
    return statement


def generate_csv_rows(statement):
    """The CSV: one row per day x model, then the total row."""
    yield CSV_HEADER
    for day, model, line in statement.lines:
        yield (day.isoformat(), model, line.requests, line.input_tokens, line.output_tokens, format(line.billed, "f"))
    total = statement.total
    yield ("total", "", total.requests, total.input_tokens, total.output_tokens, format(total.billed.quantize(BILLED_PLACES), "f"))
