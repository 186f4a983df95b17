"""Automatic money from derouter's current figures: a rule re-arms from them, a "not applied" move is tried again with backoff."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from automation import evaluation, funding
from automation.models import Allowance, AutoTopUpRule, RuleState
from automation.upstream import token_for
from ledger.models import Outcome, TopUp
from lib import stored_text
from tests.helpers import budget_of

pytestmark = pytest.mark.django_db


def auto_rule(sub_key_id, threshold="3", amount="5", **limits):
    return AutoTopUpRule.objects.create(
        name="Refill $5", sub_key_id=sub_key_id, threshold=Decimal(threshold), amount=Decimal(amount), **limits
    )


def run_pass(capture):
    with capture(execute=True):
        evaluation.evaluate()


def test_a_key_spent_back_under_its_threshold_before_a_pass_saw_it_above_is_a_new_crossing(
    simulator, make_key, django_capture_on_commit_callbacks
):
    created = make_key(budget="4", label="Spent back")
    rule = auto_rule(created.id)
    simulator.add_usage(created.id, "2")  # remaining 2, under 3
    run_pass(django_capture_on_commit_callbacks)
    assert budget_of(created.id) == Decimal(9)  # remaining 7

    # Spent back under the threshold before any pass saw the key above it.
    simulator.add_usage(created.id, "5")  # remaining 2
    run_pass(django_capture_on_commit_callbacks)

    rule.refresh_from_db()
    assert (rule.state, rule.crossings) == (RuleState.FIRED, 2)
    assert [row.outcome for row in TopUp.objects.order_by("id")] == [Outcome.OK, Outcome.OK]
    assert budget_of(created.id) == Decimal(14)


def test_a_crossing_waits_while_its_top_up_is_unsettled_and_never_fires_twice_for_it(
    simulator, make_key, django_capture_on_commit_callbacks
):
    created = make_key(budget="4", label="Unsettled")
    auto_rule(created.id)
    simulator.add_usage(created.id, "2")
    simulator.inject("drop", path=f"/sub-keys/{created.id}", method="PUT", times=1)
    run_pass(django_capture_on_commit_callbacks)
    run_pass(django_capture_on_commit_callbacks)
    assert [row.outcome for row in TopUp.objects.all()] == [Outcome.UNKNOWN]
    assert budget_of(created.id) == Decimal(4)


def test_a_crossing_whose_top_up_settled_not_applied_is_tried_again_after_its_backoff(
    simulator, make_key, settings, django_capture_on_commit_callbacks
):
    created = make_key(budget="4", label="Retried")
    rule = auto_rule(created.id)
    simulator.add_usage(created.id, "2")
    simulator.inject("error", path=f"/sub-keys/{created.id}", method="PUT", status=500, times=1)
    run_pass(django_capture_on_commit_callbacks)
    first = TopUp.objects.get()
    assert first.outcome == Outcome.UNKNOWN  # a 500 does not say whether it was applied

    # Settled "not applied"; the backoff has not gone by yet, so nothing more moves.
    settings.WRITE_SETTLE_SECONDS = 0
    run_pass(django_capture_on_commit_callbacks)
    first.refresh_from_db()
    assert first.outcome == Outcome.REFUSED
    assert TopUp.objects.count() == 1
    assert "trying again after" in AutoTopUpRule.objects.get().last_message

    # Once the backoff has gone by, the crossing is tried again under its next attempt's token.
    settings.AUTOMATION_RETRY_BASE_SECONDS = 0
    run_pass(django_capture_on_commit_callbacks)
    second = TopUp.objects.exclude(pk=first.pk).get()
    assert second.outcome == Outcome.OK
    assert second.token == funding.attempt_token("auto-topup", rule.pk, 1, 1)
    assert budget_of(created.id) == Decimal(9)
    rule.refresh_from_db()
    assert (rule.crossings, rule.crossing_attempt) == (1, 1)


def test_the_backoff_doubles_up_to_its_maximum(settings):
    settings.AUTOMATION_RETRY_BASE_SECONDS = 60
    settings.AUTOMATION_RETRY_MAX_SECONDS = 600
    assert [funding.retry_delay(attempt) for attempt in range(1, 7)] == [60, 120, 240, 480, 600, 600]


def test_a_retry_is_dropped_when_the_earlier_attempt_landed_late(simulator, make_key, settings, django_capture_on_commit_callbacks):
    created = make_key(budget="4", label="Landed late")
    rule = auto_rule(created.id)
    simulator.add_usage(created.id, "2")
    run_pass(django_capture_on_commit_callbacks)
    assert budget_of(created.id) == Decimal(9)
    # The ledger had it as not applied (settled before it landed): a retry must not move money again.
    first = TopUp.objects.get()
    TopUp.objects.filter(pk=first.pk).update(
        outcome=Outcome.REFUSED, outcome_inferred=True, sent_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    simulator.add_usage(created.id, "5")  # remaining 2: under the threshold again, crossing 1 still open
    settings.AUTOMATION_RETRY_BASE_SECONDS = 0
    run_pass(django_capture_on_commit_callbacks)

    first.refresh_from_db()
    assert first.outcome == Outcome.OK  # the late write was found, under the key's lock, before the retry went out
    retry = TopUp.objects.exclude(pk=first.pk).get()
    assert retry.token == funding.attempt_token("auto-topup", rule.pk, 1, 1)
    assert retry.outcome == Outcome.REFUSED and "landed after all" in stored_text.read_in_english(retry.message)
    assert retry.budget_before is None  # never sent
    assert budget_of(created.id) == Decimal(9)


def test_an_allowance_refill_settled_not_applied_is_tried_again_and_the_period_ends_refilled(
    simulator, make_key, settings
):
    now = timezone.now()
    period = funding.get_period_key(Allowance.Period.MONTH, now)
    created = make_key(budget="10", label="Allowance retried")
    simulator.add_usage(created.id, "6")
    allowance = Allowance.objects.create(sub_key_id=created.id, period=Allowance.Period.MONTH, target=Decimal(10))
    simulator.inject("drop", path=f"/sub-keys/{created.id}", method="PUT", times=1)
    funding.evaluate_allowance(allowance, now)
    first = TopUp.objects.get()
    assert first.token == token_for("allowance", allowance.pk, period) and first.outcome == Outcome.UNKNOWN
    assert Allowance.objects.get().last_period == ""  # not refilled yet

    settings.WRITE_SETTLE_SECONDS = 0
    settings.AUTOMATION_RETRY_BASE_SECONDS = 0
    funding.evaluate_allowance(Allowance.objects.get(), now)

    first.refresh_from_db()
    assert first.outcome == Outcome.REFUSED
    second = TopUp.objects.exclude(pk=first.pk).get()
    assert (second.amount, second.outcome) == (Decimal(6), Outcome.OK)
    assert budget_of(created.id) == Decimal(16)
    assert Allowance.objects.get().last_period == period
    funding.evaluate_allowance(Allowance.objects.get(), now)
    assert TopUp.objects.count() == 2
