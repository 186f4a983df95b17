"""Alert rules on the account and on keys: measured, fired once per crossing, re-armed when clear."""

import datetime
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from automation import alerts, notify
from automation.models import Alert, AlertRule, DeliveryStatus, RuleState
from automation.upstream import get_daily_burn
from derouter import client
from mirror.models import DailyRollup, KeySnapshot

pytestmark = pytest.mark.django_db


def account_rule(kind, threshold):
    return AlertRule.objects.create(name="Account", kind=kind, threshold=Decimal(threshold), email_to="owner@example.com")


def snapshot(remaining, budget="10"):
    return KeySnapshot(sub_key_id="k", label="Key", key_id_short="sk-ant-k...", budget=Decimal(budget), spent=Decimal(budget) - Decimal(remaining), remaining=Decimal(remaining), rpm_limit=60, concurrent_limit=5)


def test_key_rules_measure_share_amount_and_spent_out():
    balance = client.Balance(Decimal(100), Decimal(10), Decimal(90))
    share = AlertRule(name="s", kind=AlertRule.Kind.KEY_REMAINING_PERCENT_UNDER, threshold=Decimal(25), sub_key_id="k")
    amount = AlertRule(name="a", kind=AlertRule.Kind.KEY_REMAINING_UNDER, threshold=Decimal(3), sub_key_id="k")
    spent = AlertRule(name="o", kind=AlertRule.Kind.KEY_SPENT_OUT, sub_key_id="k")
    assert alerts.measure(share, snapshot("2"), balance, Decimal(0))[:2] == (Decimal("20.0"), True)
    assert alerts.measure(share, snapshot("3"), balance, Decimal(0))[:2] == (Decimal("30.0"), False)
    assert alerts.measure(amount, snapshot("2.5"), balance, Decimal(0))[:2] == (Decimal("2.5"), True)
    assert alerts.measure(spent, snapshot("0"), balance, Decimal(0))[1] is True
    assert alerts.measure(spent, snapshot("0.01"), balance, Decimal(0))[1] is False
    assert alerts.measure(amount, None, balance, Decimal(0)) is None


def test_the_account_rule_fires_once_and_rearms_when_the_balance_recovers(django_capture_on_commit_callbacks):
    rule = account_rule(AlertRule.Kind.ACCOUNT_AVAILABLE_UNDER, "50")
    low, high = client.Balance(Decimal(40), Decimal(0), Decimal(40)), client.Balance(Decimal(60), Decimal(0), Decimal(60))
    with django_capture_on_commit_callbacks(execute=True):
        for balance in (low, low, high, high, low):
            alerts.evaluate_alert(AlertRule.objects.get(pk=rule.pk), None, balance, Decimal(0))
    assert list(Alert.objects.order_by("crossing").values_list("crossing", flat=True)) == [1, 2]
    assert len(mail.outbox) == 2 and mail.outbox[0].to == ["owner@example.com"]
    assert AlertRule.objects.get().state == RuleState.FIRED


def test_running_out_within_n_days_uses_the_last_seven_days_of_spend():
    today = timezone.now().astimezone(datetime.UTC).date()
    for days_ago in range(1, 8):
        DailyRollup.objects.create(day=today - datetime.timedelta(days=days_ago), key=None, model="m", cost=Decimal(10))
    DailyRollup.objects.create(day=today, key=None, model="m", cost=Decimal(1000))  # today is not a full day yet
    assert get_daily_burn(today) == Decimal(10)
    rule = account_rule(AlertRule.Kind.ACCOUNT_RUNS_OUT_WITHIN, "14")
    assert alerts.measure(rule, None, client.Balance(Decimal(100), Decimal(0), Decimal(100)), Decimal(10))[:2] == (Decimal("10.0"), True)
    assert alerts.measure(rule, None, client.Balance(Decimal(200), Decimal(0), Decimal(200)), Decimal(10))[:2] == (Decimal("20.0"), False)


class FailingEmailBackend:
    """An SMTP server that is down."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server down")


def test_an_email_that_cannot_be_sent_is_retried_then_marked_failed(settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "tests.test_automation_alerts.FailingEmailBackend"
    rule = account_rule(AlertRule.Kind.ACCOUNT_AVAILABLE_UNDER, "50")
    with django_capture_on_commit_callbacks(execute=True):
        alert = alerts.evaluate_alert(rule, None, client.Balance(Decimal(1), Decimal(0), Decimal(1)), Decimal(0))
    alert.refresh_from_db()
    assert (alert.email_status, alert.email_attempts) == (DeliveryStatus.RETRYING, 1)
    assert "SMTP server down" in alert.email_error
    notify.send_alert_email.call_local(alert.pk)
    notify.send_alert_email.call_local(alert.pk)
    alert.refresh_from_db()
    assert (alert.email_status, alert.email_attempts) == (DeliveryStatus.FAILED, 3)
