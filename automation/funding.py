"""Money the worker moves on its own: automatic top-ups and allowances, through the top-up service.

Every move is a normal ledger row written by ``dashboard.topups.top_up`` with a token
derived from the rule and the occasion (the crossing, the period), so any number of
workers trying the same move make one ledger row and at most one upstream call.
Before anything moves for a key, an earlier top-up of that key whose outcome is unknown
is settled against derouter's budget for it; if that cannot be told, nothing moves.
"""

import datetime
from decimal import Decimal

from django.db.models import F, Sum
from django.utils import timezone

from automation import actors
from automation.models import Allowance, AutoTopUpRule, RuleState
from automation.upstream import get_live_key, token_for
from dashboard import topups
from derouter import client
from ledger.models import UNSETTLED_OUTCOMES, Outcome, TopUp
from lib.money import usd

TAKEN_OUTCOMES = (Outcome.OK, Outcome.PENDING, Outcome.UNKNOWN)


def settle_earlier_topups(sub_key_id):
    """Settle the key's pending and unknown top-ups by the console's rule; why no money may move yet, or "".

    ``dashboard.topups.settle_key`` reads derouter's budget under the key's lock and
    settles from it. A row it cannot settle yet (its request may still be running, or
    derouter's figures do not tell) blocks every further automatic move for the key.
    """
    topups.settle_key(sub_key_id)
    row = TopUp.objects.filter(sub_key_id=sub_key_id, outcome__in=UNSETTLED_OUTCOMES).order_by("created_at", "id").first()
    if row is None:
        return ""
    return (
        f"The top-up of {usd(row.amount)} on {row.created_at:%Y-%m-%d %H:%M} UTC is not settled yet "
        "(derouter's budget does not tell yet whether it was applied); no more money moves for this key until it is."
    )


def _get_settled_key(sub_key_id):
    """(the key as derouter has it now, None) once its earlier top-ups are settled, else (None, why)."""
    sub_key = get_live_key(sub_key_id)
    if sub_key is None:
        return None, "The key no longer exists at derouter."
    blocked = settle_earlier_topups(sub_key.id)
    if blocked:
        return None, blocked
    return sub_key, ""


def _move_money(actor_name, sub_key, amount, token, note):
    """Top the key up once for this token, within the available balance read now; return a message."""
    balance = client.get_balance()
    attempt = topups.top_up(actors.WorkerActor(actor_name), sub_key, amount, note, token, balance.available)
    row = attempt.topup
    return f"Top-up of {usd(row.amount)}: {row.get_outcome_display().lower()}. {row.message}".strip()


def _tokens_of(rule):
    return [token_for("auto-topup", rule.pk, crossing) for crossing in range(1, rule.crossings + 1)]


def _get_allowed_amount(rule, now):
    """How much this crossing may add under the rule's limits, with why when it is nothing."""
    taken = TopUp.objects.filter(token__in=_tokens_of(rule), outcome__in=TAKEN_OUTCOMES)
    if rule.max_times is not None and taken.count() >= rule.max_times:
        return Decimal(0), f"Reached its limit of {rule.max_times} top-ups."
    amount = rule.amount
    if rule.monthly_cap is not None:
        month_start = now.astimezone(datetime.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        this_month = taken.filter(created_at__gte=month_start).aggregate(total=Sum("amount"))["total"] or Decimal(0)
        amount = min(amount, rule.monthly_cap - this_month)
        if amount <= 0:
            return Decimal(0), f"Reached its monthly cap of {usd(rule.monthly_cap)}."
    return amount, ""


def evaluate_auto_topup(rule, snapshot, now=None):
    """Fire the rule once per crossing of its threshold; return what happened (empty: nothing)."""
    now = now or timezone.now()
    if snapshot is None or snapshot.is_deleted:
        return "The key is not in derouter's list."
    if snapshot.remaining >= rule.threshold:
        if rule.state == RuleState.FIRED:
            AutoTopUpRule.objects.filter(pk=rule.pk, state=RuleState.FIRED).update(state=RuleState.ARMED)
        return ""
    if rule.state == RuleState.ARMED:
        # Only one worker moves the rule to its next crossing; the others join that crossing.
        AutoTopUpRule.objects.filter(pk=rule.pk, state=RuleState.ARMED, crossings=rule.crossings).update(
            state=RuleState.FIRED, crossings=F("crossings") + 1
        )
        rule.refresh_from_db()
    token = token_for("auto-topup", rule.pk, rule.crossings)
    if TopUp.objects.filter(token=token).exists():
        return ""
    amount, why_not = _get_allowed_amount(rule, now)
    if amount <= 0:
        return why_not
    sub_key, why_not = _get_settled_key(rule.sub_key_id)
    if sub_key is None:
        return why_not
    if sub_key.remaining >= rule.threshold:
        # Topped up by someone else since the snapshot was taken.
        return ""
    note = f"Auto top-up rule: {rule.name}"[:200]
    return _move_money(actors.AUTO_TOP_UP, sub_key, amount, token, note)


def get_period_key(period, now):
    """The name of the period ``now`` falls in (UTC): 2026-11-25, 2026-W48 or 2026-11."""
    moment = now.astimezone(datetime.UTC)
    if period == Allowance.Period.DAY:
        return moment.date().isoformat()
    if period == Allowance.Period.WEEK:
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{moment.year}-{moment.month:02d}"


def evaluate_allowance(allowance, now=None):
    """Refill the key to its target once per period; return what happened (empty: nothing)."""
    now = now or timezone.now()
    period = get_period_key(allowance.period, now)
    if allowance.last_period == period:
        return ""
    token = token_for("allowance", allowance.pk, period)
    if not TopUp.objects.filter(token=token).exists():
        sub_key, why_not = _get_settled_key(allowance.sub_key_id)
        if sub_key is None:
            return why_not
        amount = allowance.target - sub_key.remaining
        if amount > 0:
            note = f"Allowance {period}: refill to {usd(allowance.target)}"[:200]
            message = _move_money(actors.ALLOWANCE, sub_key, amount, token, note)
        else:
            message = f"Already at or above {usd(allowance.target)} for {period}."
    else:
        message = ""
    Allowance.objects.filter(pk=allowance.pk).update(last_period=period, last_message=message or F("last_message"))
    return message
