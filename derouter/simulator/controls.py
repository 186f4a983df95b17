"""Test controls under /_sim/: health, injected faults, injected usage rows and the journal of writes (all but health need --faults)."""

import random
import re
import secrets
import threading
import time

from . import pricing
from .api import NONE, ApiError, Route, bad_request, parse_decimal, parse_money
from .management import log_item
from .store import NotFound, UsageRow, now_iso

FAULT_MODES = ("slow", "error", "nonjson", "drop", "cloudflare", "applied-then-cloudflare", "applied-then-drop",
               "applied-then-slow", "applied-then-error")
# Faults acted out after the request was processed: the write happened, the answer is lost
# (a Cloudflare page, no answer, an error status) or comes after the delay, past a client's timeout.
AFTER_MODES = ("applied-then-cloudflare", "applied-then-drop", "applied-then-slow", "applied-then-error")
CLOUDFLARE_STATUSES = (401, 403, 429, 520, 521, 522, 523, 524)
CLOUDFLARE_TITLES = {
    401: "Access denied", 403: "Just a moment...", 520: "Web server is returning an unknown error",
    521: "Web server is down", 522: "Connection timed out", 523: "Origin is unreachable", 524: "A timeout occurred",
}
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


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
        if mode in ("cloudflare", "applied-then-cloudflare"):
            status = body.get("status", 524)
            if status not in CLOUDFLARE_STATUSES:
                raise bad_request(f"a Cloudflare fault's status is one of {CLOUDFLARE_STATUSES}")
        retry_after = body.get("retry_after", 2)
        if isinstance(retry_after, bool) or not isinstance(retry_after, int) or retry_after < 0:
            raise bad_request("retry_after must be a non-negative integer (seconds)")
        rule = {"mode": mode, "path": path, "method": method.upper() if method else None,
                "delay": delay, "status": status, "times": times, "retry_after": retry_after}
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


def act_out_fault(request, rule):
    """Act out a fault rule on the request; return True if the request must not be processed.

    The applied-then modes let the request be processed; act_out_after_fault answers it.
    """
    if rule["mode"] in AFTER_MODES:
        return False
    if rule["mode"] == "slow":
        time.sleep(float(rule["delay"]))
        return False
    if rule["mode"] == "cloudflare":
        send_cloudflare_answer(request, rule["status"], rule["retry_after"])
    elif rule["mode"] == "error":
        request.send_json(rule["status"], {"error": "Simulated server error"})
    elif rule["mode"] == "nonjson":
        request.send_bytes(200, b"<html><body><h1>Bad gateway</h1><p>Simulated non-JSON answer.</p></body></html>",
                           "text/html; charset=utf-8")
    else:  # drop: no answer at all; the connection closes once the handler returns
        request.close_connection = True
    return True


def act_out_after_fault(request, rule):
    """Spoil the answer of a processed request; return True when it was answered here (or not at all).

    applied-then-slow only waits: the answer then goes out as usual, late.
    """
    if rule["mode"] == "applied-then-slow":
        time.sleep(float(rule["delay"]))
        return False
    if rule["mode"] == "applied-then-cloudflare":
        send_cloudflare_answer(request, rule["status"], rule["retry_after"])
    elif rule["mode"] == "applied-then-error":
        request.send_json(rule["status"], {"error": "Simulated server error"})
    else:
        request.close_connection = True
    return True


def send_cloudflare_answer(request, status, retry_after=2):
    """Answer as Cloudflare in front of derouter does: an HTML page, or 1015's plain text for a 429."""
    headers = {"CF-RAY": secrets.token_hex(8) + "-FRA"}
    if status == 429:
        headers["Retry-After"] = str(retry_after)
        request.send_bytes(429, b"error code: 1015", "text/plain; charset=UTF-8", headers)
        return
    if status == 403:
        headers["cf-mitigated"] = "challenge"
    title = CLOUDFLARE_TITLES[status]
    page = (f'<!DOCTYPE html><html lang="en-US"><head><title>cf-api.derouter.ai | {status}: {title}</title></head>'
            f'<body><div id="cf-error-details"><h1>{title}</h1><span>Error code {status}</span>'
            f'<p>Cloudflare Ray ID: {headers["CF-RAY"][:16]}</p></div></body></html>')
    request.send_bytes(status, page.encode(), "text/html; charset=UTF-8", headers)


def random_cloudflare_fault(method):
    """A fault rule Cloudflare might play on a request (runsim --cloudflare-faults)."""
    choices = [("cloudflare", 403), ("cloudflare", 429), ("cloudflare", 520), ("cloudflare", 522),
               ("cloudflare", 524)]
    if method != "GET":
        choices.append(("applied-then-cloudflare", 524))
    mode, status = random.choice(choices)
    return {"mode": mode, "status": status, "retry_after": 1}


class Journal:
    """Every management write the simulator applied, in order: what tests compare their records with."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries = []

    def record(self, method, path, body, payload):
        entry = {"method": method, "path": path, "body": body, "answer": payload}
        with self._lock:
            entry["seq"] = len(self._entries) + 1
            self._entries.append(entry)

    def since(self, seq):
        with self._lock:
            return self._entries[seq:]


def is_journaled(method, path):
    return method in ("POST", "PUT", "DELETE") and path.startswith("/sub-keys")


def health(request, caller, query):
    return {"ok": True}


def list_faults(request, caller, query):
    return {"faults": request.server.faults.snapshot()}


def add_fault(request, caller, query):
    return {"ok": True, "fault": request.server.faults.add(request.json_body())}


def clear_faults(request, caller, query):
    return {"ok": True, "cleared": request.server.faults.clear()}


def list_journal(request, caller, query):
    """The writes applied after the ``after``-th (0: all), each with its body and derouter's answer."""
    after = query.get("after", ["0"])[0]
    if not after.isdigit():
        raise bad_request("after must be a non-negative integer")
    return {"writes": request.server.journal.since(int(after))}


# Fields of POST /_sim/usage may also be named as in the usage-log rows.
USAGE_FIELD_ALIASES = {"sub_key_id": "subKeyId", "cost_usdc": "cost", "input_tokens": "inputTokens",
                       "output_tokens": "outputTokens", "cache_read_tokens": "cacheReadTokens",
                       "cache_write_tokens": "cacheWriteTokens", "created_at": "createdAt"}


def inject_usage(request, caller, query):
    """Record a usage row with an exact real cost, accounted like a real request."""
    raw = request.json_body()
    body = {USAGE_FIELD_ALIASES.get(name, name): value for name, value in raw.items()}
    sub_key_id = body.get("subKeyId")
    if sub_key_id is not None:
        try:
            request.server.store.active_key(sub_key_id)
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
    row = request.server.store.record_usage(UsageRow(
        request_id="req_" + secrets.token_hex(12), sub_key_id=sub_key_id, model=price.logged_name,
        input_tokens=tokens["inputTokens"], output_tokens=tokens["outputTokens"],
        cache_read_tokens=tokens["cacheReadTokens"], cache_write_tokens=tokens["cacheWriteTokens"],
        cost=parse_money(body["cost"], "cost"), duration_ms=1000, created_at=created_at,
    ))
    return {"ok": True, "row": log_item(row)}


def conventions(request, caller, query):
    return {"conventions": request.server.conventions.as_dict()}


HEALTH_ROUTE = Route(re.compile(r"/_sim/health"), {"GET": health}, NONE)
CONVENTIONS_ROUTE = Route(re.compile(r"/_sim/conventions"), {"GET": conventions}, NONE)
FAULT_ROUTES = (
    Route(re.compile(r"/_sim/faults"), {"GET": list_faults, "POST": add_fault, "DELETE": clear_faults}, NONE),
    Route(re.compile(r"/_sim/usage"), {"POST": inject_usage}, NONE),
    Route(re.compile(r"/_sim/journal"), {"GET": list_journal}, NONE),
)
