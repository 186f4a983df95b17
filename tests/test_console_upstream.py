"""The console shows the stored upstream conventions, and the overview says when they were not probed for real."""

from datetime import datetime, timezone

import pytest
from django.urls import reverse

from derouter import conventions
from derouter.models import ProbeRun, ProbeStep

pytestmark = pytest.mark.django_db

NOT_PROBED = "have not been probed"
SIMULATOR_ONLY = "probed against the simulator only"


def stored(simulated, **found):
    conventions.store(conventions.Conventions(probed_at=datetime(2026, 12, 6, 20, 0, tzinfo=timezone.utc),
                                              base_url="https://cf-api.derouter.ai", simulated=simulated, **found))


def test_the_overview_says_the_conventions_were_never_probed(owner_client):
    body = owner_client.get(reverse("console:overview")).content.decode()
    assert NOT_PROBED in body and "check_upstream" in body


def test_the_overview_says_a_probe_of_the_simulator_is_not_enough(owner_client):
    stored(simulated=True)
    body = owner_client.get(reverse("console:overview")).content.decode()
    assert SIMULATOR_ONLY in body


def test_the_overview_is_quiet_once_probed_against_the_real_derouter(owner_client):
    stored(simulated=False)
    body = owner_client.get(reverse("console:overview")).content.decode()
    assert NOT_PROBED not in body and SIMULATOR_ONLY not in body


def test_the_upstream_page_shows_what_was_found_when_and_where(staff_client):
    stored(simulated=False, amounts=conventions.CUSTOMER, multiplier=conventions.AT_CREATION,
           multiplier_put=conventions.IGNORED, limits_settable=False, reclaim=conventions.REFUSED,
           write_statuses={"create": 201, "update": 204, "delete": 204},
           write_bodies={"create": True, "update": False, "delete": False})
    body = staff_client.get(reverse("console:upstream")).content.decode()
    assert "Probed 2026-12-06 20:00 against https://cf-api.derouter.ai" in body
    assert "in the customer&#x27;s units" in body or "in the customer's units" in body
    assert "set only at creation (a change later is ignored)" in body
    assert "fixed (60 rpm / 5 concurrent)" in body
    assert "create 201, update 204 without body, delete 204 without body" in body
    assert "refused" in body


def test_the_upstream_page_lists_probe_runs_with_their_steps_and_what_is_left(owner_client):
    run = ProbeRun.objects.create(base_url="https://cf-api.derouter.ai", outcome=ProbeRun.Outcome.FAILED,
                                  left_over="The probe key sk-ant-abc... (id k1) is still at derouter",
                                  report="Failed: the top-up failed")
    ProbeStep.objects.create(run=run, name="top up", request="PUT /sub-keys/:id addBudgetVirtual=0.30", status=524,
                             outcome="OutcomeUnknown: derouter's edge answered 524")
    body = owner_client.get(reverse("console:upstream")).content.decode()
    assert "is still at derouter" in body and "addBudgetVirtual=0.30" in body and "524" in body


def test_the_upstream_page_before_any_probe(owner_client):
    body = owner_client.get(reverse("console:upstream")).content.decode()
    assert "Assumed (not probed)" in body and "No probe has run yet." in body
