"""The derouter client against the live simulator: shapes, money, errors and faults."""

import socket
import time
from decimal import Decimal

import pytest

from derouter import client
from tests import inference_helpers as inference


def _chat(simulator, key, text="hello"):
    response = inference.chat(key, text)
    assert response.status_code == 200, response.text
    return response.json()


def _find(sub_key_id):
    return next(k for k in client.list_sub_keys() if k.id == sub_key_id)


def test_balance_is_read_as_decimals():
    balance = client.get_balance()
    assert isinstance(balance.balance, Decimal)
    assert isinstance(balance.available, Decimal)
    assert balance.available == balance.balance - balance.locked


def test_create_key_moves_budget_from_available_to_locked():
    before = client.get_balance()
    created = client.create_sub_key(Decimal("12.3456"), label="Acme", rpm_limit=30)
    after = client.get_balance()
    assert created.budget == Decimal("12.3456")
    assert created.rpm_limit == 30
    assert created.secret.reveal().startswith("sk-ant-")
    assert after.locked - before.locked == Decimal("12.3456")
    assert before.available - after.available == Decimal("12.3456")


def test_listed_key_has_every_field_typed():
    created = client.create_sub_key(Decimal("5"), label="Listed")
    listed = _find(created.id)
    assert listed.label == "Listed"
    assert listed.key_id == created.key_id
    assert listed.secret == created.secret
    assert (listed.budget, listed.spent, listed.remaining) == (Decimal("5"), Decimal("0"), Decimal("5"))
    assert listed.display_multiplier == Decimal("1")
    assert listed.created_at is not None and listed.created_at.tzinfo is not None


def test_secret_is_masked_in_str_and_repr():
    created = client.create_sub_key(Decimal("1"), label="Masked")
    full = created.secret.reveal()
    assert full not in str(created.secret)
    assert full not in repr(created)
    assert full not in repr(_find(created.id))


def test_update_changes_label_limits_multiplier_and_budget():
    created = client.create_sub_key(Decimal("2"), label="Before")
    client.update_sub_key(
        created.id, label="After", rpm_limit=12, add_budget=Decimal("0.5"), display_multiplier=Decimal("2.5")
    )
    listed = _find(created.id)
    assert listed.label == "After"
    assert listed.rpm_limit == 12
    assert listed.budget == Decimal("2.5")
    assert listed.display_multiplier == Decimal("2.5")


def test_delete_returns_unspent_budget_to_available():
    created = client.create_sub_key(Decimal("3"), label="Doomed")
    before = client.get_balance()
    client.delete_sub_key(created.id)
    after = client.get_balance()
    assert after.available - before.available == Decimal("3")
    with pytest.raises(client.NotFound):
        client.delete_sub_key(created.id)


def test_over_available_budget_is_rejected_with_the_upstream_message():
    available = client.get_balance().available
    with pytest.raises(client.Rejected) as caught:
        client.create_sub_key(available + 1, label="Too big")
    assert caught.value.status == 400
    assert caught.value.message
    assert client.get_balance().available == available


def test_rpm_limit_out_of_range_is_rejected():
    created = client.create_sub_key(Decimal("1"))
    with pytest.raises(client.Rejected):
        client.update_sub_key(created.id, rpm_limit=61)


def test_unknown_id_is_not_found():
    with pytest.raises(client.NotFound):
        client.update_sub_key("00000000-0000-4000-8000-000000000000", label="x")


def test_wrong_account_key_is_an_auth_failure(settings):
    settings.DEROUTER_ACCOUNT_KEY = "sk-ant-not-the-right-key"
    with pytest.raises(client.AuthFailed):
        client.get_balance()


def test_client_key_reads_its_own_balance_in_display_units(simulator):
    created = client.create_sub_key(Decimal("50"), label="Shown x4")
    client.update_sub_key(created.id, display_multiplier=Decimal("4"))
    _chat(simulator, created.secret.reveal())
    real = _find(created.id)
    seen = client.get_client_balance(created.secret.reveal())
    assert seen.label == "Shown x4"
    assert seen.budget == Decimal("200")
    assert seen.spent == real.spent * 4
    assert seen.total.requests == 1
    assert seen.today.cost == real.spent * 4


def test_usage_logs_page_for_a_key_in_real_and_display_money(simulator):
    created = client.create_sub_key(Decimal("10"), label="Logged")
    client.update_sub_key(created.id, display_multiplier=Decimal("4"))
    for text in ("one", "two", "three"):
        _chat(simulator, created.secret.reveal(), text)
    account_view = client.fetch_usage_logs(page=1, limit=2, sub_key_id=created.id).decode()
    client_view = client.get_client_usage_logs(created.secret.reveal(), page=1, limit=2)
    assert (account_view.total, account_view.pages, len(account_view.logs)) == (3, 2, 2)
    assert account_view.has_next and not account_view.has_previous
    assert [log.request_id for log in client_view.logs] == [log.request_id for log in account_view.logs]
    assert all(isinstance(log.cost, Decimal) for log in account_view.logs)
    assert client_view.logs[0].cost == account_view.logs[0].cost * 4
    assert client_view.logs[0].key_id == created.key_id
    assert account_view.logs[0].key_id is None


def test_a_fetched_usage_page_decodes_to_the_same_page_each_time(simulator):
    created = client.create_sub_key(Decimal("10"), label="Fetched")
    for text in ("one", "two", "three"):
        _chat(simulator, created.secret.reveal(), text)
    answer = client.fetch_usage_logs(page=1, limit=2, sub_key_id=created.id)
    assert isinstance(answer.body, bytes)
    assert answer.decode() == client.fetch_usage_logs(page=1, limit=2, sub_key_id=created.id).decode()


def test_a_failed_usage_page_fetch_raises_at_once_and_a_broken_body_when_decoded(simulator):
    simulator.inject("error", path="/usage-logs", status=500, times=1)
    with pytest.raises(client.Unavailable):
        client.fetch_usage_logs(page=1, limit=2)
    simulator.inject("nonjson", path="/usage-logs", times=1)
    answer = client.fetch_usage_logs(page=1, limit=2)
    with pytest.raises(client.UnexpectedResponse):
        answer.decode()


def test_account_only_logs_hold_only_account_key_requests(simulator):
    _chat(simulator, simulator.account_key, "from the account")
    page = client.fetch_usage_logs(page=1, limit=100, account_only=True).decode()
    assert page.total >= 1


def test_account_key_is_refused_on_client_endpoints(simulator):
    with pytest.raises(client.AuthFailed):
        client.get_client_balance(simulator.account_key)


def test_deleted_client_key_is_an_auth_failure():
    created = client.create_sub_key(Decimal("1"))
    client.delete_sub_key(created.id)
    with pytest.raises(client.AuthFailed):
        client.get_client_balance(created.secret.reveal())


# ---------------------------------------------------------------- faults


def test_get_is_retried_past_a_single_503(simulator):
    simulator.inject("error", path="/balance", status=503, times=1)
    assert isinstance(client.get_balance().balance, Decimal)


def test_persistent_500_is_unavailable(simulator):
    simulator.inject("error", path="/balance", status=500, times=0)
    with pytest.raises(client.Unavailable) as caught:
        client.get_balance()
    assert caught.value.status == 500


def test_non_json_answer_is_unavailable(simulator):
    simulator.inject("nonjson", path="/sub-keys", times=0)
    with pytest.raises(client.UnexpectedResponse):
        client.list_sub_keys()


def test_slow_read_times_out_as_unavailable(simulator, settings):
    settings.DEROUTER_READ_TIMEOUT = 0.3
    simulator.inject("slow", path="/balance", delay=1.0, times=1)
    with pytest.raises(client.Unavailable) as caught:
        client.get_balance()
    assert not isinstance(caught.value, client.OutcomeUnknown)


def test_timed_out_write_is_outcome_unknown_and_not_retried(simulator, settings):
    created = client.create_sub_key(Decimal("1"), label="Slow top-up")
    settings.DEROUTER_READ_TIMEOUT = 0.3
    simulator.inject("slow", path="/sub-keys/", method="PUT", delay=0.8, times=0)
    with pytest.raises(client.OutcomeUnknown):
        client.update_sub_key(created.id, add_budget=Decimal("1"))
    simulator.clear_faults()
    time.sleep(1.0)
    # The simulator processed the one request it got: moved once, never twice.
    assert _find(created.id).budget == Decimal("2")


def test_write_on_a_dropped_connection_is_outcome_unknown(simulator):
    simulator.inject("drop", path="/sub-keys", method="POST", times=1)
    before = client.get_balance()
    with pytest.raises(client.OutcomeUnknown):
        client.create_sub_key(Decimal("1"), label="Dropped")
    assert client.get_balance() == before


def test_read_on_a_dropped_connection_is_unavailable(simulator):
    simulator.inject("drop", path="/balance", times=0)
    with pytest.raises(client.Unavailable) as caught:
        client.get_balance()
    assert not isinstance(caught.value, client.OutcomeUnknown)


def test_refused_connection_is_unavailable_even_for_a_write(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.DEROUTER_API_BASE = f"http://127.0.0.1:{port}"
    with pytest.raises(client.Unavailable) as caught:
        client.create_sub_key(Decimal("1"))
    assert not isinstance(caught.value, client.OutcomeUnknown)


def test_errors_never_carry_the_account_key(simulator, settings):
    simulator.inject("error", path="/balance", status=500, times=0)
    with pytest.raises(client.Unavailable) as caught:
        client.get_balance()
    assert settings.DEROUTER_ACCOUNT_KEY not in str(caught.value)
    assert settings.DEROUTER_ACCOUNT_KEY not in repr(caught.value.args)


def test_rate_limited_answer_carries_retry_after(simulator):
    simulator.inject("error", path="/balance", status=429, times=1)
    with pytest.raises(client.RateLimited):
        client.get_balance()


def test_money_sent_as_exact_decimal_text():
    created = client.create_sub_key(Decimal("0.1"), label="Exact")
    client.update_sub_key(created.id, add_budget=Decimal("0.2"))
    assert _find(created.id).budget == Decimal("0.3")


# ---------------------------------------------------------------- inference


def test_models_are_listed_for_either_key(simulator):
    created = client.create_sub_key(Decimal("1"), label="Models")
    for key in (simulator.account_key, created.secret.reveal()):
        assert "claude-sonnet-4-6" in inference.list_models(key)


def test_chat_completion_is_charged_to_the_client_key():
    created = client.create_sub_key(Decimal("1"), label="Chatty")
    completion = inference.chat(created.secret.reveal(), "Hello there").json()
    assert completion["choices"][0]["message"]["content"]
    usage = completion["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert _find(created.id).spent > 0
    assert client.fetch_usage_logs(sub_key_id=created.id).decode().total == 1


def test_chat_completion_with_a_spent_budget_is_rejected():
    created = client.create_sub_key(Decimal("0.000001"), label="Broke")
    assert inference.chat(created.secret.reveal(), "Hello " * 200).status_code == 200
    assert inference.chat(created.secret.reveal(), "Hello " * 200).status_code == 402


def test_chat_completion_with_an_unknown_key_is_an_auth_failure():
    assert inference.chat("sk-ant-nobody", "hi").status_code == 401
