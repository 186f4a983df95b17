"""Writes made through the console refresh the key snapshot from their answers; the Refresh control and the status panel."""

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from derouter import client as derouter_client
from mirror import key_store, sync
from mirror import snapshot as mirror_snapshot
from mirror.models import KeySnapshot, UsageRecord
from work.models import TaskRun
from tests.mirror_helpers import mirrored_key

pytestmark = pytest.mark.django_db


def snapshot_of(sub_key_id):
    return KeySnapshot.objects.get(sub_key_id=sub_key_id)


def test_a_key_created_through_the_console_is_in_the_snapshot_at_once(owner_client):
    label = f"Fresh {uuid.uuid4().hex[:8]}"
    response = owner_client.post(reverse("console:key_create"), {"label": label, "budget": "1.5", "rpm_limit": "30"})

    assert response.status_code == 200
    snapshot = KeySnapshot.objects.get(label=label)
    assert (snapshot.budget, snapshot.spent, snapshot.rpm_limit) == (Decimal("1.5"), 0, 30)
    assert label in owner_client.get(reverse("console:key_list"), {"q": label}).content.decode()


def test_a_top_up_refreshes_the_keys_budget_in_the_snapshot(owner_client, make_key):
    key = make_key("2", label="Topped up")
    data = {"amount": "3", "note": "INV-9", "token": str(uuid.uuid4()), "confirm": "1"}

    owner_client.post(reverse("console:key_topup", args=[key.id]), data)

    assert snapshot_of(key.id).budget == Decimal("5")


def test_a_multiplier_change_mirrors_earlier_requests_under_the_old_multiplier(owner_client, make_key, simulator):
    key = make_key("5", label="Repriced")
    simulator.add_usage(key.id, "0.01", count=3)
    edit = {"label": "Repriced", "rpm_limit": "60", "display_multiplier": "3"}

    response = owner_client.post(reverse("console:key_edit", args=[key.id]), edit)

    assert response.status_code == 302
    assert snapshot_of(key.id).display_multiplier == Decimal("3")
    earlier = UsageRecord.objects.filter(key__sub_key_id=key.id)
    assert earlier.count() == 3 and {row.multiplier for row in earlier} == {Decimal(1)}
    earlier_ids = set(earlier.values_list("request_id", flat=True))
    simulator.add_usage(key.id, "0.01")
    sync.sync_key_usage(key.id)
    newest = UsageRecord.objects.filter(key__sub_key_id=key.id).exclude(request_id__in=earlier_ids).get()
    assert (newest.multiplier, newest.billed) == (Decimal(3), Decimal("0.03"))


def test_a_multiplier_change_is_refused_while_the_keys_usage_cannot_be_mirrored(owner_client, make_key, simulator):
    key = make_key("5", label="Not repriced")
    simulator.inject("error", path="/usage-logs", status=500, times=0)
    edit = {"label": "Not repriced", "rpm_limit": "60", "display_multiplier": "2"}

    response = owner_client.post(reverse("console:key_edit", args=[key.id]), edit)

    assert response.status_code == 503
    assert "The change was not sent" in response.content.decode() and "keep the old one" in response.content.decode()
    assert snapshot_of(key.id).display_multiplier == Decimal(1)


def test_a_key_deleted_through_the_console_stays_marked_with_its_final_spend_and_rows(owner_client, make_key, simulator):
    key = make_key("5", label="Leaving")
    simulator.add_usage(key.id, "0.4", count=2)

    owner_client.post(reverse("console:key_delete", args=[key.id]))

    snapshot = snapshot_of(key.id)
    assert snapshot.is_deleted and snapshot.spent == Decimal("0.8")
    assert UsageRecord.objects.filter(key=snapshot).count() == 2
    assert "No keys match" in owner_client.get(reverse("console:key_list"), {"q": key.id}).content.decode()


def test_the_refresh_button_works_as_a_plain_form_and_with_htmx(owner_client, make_key, simulator):
    key = make_key(label="Before refresh")
    mirror_snapshot.refresh_snapshot()
    derouter_client.update_sub_key(key.id, label="After refresh")

    plain = owner_client.post(reverse("console:mirror_refresh"), {"next": "/dashboard/keys/"})
    assert plain.status_code == 302 and plain["Location"] == "/dashboard/keys/"
    assert snapshot_of(key.id).label == "After refresh"

    fragment = owner_client.post(reverse("console:mirror_refresh"), {"next": "/"}, headers={"HX-Request": "true"})
    body = fragment.content.decode()
    assert body.lstrip().startswith('<div id="freshness"') and "Refreshing: this page updates" in body


def test_the_refresh_button_never_redirects_off_site(owner_client, make_key):
    make_key()
    response = owner_client.post(reverse("console:mirror_refresh"), {"next": "https://evil.example/"})
    assert response["Location"] == reverse("console:overview")


def test_the_refresh_button_needs_a_post(owner_client):
    assert owner_client.get(reverse("console:mirror_refresh")).status_code == 405


def test_the_sync_status_panel_shows_rows_and_recent_runs_with_errors(owner_client, make_key, simulator):
    key = make_key(label="Status client")
    simulator.add_usage(key.id, "0.01", count=2)
    sync.sync_scope(key.id)
    TaskRun.objects.create(name="sync_usage broken", status=TaskRun.Status.FAILED, error="derouter did not answer")

    body = owner_client.get(reverse("console:sync_status")).content.decode()

    assert "Rows mirrored" in body and "derouter did not answer" in body and "Keys as of" in body


def test_key_detail_says_reconciled_or_shows_the_difference(owner_client, make_key, simulator, sync_mirror):
    key = make_key(label="Reconciled client")
    simulator.add_usage(key.id, "0.25")
    sync_mirror(key.id)
    url = reverse("console:key_detail", args=[key.id])
    assert "reconciled" in owner_client.get(url).content.decode()

    simulator.add_usage(key.id, "0.5")
    mirror_snapshot.refresh_snapshot()
    body = owner_client.get(url).content.decode()
    assert "not reconciled" in body and "$0.50" in body


def test_the_overview_totals_follow_every_write_through_the_console_at_once(owner_client):
    mirror_snapshot.refresh_snapshot()
    before = key_store.get_summary()
    label = f"Counted {uuid.uuid4().hex[:8]}"

    owner_client.post(reverse("console:key_create"), {"label": label, "budget": "2", "rpm_limit": "30"})
    key_id = KeySnapshot.objects.get(label=label).sub_key_id
    created = key_store.get_summary()
    assert (created.key_count, created.total_allocated) == (before.key_count + 1, before.total_allocated + 2)

    topup = {"amount": "3", "note": "INV-10", "token": str(uuid.uuid4()), "confirm": "1"}
    owner_client.post(reverse("console:key_topup", args=[key_id]), topup)
    assert key_store.get_summary().total_allocated == before.total_allocated + 5

    owner_client.post(reverse("console:key_delete", args=[key_id]))
    deleted = key_store.get_summary()
    assert (deleted.key_count, deleted.total_allocated) == (before.key_count, before.total_allocated)
    overview = owner_client.get(reverse("console:overview")).content.decode()
    assert f'<a href="{reverse("console:key_list")}">{before.key_count}</a>' in overview


def test_the_summary_names_the_emptiest_low_keys_first_and_counts_the_rest(owner_client):
    half = mirrored_key("Half", budget="10", spent="5")
    nearly = mirrored_key("Nearly out", budget="10", spent="9.5")
    low = mirrored_key("Low", budget="10", spent="9.2")

    summary = key_store.get_summary()
    assert summary.low_key_ids[:2] == [nearly.pk, low.pk] and half.pk not in summary.low_key_ids
