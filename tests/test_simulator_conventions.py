"""The simulator plays each reading of derouter that the reference leaves open (runsim options)."""

import functools
import subprocess
import sys
from decimal import Decimal

import pytest
import requests

from tests.helpers import ROOT
from tests.simulator_helpers import balance, call, decode, listed


@pytest.fixture
def playing(private_simulators):
    """playing(**conventions) -> a private simulator (with faults) answering under those conventions."""
    return functools.partial(private_simulators, wire=False)


def create(sim, **fields):
    response = call(sim, "POST", "/sub-keys", json={"budgetVirtual": "10", "label": "probe", **fields})
    assert response.status_code in (200, 201), response.text
    return response


def put(sim, key_id, **fields):
    return call(sim, "PUT", f"/sub-keys/{key_id}", json=fields)


def own_balance(sim, secret):
    return decode(call(sim, "GET", "/sub-key/balance", key=secret))


def test_help_lists_every_convention():
    result = subprocess.run([sys.executable, "manage.py", "runsim", "--help"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    for option in ("--amounts", "--multiplier-at-creation", "--multiplier-after-creation", "--fixed-limits",
                   "--write-answers", "--reclaim", "--cloudflare-faults"):
        assert option in result.stdout


def test_by_default_amounts_are_real_dollars(playing):
    sim = playing()
    before = balance(sim)[2]
    key = decode(create(sim, budgetVirtual="100", displayMultiplier="1.25"))
    assert balance(sim)[2] == before - 100
    assert own_balance(sim, key["key"])["budget"] == Decimal("125")


def test_customer_amounts_debit_the_real_share_and_list_the_customers_figures(playing):
    sim = playing(amounts="customer")
    before = balance(sim)[2]
    key = decode(create(sim, budgetVirtual="100", displayMultiplier="1.25"))
    assert key["budgetVirtual"] == 100
    assert balance(sim)[2] == before - 80  # "customer sees $100, you pay $80"
    assert own_balance(sim, key["key"])["budget"] == Decimal("100")

    assert put(sim, key["id"], addBudgetVirtual="50").status_code == 200
    assert balance(sim)[2] == before - 120
    assert listed(sim, key["id"])["budgetVirtual"] == 150

    assert put(sim, key["id"], reduceBudgetVirtual="25").status_code == 200
    assert balance(sim)[2] == before - 100
    refunded = decode(call(sim, "DELETE", f"/sub-keys/{key['id']}"))["refundedVirtual"]
    assert refunded == 125
    assert balance(sim)[2] == before


def test_multiplier_ignored_at_creation_leaves_the_key_at_1x(playing):
    sim = playing(multiplier_at_creation="ignored")
    key = decode(create(sim, displayMultiplier="1.3"))
    assert listed(sim, key["id"])["displayMultiplier"] == 1
    assert own_balance(sim, key["key"])["budget"] == Decimal("10")


def test_multiplier_after_creation_ignored_answers_200_and_keeps_the_old_one(playing):
    sim = playing(multiplier_after_creation="ignored")
    key = decode(create(sim, displayMultiplier="1.3"))
    response = put(sim, key["id"], displayMultiplier="2")
    assert response.status_code == 200
    assert decode(response)["displayMultiplier"] == Decimal("1.3")
    assert listed(sim, key["id"])["displayMultiplier"] == Decimal("1.3")


def test_multiplier_after_creation_refused_is_a_400_that_changes_nothing(playing):
    sim = playing(multiplier_after_creation="refused")
    key = decode(create(sim))
    response = put(sim, key["id"], displayMultiplier="2", label="renamed")
    assert response.status_code == 400
    assert "after the key is created" in response.json()["error"]
    assert listed(sim, key["id"])["label"] == "probe"


def test_fixed_limits_ignore_rpm_on_create_and_update(playing):
    sim = playing(fixed_limits=True)
    key = decode(create(sim, rpmLimit=20))
    assert (key["rpmLimit"], key["concurrentLimit"]) == (60, 5)
    assert put(sim, key["id"], rpmLimit=10).status_code == 200
    assert listed(sim, key["id"])["rpmLimit"] == 60


def test_created_write_answers_201_with_the_key_then_204_without_body(playing):
    sim = playing(write_answers="created")
    response = create(sim)
    assert response.status_code == 201 and decode(response)["key"].startswith("sk-ant-")
    key_id = decode(response)["id"]
    updated = put(sim, key_id, addBudgetVirtual="1")
    assert updated.status_code == 204 and updated.content == b""
    assert listed(sim, key_id)["budgetVirtual"] == 11
    deleted = call(sim, "DELETE", f"/sub-keys/{key_id}")
    assert deleted.status_code == 204 and deleted.content == b""


def test_empty_write_answers_carry_no_body_even_on_create(playing):
    sim = playing(write_answers="empty")
    response = create(sim, label="no body")
    assert response.status_code == 201 and response.content == b""
    assert any(item["label"] == "no body" for item in decode(call(sim, "GET", "/sub-keys"))["subKeys"])


def test_reclaim_moves_unspent_budget_back_to_the_balance(playing):
    sim = playing()
    key = decode(create(sim))
    before = balance(sim)
    assert put(sim, key["id"], reduceBudgetVirtual="4").status_code == 200
    after = balance(sim)
    assert after[2] == before[2] + 4 and after[1] == before[1] - 4
    assert listed(sim, key["id"])["budgetVirtual"] == 6


def test_reclaim_beyond_the_remaining_budget_is_refused(playing):
    sim = playing()
    key = decode(create(sim))
    response = put(sim, key["id"], reduceBudgetVirtual="10.5")
    assert response.status_code == 400
    assert listed(sim, key["id"])["budgetVirtual"] == 10


@pytest.mark.parametrize("reclaim, status", [("ignored", 200), ("refused", 400)])
def test_reclaim_unsupported_leaves_the_budget(playing, reclaim, status):
    sim = playing(reclaim=reclaim)
    key = decode(create(sim))
    assert put(sim, key["id"], reduceBudgetVirtual="4").status_code == status
    assert listed(sim, key["id"])["budgetVirtual"] == 10


def inject(sim, **rule):
    requests.post(f"{sim.base_url}/_sim/faults", json=rule, timeout=5).raise_for_status()


@pytest.mark.parametrize("status", [403, 520, 521, 522, 523, 524])
def test_cloudflare_faults_answer_an_html_page(playing, status):
    sim = playing()
    inject(sim, mode="cloudflare", status=status, path="/balance")
    response = call(sim, "GET", "/balance")
    assert response.status_code == status
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>") and "CF-RAY" in response.headers


def test_cloudflare_rate_limit_is_error_1015_with_retry_after(playing):
    sim = playing()
    inject(sim, mode="cloudflare", status=429, retry_after=7, path="/sub-keys")
    response = call(sim, "GET", "/sub-keys")
    assert response.status_code == 429
    assert response.text == "error code: 1015"
    assert response.headers["Retry-After"] == "7"


def test_a_524_after_the_write_was_applied_loses_only_the_answer(playing):
    sim = playing()
    key = decode(create(sim))
    inject(sim, mode="applied-then-cloudflare", status=524, path="/sub-keys/", method="PUT")
    response = put(sim, key["id"], addBudgetVirtual="5")
    assert response.status_code == 524 and "A timeout occurred" in response.text
    assert listed(sim, key["id"])["budgetVirtual"] == 15


def test_a_dropped_answer_after_the_write_was_applied(playing):
    sim = playing()
    inject(sim, mode="applied-then-drop", path="/sub-keys", method="POST")
    with pytest.raises(requests.ConnectionError):
        call(sim, "POST", "/sub-keys", json={"budgetVirtual": "3", "label": "made anyway"})
    assert any(item["label"] == "made anyway" for item in decode(call(sim, "GET", "/sub-keys"))["subKeys"])


def test_the_conventions_played_are_visible_under_sim(playing):
    sim = playing(amounts="customer", fixed_limits=True)
    played = requests.get(f"{sim.base_url}/_sim/conventions", timeout=5).json()["conventions"]
    assert played["amounts"] == "customer" and played["fixed_limits"] is True


def test_runsim_refuses_a_cloudflare_share_outside_0_to_1(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "runsim", "--account-key", "sk-ant-x", "--state",
                             str(tmp_path / "s.sqlite3"), "--cloudflare-faults", "2"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--cloudflare-faults must be a number from 0 to 1" in result.stderr


def test_a_share_of_cloudflare_faults_answers_api_requests_as_cloudflare_and_leaves_controls_alone(playing):
    sim = playing(cloudflare_faults=Decimal(1))
    answers = [call(sim, "GET", "/balance") for _ in range(5)]
    assert all(answer.status_code in (403, 429, 520, 522, 524) for answer in answers)
    assert all("CF-RAY" in answer.headers for answer in answers)
    assert requests.get(f"{sim.base_url}/_sim/health", timeout=5).status_code == 200
