"""manage.py reconcile and the console's Reconciliation page: the console's records against derouter's figures."""

import io
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import F
from django.urls import reverse

from dashboard import keywrites, reconcile, topups
from dashboard.models import ReconcileDifference, ReconcileRun
from ledger.models import Outcome, TopUp
from derouter import client
from mirror.models import DailyRollup, UsageRecord
from tests.simulator_helpers import call, simulator_in_thread

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(tmp_path, settings):
    """A fresh demo simulator of this test's own, wired into the settings."""
    with simulator_in_thread(tmp_path, demo=True, faults=True, balance="5000") as private:
        settings.DEROUTER_API_BASE = private.base_url
        settings.DEROUTER_INFERENCE_BASE = private.base_url + "/openai/v1"
        settings.DEROUTER_ACCOUNT_KEY = private.account_key
        yield private


def reconcile_command(*args):
    """Run the command: (exit code, what it printed)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("reconcile", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return exit_.code, out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def add_usage(simulator, cost, sub_key_id=None):
    body = {"cost": str(cost)}
    if sub_key_id:
        body["subKeyId"] = sub_key_id
    response = call(simulator, "POST", "/_sim/usage", json=body)
    assert response.status_code == 200, response.text


def console_traffic(owner, simulator):
    """What a day in the console does: keys created, topped up, used, one deleted; the Account Key used."""
    first = keywrites.create_key(owner, token=uuid.uuid4(), label="Harbor", budget=Decimal("20"), rpm_limit=None).created
    second = keywrites.create_key(owner, token=uuid.uuid4(), label="Quay", budget=Decimal("5.5"), rpm_limit=None).created
    demo_key = client.list_sub_keys()[0]
    for sub_key_id, amount in ((first.id, "7.25"), (demo_key.id, "3"), (first.id, "0.0001")):
        sub_key = next(key for key in client.list_sub_keys() if key.id == sub_key_id)
        attempt = topups.top_up(owner, sub_key, Decimal(amount), "INV-1", uuid.uuid4(), Decimal("100000"))
        assert attempt.topup.outcome == Outcome.OK
    add_usage(simulator, "1.234567", first.id)
    add_usage(simulator, "0.5", second.id)
    add_usage(simulator, "0.75", demo_key.id)
    add_usage(simulator, "2.000001")
    second_now = next(key for key in client.list_sub_keys() if key.id == second.id)
    assert keywrites.delete_key(owner, second_now).is_ok
    return first


def test_a_fresh_demo_after_console_traffic_reconciles(owner, demo):
    assert reconcile_command()[0] == 0  # the first run opens the books
    console_traffic(owner, demo)

    code, output = reconcile_command()

    assert code == 0, output
    assert "0 differences" in output
    assert ReconcileRun.objects.first().status == ReconcileRun.Status.RECONCILED


def test_a_budget_changed_at_the_simulator_is_named_with_its_amount(owner, demo):
    reconcile_command()
    first = console_traffic(owner, demo)
    response = call(demo, "PUT", f"/sub-keys/{first.id}", json={"addBudgetVirtual": "4.5"})
    assert response.status_code == 200

    code, output = reconcile_command()

    assert code == 1
    assert f"Harbor ({first.id}): +$4.50" in output
    ledger = ReconcileDifference.objects.get(kind=ReconcileDifference.Kind.LEDGER)
    assert (ledger.sub_key_id, ledger.amount) == (first.id, Decimal("4.5"))
    # The account paid for it too: its available balance is 4.50 below what the moves explain
    # (to derouter's rounding of the balance: four decimals).
    account = ReconcileDifference.objects.get(kind=ReconcileDifference.Kind.ACCOUNT)
    assert abs(account.amount + Decimal("4.5")) <= Decimal("0.0001")


def test_a_key_created_behind_the_consoles_back_is_a_difference(demo):
    reconcile_command()
    created = call(demo, "POST", "/sub-keys", json={"budgetVirtual": 3, "label": "Stranger"}).json()

    code, output = reconcile_command()

    assert code == 1
    assert f"Stranger ({created['id']}): +$3.00" in output
    assert "did not create it" in output


def test_a_row_missing_from_the_mirror_is_a_difference_of_its_cost(owner, demo):
    reconcile_command()
    first = console_traffic(owner, demo)
    reconcile_command()
    missing = UsageRecord.objects.filter(key__sub_key_id=first.id).get()
    # A row lost below the checkpoint: a catch-up does not fetch it again, the totals tell.
    DailyRollup.objects.filter(key=missing.key).update(cost=F("cost") - missing.cost)
    missing.delete()

    code, output = reconcile_command()

    assert code == 1
    difference = ReconcileDifference.objects.get(kind=ReconcileDifference.Kind.MIRROR)
    assert (difference.sub_key_id, difference.amount) == (first.id, Decimal("1.234567"))


def test_a_key_with_an_unsettled_top_up_waits_instead_of_differing(owner, demo):
    reconcile_command()
    sub_key = client.list_sub_keys()[0]
    TopUp.objects.create(
        token=uuid.uuid4(), actor_name="olivia", sub_key_id=sub_key.id, amount=Decimal(1),
        budget_before=sub_key.budget, outcome=Outcome.UNKNOWN,
    )

    code, output = reconcile_command()

    assert code == 0, output
    assert "1 waiting for moves to settle" in output
    assert "not compared" in output


def test_owners_run_it_from_the_page_and_see_the_differences(owner_client, demo):
    reconcile_command()
    sub_key = client.list_sub_keys()[0]
    call(demo, "PUT", f"/sub-keys/{sub_key.id}", json={"addBudgetVirtual": "2"})

    response = owner_client.post(reverse("console:reconciliation_run"))

    assert response.status_code == 302
    page = owner_client.get(reverse("console:reconciliation"))
    assert page.status_code == 200
    body = page.content.decode()
    assert "Differences found" in body
    assert sub_key.id in body
    assert "+$2.00" in body
    assert 'action="/dashboard/reconciliation/run/"' in body  # a plain form: works without JavaScript


def test_the_page_reads_no_derouter(owner_client, demo, settings):
    settings.DEROUTER_API_BASE = "http://127.0.0.1:9"  # nothing listens: any upstream call would fail

    response = owner_client.get(reverse("console:reconciliation"))

    assert response.status_code == 200
    assert "No reconciliation has run yet." in response.content.decode()


def test_staff_may_not_see_or_run_it(staff_client):
    assert staff_client.get(reverse("console:reconciliation")).status_code == 403
    assert staff_client.post(reverse("console:reconciliation_run")).status_code == 403
    assert not ReconcileRun.objects.exists()


def test_the_console_links_it_under_more_for_owners(owner_client):
    page = owner_client.get(reverse("console:overview")).content.decode()
    assert f'href="{reverse("console:reconciliation")}"' in page


def test_a_second_run_now_while_one_runs_queues_nothing(owner_client):
    ReconcileRun.objects.create(requested_by="olivia")

    response = owner_client.post(reverse("console:reconciliation_run"), follow=True)

    assert "running already" in response.content.decode()
    assert ReconcileRun.objects.count() == 1


@pytest.mark.parametrize("accept_language", ["zh-CN", "zh-TW"])
def test_the_page_reads_a_runs_notes_and_differences_in_the_readers_language(owner_client, demo, accept_language):
    words = {"zh-CN": ("已建立起点", "derouter 列出此密钥，预算为 $3.00"),
             "zh-TW": ("已建立起點", "derouter 列出此金鑰，預算為 $3.00")}[accept_language]
    reconcile.run(requested_by="olivia")
    opened = owner_client.get(reverse("console:reconciliation"), HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert words[0] in opened and "msgid" not in opened and "counting starts" not in opened

    call(demo, "POST", "/sub-keys", json={"budgetVirtual": 3, "label": "Stranger"})
    reconcile.run(requested_by="olivia")

    page = owner_client.get(reverse("console:reconciliation"), HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert words[1] in page and "msgid" not in page and "did not create it" not in page


@pytest.mark.parametrize("accept_language, words", [("zh-CN", ("每小时定时任务", "；")), ("zh-TW", ("每小時排程", "；"))])
def test_the_hourly_run_is_named_in_the_readers_language_with_its_punctuation(owner_client, demo, accept_language, words):
    from dashboard.tasks import reconcile_hourly

    reconcile_hourly.call_local()
    page = owner_client.get(reverse("console:reconciliation"), HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert all(word in page for word in words)
    assert "hourly" not in page and "msgid" not in page
    assert "asked for by the hourly schedule." in owner_client.get(reverse("console:reconciliation")).content.decode()
