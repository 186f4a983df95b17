"""Allowances: a key's budget refilled to a target once per day, week or month."""

import datetime
from decimal import Decimal

import pytest

from automation import funding, tasks
from automation.models import Allowance
from automation.upstream import token_for
from ledger.models import Outcome, TopUp
from tests.helpers import budget_of

pytestmark = pytest.mark.django_db

NOV_25 = datetime.datetime(2026, 11, 25, 0, 0, 30, tzinfo=datetime.UTC)


def test_period_names():
    assert funding.get_period_key(Allowance.Period.DAY, NOV_25) == "2026-11-25"
    assert funding.get_period_key(Allowance.Period.WEEK, NOV_25) == "2026-W48"
    assert funding.get_period_key(Allowance.Period.MONTH, NOV_25) == "2026-11"


def test_an_allowance_refills_to_its_target_once_per_period(simulator, make_key):
    created = make_key(budget="10", label="Monthly")
    simulator.add_usage(created.id, "6.5")
    allowance = Allowance.objects.create(sub_key_id=created.id, key_label="Monthly", period=Allowance.Period.MONTH, target=Decimal(10))

    funding.evaluate_allowance(allowance, NOV_25)
    funding.evaluate_allowance(Allowance.objects.get(), NOV_25)
    # A second worker that read the allowance before the first one finished.
    funding.evaluate_allowance(allowance, NOV_25)

    (topup,) = TopUp.objects.all()
    assert (topup.amount, topup.outcome, topup.actor_name) == (Decimal("6.5"), Outcome.OK, "allowance")
    assert topup.token == token_for("allowance", allowance.pk, "2026-11")
    assert budget_of(created.id) == Decimal("16.5")
    assert Allowance.objects.get().last_period == "2026-11"

    simulator.add_usage(created.id, "4")
    funding.evaluate_allowance(Allowance.objects.get(), NOV_25 + datetime.timedelta(days=5))
    assert TopUp.objects.count() == 1
    funding.evaluate_allowance(Allowance.objects.get(), NOV_25 + datetime.timedelta(days=6))  # December
    assert [row.amount for row in TopUp.objects.order_by("id")] == [Decimal("6.5"), Decimal(4)]
    assert budget_of(created.id) == Decimal("20.5")


def test_a_key_at_its_target_is_left_alone(make_key):
    created = make_key(budget="10", label="Full")
    allowance = Allowance.objects.create(sub_key_id=created.id, period=Allowance.Period.DAY, target=Decimal(5))
    message = funding.evaluate_allowance(allowance, NOV_25)
    assert "Already at or above" in message
    assert TopUp.objects.count() == 0
    assert Allowance.objects.get().last_period == "2026-11-25"


def test_the_periodic_evaluation_runs_the_allowances(simulator, make_key, django_capture_on_commit_callbacks):
    created = make_key(budget="3", label="Daily")
    simulator.add_usage(created.id, "1")
    Allowance.objects.create(sub_key_id=created.id, period=Allowance.Period.DAY, target=Decimal(3))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.evaluate_periodically()
    assert TopUp.objects.get().amount == Decimal(1)
    assert budget_of(created.id) == Decimal(4)
