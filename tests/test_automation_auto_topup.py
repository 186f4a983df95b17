"""A key driven under its threshold: exactly one auto top-up, one alert email, one signed webhook."""

import json
from decimal import Decimal

import pytest
from django.core import mail

from automation import alerts, evaluation, funding, webhooks
from automation.models import Alert, AlertRule, AutoTopUpRule, RuleState
from automation.upstream import token_for
from ledger.models import AuditEvent, Outcome, TopUp
from lib import stored_text
from lib.stored_text import read_in_english
from derouter import client
from mirror import snapshot as mirror_snapshot
from mirror.models import KeySnapshot
from work.models import TaskRun
from tests.helpers import budget_of, eventually
from tests.test_automation_webhooks import readme_verifier

pytestmark = pytest.mark.django_db


def make_rules(sub_key_id, threshold="3", amount="5", **limits):
    alert = AlertRule.objects.create(
        name="Key under $3", kind=AlertRule.Kind.KEY_REMAINING_UNDER, sub_key_id=sub_key_id,
        threshold=Decimal(threshold), email_to="ops@example.com",
    )
    auto = AutoTopUpRule.objects.create(
        name="Refill $5", sub_key_id=sub_key_id, threshold=Decimal(threshold), amount=Decimal(amount), **limits
    )
    return alert, auto


def run_evaluation(capture, times=1):
    for _ in range(times):
        with capture(execute=True):
            evaluation.evaluate()


def test_a_key_under_its_threshold_gets_one_top_up_one_email_and_one_signed_webhook(
    simulator, make_key, webhook_receiver, django_capture_on_commit_callbacks
):
    _, secret = webhooks.create_endpoint(webhook_receiver.url, ["key.low", "key.topped_up"])
    created = make_key(budget="10", label="Driven")
    make_rules(created.id)
    run_evaluation(django_capture_on_commit_callbacks)
    assert TopUp.objects.count() == 0 and mail.outbox == []

    simulator.chat(created.secret.reveal(), count=2)
    simulator.add_usage(created.id, "8")
    available_before = client.get_balance().available
    run_evaluation(django_capture_on_commit_callbacks, times=2)

    (topup,) = TopUp.objects.all()
    assert (topup.actor_name, topup.amount, topup.outcome) == ("auto top-up", Decimal(5), Outcome.OK)
    assert read_in_english(topup.note) == "Auto top-up rule: Refill $5"
    assert budget_of(created.id) == Decimal(15)
    assert client.get_balance().available == available_before - 5
    assert AuditEvent.objects.get(action=AuditEvent.Action.TOPUP).actor_name == "auto top-up"

    (email,) = mail.outbox
    assert email.to == ["ops@example.com"] and "Key under $3" in email.subject
    (low,) = webhook_receiver.of_type("key.low")
    assert readme_verifier()(secret, low.headers["X-Derouter-Signature"], low.body)
    assert json.loads(low.body)["data"]["sub_key_id"] == created.id
    assert len(webhook_receiver.of_type("key.topped_up")) == 1
    assert TaskRun.objects.filter(name="automation.evaluate", status=TaskRun.Status.OK).count() == 3


def test_two_workers_on_the_same_crossing_top_up_once(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Raced")
    alert_rule, rule = make_rules(created.id)
    simulator.add_usage(created.id, "2")
    mirror_snapshot.refresh_snapshot()
    snapshot = KeySnapshot.objects.get(sub_key_id=created.id)

    # Both workers read the rule while it was still armed.
    first, second = AutoTopUpRule.objects.get(pk=rule.pk), AutoTopUpRule.objects.get(pk=rule.pk)
    funding.evaluate_auto_topup(first, snapshot)
    funding.evaluate_auto_topup(second, snapshot)
    balance = client.get_balance()
    stale_a, stale_b = AlertRule.objects.get(pk=alert_rule.pk), AlertRule.objects.get(pk=alert_rule.pk)
    with django_capture_on_commit_callbacks(execute=True):
        alerts.evaluate_alert(stale_a, snapshot, balance, Decimal(0))
        alerts.evaluate_alert(stale_b, snapshot, balance, Decimal(0))

    assert TopUp.objects.count() == 1
    assert budget_of(created.id) == Decimal(9)
    assert Alert.objects.count() == 1 and len(mail.outbox) == 1


def test_the_rule_fires_again_after_the_key_recovers_and_falls_again(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Twice")
    make_rules(created.id)
    simulator.add_usage(created.id, "2")
    run_evaluation(django_capture_on_commit_callbacks, times=2)
    assert AutoTopUpRule.objects.get().state == RuleState.ARMED  # remaining 7: the condition cleared
    simulator.add_usage(created.id, "5")
    run_evaluation(django_capture_on_commit_callbacks, times=2)
    assert TopUp.objects.filter(outcome=Outcome.OK).count() == 2
    assert Alert.objects.count() == 2 and len(mail.outbox) == 2
    assert budget_of(created.id) == Decimal(14)


def test_at_most_n_times(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Limited")
    make_rules(created.id, max_times=1)
    simulator.add_usage(created.id, "2")
    run_evaluation(django_capture_on_commit_callbacks, times=2)
    simulator.add_usage(created.id, "5")
    run_evaluation(django_capture_on_commit_callbacks)
    assert TopUp.objects.count() == 1
    assert "limit of 1" in read_in_english(AutoTopUpRule.objects.get().last_message)


def test_a_monthly_cap_limits_the_amount(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Capped")
    make_rules(created.id, monthly_cap=Decimal("7"))
    simulator.add_usage(created.id, "2")
    run_evaluation(django_capture_on_commit_callbacks, times=2)
    simulator.add_usage(created.id, "5")
    run_evaluation(django_capture_on_commit_callbacks, times=2)
    assert [row.amount for row in TopUp.objects.order_by("id")] == [Decimal(5), Decimal(2)]
    simulator.add_usage(created.id, "2")
    run_evaluation(django_capture_on_commit_callbacks)
    assert TopUp.objects.count() == 2
    assert "monthly cap" in read_in_english(AutoTopUpRule.objects.get().last_message)


def test_never_more_than_the_available_balance(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Too much")
    available = client.get_balance().available
    make_rules(created.id, amount=str(available + 1))
    simulator.add_usage(created.id, "2")
    run_evaluation(django_capture_on_commit_callbacks)
    (topup,) = TopUp.objects.all()
    assert topup.outcome == Outcome.REFUSED and "available" in stored_text.read_in_english(topup.message)
    assert budget_of(created.id) == Decimal(4)


def test_derouter_down_when_the_rule_fires_is_retried_on_the_next_pass(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Outage")
    make_rules(created.id)
    simulator.add_usage(created.id, "2")
    simulator.inject("error", path="/balance", status=503, times=10)
    with pytest.raises(client.Unavailable), django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()
    assert TaskRun.objects.get(name="automation.evaluate").status == TaskRun.Status.FAILED
    assert TopUp.objects.count() == 0
    simulator.clear_faults()
    run_evaluation(django_capture_on_commit_callbacks)
    assert TopUp.objects.get().outcome == Outcome.OK
    assert budget_of(created.id) == Decimal(9)


def test_a_dropped_top_up_is_settled_as_not_applied_and_never_repeated_blindly(
    simulator, make_key, django_capture_on_commit_callbacks, settings
):
    created = make_key(budget="4", label="Dropped")
    _, rule = make_rules(created.id)
    simulator.add_usage(created.id, "2")
    simulator.inject("drop", path=f"/sub-keys/{created.id}", method="PUT", times=1)
    run_evaluation(django_capture_on_commit_callbacks)
    (topup,) = TopUp.objects.all()
    assert topup.outcome == Outcome.UNKNOWN
    assert topup.token == token_for("auto-topup", rule.pk, 1)

    # While the request could still land, the next pass neither settles it nor moves more money.
    run_evaluation(django_capture_on_commit_callbacks)
    topup.refresh_from_db()
    assert topup.outcome == Outcome.UNKNOWN
    assert TopUp.objects.count() == 1

    # Once it cannot land any more, a pass settles it from derouter's budget and does not top up again for that crossing.
    settings.WRITE_SETTLE_SECONDS = 0
    run_evaluation(django_capture_on_commit_callbacks)
    topup.refresh_from_db()
    assert topup.outcome == Outcome.REFUSED
    assert stored_text.read_in_english(topup.message).startswith("Not applied: the key's budget did not go up by $5.00")
    assert TopUp.objects.count() == 1
    assert budget_of(created.id) == Decimal(4)


def test_a_slow_top_up_that_was_applied_is_settled_as_applied(simulator, make_key, django_capture_on_commit_callbacks, settings):
    created = make_key(budget="4", label="Slow")
    make_rules(created.id)
    simulator.add_usage(created.id, "2")
    # The client gives up before derouter answers; derouter applies the top-up anyway.
    simulator.inject("slow", path=f"/sub-keys/{created.id}", method="PUT", delay=settings.DEROUTER_READ_TIMEOUT + 1, times=1)
    run_evaluation(django_capture_on_commit_callbacks)
    assert TopUp.objects.get().outcome == Outcome.UNKNOWN
    eventually(lambda: budget_of(created.id) == Decimal(9))

    run_evaluation(django_capture_on_commit_callbacks)
    topup = TopUp.objects.get()
    assert topup.outcome == Outcome.OK
    assert stored_text.read_in_english(topup.message).startswith("Confirmed from the key's budget")
    assert budget_of(created.id) == Decimal(9)


def test_an_unknown_top_up_that_could_still_land_blocks_more_money_for_the_key(simulator, make_key):
    created = make_key(budget="4", label="Blocked")
    TopUp.objects.create(
        token=token_for("test", 1, 1), actor_name="sam", sub_key_id=created.id, amount=Decimal("3"),
        outcome=Outcome.UNKNOWN, budget_before=Decimal("2"),
    )
    message = funding.settle_earlier_topups(created.id)
    assert "no more money moves for this key" in message
    assert TopUp.objects.get().outcome == Outcome.UNKNOWN


def test_an_unknown_top_up_settles_by_the_consoles_rule_once_it_cannot_land(simulator, make_key, settings):
    settings.WRITE_SETTLE_SECONDS = 0
    created = make_key(budget="5", label="Settled")
    TopUp.objects.create(
        token=token_for("test", 1, 1), actor_name="sam", sub_key_id=created.id, amount=Decimal("3"),
        outcome=Outcome.UNKNOWN, budget_before=Decimal("2"),
    )
    assert funding.settle_earlier_topups(created.id) == ""
    assert TopUp.objects.get().outcome == Outcome.OK
