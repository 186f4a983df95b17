"""The simulator's applied-then-failed faults and its journal of applied writes (for the money harness)."""

from decimal import Decimal

import pytest
import requests

from derouter import client
from derouter.client import OutcomeUnknown, Unavailable
from tests.simulator_helpers import create_key, listed


def journal(simulator, after=0):
    return requests.get(f"{simulator.base_url}/_sim/journal", params={"after": after}, timeout=5).json()["writes"]


def test_applied_then_drop_applies_the_write_and_never_answers(simulator):
    key = create_key(simulator, budgetVirtual=5)
    simulator.inject("applied-then-drop", path=f"/sub-keys/{key['id']}", method="PUT")

    with pytest.raises(OutcomeUnknown):
        client.update_sub_key(key["id"], add_budget=Decimal("2.5"))

    assert Decimal(str(listed(simulator, key["id"])["budgetVirtual"])) == Decimal("7.5")


def test_applied_then_slow_applies_the_write_and_answers_after_the_timeout(simulator, settings):
    settings.DEROUTER_READ_TIMEOUT = 0.3
    key = create_key(simulator, budgetVirtual=5)
    simulator.inject("applied-then-slow", path=f"/sub-keys/{key['id']}", method="PUT", delay=1)

    with pytest.raises(OutcomeUnknown):
        client.update_sub_key(key["id"], add_budget=Decimal("1"))

    assert Decimal(str(listed(simulator, key["id"])["budgetVirtual"])) == Decimal("6")


def test_applied_then_error_applies_the_write_and_answers_the_status(simulator):
    key = create_key(simulator, budgetVirtual=5)
    simulator.inject("applied-then-error", path=f"/sub-keys/{key['id']}", method="PUT", status=503)

    with pytest.raises(Unavailable) as raised:
        client.update_sub_key(key["id"], add_budget=Decimal("1"))

    assert raised.value.status == 503
    assert Decimal(str(listed(simulator, key["id"])["budgetVirtual"])) == Decimal("6")


def test_the_journal_lists_applied_writes_only(simulator):
    before = len(journal(simulator))
    key = create_key(simulator, budgetVirtual=5)
    simulator.inject("error", path=f"/sub-keys/{key['id']}", method="PUT", status=500)
    with pytest.raises(Unavailable):
        client.update_sub_key(key["id"], add_budget=Decimal("9"))
    client.update_sub_key(key["id"], add_budget=Decimal("0.25"))
    client.delete_sub_key(key["id"])

    writes = journal(simulator, before)

    assert [(write["method"], write["path"]) for write in writes] == [
        ("POST", "/sub-keys"), ("PUT", f"/sub-keys/{key['id']}"), ("DELETE", f"/sub-keys/{key['id']}"),
    ]
    assert writes[1]["body"] == {"addBudgetVirtual": "0.25"}
    assert writes[2]["answer"]["refundedVirtual"] == "5.25"
