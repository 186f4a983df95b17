"""The derouter Management API client: the only road to the upstream.

One function per endpoint, each returning small typed dataclasses. This is the
only module in the project that imports ``requests``. Reads (GET) are retried
with backoff on connection errors and 502/503/504; writes never are, and a
write whose answer never came raises ``OutcomeUnknown``.

Keys never appear in an exception message, a log line or a repr: the Account
Key is read from settings at call time and a Client Key's full secret travels
inside ``Secret``, whose string form is masked.
"""

import contextvars
import json
import logging
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from lib.metrics import observe_upstream_call

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = (502, 503, 504)
# Under a request deadline, a call with less time left than this is not sent at all.
MIN_CALL_SECONDS = 0.5
# Metrics name an endpoint by its path with the key id replaced, so there is one series per endpoint.
KEY_ID_IN_PATH = re.compile(r"^/sub-keys/[^/]+$")


class DerouterError(Exception):
    """Base class of everything the upstream can answer besides success."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        self.status = status


class Rejected(DerouterError):
    """400: the upstream refused the body or parameters; ``message`` says why."""


class AuthFailed(DerouterError):
    """401/403: the key is missing, wrong, deleted or of the wrong kind."""


class NotFound(DerouterError):
    """404: no such key (or path)."""


class RateLimited(DerouterError):
    """429: too many requests; ``retry_after`` is in seconds when the upstream says."""

    def __init__(self, message, status=429, retry_after=None):
        super().__init__(message, status)
        self.retry_after = retry_after


class Unavailable(DerouterError):
    """The upstream could not be reached or gave no usable answer (timeout, 5xx, non-JSON)."""


class OutcomeUnknown(Unavailable):
    """A write was sent but no answer came back: it may or may not have happened."""


class UnexpectedResponse(Unavailable):
    """The upstream answered 200 with a body of an unexpected shape."""


class Secret:
    """A full key, kept out of templates, reprs and logs; ``reveal()`` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = value

    def reveal(self):
        return self._value

    # Django templates refuse to call a method marked alters_data, so
    # {{ key.secret.reveal }} renders nothing: a reveal must be deliberate.
    reveal.alters_data = True

    def __str__(self):
        return "••••••••"

    __repr__ = __str__

    def __eq__(self, other):
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self):
        return hash(self._value)


def _used_fraction(spent, budget):
    """Share of a budget spent, from 0 to 1 (a zero budget counts as used up)."""
    if budget <= 0:
        return Decimal(1)
    return min(Decimal(1), max(Decimal(0), spent / budget))


@dataclass(frozen=True)
class Balance:
    """The account's money: balance, locked in Client Keys, and available."""

    balance: Decimal
    locked: Decimal
    available: Decimal


@dataclass(frozen=True)
class SubKey:
    """A Client Key as the account sees it, in real money."""

    id: str
    label: str
    key_id: str
    secret: Secret = field(repr=False, compare=False)
    budget: Decimal
    spent: Decimal
    remaining: Decimal
    rpm_limit: int
    concurrent_limit: int
    display_multiplier: Decimal
    created_at: datetime | None

    @property
    def used_fraction(self):
        return _used_fraction(self.spent, self.budget)


@dataclass(frozen=True)
class CreatedSubKey:
    """The answer to creating a Client Key: the only time the full key is sent."""

    id: str
    label: str
    key_id: str
    secret: Secret = field(repr=False, compare=False)
    budget: Decimal
    rpm_limit: int
    concurrent_limit: int


@dataclass(frozen=True)
class UsageLog:
    """One inference request; ``key_id`` is set only in a Client Key's own view."""

    request_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost: Decimal
    duration_ms: int
    created_at: datetime
    key_id: str | None = None

    @property
    def total_tokens(self):
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True)
class MalformedRow:
    """A usage row whose shape was not understood: its request id (if any) and what was wrong."""

    request_id: str
    problem: str


@dataclass(frozen=True)
class UsagePage:
    """One page of usage logs and where it sits in the whole."""

    logs: list[UsageLog]
    page: int
    limit: int
    total: int
    pages: int
    # Rows left out because of their shape (only when asked to skip them rather than fail).
    malformed: list = field(default_factory=list)

    @property
    def has_next(self):
        return self.page < self.pages

    @property
    def has_previous(self):
        return self.page > 1


@dataclass(frozen=True)
class UsageAnswer:
    """A page of usage logs as derouter sent it, read but not yet decoded (see fetch_usage_logs)."""

    body: bytes
    skip_malformed: bool

    def decode(self):
        """The UsagePage; raises UnexpectedResponse when the body is not one."""
        return _usage_page(_json_object(self.body), self.skip_malformed)


@dataclass(frozen=True)
class Model:
    """A model offered on the inference host."""

    id: str
    owned_by: str


@dataclass(frozen=True)
class ChatCompletion:
    """The first choice of a chat completion and what it cost in tokens."""

    id: str
    model: str
    content: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class UsageSummary:
    """Requests, tokens and cost over one window (today, week, month, total)."""

    requests: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost: Decimal


@dataclass(frozen=True)
class ClientBalance:
    """A Client Key's own view of itself, money in its display units."""

    label: str
    budget: Decimal
    spent: Decimal
    remaining: Decimal
    rpm_limit: int
    concurrent_limit: int
    today: UsageSummary
    week: UsageSummary
    month: UsageSummary
    total: UsageSummary

    @property
    def used_fraction(self):
        return _used_fraction(self.spent, self.budget)


# ---------------------------------------------------------------- transport

_sessions = {}

# When set: the monotonic time by which every upstream call of this request must be over.
_deadline = contextvars.ContextVar("derouter_deadline", default=None)


@contextmanager
def write_deadline(seconds):
    """Bound every upstream call of a request that writes, so together they end within ``seconds``.

    Inside, reads get the short DEROUTER_PREWRITE_READ_TIMEOUT and are not retried,
    so the write (made last) keeps its time; every call's timeouts are cut to what
    is left, and a call with no time left is not sent (``Unavailable``, no status).
    """
    token = _deadline.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def _get_timeout(is_write, timeout=None):
    """(connect, read) timeouts for the next call, within the request's deadline if it has one."""
    timeout = timeout or (settings.DEROUTER_CONNECT_TIMEOUT, settings.DEROUTER_READ_TIMEOUT)
    # One number stands for both, as requests takes it.
    connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
    deadline = _deadline.get()
    if deadline is None:
        return connect, read
    if not is_write:
        read = min(read, settings.DEROUTER_PREWRITE_READ_TIMEOUT)
    left = deadline - time.monotonic()
    if left < MIN_CALL_SECONDS:
        raise Unavailable("This request ran out of time for derouter; the call was not sent.")
    return min(connect, left), min(read, left)


def _get_session(retrying):
    """Return a pooled session: one retries reads with backoff, the other never retries (writes, probes)."""
    session = _sessions.get(retrying)
    if session is None:
        if not retrying:
            retries = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)
        else:
            retries = Retry(
                total=settings.DEROUTER_GET_RETRIES,
                connect=settings.DEROUTER_GET_RETRIES,
                read=0,
                status=settings.DEROUTER_GET_RETRIES,
                other=0,
                backoff_factor=0.2,
                status_forcelist=RETRYABLE_STATUSES,
                allowed_methods=frozenset({"GET"}),
                raise_on_status=False,
                respect_retry_after_header=False,
            )
        session = requests.Session()
        # Reading proxy variables and .netrc costs every call ~1 ms; only a configured proxy needs it.
        session.trust_env = settings.DEROUTER_USE_ENV_PROXIES
        # A connection per request in flight: the worker's usage pass keeps up to MIRROR_SYNC_MAX_IN_FLIGHT.
        pool_size = max(16, settings.MIRROR_SYNC_MAX_IN_FLIGHT)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=retries)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _sessions[retrying] = session
    return session


def _encode_body(body):
    """Encode a flat body as JSON, writing Decimals as exact JSON numbers."""
    members = []
    for name, value in body.items():
        text = format(value, "f") if isinstance(value, Decimal) else json.dumps(value)
        members.append(f"{json.dumps(name)}: {text}")
    return "{" + ", ".join(members) + "}"


def _request(method, path, key, *, params=None, body=None, base=None, timeout=None, retry_reads=True,
             decoded=True):
    """Send one request and return the decoded JSON body, or raise a DerouterError.

    Not ``decoded``, a successful answer's body is returned as it came (bytes).
    Each call is timed and counted in the metrics by endpoint, with its error class if it failed.
    """
    endpoint = "/sub-keys/{id}" if KEY_ID_IN_PATH.match(path) else path
    started = time.perf_counter()
    try:
        payload = _send(method, path, key, params=params, body=body, base=base, timeout=timeout,
                        retry_reads=retry_reads, decoded=decoded)
    except DerouterError as error:
        observe_upstream_call(method, endpoint, started, error=type(error).__name__)
        raise
    observe_upstream_call(method, endpoint, started)
    return payload


def _send(method, path, key, *, params, body, base, timeout, retry_reads, decoded):
    url = (base or settings.DEROUTER_API_BASE) + path
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = _encode_body(body).encode()
    is_write = method != "GET"
    timeout = _get_timeout(is_write, timeout)
    # Within a deadline nothing is retried: a retry could outlive the request's time.
    retrying = not is_write and retry_reads and _deadline.get() is None
    try:
        response = _get_session(retrying=retrying).request(
            method, url, headers=headers, params=params, data=data, timeout=timeout
        )
    except requests.ConnectTimeout:
        raise Unavailable("derouter did not accept the connection in time.") from None
    except requests.ConnectionError as error:
        # A refused connection means nothing was sent; a dropped one after
        # sending (including a read timeout) leaves a write's outcome unknown.
        if is_write and not _is_connect_failure(error):
            raise OutcomeUnknown("derouter closed the connection before answering.") from None
        raise Unavailable("derouter could not be reached.") from None
    except requests.RequestException as error:
        # A timeout or a broken answer: the request went out, so a write may have happened.
        what = "did not answer in time" if isinstance(error, requests.Timeout) else "sent a broken answer"
        if is_write:
            raise OutcomeUnknown(f"derouter {what}.") from None
        raise Unavailable(f"derouter {what}.") from None
    logger.debug("derouter %s %s -> %s", method, path, response.status_code)
    if not decoded and response.status_code == 200:
        return response.content
    return _decode(response)


def _is_connect_failure(error):
    """Tell a connection that never opened from one that dropped mid-request."""
    reason = error.args[0] if error.args else None
    return isinstance(getattr(reason, "reason", None), NewConnectionError)


def _json_object(content):
    """A successful answer's body: a JSON object, its decimals as Decimal."""
    try:
        payload = json.loads(content, parse_float=Decimal)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise UnexpectedResponse("derouter answered with a body that is not JSON.", 200)
    return payload


def _decode(response):
    status = response.status_code
    if status == 200:
        return _json_object(response.content)
    try:
        payload = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        payload = None
    message = _error_message(payload) or f"derouter answered with status {status}."
    if status in (400, 402):
        # 402: an inference request refused because the key's budget is spent.
        raise Rejected(message, status)
    if status in (401, 403):
        raise AuthFailed(message, status)
    if status == 404:
        raise NotFound(message, status)
    if status == 429:
        raise RateLimited(message, status, _retry_after(response))
    raise Unavailable(message, status)


def _error_message(payload):
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    if isinstance(error, str) and error.strip():
        return error.strip()[:300]
    return None


def _retry_after(response):
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


# ---------------------------------------------------------------- parsing


def _money(value):
    """Read money sent as a JSON number or a string into a Decimal."""
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise UnexpectedResponse(f"derouter sent money of an unexpected type ({type(value).__name__}).")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise UnexpectedResponse("derouter sent money that is not a number.") from None
    if not number.is_finite():
        raise UnexpectedResponse("derouter sent money that is not a finite number.")
    return number


def _integer(value):
    if isinstance(value, bool):
        raise UnexpectedResponse("derouter sent a boolean where a number belongs.")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise UnexpectedResponse("derouter sent a count that is not a whole number.")


def _text(value):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnexpectedResponse("derouter sent text of an unexpected type.")
    return value


def _timestamp(value):
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise UnexpectedResponse("derouter sent a time that is not a string.")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UnexpectedResponse("derouter sent a time that is not ISO 8601.") from None
    if moment.tzinfo is None:
        raise UnexpectedResponse("derouter sent a time without a time zone.")
    return moment


def _field(payload, name):
    try:
        return payload[name]
    except (KeyError, TypeError):
        raise UnexpectedResponse(f"derouter's answer lacks the field {name!r}.") from None


def _sub_key(item):
    return SubKey(
        id=_text(_field(item, "id")),
        label=_text(item.get("label")),
        key_id=_text(_field(item, "keyId")),
        secret=Secret(_text(_field(item, "key"))),
        budget=_money(_field(item, "budgetVirtual")),
        spent=_money(_field(item, "spentVirtual")),
        remaining=_money(_field(item, "remainingVirtual")),
        rpm_limit=_integer(_field(item, "rpmLimit")),
        concurrent_limit=_integer(_field(item, "concurrentLimit")),
        display_multiplier=_money(item.get("displayMultiplier", 1)),
        created_at=_timestamp(item.get("createdAt")),
    )


def _usage_log(item):
    return UsageLog(
        request_id=_text(_field(item, "request_id")),
        model=_text(_field(item, "model")),
        input_tokens=_integer(_field(item, "input_tokens")),
        output_tokens=_integer(_field(item, "output_tokens")),
        cache_read_tokens=_integer(item.get("cache_read_tokens", 0)),
        cache_write_tokens=_integer(item.get("cache_write_tokens", 0)),
        cost=_money(_field(item, "cost_usdc")),
        duration_ms=_integer(_field(item, "duration_ms")),
        created_at=_timestamp(_field(item, "created_at")),
        key_id=item.get("key_id"),
    )


def _usage_page(payload, skip_malformed=False):
    rows = _field(payload, "data")
    pagination = _field(payload, "pagination")
    if not isinstance(rows, list) or not isinstance(pagination, dict):
        raise UnexpectedResponse("derouter sent usage logs of an unexpected shape.")
    logs, malformed = [], []
    for row in rows:
        try:
            logs.append(_usage_log(row))
        except UnexpectedResponse as error:
            if not skip_malformed:
                raise
            malformed.append(MalformedRow(_malformed_row_id(row), error.message))
    return UsagePage(
        logs=logs,
        malformed=malformed,
        page=_integer(_field(pagination, "page")),
        limit=_integer(_field(pagination, "limit")),
        total=_integer(_field(pagination, "total")),
        pages=_integer(_field(pagination, "pages")),
    )


def _malformed_row_id(row):
    request_id = row.get("request_id") if isinstance(row, dict) else None
    return request_id[:128] if isinstance(request_id, str) else ""


def _usage_summary(item):
    return UsageSummary(
        requests=_integer(_field(item, "requests")),
        input_tokens=_integer(_field(item, "inputTokens")),
        output_tokens=_integer(_field(item, "outputTokens")),
        total_tokens=_integer(_field(item, "totalTokens")),
        cost=_money(_field(item, "cost")),
    )


def _usage_params(page, limit, sub_key_id=None, account_only=False):
    params = {"page": page, "limit": limit}
    if sub_key_id:
        params["subKeyId"] = sub_key_id
    if account_only:
        params["accountOnly"] = "true"
    return params


def _account_key():
    return settings.DEROUTER_ACCOUNT_KEY


def _clean_update(**fields):
    return {name: value for name, value in fields.items() if value is not None}


# ---------------------------------------------------------------- account endpoints


def get_balance(probe_timeout=None):
    """GET /balance: the account's balance, locked and available.

    With probe_timeout (seconds), the call is a readiness probe: that timeout and no retry.
    """
    if probe_timeout is None:
        payload = _request("GET", "/balance", _account_key())
    else:
        payload = _request("GET", "/balance", _account_key(), timeout=probe_timeout, retry_reads=False)
    return Balance(
        balance=_money(_field(payload, "balance")),
        locked=_money(_field(payload, "locked_balance")),
        available=_money(_field(payload, "available")),
    )


def list_sub_keys():
    """GET /sub-keys: every active Client Key, in one response."""
    payload = _request("GET", "/sub-keys", _account_key())
    items = _field(payload, "subKeys")
    if not isinstance(items, list):
        raise UnexpectedResponse("derouter sent a key list of an unexpected shape.")
    return [_sub_key(item) for item in items]


def create_sub_key(budget, label="", rpm_limit=None):
    """POST /sub-keys: make a Client Key with a budget carved out of available."""
    body = _clean_update(budgetVirtual=Decimal(budget), label=label, rpmLimit=rpm_limit)
    payload = _request("POST", "/sub-keys", _account_key(), body=body)
    return CreatedSubKey(
        id=_text(_field(payload, "id")),
        label=_text(payload.get("label")),
        key_id=_text(_field(payload, "keyId")),
        secret=Secret(_text(_field(payload, "key"))),
        budget=_money(_field(payload, "budgetVirtual")),
        rpm_limit=_integer(payload.get("rpmLimit", rpm_limit or 60)),
        concurrent_limit=_integer(payload.get("concurrentLimit", 5)),
    )


def update_sub_key(sub_key_id, *, label=None, rpm_limit=None, add_budget=None, display_multiplier=None):
    """PUT /sub-keys/:id: change label, limits or multiplier, or add budget.

    Returns the key as the answer describes it (a SubKey), or None when the answer
    does not carry the whole key (the reference leaves the answer unspecified).
    """
    body = _clean_update(
        label=label,
        rpmLimit=rpm_limit,
        addBudgetVirtual=None if add_budget is None else Decimal(add_budget),
        displayMultiplier=None if display_multiplier is None else Decimal(display_multiplier),
    )
    payload = _request("PUT", f"/sub-keys/{sub_key_id}", _account_key(), body=body)
    try:
        return _sub_key(payload)
    except UnexpectedResponse:
        return None


def delete_sub_key(sub_key_id):
    """DELETE /sub-keys/:id: remove the key; its unspent budget returns to available."""
    _request("DELETE", f"/sub-keys/{sub_key_id}", _account_key())


def get_usage_logs(page=1, limit=20, sub_key_id=None, account_only=False, skip_malformed=False):
    """GET /usage-logs: the account's logs, newest first, in real money.

    With skip_malformed, a row of unexpected shape is left out and listed in the
    page's ``malformed`` instead of failing the whole page (the mirror counts them).
    """
    params = _usage_params(page, limit, sub_key_id, account_only)
    payload = _request("GET", "/usage-logs", _account_key(), params=params)
    return _usage_page(payload, skip_malformed)


def fetch_usage_logs(page=1, limit=20, sub_key_id=None, account_only=False, skip_malformed=False):
    """GET /usage-logs, read but not decoded: a UsageAnswer, whose ``decode()`` gives the UsagePage.

    For a walk that reads the next page in one thread while another decodes and stores
    this one: decoding is most of a page's work in Python, and the reading thread then
    asks for the next page sooner. Errors are raised here, as by get_usage_logs.
    """
    params = _usage_params(page, limit, sub_key_id, account_only)
    body = _request("GET", "/usage-logs", _account_key(), params=params, decoded=False)
    return UsageAnswer(body, skip_malformed)


# ---------------------------------------------------------------- client-key endpoints


def get_client_balance(client_key):
    """GET /sub-key/balance: a Client Key's own budget, limits and usage, in display units."""
    payload = _request("GET", "/sub-key/balance", client_key)
    usage = _field(payload, "usage")
    return ClientBalance(
        label=_text(payload.get("label")),
        budget=_money(_field(payload, "budget")),
        spent=_money(_field(payload, "spent")),
        remaining=_money(_field(payload, "remaining")),
        rpm_limit=_integer(_field(payload, "rpmLimit")),
        concurrent_limit=_integer(_field(payload, "concurrentLimit")),
        today=_usage_summary(_field(usage, "today")),
        week=_usage_summary(_field(usage, "week")),
        month=_usage_summary(_field(usage, "month")),
        total=_usage_summary(_field(usage, "total")),
    )


def get_client_usage_logs(client_key, page=1, limit=20):
    """GET /sub-key/usage-logs: a Client Key's own logs, in display units."""
    params = _usage_params(page, limit)
    return _usage_page(_request("GET", "/sub-key/usage-logs", client_key, params=params))


# ---------------------------------------------------------------- inference (either key)


def list_models(key):
    """GET /openai/v1/models on the inference host."""
    payload = _request("GET", "/models", key, base=settings.DEROUTER_INFERENCE_BASE)
    items = _field(payload, "data")
    if not isinstance(items, list):
        raise UnexpectedResponse("derouter sent a model list of an unexpected shape.")
    return [Model(id=_text(_field(item, "id")), owned_by=_text(item.get("owned_by"))) for item in items]


def create_chat_completion(key, model, messages, max_tokens=None):
    """POST /openai/v1/chat/completions (not streamed); spends from the key's budget."""
    body = _clean_update(model=model, messages=messages, max_tokens=max_tokens)
    payload = _request("POST", "/chat/completions", key, body=body, base=settings.DEROUTER_INFERENCE_BASE)
    choices = _field(payload, "choices")
    if not isinstance(choices, list) or not choices:
        raise UnexpectedResponse("derouter sent a completion without choices.")
    usage = _field(payload, "usage")
    return ChatCompletion(
        id=_text(_field(payload, "id")),
        model=_text(_field(payload, "model")),
        content=_text(_field(_field(choices[0], "message"), "content")),
        prompt_tokens=_integer(_field(usage, "prompt_tokens")),
        completion_tokens=_integer(_field(usage, "completion_tokens")),
        total_tokens=_integer(_field(usage, "total_tokens")),
    )
