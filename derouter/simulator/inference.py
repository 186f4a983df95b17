"""OpenAI-compatible inference of the simulator under /openai/v1: models, chat completions, key limits."""

import math
import re
import secrets
import threading
import time
from collections import Counter, defaultdict, deque
from contextlib import contextmanager
from dataclasses import dataclass

from . import pricing
from .api import EITHER, ApiError, Route, encode_json
from .store import UsageRow, now_iso

MAX_SIM_DELAY_MS = 60_000
RPM_WINDOW_SECONDS = 60


def no_retry_headers(retry_after):
    """Headers of a 429: when to try again, and that the openai SDK must not retry by itself.

    Without x-should-retry the SDK silently sleeps out a Retry-After of up to two minutes and
    retries, so a caller past its limit would see a slow success instead of the 429.
    """
    return {"Retry-After": str(retry_after), "x-should-retry": "false"}


class Limiter:
    """Per-Client-Key rate (rolling minute) and concurrency limits, held in memory."""

    def __init__(self):
        self._lock = threading.Lock()
        self._recent = defaultdict(deque)
        self._in_flight = Counter()

    def admit(self, key):
        """Count a request against the key's limits, or raise a 429 if either is reached."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent[key.id]
            while recent and recent[0] <= now - RPM_WINDOW_SECONDS:
                recent.popleft()
            if len(recent) >= key.rpm_limit:
                retry_after = max(1, math.ceil(recent[0] + RPM_WINDOW_SECONDS - now))
                raise ApiError(429, f"Rate limit reached: {key.rpm_limit} requests per minute",
                               "rate_limit_error", "rate_limit_exceeded", no_retry_headers(retry_after))
            if self._in_flight[key.id] >= key.concurrent_limit:
                raise ApiError(429, f"Concurrency limit reached: {key.concurrent_limit} requests in flight",
                               "rate_limit_error", "concurrency_limit_exceeded", no_retry_headers(1))
            recent.append(now)
            self._in_flight[key.id] += 1

    def release(self, key):
        with self._lock:
            self._in_flight[key.id] -= 1


def message_text(content):
    """Return the text of a message's content: a string or a list of OpenAI content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def count_tokens(text):
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat completion request."""

    price: pricing.ModelPrice
    messages: list
    stream: bool
    include_usage: bool
    max_tokens: int | None


def parse_chat_request(body):
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required")
    price = pricing.find_model(model)
    if price is None:
        raise ApiError(400, f"The model '{model}' does not exist", code="model_not_found")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty array")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ApiError(400, "each message must be an object with a role")
        if not isinstance(message.get("content"), (str, list, type(None))):
            raise ApiError(400, "message content must be a string or an array")
    stream = body.get("stream", False)
    options = body.get("stream_options") or {}
    if not isinstance(stream, bool) or not isinstance(options, dict):
        raise ApiError(400, "stream must be a boolean and stream_options an object")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise ApiError(400, "max_tokens must be a positive integer")
    return ChatRequest(price, messages, stream, options.get("include_usage") is True, max_tokens)


def simulate_reply(chat):
    """Return (reply, finish_reason, prompt_tokens, completion_tokens), all deterministic."""
    texts = [message_text(message.get("content")) for message in chat.messages]
    prompt_tokens = sum(count_tokens(text) + 4 for text in texts)
    user_texts = [text for message, text in zip(chat.messages, texts) if message["role"] == "user"]
    reply = f"Simulated reply to: {user_texts[-1][:200]}" if user_texts else "Simulated reply."
    finish_reason = "stop"
    if chat.max_tokens is not None and count_tokens(reply) > chat.max_tokens:
        reply, finish_reason = reply[:chat.max_tokens * 4], "length"
    return reply, finish_reason, prompt_tokens, max(1, count_tokens(reply))


class Completion:
    """The OpenAI-shaped answer for a served and logged chat completion."""

    def __init__(self, row, reply, finish_reason):
        self.row = row
        self.reply = reply
        self.finish_reason = finish_reason
        self.id = "chatcmpl-" + row.request_id.removeprefix("req_")
        self.created = int(time.time())

    def usage(self):
        return {"prompt_tokens": self.row.input_tokens, "completion_tokens": self.row.output_tokens,
                "total_tokens": self.row.input_tokens + self.row.output_tokens}

    def full(self):
        return {
            "id": self.id, "object": "chat.completion", "created": self.created, "model": self.row.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": self.reply},
                         "logprobs": None, "finish_reason": self.finish_reason}],
            "usage": self.usage(),
        }

    def chunks(self, include_usage):
        def chunk(delta, finish_reason=None):
            return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.row.model,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]}

        yield chunk({"role": "assistant", "content": ""})
        for piece in re.findall(r"\S+\s*", self.reply):
            yield chunk({"content": piece})
        yield chunk({}, self.finish_reason)
        if include_usage:
            yield {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                   "model": self.row.model, "choices": [], "usage": self.usage()}

    def server_sent_events(self, include_usage):
        """The chunks as server-sent events, closed by the [DONE] event as OpenAI does."""
        for chunk in self.chunks(include_usage):
            yield f"data: {encode_json(chunk)}\n\n".encode("utf-8")
        yield b"data: [DONE]\n\n"


def sim_delay_ms(headers):
    """Return the extra latency asked for by the X-Sim-Delay-Ms header, 0 without it."""
    text = headers.get("X-Sim-Delay-Ms")
    if text is None:
        return 0
    if not text.strip().isdigit() or int(text) > MAX_SIM_DELAY_MS:
        raise ApiError(400, f"X-Sim-Delay-Ms must be an integer from 0 to {MAX_SIM_DELAY_MS}")
    return int(text)


def list_models(request, caller, query):
    return {"object": "list", "data": [
        {"id": price.alias, "object": "model", "created": price.created, "owned_by": "derouter"}
        for price in pricing.MODELS.values()
    ]}


def chat_completions(request, caller, query):
    chat = parse_chat_request(request.json_body())
    with served(request, caller, chat) as (row, reply, finish_reason):
        completion = Completion(row, reply, finish_reason)
        if chat.stream:
            # Charged before the first event: a client leaving mid-stream still pays, as upstream does.
            request.send_chunked(200, "text/event-stream", completion.server_sent_events(chat.include_usage),
                                 {"Cache-Control": "no-cache", "X-Request-Id": row.request_id})
            return None
        return completion.full()


@contextmanager
def served(request, caller, chat):
    """Admit a request under the key's budget and limits, reply and charge it; yields (row, reply, finish_reason).

    The key's place under its concurrency limit is held until the answer has been sent.
    """
    delay_ms = sim_delay_ms(request.headers)
    store, limiter = request.server.store, request.server.limiter
    key = caller.sub_key
    if key is None:
        balance, locked = store.account()
        if balance - locked <= 0:
            raise ApiError(402, "Insufficient available balance", "insufficient_quota", "insufficient_quota")
    else:
        if key.remaining <= 0:
            raise ApiError(402, "Budget exhausted for this key", "insufficient_quota", "insufficient_quota")
        limiter.admit(key)
    try:
        started = time.monotonic()
        time.sleep(delay_ms / 1000)
        reply, finish_reason, prompt_tokens, completion_tokens = simulate_reply(chat)
        elapsed_ms = int((time.monotonic() - started) * 1000)
        row = store.record_usage(UsageRow(
            request_id="req_" + secrets.token_hex(12),
            sub_key_id=key.id if key else None,
            model=chat.price.logged_name,
            input_tokens=prompt_tokens,
            output_tokens=completion_tokens,
            cache_read_tokens=0,
            cache_write_tokens=0,
            cost=pricing.cost_micro(chat.price, prompt_tokens, completion_tokens),
            # Plausible latency: a fixed overhead plus generation time.
            duration_ms=elapsed_ms + 250 + 12 * completion_tokens,
            created_at=now_iso(),
        ))
        yield row, reply, finish_reason
    finally:
        if key is not None:
            limiter.release(key)


ROUTES = (
    Route(re.compile(r"/openai/v1/models"), {"GET": list_models}, EITHER, openai=True),
    Route(re.compile(r"/openai/v1/chat/completions"), {"POST": chat_completions}, EITHER, openai=True),
)
