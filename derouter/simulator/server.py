"""HTTP server of the simulated derouter upstream: management API, inference and test controls.

Behaviour follows /work/shared/derouter-api.md, including its "Semantics the project
assumes" section. Standard library only, so it runs without Django.
"""

import argparse
import json
import math
import os
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import pricing, seed
from .store import (
    MULTIPLIER_SCALE,
    InsufficientBalance,
    NotFound,
    Store,
    UsageRow,
    decimal_to_micro,
    display_money,
    iso_utc,
    micro_to_decimal,
    now_iso,
)

DEFAULT_RPM_LIMIT = 60
MAX_RPM_LIMIT = 60
DEFAULT_CONCURRENT_LIMIT = 5
MAX_LABEL_LENGTH = 100
DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 100
MAX_MONEY = Decimal(1_000_000_000)
MAX_MULTIPLIER = Decimal(1000)
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_SIM_DELAY_MS = 60_000
RPM_WINDOW_SECONDS = 60
FAULT_MODES = ("slow", "error", "nonjson", "drop")
PLAIN_NUMBER = re.compile(r"\s*-?\d+(\.\d+)?\s*")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")

ACCOUNT, CLIENT, EITHER, NONE = "account", "client", "either", "none"


class ApiError(Exception):
    """An error answer; rendered in the management or the OpenAI shape by the route family."""

    def __init__(self, status, message, err_type="invalid_request_error", code=None, headers=None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type
        self.code = code
        self.headers = headers or {}


class ConfigError(Exception):
    """The simulator was started with unusable options."""


def bad_request(message):
    return ApiError(400, message)


def encode_json(value):
    """Serialize to JSON, writing Decimals as plain numbers from their exact decimal text."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(str(k)) + ":" + encode_json(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(encode_json(item) for item in value) + "]"
    return json.dumps(value)


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON number here")


def parse_json_body(raw):
    """Parse a request body as a JSON object, reading every number as int or Decimal."""
    try:
        body = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise bad_request("Malformed JSON body") from error
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def parse_decimal(value, field):
    """Read a JSON number or numeric string as a finite Decimal, never through float."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise bad_request(f"{field} must be a number")
    if isinstance(value, str) and not PLAIN_NUMBER.fullmatch(value):
        raise bad_request(f"{field} must be a number")
    amount = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    if not amount.is_finite():
        raise bad_request(f"{field} must be a finite number")
    return amount


def has_at_most_places(amount, places):
    try:
        return amount == amount.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:  # too many digits to quantize: far beyond any accepted value
        return False


def parse_money(value, field):
    """Return a positive amount of at most 6 decimals as integer micro-dollars."""
    amount = parse_decimal(value, field)
    if amount <= 0:
        raise bad_request(f"{field} must be greater than 0")
    if amount > MAX_MONEY:
        raise bad_request(f"{field} is too large")
    if not has_at_most_places(amount, 6):
        raise bad_request(f"{field} must have at most 6 decimal places")
    return decimal_to_micro(amount)


def parse_multiplier(value):
    """Return a displayMultiplier (>= 1, at most 4 decimals) in stored 0.0001 units."""
    amount = parse_decimal(value, "displayMultiplier")
    if amount < 1 or amount > MAX_MULTIPLIER:
        raise bad_request(f"displayMultiplier must be between 1 and {MAX_MULTIPLIER}")
    if not has_at_most_places(amount, 4):
        raise bad_request("displayMultiplier must have at most 4 decimal places")
    return int(amount * MULTIPLIER_SCALE)


def parse_rpm_limit(value):
    """Return rpmLimit as an int in 1..60; JSON integers only (30.0 counts as an integer)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise bad_request("rpmLimit must be an integer")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise bad_request("rpmLimit must be an integer")
    if not 1 <= value <= MAX_RPM_LIMIT:
        raise bad_request(f"rpmLimit must be between 1 and {MAX_RPM_LIMIT}")
    return int(value)


def parse_label(value):
    if not isinstance(value, str):
        raise bad_request("label must be a string")
    if len(value) > MAX_LABEL_LENGTH:
        raise bad_request(f"label must be at most {MAX_LABEL_LENGTH} characters")
    return value


def parse_positive_int_param(query, name, default):
    text = query.get(name, [None])[0]
    if text is None:
        return default
    if not text.isdigit() or not text.isascii() or int(text) < 1:
        raise bad_request(f"{name} must be a positive integer")
    return int(text)


def parse_page(query):
    """Return (page, limit) from query parameters, limit capped at 100."""
    page = parse_positive_int_param(query, "page", 1)
    limit = min(parse_positive_int_param(query, "limit", DEFAULT_PAGE_LIMIT), MAX_PAGE_LIMIT)
    return page, limit


def key_item(key):
    """A Client Key in the list-item shape of GET /sub-keys."""
    return {
        "id": key.id,
        "label": key.label,
        "keyId": key.key_id,
        "key": key.secret,
        "budgetVirtual": micro_to_decimal(key.budget),
        "spentVirtual": micro_to_decimal(key.spent),
        "remainingVirtual": micro_to_decimal(key.remaining),
        "rpmLimit": key.rpm_limit,
        "concurrentLimit": key.concurrent_limit,
        "displayMultiplier": Decimal(key.multiplier).scaleb(-4),
        "createdAt": key.created_at,
    }


def log_item(row, multiplier=None):
    """A usage row; with a multiplier, its cost is what the Client Key's holder sees."""
    cost = micro_to_decimal(row.cost) if multiplier is None else display_money(row.cost, multiplier)
    return {
        "request_id": row.request_id,
        "model": row.model,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "cost_usdc": cost,
        "duration_ms": row.duration_ms,
        "created_at": row.created_at,
    }


def page_payload(rows, total, page, limit):
    return {
        "data": rows,
        "pagination": {"page": page, "limit": limit, "total": total, "pages": math.ceil(total / limit)},
    }


def four_places(micro):
    return str(micro_to_decimal(micro).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def window_starts(now):
    """Return the UTC starts of the usage windows (None = since the beginning)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "today": iso_utc(today),
        "week": iso_utc(today - timedelta(days=today.weekday())),
        "month": iso_utc(today.replace(day=1)),
        "total": None,
    }


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


class FaultRules:
    """Injected faults: rules matched by path prefix and method, each for a number of requests."""

    def __init__(self):
        self._lock = threading.Lock()
        self._rules = []

    def add(self, body):
        mode = body.get("mode")
        if mode not in FAULT_MODES:
            raise bad_request(f"mode must be one of {', '.join(FAULT_MODES)}")
        path = body.get("path", "/")
        method = body.get("method")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad_request("path must be a string starting with /")
        if method is not None and not isinstance(method, str):
            raise bad_request("method must be a string")
        delay = parse_decimal(body.get("delay", 2), "delay")
        status = body.get("status", 500)
        times = body.get("times", 1)
        if not 0 <= delay <= 120:
            raise bad_request("delay must be between 0 and 120 seconds")
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise bad_request("status must be an HTTP status code")
        if isinstance(times, bool) or not isinstance(times, int) or times < 0:
            raise bad_request("times must be a non-negative integer (0 = until cleared)")
        rule = {"mode": mode, "path": path, "method": method.upper() if method else None,
                "delay": delay, "status": status, "times": times}
        with self._lock:
            self._rules.append(rule)
        return rule

    def clear(self):
        with self._lock:
            cleared = len(self._rules)
            self._rules.clear()
        return cleared

    def snapshot(self):
        with self._lock:
            return [dict(rule) for rule in self._rules]

    def take(self, method, path):
        """Return the first rule matching this request and count it as used, or None."""
        with self._lock:
            for rule in self._rules:
                if path.startswith(rule["path"]) and rule["method"] in (None, method):
                    if rule["times"] == 1:
                        self._rules.remove(rule)
                    elif rule["times"] > 1:
                        rule["times"] -= 1
                    return dict(rule)
        return None


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
                               "rate_limit_error", "rate_limit_exceeded", {"Retry-After": str(retry_after)})
            if self._in_flight[key.id] >= key.concurrent_limit:
                raise ApiError(429, f"Concurrency limit reached: {key.concurrent_limit} requests in flight",
                               "rate_limit_error", "concurrency_limit_exceeded", {"Retry-After": "1"})
            recent.append(now)
            self._in_flight[key.id] += 1

    def release(self, key):
        with self._lock:
            self._in_flight[key.id] -= 1


@dataclass(frozen=True)
class Caller:
    """Who is calling: the Account Key (sub_key None) or a Client Key."""

    sub_key: object = None


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern
    methods: dict  # HTTP method -> handler method name
    auth: str
    openai: bool = False


ROUTES = (
    Route(re.compile(r"/balance"), {"GET": "get_balance"}, ACCOUNT),
    Route(re.compile(r"/sub-keys"), {"GET": "list_keys", "POST": "create_key"}, ACCOUNT),
    Route(re.compile(r"/sub-keys/(?P<key_id>[^/]+)"), {"PUT": "update_key", "DELETE": "delete_key"}, ACCOUNT),
    Route(re.compile(r"/usage-logs"), {"GET": "account_usage_logs"}, ACCOUNT),
    Route(re.compile(r"/sub-key/balance"), {"GET": "client_balance"}, CLIENT),
    Route(re.compile(r"/sub-key/usage-logs"), {"GET": "client_usage_logs"}, CLIENT),
    Route(re.compile(r"/openai/v1/models"), {"GET": "list_models"}, EITHER, openai=True),
    Route(re.compile(r"/openai/v1/chat/completions"), {"POST": "chat_completions"}, EITHER, openai=True),
)
HEALTH_ROUTE = Route(re.compile(r"/_sim/health"), {"GET": "health"}, NONE)
FAULT_ROUTES = (
    Route(re.compile(r"/_sim/faults"), {"GET": "list_faults", "POST": "add_fault", "DELETE": "clear_faults"}, NONE),
    Route(re.compile(r"/_sim/usage"), {"POST": "inject_usage"}, NONE),
)


class SimulatorHandler(BaseHTTPRequestHandler):
    """Answers one HTTP request against the simulator state held by the server."""

    protocol_version = "HTTP/1.1"
    server_version = "derouter-simulator/1.0"

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    # -- plumbing -----------------------------------------------------------------

    def _dispatch(self, method):
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        route = None
        try:
            self._raw_body = self._read_body()
            if not path.startswith("/_sim/") and self._apply_fault(method, path):
                return
            route, match = self._find_route(path)
            handler_name = route.methods.get(method)
            if handler_name is None:
                raise ApiError(405, f"Method {method} not allowed",
                               headers={"Allow": ", ".join(route.methods)})
            caller = self._authenticate(route)
            result = getattr(self, handler_name)(
                caller=caller, query=parse_qs(parts.query, keep_blank_values=True), **match.groupdict()
            )
            if result is not None:
                self._send_json(200, result)
        except ApiError as error:
            self._send_error(error, openai=route is not None and route.openai)

    def _read_body(self):
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            self.close_connection = True
            raise bad_request("Invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise bad_request("Request body too large")
        return self.rfile.read(length) if length else b""

    def _find_route(self, path):
        routes = ROUTES + (HEALTH_ROUTE,) + (FAULT_ROUTES if self.server.faults is not None else ())
        for route in routes:
            match = route.pattern.fullmatch(path)
            if match:
                return route, match
        raise ApiError(404, "Not found", code="not_found")

    def _apply_fault(self, method, path):
        """Act out an injected fault; return True if the request must not be processed."""
        if self.server.faults is None:
            return False
        rule = self.server.faults.take(method, path)
        if rule is None:
            return False
        if rule["mode"] == "slow":
            time.sleep(float(rule["delay"]))
            return False
        if rule["mode"] == "error":
            self._send_json(rule["status"], {"error": "Simulated server error"})
        elif rule["mode"] == "nonjson":
            self._send(200, b"<html><body><h1>Bad gateway</h1><p>Simulated non-JSON answer.</p></body></html>",
                       "text/html; charset=utf-8")
        else:  # drop: no answer at all; the connection closes once the handler returns
            self.close_connection = True
        return True

    def _authenticate(self, route):
        if route.auth == NONE:
            return None
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "Missing API key", code="invalid_api_key")
        if secrets.compare_digest(token.encode(), self.server.account_key.encode()):
            if route.auth in (ACCOUNT, EITHER):
                return Caller()
            raise ApiError(401, "This endpoint requires a Client Key", code="invalid_api_key")
        sub_key = self.server.store.key_by_secret(token)
        if sub_key is None:
            raise ApiError(401, "Invalid API key", code="invalid_api_key")
        if route.auth in (CLIENT, EITHER):
            return Caller(sub_key)
        raise ApiError(401, "This endpoint requires the Account Key", code="invalid_api_key")

    def _body(self):
        return parse_json_body(self._raw_body)

    def _send(self, status, data, content_type, headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_json(self, status, payload, headers=None):
        self._send(status, encode_json(payload).encode("utf-8"), "application/json", headers)

    def _send_error(self, error, openai):
        if openai:
            payload = {"error": {"message": error.message, "type": error.err_type, "code": error.code}}
        else:
            payload = {"error": error.message}
        self._send_json(error.status, payload, error.headers)

    # -- management API -----------------------------------------------------------

    def get_balance(self, caller, query):
        balance, locked = self.server.store.account()
        return {"balance": four_places(balance), "locked_balance": four_places(locked),
                "available": four_places(balance - locked)}

    def list_keys(self, caller, query):
        return {"subKeys": [key_item(key) for key in self.server.store.list_keys()]}

    def create_key(self, caller, query):
        body = self._body()
        if "budgetVirtual" not in body:
            raise bad_request("budgetVirtual is required")
        budget = parse_money(body["budgetVirtual"], "budgetVirtual")
        label = parse_label(body.get("label", ""))
        rpm_limit = parse_rpm_limit(body.get("rpmLimit", DEFAULT_RPM_LIMIT))
        multiplier = parse_multiplier(body.get("displayMultiplier", 1))
        secret = "sk-ant-" + secrets.token_urlsafe(30)
        try:
            key = self.server.store.create_key(str(uuid.uuid4()), secret, label, budget, rpm_limit,
                                               DEFAULT_CONCURRENT_LIMIT, multiplier)
        except InsufficientBalance as error:
            raise bad_request("Insufficient available balance for budgetVirtual") from error
        item = key_item(key)
        return {field: item[field] for field in ("id", "key", "keyId", "label", "budgetVirtual", "rpmLimit",
                                                 "concurrentLimit", "displayMultiplier", "createdAt")}

    def update_key(self, caller, query, key_id):
        body = self._body()
        changes = {}
        if "label" in body:
            changes["label"] = parse_label(body["label"])
        if "rpmLimit" in body:
            changes["rpm_limit"] = parse_rpm_limit(body["rpmLimit"])
        if "addBudgetVirtual" in body:
            changes["add_budget"] = parse_money(body["addBudgetVirtual"], "addBudgetVirtual")
        if "displayMultiplier" in body:
            changes["multiplier"] = parse_multiplier(body["displayMultiplier"])
        try:
            return key_item(self.server.store.update_key(key_id, **changes))
        except NotFound as error:
            raise ApiError(404, "Sub-key not found") from error
        except InsufficientBalance as error:
            raise bad_request("Insufficient available balance for addBudgetVirtual") from error

    def delete_key(self, caller, query, key_id):
        try:
            refunded = self.server.store.delete_key(key_id)
        except NotFound as error:
            raise ApiError(404, "Sub-key not found") from error
        return {"success": True, "id": key_id, "refundedVirtual": micro_to_decimal(refunded)}

    def account_usage_logs(self, caller, query):
        page, limit = parse_page(query)
        sub_key_id = query.get("subKeyId", [None])[0]
        account_only_text = query.get("accountOnly", ["false"])[0]
        if account_only_text not in ("true", "false"):
            raise bad_request("accountOnly must be true or false")
        account_only = account_only_text == "true"
        if sub_key_id is not None and account_only:
            raise bad_request("subKeyId and accountOnly=true cannot be combined")
        if sub_key_id is not None:
            try:
                self.server.store.active_key(sub_key_id)
            except NotFound as error:
                raise ApiError(404, "Sub-key not found") from error
        rows, total = self.server.store.usage_page(page, limit, sub_key_id, account_only)
        return page_payload([log_item(row) for row in rows], total, page, limit)

    def client_balance(self, caller, query):
        key = caller.sub_key
        totals = self.server.store.usage_totals(key.id, window_starts(datetime.now(timezone.utc)))
        usage = {
            window: {"requests": requests, "inputTokens": input_tokens, "outputTokens": output_tokens,
                     "totalTokens": input_tokens + output_tokens, "cost": display_money(cost, key.multiplier)}
            for window, (requests, input_tokens, output_tokens, cost) in totals.items()
        }
        budget = display_money(key.budget, key.multiplier)
        spent = display_money(key.spent, key.multiplier)
        return {
            "budget": budget,
            "spent": spent,
            "remaining": budget - spent,  # not rounded on its own, so the three always agree
            "rpmLimit": key.rpm_limit,
            "concurrentLimit": key.concurrent_limit,
            "label": key.label,
            "usage": usage,
        }

    def client_usage_logs(self, caller, query):
        key = caller.sub_key
        page, limit = parse_page(query)
        rows, total = self.server.store.usage_page(page, limit, key.id)
        items = [{**log_item(row, key.multiplier), "key_id": key.key_id} for row in rows]
        return page_payload(items, total, page, limit)

    # -- inference ------------------------------------------------------------------

    def list_models(self, caller, query):
        return {"object": "list", "data": [
            {"id": price.alias, "object": "model", "created": price.created, "owned_by": "derouter"}
            for price in pricing.MODELS.values()
        ]}

    def chat_completions(self, caller, query):
        request = parse_chat_request(self._body())
        delay_ms = self._sim_delay_ms()
        key = caller.sub_key
        if key is None:
            balance, locked = self.server.store.account()
            if balance - locked <= 0:
                raise ApiError(402, "Insufficient available balance", "insufficient_quota", "insufficient_quota")
        else:
            if key.remaining <= 0:
                raise ApiError(402, "Budget exhausted for this key", "insufficient_quota", "insufficient_quota")
            self.server.limiter.admit(key)
        try:
            started = time.monotonic()
            time.sleep(delay_ms / 1000)
            reply, finish_reason, prompt_tokens, completion_tokens = simulate_reply(request)
            elapsed_ms = int((time.monotonic() - started) * 1000)
            row = self.server.store.record_usage(UsageRow(
                request_id="req_" + secrets.token_hex(12),
                sub_key_id=key.id if key else None,
                model=request.price.logged_name,
                input_tokens=prompt_tokens,
                output_tokens=completion_tokens,
                cache_read_tokens=0,
                cache_write_tokens=0,
                cost=pricing.cost_micro(request.price, prompt_tokens, completion_tokens),
                # Plausible latency: a fixed overhead plus generation time.
                duration_ms=elapsed_ms + 250 + 12 * completion_tokens,
                created_at=now_iso(),
            ))
            completion = Completion(row, reply, finish_reason)
            if request.stream:
                self._stream(completion, request.include_usage)
                return None
            return completion.full()
        finally:
            if key is not None:
                self.server.limiter.release(key)

    def _sim_delay_ms(self):
        text = self.headers.get("X-Sim-Delay-Ms")
        if text is None:
            return 0
        if not text.strip().isdigit() or int(text) > MAX_SIM_DELAY_MS:
            raise ApiError(400, f"X-Sim-Delay-Ms must be an integer from 0 to {MAX_SIM_DELAY_MS}")
        return int(text)

    def _stream(self, completion, include_usage):
        """Send the completion as server-sent events in chunked transfer encoding."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Request-Id", completion.row.request_id)
        self.end_headers()
        try:
            for chunk in completion.chunks(include_usage):
                self._write_chunk(f"data: {encode_json(chunk)}\n\n".encode("utf-8"))
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-stream; the request was charged already, as upstream does.
            self.close_connection = True

    def _write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # -- test controls (only with --faults, except health) --------------------------

    def health(self, caller, query):
        return {"ok": True}

    def list_faults(self, caller, query):
        return {"faults": self.server.faults.snapshot()}

    def add_fault(self, caller, query):
        return {"ok": True, "fault": self.server.faults.add(self._body())}

    def clear_faults(self, caller, query):
        return {"ok": True, "cleared": self.server.faults.clear()}

    def inject_usage(self, caller, query):
        """Record a usage row with an exact real cost, accounted like a real request."""
        body = self._body()
        sub_key_id = body.get("subKeyId")
        if sub_key_id is not None:
            try:
                self.server.store.active_key(sub_key_id)
            except NotFound as error:
                raise ApiError(404, "Sub-key not found") from error
        price = pricing.find_model(body.get("model", "claude-sonnet-4-6"))
        if price is None:
            raise bad_request("unknown model")
        if "cost" not in body:
            raise bad_request("cost is required")
        tokens = {}
        for field in ("inputTokens", "outputTokens", "cacheReadTokens", "cacheWriteTokens"):
            value = body.get(field, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad_request(f"{field} must be a non-negative integer")
            tokens[field] = value
        created_at = body.get("createdAt", now_iso())
        if not isinstance(created_at, str) or not TIMESTAMP.fullmatch(created_at):
            raise bad_request("createdAt must look like 2025-01-01T00:00:00Z")
        row = self.server.store.record_usage(UsageRow(
            request_id="req_" + secrets.token_hex(12), sub_key_id=sub_key_id, model=price.logged_name,
            input_tokens=tokens["inputTokens"], output_tokens=tokens["outputTokens"],
            cache_read_tokens=tokens["cacheReadTokens"], cache_write_tokens=tokens["cacheWriteTokens"],
            cost=parse_money(body["cost"], "cost"), duration_ms=1000, created_at=created_at,
        ))
        return {"ok": True, "row": log_item(row)}


def simulate_reply(request):
    """Return (reply, finish_reason, prompt_tokens, completion_tokens), all deterministic."""
    texts = [message_text(message.get("content")) for message in request.messages]
    prompt_tokens = sum(count_tokens(text) + 4 for text in texts)
    user_texts = [text for message, text in zip(request.messages, texts) if message["role"] == "user"]
    reply = f"Simulated reply to: {user_texts[-1][:200]}" if user_texts else "Simulated reply."
    finish_reason = "stop"
    if request.max_tokens is not None and count_tokens(reply) > request.max_tokens:
        reply, finish_reason = reply[:request.max_tokens * 4], "length"
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


class SimulatorServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the simulator's state for its handlers."""

    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent test requests must not overflow the backlog

    def __init__(self, address, store, account_key, faults, verbose=False):
        super().__init__(address, SimulatorHandler)
        self.store = store
        self.account_key = account_key
        self.faults = FaultRules() if faults else None
        self.limiter = Limiter()
        self.verbose = verbose

    def handle_error(self, request, client_address):
        # A client hanging up early (timeouts, dropped streams) is routine here, not a fault.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


def parse_starting_balance(value):
    """Return a starting balance (>= 0, at most 6 decimals) as micro-dollars."""
    text = str(value)
    if not PLAIN_NUMBER.fullmatch(text):
        raise ConfigError(f"--balance must be a plain decimal number, not {text!r}")
    amount = Decimal(text.strip())
    if amount < 0 or amount > MAX_MONEY or not has_at_most_places(amount, 6):
        raise ConfigError("--balance must be between 0 and 1000000000 with at most 6 decimals")
    return decimal_to_micro(amount)


def make_server(host, port, account_key, balance, state_path, demo=False, seed_keys=0, faults=False,
                verbose=False):
    """Open (or create and seed) the state file and return a bound, not yet serving, server."""
    if not account_key:
        raise ConfigError("an account key is required (--account-key or DEROUTER_ACCOUNT_KEY)")
    starting_balance = parse_starting_balance(balance)

    def seed_new_state(conn):
        if demo:
            seed.seed_demo(conn)
        if seed_keys:
            seed.seed_load_keys(conn, seed_keys)

    store = Store(state_path)
    try:
        store.initialize(starting_balance, seed_new_state)
    except InsufficientBalance as error:
        raise ConfigError(f"the balance cannot fund {seed_keys} load-test keys") from error
    return SimulatorServer((host, port), store, account_key, faults, verbose)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(host, port, account_key, balance, state_path, demo=False, seed_keys=0, faults=False, verbose=False):
    """Run the simulator until SIGTERM or Ctrl-C; announce the address on stdout first."""
    server = make_server(host, port, account_key, balance, state_path, demo, seed_keys, faults, verbose)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        print(f"derouter simulator listening on http://{host}:{server.server_address[1]}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def default_state_path():
    return os.path.join(tempfile.gettempdir(), "derouter-simulator.sqlite3")


def add_cli_arguments(parser):
    """Declare the simulator's command-line options (shared by runsim and python -m)."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--account-key", default=None,
                        help="the Account Key; defaults to $DEROUTER_ACCOUNT_KEY")
    parser.add_argument("--balance", default="100",
                        help="starting balance in USD; used only when the state file is new")
    parser.add_argument("--state", default=None, help=f"SQLite state file (default {default_state_path()})")
    parser.add_argument("--demo", action="store_true", help="seed demo clients and 30 days of usage (new state only)")
    parser.add_argument("--seed-keys", type=int, default=0, help="seed N load-test keys (new state only)")
    parser.add_argument("--faults", action="store_true", help="enable /_sim/faults and /_sim/usage")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")


def serve_from_options(options):
    """Run serve() from parsed CLI options (a dict); raise ConfigError on unusable options."""
    if options["seed_keys"] < 0:
        raise ConfigError("--seed-keys must not be negative")
    serve(
        host=options["host"],
        port=options["port"],
        account_key=options["account_key"] or os.environ.get("DEROUTER_ACCOUNT_KEY"),
        balance=options["balance"],
        state_path=options["state"] or default_state_path(),
        demo=options["demo"],
        seed_keys=options["seed_keys"],
        faults=options["faults"],
        verbose=options["verbose"],
    )


def main(argv=None):
    """Entry point of `python -m derouter.simulator`."""
    parser = argparse.ArgumentParser(prog="python -m derouter.simulator", description=__doc__.splitlines()[0])
    add_cli_arguments(parser)
    try:
        serve_from_options(vars(parser.parse_args(argv)))
    except ConfigError as error:
        parser.error(str(error))
    return 0
