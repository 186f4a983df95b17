"""Alert rules: measured against the key snapshot and the balance, fired once per crossing."""

from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_noop

from automation import notify, webhooks
from automation.models import Alert, AlertRule, DeliveryStatus, RuleState
from lib.money import usd
from lib.stored_text import note, read_in_english
from lib.queue import enqueue_or_warn

Kind = AlertRule.Kind
EVENT_OF_KIND = {
    Kind.ACCOUNT_AVAILABLE_UNDER: "account.low",
    Kind.ACCOUNT_RUNS_OUT_WITHIN: "account.low",
    Kind.KEY_REMAINING_PERCENT_UNDER: "key.low",
    Kind.KEY_REMAINING_UNDER: "key.low",
    Kind.KEY_SPENT_OUT: "key.spent_out",
}


def measure(rule, snapshot, balance, daily_burn):
    """(value, holds, message) for the rule now; None when it cannot be measured (no such key)."""
    if rule.kind == Kind.ACCOUNT_AVAILABLE_UNDER:
        value = balance.available
        return value, value < rule.threshold, note(gettext_noop("The account's available balance is %(value)s, under %(threshold)s."), value=usd(value), threshold=usd(rule.threshold))
    if rule.kind == Kind.ACCOUNT_RUNS_OUT_WITHIN:
        if daily_burn <= 0:
            return None, False, ""
        days = (balance.balance / daily_burn).quantize(Decimal("0.1"))
        return (
            days,
            days < rule.threshold,
            note(gettext_noop("At %(burn)s a day (last 7 days), the balance of %(balance)s lasts about %(days)s days."),
                 burn=usd(daily_burn), balance=usd(balance.balance), days=days),
        )
    if snapshot is None or snapshot.is_deleted:
        return None
    name = snapshot.label or snapshot.key_id_short
    if rule.kind == Kind.KEY_REMAINING_PERCENT_UNDER:
        percent = Decimal(0) if snapshot.budget <= 0 else (snapshot.remaining / snapshot.budget * 100).quantize(Decimal("0.1"))
        return (
            percent,
            percent < rule.threshold,
            note(gettext_noop("%(name)s has %(remaining)s left, %(percent)s%% of its %(budget)s budget."),
                 name=name, remaining=usd(snapshot.remaining), percent=percent, budget=usd(snapshot.budget)),
        )
    if rule.kind == Kind.KEY_REMAINING_UNDER:
        value = snapshot.remaining
        return value, value < rule.threshold, note(gettext_noop("%(name)s has %(value)s left, under %(threshold)s."), name=name, value=usd(value), threshold=usd(rule.threshold))
    value = snapshot.remaining
    return value, value <= 0, note(gettext_noop("%(name)s has spent its whole budget of %(budget)s."), name=name, budget=usd(snapshot.budget))


def _fire(rule, value, message, snapshot):
    """Record the crossing once (whichever worker wins), then queue its email and webhooks."""
    with transaction.atomic():
        claimed = AlertRule.objects.filter(pk=rule.pk, state=RuleState.ARMED, crossings=rule.crossings).update(
            state=RuleState.FIRED, crossings=F("crossings") + 1
        )
        if not claimed:
            return None
        rule.refresh_from_db()
        recipients = rule.recipients
        alert = Alert.objects.create(
            rule=rule,
            rule_name=rule.name,
            crossing=rule.crossings,
            event_type=EVENT_OF_KIND[rule.kind],
            sub_key_id=rule.sub_key_id,
            key_label=snapshot.label if snapshot else "",
            message=message,
            value=value,
            email_to=", ".join(recipients),
            email_status=DeliveryStatus.PENDING if recipients else DeliveryStatus.NONE,
        )
        data = {
            "rule": rule.name,
            "rule_id": rule.pk,
            "kind": rule.kind,
            "crossing": rule.crossings,
            "threshold": rule.threshold,
            "value": value,
            # Programs read the payload: its message is in English, as before.
            "message": read_in_english(message),
            "sub_key_id": rule.sub_key_id,
            "label": alert.key_label,
        }
        webhooks.emit(alert.event_type, data, f"alert:{rule.pk}:{rule.crossings}", alert=alert)
        if recipients:
            transaction.on_commit(lambda: enqueue_or_warn(notify.send_alert_email, alert.pk))
    return alert


def evaluate_alert(rule, snapshot, balance, daily_burn):
    """Fire on a crossing, re-arm when the condition clears; return the Alert fired, if any."""
    measured = measure(rule, snapshot, balance, daily_burn)
    if measured is None:
        return None
    value, holds, message = measured
    AlertRule.objects.filter(pk=rule.pk).update(last_value=value, last_evaluated_at=timezone.now())
    if holds and rule.state == RuleState.ARMED:
        return _fire(rule, value, message, snapshot)
    if not holds and rule.state == RuleState.FIRED:
        AlertRule.objects.filter(pk=rule.pk, state=RuleState.FIRED).update(state=RuleState.ARMED)
    return None
