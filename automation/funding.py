"""Money the worker moves on its own: automatic top-ups and allowances, through the top-up service.

Every move is a normal ledger row written by ``dashboard.topups.top_up`` with a token
derived from the rule and the occasion (the crossing, the period), so any number of
workers trying the same move make one ledger row and at most one upstream call.
Before anything moves for a key, an earlier top-up of that key whose outcome is unknown
is settled against derouter's budget for it; if that cannot be told, nothing moves.
A move settled "not applied" is tried again with backoff (``retry_delay``) under the
occasion's next attempt token, at most AUTOMATION_RETRY_ATTEMPTS times; under the key's
lock a retry is dropped when an earlier attempt turns out to have landed late.
"""

import datetime
from decimal import Decimal

from django.conf import settings
from django.db.models import F, Sum
from django.db.models.functions import Greatest
from django.utils import timezone
from django.utils.translation import gettext_noop

from automation import actors
from automation.models import Allowance, AutoTopUpRule, RuleState
from automation.upstream import token_for
from dashboard import topups
from dashboard.upstream import get_sub_key_now
from derouter import client
from ledger.models import UNSETTLED_OUTCOMES, Outcome, TopUp
from lib.money import usd
from lib import stored_text
from lib.text import cut

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
    return stored_text.note(
        gettext_noop("The top-up of %(amount)s on %(when)s UTC is not settled yet (derouter's budget does not tell yet "
                     "whether it was applied); no more money moves for this key until it is."),
        amount=usd(row.amount), when=f"{row.created_at:%Y-%m-%d %H:%M}",
    )


def _get_settled_key(sub_key_id):
    """(the key as derouter has it now, None) once its earlier top-ups are settled, else (None, why)."""
    sub_key = get_sub_key_now(sub_key_id)
    if sub_key is None:
        return None, stored_text.note(gettext_noop("The key no longer exists at derouter."))
    blocked = settle_earlier_topups(sub_key.id)
    if blocked:
        return None, blocked
    return sub_key, ""


def _move_money(actor_name, sub_key, amount, token, note, check=None):
    """Top the key up once for this token, within the available balance read now; return a message."""
    balance = client.get_balance()
    attempt = topups.top_up(actors.WorkerActor(actor_name), sub_key, amount, note, token, balance.available, check=check)
    row = attempt.topup
    return stored_text.note(gettext_noop("Top-up of %(amount)s: %(outcome)s. %(message)s"), amount=usd(row.amount),
                            outcome=stored_text.note_of_label(row.get_outcome_display()), message=row.message)


def _ledger_note(msgid, name):
    """The ledger row's note naming a rule, within the note's column: the name is cut until the stored note fits."""
    limit = TopUp._meta.get_field("note").max_length
    text = stored_text.note(msgid, name=name)
    while len(text) > limit and name:
        name = cut(name, len(name) - (len(text) - limit))
        text = stored_text.note(msgid, name=name)
    return text


def attempt_token(kind, owner_id, occasion, attempt):
    """The one-time token of one attempt at an occasion (a crossing, a period); the first attempt's is the plain one."""
    return token_for(kind, owner_id, occasion if attempt == 0 else f"{occasion}.{attempt}")


def retry_delay(attempt):
    """Seconds to wait, after a "not applied" move, before ``attempt`` (1 for the first retry): doubling, capped."""
    delay = settings.AUTOMATION_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0)
    return min(delay, settings.AUTOMATION_RETRY_MAX_SECONDS)


def _retry_wait(row, attempt):
    """Why the next attempt after ``row`` (settled "not applied") must not go yet, or "" when it may (by the clock now)."""
    now = timezone.now()
    if attempt >= settings.AUTOMATION_RETRY_ATTEMPTS:
        return stored_text.note(gettext_noop("Gave up after %(count)s top-ups that were not applied; the last: %(message)s"),
                                count=attempt, message=row.message)
    retry_at = (row.sent_at or row.created_at) + datetime.timedelta(seconds=retry_delay(attempt))
    if now < retry_at:
        return stored_text.note(gettext_noop("The top-up was not applied (%(message)s); trying again after %(when)s UTC."),
                                message=row.message, when=f"{retry_at:%Y-%m-%d %H:%M:%S}")
    return ""


def _landed_already(tokens):
    """For a check under the key's lock: an earlier attempt of this occasion that landed after all."""
    if TopUp.objects.filter(token__in=tokens, outcome=Outcome.OK).exists():
        return stored_text.note(gettext_noop("an earlier attempt of the same top-up landed after all."))
    return ""


def _tokens_of(rule):
    """Every attempt's token of every crossing so far."""
    return [
        attempt_token("auto-topup", rule.pk, crossing, attempt)
        for crossing in range(1, rule.crossings + 1)
        for attempt in range(rule.max_attempt + 1)
    ]


def _get_allowed_amount(rule, now):
    """How much this crossing may add under the rule's limits, with why when it is nothing."""
    taken = TopUp.objects.filter(token__in=_tokens_of(rule), outcome__in=TAKEN_OUTCOMES)
    if rule.max_times is not None and taken.count() >= rule.max_times:
        return Decimal(0), stored_text.note(gettext_noop("Reached its limit of %(count)s top-ups."), count=rule.max_times)
    amount = rule.amount
    if rule.monthly_cap is not None:
        month_start = now.astimezone(datetime.UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        this_month = taken.filter(created_at__gte=month_start).aggregate(total=Sum("amount"))["total"] or Decimal(0)
        amount = min(amount, rule.monthly_cap - this_month)
        if amount <= 0:
            return Decimal(0), stored_text.note(gettext_noop("Reached its monthly cap of %(cap)s."), cap=usd(rule.monthly_cap))
    return amount, ""


def _settled(row):
    """The ledger row, settled first from derouter's budget if its outcome is still open."""
    if row is not None and row.outcome in UNSETTLED_OUTCOMES:
        topups.settle_key(row.sub_key_id)
        row.refresh_from_db()
    return row


def _current_attempt(rule):
    """The ledger row of the rule's current crossing and attempt, or None."""
    if not rule.crossings:
        return None
    return TopUp.objects.filter(token=attempt_token("auto-topup", rule.pk, rule.crossings, rule.crossing_attempt)).first()


def _claim(rule, **changes):
    """Move the rule on from exactly the state this worker read; only one worker's claim wins."""
    AutoTopUpRule.objects.filter(
        pk=rule.pk, state=rule.state, crossings=rule.crossings, crossing_attempt=rule.crossing_attempt
    ).update(**changes)
    rule.refresh_from_db()


def evaluate_auto_topup(rule, figures, now=None):
    """Fire the rule once per crossing of its threshold, from derouter's current figures; return what happened.

    A key at or above its threshold re-arms the rule. Under it, a new crossing starts when
    the rule is armed, or when the last crossing's top-up landed and the key is under its
    threshold again all the same (spent back down before a pass saw it above). A crossing
    whose top-up settled "not applied" is tried again with backoff under a new token; one
    whose outcome is still open waits for its settlement. ``figures`` is the key as derouter
    listed it for this pass (or its snapshot row), None when it is not listed.
    """
    now = now or timezone.now()
    if figures is None or getattr(figures, "is_deleted", False):
        return stored_text.note(gettext_noop("The key is not in derouter's list."))
    if figures.remaining >= rule.threshold:
        if rule.state == RuleState.FIRED:
            AutoTopUpRule.objects.filter(pk=rule.pk, state=RuleState.FIRED).update(state=RuleState.ARMED)
        return ""
    row = _settled(_current_attempt(rule))
    if rule.state == RuleState.ARMED or (row is not None and row.outcome == Outcome.OK):
        _claim(rule, state=RuleState.FIRED, crossings=F("crossings") + 1, crossing_attempt=0)
    elif row is not None and row.outcome == Outcome.REFUSED:
        wait = _retry_wait(row, rule.crossing_attempt + 1)
        if wait:
            return wait
        _claim(rule, crossing_attempt=F("crossing_attempt") + 1, max_attempt=Greatest("max_attempt", rule.crossing_attempt + 1))
    elif row is not None:
        return ""
    token = attempt_token("auto-topup", rule.pk, rule.crossings, rule.crossing_attempt)
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
    earlier = [attempt_token("auto-topup", rule.pk, rule.crossings, attempt) for attempt in range(rule.crossing_attempt)]

    def still_wanted(current):
        if current.remaining >= rule.threshold:
            return stored_text.note(gettext_noop("the key is at or above the rule's threshold again."))
        return _landed_already(earlier)

    note = _ledger_note(gettext_noop("Auto top-up rule: %(name)s"), rule.name)
    return _move_money(actors.AUTO_TOP_UP, sub_key, amount, token, note, check=still_wanted)


def get_period_key(period, now):
    """The name of the period ``now`` falls in (UTC): 2026-11-25, 2026-W48 or 2026-11."""
    moment = now.astimezone(datetime.UTC)
    if period == Allowance.Period.DAY:
        return moment.date().isoformat()
    if period == Allowance.Period.WEEK:
        year, week, _ = moment.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{moment.year}-{moment.month:02d}"


def _mark_refilled(allowance, period, message):
    Allowance.objects.filter(pk=allowance.pk).update(last_period=period, last_message=message or F("last_message"))
    return message


def evaluate_allowance(allowance, now=None):
    """Refill the key to its target once per period; return what happened (empty: nothing).

    A refill settled "not applied" is tried again with backoff under a new token; the
    period counts as refilled once a refill landed (or the key was at its target).
    """
    now = now or timezone.now()
    period = get_period_key(allowance.period, now)
    if allowance.last_period == period:
        return ""
    attempt = allowance.period_attempt if allowance.attempt_period == period else 0
    token = attempt_token("allowance", allowance.pk, period, attempt)
    row = _settled(TopUp.objects.filter(token=token).first())
    if row is not None and row.outcome == Outcome.REFUSED:
        wait = _retry_wait(row, attempt + 1)
        if wait:
            if attempt + 1 >= settings.AUTOMATION_RETRY_ATTEMPTS:
                return _mark_refilled(allowance, period, wait)
            return wait
        Allowance.objects.filter(pk=allowance.pk, attempt_period=allowance.attempt_period, period_attempt=allowance.period_attempt).update(
            attempt_period=period, period_attempt=attempt + 1
        )
        allowance.refresh_from_db()
        return evaluate_allowance(allowance, now) if allowance.period_attempt == attempt + 1 else ""
    if row is not None:
        # Ours, or another worker's of this period: done once it landed, else wait for its settlement.
        return _mark_refilled(allowance, period, "") if row.outcome == Outcome.OK else ""
    sub_key, why_not = _get_settled_key(allowance.sub_key_id)
    if sub_key is None:
        return why_not
    amount = allowance.target - sub_key.remaining
    if amount <= 0:
        return _mark_refilled(allowance, period, stored_text.note(gettext_noop("Already at or above %(target)s for %(period)s."), target=usd(allowance.target), period=period))
    earlier = [attempt_token("allowance", allowance.pk, period, earlier) for earlier in range(attempt)]
    note = stored_text.note(gettext_noop("Allowance %(period)s: refill to %(target)s"), period=period, target=usd(allowance.target))
    message = _move_money(actors.ALLOWANCE, sub_key, amount, token, note, check=lambda current: _landed_already(earlier))
    if TopUp.objects.filter(token=token, outcome=Outcome.OK).exists():
        return _mark_refilled(allowance, period, message)
    Allowance.objects.filter(pk=allowance.pk).update(last_message=message)
    return message
