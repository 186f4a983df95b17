"""Management API of the simulator: account balance, Client Key (sub-key) CRUD and usage logs."""

import math
import re
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from .api import (
    ACCOUNT,
    CLIENT,
    ApiError,
    Route,
    bad_request,
    fixed_point,
    has_at_most_places,
    parse_decimal,
    parse_money,
)
from .conventions import APPLIED, FIXED_CONCURRENT_LIMIT, FIXED_RPM_LIMIT, IGNORED, REFUSED
from .store import (
    MULTIPLIER_SCALE,
    BudgetTooSmall,
    InsufficientBalance,
    NotFound,
    display_money,
    iso_utc,
    micro_to_decimal,
    round_to_shown,
    shown_available,
)

DEFAULT_RPM_LIMIT = 60
MAX_RPM_LIMIT = 60
DEFAULT_CONCURRENT_LIMIT = 5
DEFAULT_PAGE_LIMIT = 20
MAX_PAGE_LIMIT = 100
MAX_MULTIPLIER = Decimal(1000)


def parse_multiplier(value):
    """Return a displayMultiplier (>= 1, at most 4 decimals) in stored 0.0001 units."""
    amount = parse_decimal(value, "displayMultiplier")
    if amount < 1 or amount > MAX_MULTIPLIER:
        raise bad_request(f"displayMultiplier must be between 1 and {MAX_MULTIPLIER}")
    if not has_at_most_places(amount, 4):
        raise bad_request("displayMultiplier must have at most 4 decimal places")
    return int(amount * MULTIPLIER_SCALE)


def parse_rpm_limit(value):
    """Return rpmLimit as an int in 1..60, from a JSON number or numeric string (30.0 counts as 30)."""
    amount = parse_decimal(value, "rpmLimit")
    if amount != amount.to_integral_value():
        raise bad_request("rpmLimit must be an integer")
    if not 1 <= amount <= MAX_RPM_LIMIT:
        raise bad_request(f"rpmLimit must be between 1 and {MAX_RPM_LIMIT}")
    return int(amount)


def parse_label(value):
    # The reference sets no maximum length, so none is imposed (the body size limit bounds it).
    if not isinstance(value, str):
        raise bad_request("label must be a string")
    return value


def optional_fields(body, names):
    """The fields of a body that were given: absent ones and JSON nulls count as not given."""
    return {name: body[name] for name in names if body.get(name) is not None}


def parse_flag(query, name):
    """Read a true/false query parameter; 1 and 0 and any letter case are accepted too."""
    text = query.get(name, ["false"])[0].lower()
    if text not in ("true", "false", "1", "0"):
        raise bad_request(f"{name} must be true or false")
    return text in ("true", "1")


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


def key_item(key, conventions):
    """A Client Key in the list-item shape of GET /sub-keys, its amounts in the convention's units."""
    if conventions.amounts == "real":
        budget, spent = fixed_point(key.budget, 6), fixed_point(key.spent, 6)
        remaining = fixed_point(key.remaining, 6)
    else:  # each rounded in the customer's units, remaining their difference so the three agree
        budget, spent = conventions.to_wire(key.budget, key.multiplier), conventions.to_wire(key.spent, key.multiplier)
        remaining = budget - spent
    return {
        "id": key.id,
        "label": key.label,
        "keyId": key.key_id,
        "key": key.secret,
        "budgetVirtual": budget,
        "spentVirtual": spent,
        "remainingVirtual": remaining,
        "rpmLimit": key.rpm_limit,
        "concurrentLimit": key.concurrent_limit,
        "displayMultiplier": fixed_point(key.multiplier, 4),
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
    """Micro-dollars (a multiple of 100) as a string with exactly four decimals."""
    return str(micro_to_decimal(micro).quantize(Decimal("0.0001")))


def window_starts(now):
    """Return the UTC starts of the usage windows (None = since the beginning)."""
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "today": iso_utc(today),
        "week": iso_utc(today - timedelta(days=today.weekday())),
        "month": iso_utc(today.replace(day=1)),
        "total": None,
    }


def get_balance(request, caller, query):
    balance, locked = request.server.store.account()
    # Balance and locked are each rounded half-up to four decimals and available
    # is their difference: the answer satisfies available = balance - locked_balance,
    # and available is exactly what lock_funds lets a client allocate.
    return {"balance": four_places(round_to_shown(balance)), "locked_balance": four_places(round_to_shown(locked)),
            "available": four_places(shown_available(balance, locked))}


def list_keys(request, caller, query):
    conventions = request.server.conventions
    return {"subKeys": [key_item(key, conventions) for key in request.server.store.list_keys()]}


def create_key(request, caller, query):
    conventions = request.server.conventions
    body = request.json_body()
    if "budgetVirtual" not in body:
        raise bad_request("budgetVirtual is required")
    wire_budget = parse_money(body["budgetVirtual"], "budgetVirtual")
    given = optional_fields(body, ("label", "rpmLimit", "displayMultiplier"))
    label = parse_label(given.get("label", ""))
    rpm_limit = parse_rpm_limit(given.get("rpmLimit", DEFAULT_RPM_LIMIT))
    multiplier = parse_multiplier(given.get("displayMultiplier", 1))
    concurrent_limit = DEFAULT_CONCURRENT_LIMIT
    if conventions.fixed_limits:
        rpm_limit, concurrent_limit = FIXED_RPM_LIMIT, FIXED_CONCURRENT_LIMIT
    if conventions.multiplier_at_creation == IGNORED:
        multiplier = MULTIPLIER_SCALE
    budget = conventions.from_wire(wire_budget, multiplier)
    if budget <= 0:
        raise bad_request("budgetVirtual must be greater than 0")
    secret = "sk-ant-" + secrets.token_urlsafe(30)
    try:
        key = request.server.store.create_key(str(uuid.uuid4()), secret, label, budget, rpm_limit,
                                              concurrent_limit, multiplier)
    except InsufficientBalance as error:
        raise bad_request("Insufficient available balance for budgetVirtual") from error
    item = key_item(key, conventions)
    return {field: item[field] for field in ("id", "key", "keyId", "label", "budgetVirtual", "rpmLimit",
                                             "concurrentLimit", "displayMultiplier", "createdAt")}


def update_key(request, caller, query, key_id):
    conventions = request.server.conventions
    given = optional_fields(request.json_body(), ("label", "rpmLimit", "addBudgetVirtual", "reduceBudgetVirtual",
                                                  "displayMultiplier"))
    if "displayMultiplier" in given and conventions.multiplier_after_creation == REFUSED:
        raise bad_request("displayMultiplier cannot be changed after the key is created")
    if "reduceBudgetVirtual" in given and conventions.reclaim == REFUSED:
        raise bad_request("Unrecognized key in body: reduceBudgetVirtual")
    try:
        key = request.server.store.active_key(key_id)
    except NotFound as error:
        raise ApiError(404, "Sub-key not found") from error
    changes = {}
    if "label" in given:
        changes["label"] = parse_label(given["label"])
    if "rpmLimit" in given:
        rpm_limit = parse_rpm_limit(given["rpmLimit"])
        if not conventions.fixed_limits:
            changes["rpm_limit"] = rpm_limit
    # Amounts in the customer's units are converted at the multiplier the key has before this write.
    if "addBudgetVirtual" in given:
        wire = parse_money(given["addBudgetVirtual"], "addBudgetVirtual")
        changes["add_budget"] = max(1, conventions.from_wire(wire, key.multiplier))
    if "reduceBudgetVirtual" in given:
        wire = parse_money(given["reduceBudgetVirtual"], "reduceBudgetVirtual")
        if conventions.reclaim == APPLIED:
            changes["reduce_budget"] = max(1, conventions.from_wire(wire, key.multiplier))
    if "displayMultiplier" in given:
        multiplier = parse_multiplier(given["displayMultiplier"])
        if conventions.multiplier_after_creation == APPLIED:
            changes["multiplier"] = multiplier
    try:
        return key_item(request.server.store.update_key(key_id, **changes), conventions)
    except NotFound as error:
        raise ApiError(404, "Sub-key not found") from error
    except InsufficientBalance as error:
        raise bad_request("Insufficient available balance for addBudgetVirtual") from error
    except BudgetTooSmall as error:
        raise bad_request("reduceBudgetVirtual exceeds the key's remaining budget") from error


def delete_key(request, caller, query, key_id):
    try:
        key = request.server.store.active_key(key_id)
        refunded = request.server.store.delete_key(key_id)
    except NotFound as error:
        raise ApiError(404, "Sub-key not found") from error
    return {"success": True, "id": key_id,
            "refundedVirtual": request.server.conventions.to_wire(refunded, key.multiplier)}


def account_usage_logs(request, caller, query):
    page, limit = parse_page(query)
    sub_key_id = query.get("subKeyId", [None])[0]
    account_only = parse_flag(query, "accountOnly")
    if sub_key_id is not None and account_only:
        raise bad_request("subKeyId and accountOnly=true cannot be combined")
    if sub_key_id is not None:
        try:
            request.server.store.active_key(sub_key_id)
        except NotFound as error:
            raise ApiError(404, "Sub-key not found") from error
    rows, total = request.server.store.usage_page(page, limit, sub_key_id, account_only)
    return page_payload([log_item(row) for row in rows], total, page, limit)


def client_balance(request, caller, query):
    key = caller.sub_key
    totals = request.server.store.usage_totals(key.id, window_starts(datetime.now(timezone.utc)))
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


def client_usage_logs(request, caller, query):
    key = caller.sub_key
    page, limit = parse_page(query)
    rows, total = request.server.store.usage_page(page, limit, key.id)
    items = [{**log_item(row, key.multiplier), "key_id": key.key_id} for row in rows]
    return page_payload(items, total, page, limit)


ROUTES = (
    Route(re.compile(r"/balance"), {"GET": get_balance}, ACCOUNT),
    Route(re.compile(r"/sub-keys"), {"GET": list_keys, "POST": create_key}, ACCOUNT),
    Route(re.compile(r"/sub-keys/(?P<key_id>[^/]+)"), {"PUT": update_key, "DELETE": delete_key}, ACCOUNT),
    Route(re.compile(r"/usage-logs"), {"GET": account_usage_logs}, ACCOUNT),
    Route(re.compile(r"/sub-key/balance"), {"GET": client_balance}, CLIENT),
    Route(re.compile(r"/sub-key/usage-logs"), {"GET": client_usage_logs}, CLIENT),
)
