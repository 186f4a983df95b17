"""Money steps at any number of keys: the top-up's steps and a key's live figures read one key, never the key list."""

import uuid
from decimal import Decimal

import pytest
import requests
from django.urls import reverse

from ledger.models import Outcome, TopUp
from dashboard.upstream import get_sub_key_now
from derouter import client as derouter
from mirror import snapshot as mirror_snapshot
from mirror.models import KeySnapshot
from tests.helpers import hang_derouter

pytestmark = pytest.mark.django_db

LIVE_KEY_BUDGET = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "key-budget"}
# (method, path prefix) of every request the steps below could make, counted by no-op slow rules.
COUNTED = (("GET", "/sub-keys"), ("GET", "/balance"), ("GET", "/sub-key/balance"), ("PUT", "/sub-keys/"))
COUNTER_TIMES = 100_000


@pytest.fixture
def calls(simulator):
    """A function returning {(method, path): requests made} since the fixture started."""
    for method, path in COUNTED:
        simulator.inject("slow", path=path, method=method, delay=0, times=COUNTER_TIMES)

    def count():
        faults = requests.get(f"{simulator.base_url}/_sim/faults", timeout=5).json()["faults"]
        return {
            (rule["method"], rule["path"]): COUNTER_TIMES - rule["times"]
            for rule in faults
            if rule["mode"] == "slow" and rule["delay"] in (0, "0")
        }

    return count


def _topup_url(sub_key_id):
    return reverse("console:key_topup", args=[sub_key_id])


def _made_since(before, after):
    return {call: after[call] - before.get(call, 0) for call in after if after[call] - before.get(call, 0)}


def test_the_form_and_amount_steps_read_no_key_from_derouter(owner_client, make_key, calls):
    key = make_key("10", label="Flat")
    before = calls()

    form = owner_client.get(_topup_url(key.id))
    after_form = calls()
    review = owner_client.post(_topup_url(key.id), {"amount": "2", "note": "INV-1", "token": str(uuid.uuid4())})

    assert form.status_code == 200 and review.status_code == 200
    assert _made_since(before, after_form) == {}
    # The amount step checks the amount against the balance now: one call, whatever the number of keys.
    assert _made_since(after_form, calls()) == {("GET", "/balance"): 1}


def test_the_confirm_step_reads_the_key_once_then_writes(owner_client, make_key, calls):
    key = make_key("10", label="Flat")
    before = calls()

    response = owner_client.post(
        _topup_url(key.id), {"amount": "2", "note": "INV-1", "token": str(uuid.uuid4()), "confirm": "1"}
    )

    assert response.status_code == 302
    # Two round trips in a row: the key's own balance, then the PUT; never the key list.
    assert _made_since(before, calls()) == {("GET", "/sub-key/balance"): 1, ("PUT", "/sub-keys/"): 1}
    assert TopUp.objects.get().outcome == Outcome.OK


def test_a_top_up_confirm_reads_the_budget_from_derouter_not_the_mirror(owner_client, make_key):
    key = make_key("10", label="Topped up elsewhere")
    # Topped up outside the console: the mirror still says 10.
    derouter.update_sub_key(key.id, add_budget=Decimal("5"))

    response = owner_client.post(
        _topup_url(key.id), {"amount": "2.5", "note": "INV-2", "token": str(uuid.uuid4()), "confirm": "1"}
    )

    assert response.status_code == 302
    topup = TopUp.objects.get()
    assert (topup.outcome, topup.budget_before) == (Outcome.OK, Decimal("15"))


def test_a_top_up_confirm_waits_for_derouter_while_the_form_does_not(owner_client, make_key, simulator, settings):
    key = make_key("10", label="Hung")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    hang_derouter(simulator, seconds=2)

    form = owner_client.get(_topup_url(key.id))
    confirm = owner_client.post(
        _topup_url(key.id), {"amount": "2", "note": "INV-3", "token": str(uuid.uuid4()), "confirm": "1"}
    )

    assert form.status_code == 200
    assert confirm.status_code == 503
    assert "Nothing was added" in confirm.content.decode()
    topup = TopUp.objects.get()
    assert (topup.outcome, topup.sent_at) == (Outcome.REFUSED, None)


def test_the_key_read_converts_the_keys_own_view_with_its_multiplier(make_key, simulator):
    key = make_key("10", label="Marked up")
    mirror_snapshot.record_key(derouter.update_sub_key(key.id, display_multiplier=Decimal("1.3")))
    simulator.add_usage(key.id, "1.234567")

    now = get_sub_key_now(key.id)

    listed = next(item for item in derouter.list_sub_keys() if item.id == key.id)
    assert (now.budget, now.spent, now.remaining) == (listed.budget, listed.spent, listed.remaining)
    assert now.secret.reveal() == key.secret.reveal()


def test_the_key_read_falls_back_to_the_list_when_the_mirror_disagrees(make_key):
    key = make_key("10", label="Changed elsewhere")
    derouter.update_sub_key(key.id, display_multiplier=Decimal("2"))

    now = get_sub_key_now(key.id)

    assert (now.budget, now.display_multiplier) == (Decimal("10"), Decimal("2"))
    assert KeySnapshot.objects.get(sub_key_id=key.id).display_multiplier == Decimal("2")


def test_the_key_read_of_a_deleted_key_is_none(make_key):
    key = make_key("10", label="Gone")
    derouter.delete_sub_key(key.id)
    assert get_sub_key_now(key.id) is None


def test_the_mirror_keeps_the_secret_encrypted(make_key):
    key = make_key("10", label="Kept")
    snapshot = KeySnapshot.objects.get(sub_key_id=key.id)
    assert snapshot.secret_encrypted and key.secret.reveal() not in snapshot.secret_encrypted


def test_the_key_page_fills_in_the_budget_derouter_reports_now(owner_client, make_key, simulator):
    key = make_key("10", label="Live")
    simulator.add_usage(key.id, "4")

    page = owner_client.get(reverse("console:key_detail", args=[key.id])).content.decode()
    live = owner_client.get(reverse("console:key_detail", args=[key.id]), **LIVE_KEY_BUDGET).content.decode()

    assert 'data-testid="key-remaining">$10.00' in page and "As of the snapshot" in page
    assert 'data-testid="key-remaining">$6.00' in live and "As derouter reports it now" in live
    assert "<html" not in live
