"""Inference on the simulated upstream through the official openai SDK: replies, logging, limits."""

import math
import threading
from decimal import Decimal

import openai
import pytest
import requests

from derouter.simulator.pricing import MODELS
from tests.simulator_helpers import balance, call, create_key, decode, simulator_in_thread

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
REPLY = "Simulated reply to: Hello there"
# The simulator's deterministic token counts: ceil(chars / 4) + 4 per message; the reply ceil(chars / 4).
PROMPT_TOKENS = sum(math.ceil(len(message["content"]) / 4) + 4 for message in MESSAGES)
COMPLETION_TOKENS = math.ceil(len(REPLY) / 4)
SONNET = MODELS["claude-sonnet-4-6"]
# A dollar per million tokens is a micro-dollar per token.
SONNET_COST = (SONNET.input * PROMPT_TOKENS + SONNET.output * COMPLETION_TOKENS).scaleb(-6)


def sdk(simulator, key):
    # No SDK retries: a 429 must surface, not be retried away.
    return openai.OpenAI(base_url=f"{simulator.base_url}/openai/v1", api_key=key, max_retries=0, timeout=10)


def complete(client, **kwargs):
    return client.chat.completions.create(model="claude-sonnet-4-6", messages=MESSAGES, **kwargs)


def test_models_list_in_openai_shape_for_either_key(simulator):
    created = create_key(simulator)
    for key in (created["key"], simulator.account_key):
        models = sdk(simulator, key).models.list()
        ids = {model.id for model in models}
        assert {"claude-sonnet-4-6", "claude-opus-4-1", "claude-haiku-4-5", "gpt-4o-mini", "deepseek-v3"} <= ids
        assert {model.owned_by for model in models} == {"derouter"}
    raw = call(simulator, "GET", "/openai/v1/models").json()
    assert raw["object"] == "list" and raw["data"][0]["object"] == "model"


def test_completion_with_a_client_key_answers_the_deterministic_reply_and_usage(simulator):
    created = create_key(simulator)
    completion = complete(sdk(simulator, created["key"]))
    assert completion.object == "chat.completion"
    assert completion.model == SONNET.logged_name
    assert completion.choices[0].message.content == REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert completion.usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS


def test_streaming_yields_chunks_then_a_usage_chunk(simulator):
    created = create_key(simulator)
    chunks = list(complete(sdk(simulator, created["key"]), stream=True, stream_options={"include_usage": True}))
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == REPLY
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[-1].choices == [] and chunks[-1].usage.prompt_tokens == PROMPT_TOKENS
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "stop"


def test_streaming_without_include_usage_has_no_usage_chunk(simulator):
    created = create_key(simulator)
    chunks = list(complete(sdk(simulator, created["key"]), stream=True))
    assert all(chunk.choices for chunk in chunks)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == REPLY


def test_client_request_is_logged_real_for_the_account_and_multiplied_for_the_client(simulator):
    created = create_key(simulator, budgetVirtual=5, displayMultiplier="2.5")
    before = balance(simulator)
    completion = complete(sdk(simulator, created["key"]))

    client_row = decode(call(simulator, "GET", "/sub-key/usage-logs", key=created["key"]))["data"][0]
    account_row = decode(call(simulator, "GET", f"/usage-logs?subKeyId={created['id']}"))["data"][0]
    client_balance = decode(call(simulator, "GET", "/sub-key/balance", key=created["key"]))

    assert account_row["cost_usdc"] == SONNET_COST
    assert client_row["cost_usdc"] == SONNET_COST * Decimal("2.5")
    assert client_row["request_id"] == account_row["request_id"]
    assert (account_row["input_tokens"], account_row["output_tokens"]) == (completion.usage.prompt_tokens,
                                                                           completion.usage.completion_tokens)
    assert client_balance["spent"] == SONNET_COST * Decimal("2.5")
    assert client_balance["usage"]["today"]["requests"] == 1
    after = balance(simulator)
    # The key's spending lowers both balance and locked; available does not move.
    # /balance rounds each figure to 4 decimals on its own, so allow one unit.
    assert abs(after[2] - before[2]) <= Decimal("0.0001")
    assert abs((after[0] - before[0]) - (after[1] - before[1])) <= Decimal("0.0001")


def test_account_key_request_spends_from_available_and_logs_as_account_only(simulator):
    before = balance(simulator)
    complete(sdk(simulator, simulator.account_key))
    after = balance(simulator)
    assert after[1] == before[1]
    assert before[0] - after[0] == pytest.approx(SONNET_COST, abs=Decimal("0.0001"))
    row = decode(call(simulator, "GET", "/usage-logs?accountOnly=true"))["data"][0]
    assert row["cost_usdc"] == SONNET_COST


def test_requests_past_the_rpm_limit_answer_429_with_retry_after(simulator):
    client = sdk(simulator, create_key(simulator, rpmLimit=1)["key"])
    complete(client)
    with pytest.raises(openai.RateLimitError) as raised:
        complete(client)
    assert int(raised.value.response.headers["Retry-After"]) >= 1


def test_requests_past_the_concurrency_limit_answer_429(simulator):
    created = create_key(simulator)  # concurrentLimit 5
    client = sdk(simulator, created["key"])
    barrier = threading.Barrier(8)
    outcomes = []

    def slow_request():
        barrier.wait()
        try:
            complete(client, extra_headers={"X-Sim-Delay-Ms": "1500"})
            outcomes.append("ok")
        except openai.RateLimitError:
            outcomes.append("429")

    threads = [threading.Thread(target=slow_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["429"] * 3 + ["ok"] * 5
    complete(client)  # the slots are free again


def test_spent_budget_is_refused_and_spending_never_exceeds_it(simulator):
    created = create_key(simulator, budgetVirtual="0.0001")
    client = sdk(simulator, created["key"])
    before = balance(simulator)
    complete(client)  # costs more than 0.0001: charged only what is left
    with pytest.raises(openai.APIStatusError) as raised:
        complete(client)
    assert raised.value.status_code in (402, 403)
    assert raised.value.body["type"] == "insufficient_quota"
    listed_key = next(item for item in decode(call(simulator, "GET", "/sub-keys"))["subKeys"]
                      if item["id"] == created["id"])
    assert (listed_key["spentVirtual"], listed_key["remainingVirtual"]) == (Decimal("0.0001"), 0)
    assert balance(simulator)[0] == before[0] - Decimal("0.0001")


def test_unknown_model_and_bad_messages_answer_400(simulator):
    client = sdk(simulator, create_key(simulator)["key"])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="claude-sonnet-4-6", messages=[])


def test_invalid_or_deleted_key_is_an_authentication_error(simulator):
    created = create_key(simulator)
    call(simulator, "DELETE", f"/sub-keys/{created['id']}")
    for key in ("sk-ant-not-a-real-key", created["key"]):
        with pytest.raises(openai.AuthenticationError):
            complete(sdk(simulator, key))


def test_inference_errors_use_the_openai_error_shape(simulator):
    response = requests.post(f"{simulator.base_url}/openai/v1/chat/completions", json={}, timeout=5)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"message", "type", "code"}


def test_account_key_is_refused_once_available_is_spent(tmp_path):
    with simulator_in_thread(tmp_path, balance="0.0001") as private:
        client = sdk(private, private.account_key)
        complete(client)  # available was positive: served, and now below zero
        with pytest.raises(openai.APIStatusError) as raised:
            complete(client)
        assert raised.value.status_code in (402, 403)
        assert Decimal(call(private, "GET", "/balance").json()["available"]) < 0
