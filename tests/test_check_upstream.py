"""manage.py check_upstream finds each convention the simulator plays, stores it, and leaves the balance as it was."""

from decimal import Decimal
from io import StringIO

import functools
import pytest
import requests
from django.core.management import CommandError, call_command

from derouter import conventions
from derouter.models import ProbeRun
from tests.simulator_helpers import balance, list_keys

pytestmark = pytest.mark.django_db


@pytest.fixture
def playing(private_simulators):
    """playing(**played) -> a private simulator playing those conventions, wired into the settings."""
    return functools.partial(private_simulators, balance="100")


def probe():
    out = StringIO()
    call_command("check_upstream", stdout=out)
    return out.getvalue()


def test_the_reference_reading_is_found_and_the_balance_left_as_it_was(playing):
    sim = playing()
    before = balance(sim)
    report = probe()
    found = conventions.current()
    assert found.probed and found.simulated and not found.probed_for_real
    assert (found.amounts, found.multiplier, found.limits_settable, found.reclaim) == (
        conventions.REAL, conventions.ANYTIME, True, conventions.APPLIED)
    assert found.write_statuses == {"create": 200, "update": 200, "delete": 200}
    assert balance(sim) == before and list_keys(sim) == []
    assert "Balance available before 100.0000, after 100.0000 (unchanged)" in report
    assert "Amounts (*Virtual): in real dollars" in report and "Evidence:" in report


def test_the_guides_reading_is_found(playing):
    playing(amounts="customer", multiplier_after_creation="ignored", fixed_limits=True)
    report = probe()
    found = conventions.current()
    assert found.amounts == conventions.CUSTOMER
    assert (found.multiplier, found.multiplier_put) == (conventions.AT_CREATION, conventions.IGNORED)
    assert not found.limits_settable
    assert "customer's units" in report and "fixed (60 rpm / 5 concurrent)" in report


def test_a_multiplier_refused_after_creation(playing):
    playing(multiplier_after_creation="refused")
    probe()
    assert (conventions.current().multiplier, conventions.current().multiplier_put) == (
        conventions.AT_CREATION, conventions.REFUSED)


def test_a_multiplier_kept_only_after_creation_still_tells_the_units_apart(playing):
    playing(amounts="customer", multiplier_at_creation="ignored")
    probe()
    found = conventions.current()
    assert (found.multiplier, found.amounts) == (conventions.AFTER_CREATION, conventions.CUSTOMER)


def test_a_multiplier_never_kept(playing):
    playing(multiplier_at_creation="ignored", multiplier_after_creation="ignored")
    report = probe()
    assert conventions.current().multiplier == conventions.NEVER
    assert "never kept" in report


@pytest.mark.parametrize("write_answers, statuses, bodies", [
    ("created", {"create": 201, "update": 204, "delete": 204}, {"create": True, "update": False, "delete": False}),
    ("empty", {"create": 201, "update": 204, "delete": 204}, {"create": False, "update": False, "delete": False}),
])
def test_write_answers_are_found(playing, write_answers, statuses, bodies):
    sim = playing(write_answers=write_answers)
    before = balance(sim)
    probe()
    assert conventions.current().write_statuses == statuses
    assert conventions.current().write_bodies == bodies
    assert balance(sim) == before


@pytest.mark.parametrize("reclaim", ["ignored", "refused"])
def test_reclaim_unsupported_is_found(playing, reclaim):
    sim = playing(reclaim=reclaim)
    before = balance(sim)
    probe()
    assert conventions.current().reclaim == reclaim
    assert not conventions.current().reclaim_supported
    assert balance(sim) == before


def test_every_step_is_recorded(playing):
    playing()
    probe()
    run = ProbeRun.objects.get()
    names = [step.name for step in run.steps.all()]
    assert names[0] == "balance before" and names[-1] == "balance after"
    assert {"create with markup", "markup after creation", "top up", "reclaim", "delete"} <= set(names)
    assert all(step.status for step in run.steps.all())
    assert not any("sk-ant-" in step.request + step.outcome for step in run.steps.all())


def test_a_failure_mid_way_deletes_the_probe_key(playing):
    sim = playing()
    before = balance(sim)
    requests.post(f"{sim.base_url}/_sim/faults", json={"mode": "error", "status": 500, "path": "/sub-keys/",
                                                      "method": "PUT", "times": 0}, timeout=5).raise_for_status()
    requests.post(f"{sim.base_url}/_sim/faults", json={"mode": "slow", "delay": 0, "path": "/sub-keys/",
                                                      "method": "DELETE", "times": 1}, timeout=5)
    with pytest.raises(CommandError, match="Nothing is left at derouter"):
        probe()
    assert balance(sim) == before and list_keys(sim) == []
    assert ProbeRun.objects.get().outcome == ProbeRun.Outcome.FAILED
    assert not conventions.current().probed


def test_a_failure_that_cannot_clean_up_says_exactly_what_is_left(playing):
    sim = playing()
    requests.post(f"{sim.base_url}/_sim/faults", json={"mode": "error", "status": 500, "path": "/sub-keys/",
                                                      "times": 0}, timeout=5).raise_for_status()
    with pytest.raises(CommandError) as raised:
        probe()
    left = list_keys(sim)
    assert len(left) == 1
    assert left[0]["id"] in str(raised.value) and "still at derouter" in str(raised.value)
    assert ProbeRun.objects.get().left_over


def test_too_little_balance_is_refused_before_any_key_is_made(playing):
    sim = playing(balance="0.5")
    with pytest.raises(CommandError, match="needs \\$1 available"):
        probe()
    assert list_keys(sim) == []


def test_the_simulator_is_noted_as_such_and_stored_conventions_say_where(playing):
    sim = playing()
    probe()
    assert conventions.current().base_url == sim.base_url
    assert Decimal(ProbeRun.objects.get().balance_before) == Decimal("100")


def test_a_create_whose_answer_is_lost_after_it_was_applied_still_finds_the_probe_key(playing):
    sim = playing()
    before = balance(sim)
    requests.post(f"{sim.base_url}/_sim/faults", json={"mode": "applied-then-cloudflare", "status": 524,
                                                      "path": "/sub-keys", "method": "POST"}, timeout=5)
    probe()
    found = conventions.current()
    assert found.write_statuses["update"] == 200 and "create" not in found.write_statuses
    assert balance(sim) == before and list_keys(sim) == []


@pytest.mark.parametrize("played", [
    {"amounts": "customer"},
    {"amounts": "customer", "multiplier_at_creation": "ignored"},
    {"multiplier_at_creation": "ignored", "multiplier_after_creation": "ignored", "fixed_limits": True},
    {"write_answers": "empty", "reclaim": "ignored"},
])
def test_every_report_shows_the_balance_before_and_after_unchanged(playing, played):
    sim = playing(**played)
    report = probe()
    assert "Balance available before 100.0000, after 100.0000 (unchanged)" in report
    assert balance(sim)[2] == Decimal("100") and list_keys(sim) == []
    for line in ("Amounts (*Virtual):", "Markup (displayMultiplier):", "Rate limits:", "Write answers:",
                 "Reclaim (reduceBudgetVirtual):"):
        assert line in report
