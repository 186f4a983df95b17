"""The derouter Management API client: the only road to the upstream.

One function per endpoint, each returning small typed dataclasses. This is the
only module in the project that imports ``requests``. Reads (GET) are retried
with backoff on connection errors, 502/503/504, Cloudflare's 520-524 and its
429 (honouring a short Retry-After); writes never are, and a write whose answer
never came (or came as Cloudflare's 5xx page) raises ``OutcomeUnknown``. An
HTML answer is Cloudflare's, not derouter's: a 401/403 page means derouter
could not be reached (``EdgeUnavailable``), never that a key was refused.
Writes accept any 2xx, with or without a body; callers read back what they wrote.

Amounts are real dollars on both sides of this module: where derouter's ``*Virtual``
figures are in the customer's units (derouter.conventions, found by check_upstream),
they are converted here with the key's multiplier.

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
from decimal import Decimal

import requests
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from derouter import conventions as upstream_conventions
from derouter.answers import (  # the typed results, also reached as client.<Name>
    Answer,
    Balance,
    ClientBalance,
    CreatedSubKey,
    KeyList,
    Secret,
    SkippedKey,
    SubKey,
    UsageAnswer,
    UsageLog,
    UsagePage,
    UsageSummary,
    get_field,
    parse_integer,
    parse_json_object,
    parse_money,
    parse_skipped,
    parse_sub_key,
    parse_text,
    parse_usage_page,
    parse_usage_summary,
)
from derouter.errors import (  # the exception family, also reached as client.<Name>
    AuthFailed,
    DerouterError,
    EdgeUnavailable,
    NotFound,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Unavailable,
    UnexpectedResponse,
)
from lib.metrics import observe_upstream_call

logger = logging.getLogger(__name__)

# Reads are retried on these: gateways, and Cloudflare's "origin unreachable / timed out" pages.
RETRYABLE_STATUSES = (502, 503, 504, 520, 521, 522, 523, 524)
RETRY_BACKOFF_SECONDS = 0.2
# A read waits out a Cloudflare 429's Retry-After up to this long; a longer one fails the read at once.
MAX_RETRY_AFTER_SECONDS = 5
# A key created without an answer body is looked for in the list among keys created this long before.
CREATED_LOOKBACK_SECONDS = 120
# Under a request deadline, a call with less time left than this is not sent at all.
MIN_CALL_SECONDS = 0.5
# Metrics name an endpoint by its path with the key id replaced, so there is one series per endpoint.
KEY_ID_IN_PATH = re.compile(r"^/sub-keys/[^/]+$")


# ---------------------------------------------------------------- transport

_sessions = {}

# When set: the monotonic time by which every upstream call of this request must be over.
_deadline = contextvars.ContextVar("derouter_deadline", default=None)
# When set: a list receiving an Answer for every call that got an HTTP answer.
_answers = contextvars.ContextVar("derouter_answers", default=None)


@contextmanager
def recording_answers():
    """Collect an ``Answer`` (status, whether a body came) for each call made inside; yields the list."""
    answers = []
    token = _answers.set(answers)
    try:
        yield answers
    finally:
        _answers.reset(token)


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
        raise Unavailable(_("This request ran out of time for derouter; the call was not sent."))
    return min(connect, left), min(read, left)


def _get_session(retrying):
    """Return a pooled session: one retries reads with backoff, the other never retries (writes, probes)."""
    session = _sessions.get(retrying)
    if session is None:
        if not retrying:
            retries = Retry(total=0, connect=0, read=0, redirect=0, status=0, other=0, raise_on_status=False)
        else:
            # Connection failures only: answers worth another try are retried by _send, which
            # tells Cloudflare's pages from derouter's own and bounds a Retry-After.
            retries = Retry(
                total=settings.DEROUTER_GET_RETRIES,
                connect=settings.DEROUTER_GET_RETRIES,
                read=0,
                status=0,
                other=0,
                backoff_factor=RETRY_BACKOFF_SECONDS,
                allowed_methods=frozenset({"GET"}),
                raise_on_status=False,
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


def _request(method, path, key, *, params=None, body=None, timeout=None, retry_reads=True, decoded=True):
    """Send one request and return the decoded JSON body, or raise a DerouterError.

    Not ``decoded``, a successful answer's body is returned as it came (bytes).
    Each call is timed and counted in the metrics by endpoint, with its error class if it failed.
    """
    endpoint = "/sub-keys/{id}" if KEY_ID_IN_PATH.match(path) else path
    started = time.perf_counter()
    try:
        payload = _send(method, path, key, params=params, body=body, timeout=timeout,
                        retry_reads=retry_reads, decoded=decoded)
    except DerouterError as error:
        observe_upstream_call(method, endpoint, started, error=type(error).__name__)
        raise
    observe_upstream_call(method, endpoint, started)
    return payload


def _send(method, path, key, *, params, body, timeout, retry_reads, decoded):
    url = settings.DEROUTER_API_BASE + path
    headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = _encode_body(body).encode()
    is_write = method != "GET"
    # Within a deadline nothing is retried: a retry could outlive the request's time.
    retrying = not is_write and retry_reads and _deadline.get() is None
    attempts = 1 + (settings.DEROUTER_GET_RETRIES if retrying else 0)
    for attempt in range(attempts):
        response = _send_once(method, url, headers, params, data, _get_timeout(is_write, timeout), retrying)
        wait = _retry_wait(response, attempt) if attempt + 1 < attempts else None
        if wait is None:
            break
        logger.debug("derouter %s %s -> %s, retrying in %.1f s", method, path, response.status_code, wait)
        time.sleep(wait)
    logger.debug("derouter %s %s -> %s", method, path, response.status_code)
    answers = _answers.get()
    if answers is not None:
        endpoint = "/sub-keys/{id}" if KEY_ID_IN_PATH.match(path) else path
        answers.append(Answer(method, endpoint, response.status_code, bool(response.content.strip())))
    if not decoded and response.status_code == 200:
        return response.content
    return _decode(response, is_write)


def _send_once(method, url, headers, params, data, timeout, retrying):
    """One HTTP exchange; transport failures raised as DerouterErrors (a write's as OutcomeUnknown)."""
    is_write = method != "GET"
    try:
        return _get_session(retrying=retrying).request(
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


def _retry_wait(response, attempt):
    """Seconds to wait before reading again, or None when this answer is final.

    Gateways' and Cloudflare's 5xx are retried with exponential backoff; Cloudflare's 429 after
    its Retry-After when that is short (a long one is final: the caller says "try later"). A 429
    from derouter itself is final too: the caller backs off as it sees fit.
    """
    status = response.status_code
    if status in RETRYABLE_STATUSES:
        return RETRY_BACKOFF_SECONDS * 2 ** attempt
    if status == 429 and _from_edge(response):
        retry_after = _retry_after(response)
        if retry_after is None:
            return RETRY_BACKOFF_SECONDS * 2 ** attempt
        return retry_after if retry_after <= MAX_RETRY_AFTER_SECONDS else None
    return None


def _from_edge(response):
    """Whether an answer is Cloudflare's (or another proxy's) rather than derouter's JSON.

    derouter answers JSON; Cloudflare answers HTML pages, and "error code: 1015" as plain text.
    """
    content_type = response.headers.get("Content-Type", "").lower()
    head = response.content[:64].lstrip().lower()
    return ("html" in content_type or head.startswith(b"<") or head.startswith(b"error code")
            or "cf-mitigated" in response.headers)


def _is_connect_failure(error):
    """Tell a connection that never opened from one that dropped mid-request."""
    reason = error.args[0] if error.args else None
    return isinstance(getattr(reason, "reason", None), NewConnectionError)



def _decode(response, is_write=False):
    """A successful answer's JSON object, or the DerouterError its status and body mean.

    A write's 2xx is a success with or without a body: without one (or with text that is not
    JSON) it gives None, and the caller reads back what derouter kept. A web page with a 2xx is
    not derouter's answer (a proxy's, a portal's): a write's outcome is then unknown.
    """
    status = response.status_code
    if 200 <= status < 300:
        if not is_write:
            return parse_json_object(response.content)
        if response.content.strip() and _from_edge(response):
            raise OutcomeUnknown("derouter's address answered with a web page instead of derouter's answer: "
                                 "the change may or may not have been made.", status)
        try:
            return parse_json_object(response.content) if response.content.strip() else None
        except UnexpectedResponse:
            return None
    if _from_edge(response):
        _raise_edge_error(response, is_write)
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


def _raise_edge_error(response, is_write):
    """Cloudflare (or a proxy) answered instead of derouter: say so, and never blame a key."""
    status = response.status_code
    if status == 429:
        raise RateLimited(_("Cloudflare in front of derouter is limiting our requests (error 1015); "
                          "try again shortly."), status, _retry_after(response), from_edge=True)
    if is_write and status >= 500:
        # Cloudflare gave up waiting (524) or lost the origin mid-way: derouter may have done it.
        raise OutcomeUnknown(f"derouter's edge (Cloudflare) answered {status} instead of derouter: "
                             "the change may or may not have been made.", status)
    raise EdgeUnavailable(f"derouter could not be reached: Cloudflare in front of it answered {status} "
                          "with a web page instead of derouter's answer.", status)


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
        balance=parse_money(get_field(payload, "balance")),
        locked=parse_money(get_field(payload, "locked_balance")),
        available=parse_money(get_field(payload, "available")),
    )


def list_sub_keys():
    """GET /sub-keys: every active Client Key, in one response, amounts in real dollars.

    An item of an unexpected shape is left out, logged (its id, never its secret) and listed in
    the answer's ``skipped``: one odd key does not hide the others.
    """
    payload = _request("GET", "/sub-keys", _account_key())
    items = get_field(payload, "subKeys")
    if not isinstance(items, list):
        raise UnexpectedResponse("derouter sent a key list of an unexpected shape.")
    conventions = upstream_conventions.current()
    keys, skipped = [], []
    for item in items:
        try:
            keys.append(parse_sub_key(item, conventions))
        except UnexpectedResponse as error:
            skipped.append(parse_skipped(item, error.message))
            logger.warning("derouter key list: skipped key %r: %s", skipped[-1].id, error.message)
    return KeyList(keys, skipped)


def get_sub_key(sub_key_id):
    """One Client Key as GET /sub-keys lists it (derouter has no read of one key), or None when it has no such key."""
    return next((sub_key for sub_key in list_sub_keys() if sub_key.id == str(sub_key_id)), None)


def create_sub_key(budget=None, label="", rpm_limit=None, *, display_multiplier=None, customer_budget=None):
    """POST /sub-keys: make a Client Key with a budget carved out of available.

    Give ``budget`` (real dollars, what the balance pays) or ``customer_budget`` (what the
    customer sees at ``display_multiplier``); the one in derouter's units is sent as it is, the
    other converted. ``display_multiplier`` is sent in the creating POST. Where derouter counts
    in customer units but does not keep a multiplier at creation, a marked-up key is refused
    here (``Rejected``, nothing sent): its budget would be read at 1x and cost the full amount.

    derouter may answer 201 or 204 without the key: it is then found in the key list (by
    label and budget, created in the last two minutes), or ``OutcomeUnknown`` if not exactly one.
    """
    conventions = upstream_conventions.current()
    multiplier = Decimal(display_multiplier) if display_multiplier is not None else Decimal(1)
    if multiplier != 1 and conventions.amounts == upstream_conventions.CUSTOMER \
            and not conventions.multiplier_at_creation:
        raise Rejected("derouter does not keep a markup given at creation, and counts budgets in the "
                       "customer's units: this key cannot be created marked up.")
    wire_budget = _wire_amount(conventions, multiplier, budget, customer_budget)
    body = _clean_update(budgetVirtual=wire_budget, label=label, rpmLimit=rpm_limit,
                         displayMultiplier=None if display_multiplier is None else multiplier)
    started = time.time()
    payload = _request("POST", "/sub-keys", _account_key(), body=body)
    if payload is None or "id" not in payload or "key" not in payload:
        return _find_created(label, wire_budget, started)
    kept_multiplier = parse_money(payload.get("displayMultiplier", multiplier))
    return CreatedSubKey(
        id=parse_text(get_field(payload, "id")),
        label=parse_text(payload.get("label")),
        key_id=parse_text(get_field(payload, "keyId")),
        secret=Secret(parse_text(get_field(payload, "key"))),
        budget=conventions.to_real(parse_money(get_field(payload, "budgetVirtual")), kept_multiplier),
        rpm_limit=parse_integer(payload.get("rpmLimit", rpm_limit or 60)),
        concurrent_limit=parse_integer(payload.get("concurrentLimit", 5)),
        display_multiplier=kept_multiplier,
    )


def _wire_amount(conventions, multiplier, real=None, customer=None):
    """The ``*Virtual`` figure to send: the amount given in derouter's own units as is, the other converted."""
    if (real is None) == (customer is None):
        raise ValueError("give exactly one of the real and the customer amount")
    if customer is not None:
        customer = Decimal(customer)
        if conventions.amounts == upstream_conventions.CUSTOMER:
            return customer
        return (customer / multiplier).quantize(upstream_conventions.MICRO)
    return conventions.to_wire(Decimal(real), multiplier)


def _find_created(label, wire_budget, started):
    """The key a bodiless create answer made: the one new key of that label and budget in the list."""
    since = started - CREATED_LOOKBACK_SECONDS
    payload = _request("GET", "/sub-keys", _account_key())
    items = get_field(payload, "subKeys")
    conventions = upstream_conventions.current()
    matches = []
    for item in items if isinstance(items, list) else []:
        try:
            key = parse_sub_key(item, conventions)
        except UnexpectedResponse:
            continue
        recent = key.created_at is None or key.created_at.timestamp() >= since
        if key.label == label and recent and parse_money(item["budgetVirtual"]) == wire_budget:
            matches.append(key)
    if len(matches) != 1:
        raise OutcomeUnknown("derouter accepted the new key without saying which it is, and the key list "
                             "does not tell it apart: check the key list before trying again.")
    key = matches[0]
    return CreatedSubKey(id=key.id, label=key.label, key_id=key.key_id, secret=key.secret, budget=key.budget,
                         rpm_limit=key.rpm_limit, concurrent_limit=key.concurrent_limit,
                         display_multiplier=key.display_multiplier)


def _key_amount(conventions, amount, key_multiplier, name):
    """A real amount for a key as derouter takes it; customer units need the key's multiplier."""
    if amount is None:
        return None
    if conventions.amounts == upstream_conventions.CUSTOMER and key_multiplier is None:
        raise ValueError(f"derouter counts in customer units: {name} needs the key's multiplier")
    return conventions.to_wire(Decimal(amount), key_multiplier or 1)


def update_sub_key(sub_key_id, *, label=None, rpm_limit=None, add_budget=None, display_multiplier=None,
                   key_multiplier=None):
    """PUT /sub-keys/:id: change label, limits or multiplier, or add budget (real dollars).

    ``key_multiplier`` is the key's multiplier now: needed to convert ``add_budget`` where
    derouter counts in customer units. Returns the key as the answer describes it (a SubKey), or
    None when the answer does not carry the whole key (204, or a partial body): read it back.
    """
    conventions = upstream_conventions.current()
    body = _clean_update(
        label=label,
        rpmLimit=rpm_limit,
        addBudgetVirtual=_key_amount(conventions, add_budget, key_multiplier, "add_budget"),
        displayMultiplier=None if display_multiplier is None else Decimal(display_multiplier),
    )
    return _key_answer(_request("PUT", f"/sub-keys/{sub_key_id}", _account_key(), body=body), conventions)


def reclaim_budget(sub_key_id, amount, *, key_multiplier=None):
    """PUT /sub-keys/:id with reduceBudgetVirtual: move part of a key's unspent budget back to the balance.

    Not in derouter's reference (its console's "reclaim budget" sends it): use it only where
    check_upstream found it supported (conventions.current().reclaim_supported); elsewhere
    derouter may ignore it (a success that changed nothing: read back) or refuse it (Rejected).
    ``amount`` is in real dollars; returns as update_sub_key does.
    """
    conventions = upstream_conventions.current()
    body = {"reduceBudgetVirtual": _key_amount(conventions, amount, key_multiplier, "amount")}
    return _key_answer(_request("PUT", f"/sub-keys/{sub_key_id}", _account_key(), body=body), conventions)


def _key_answer(payload, conventions):
    if payload is None:
        return None
    try:
        return parse_sub_key(payload, conventions)
    except UnexpectedResponse:
        return None


def delete_sub_key(sub_key_id, key_multiplier=None):
    """DELETE /sub-keys/:id: remove the key; its unspent budget returns to available (any 2xx is success).

    Returns what derouter says it returned (``refundedVirtual``) in real dollars, or None when its
    answer does not say (then the remaining read just before stands).
    """
    payload = _request("DELETE", f"/sub-keys/{sub_key_id}", _account_key())
    try:
        refunded = parse_money(get_field(payload, "refundedVirtual"))
    except UnexpectedResponse:
        return None
    return upstream_conventions.current().to_real(refunded, key_multiplier or 1)


def fetch_usage_logs(page=1, limit=20, sub_key_id=None, account_only=False, skip_malformed=False):
    """GET /usage-logs, the account's logs newest first: a UsageAnswer, whose ``decode()`` gives the UsagePage.

    Read but not decoded, for a walk that reads the next page in one thread while another
    decodes and stores this one: decoding is most of a page's work in Python, and the
    reading thread then asks for the next page sooner. Errors are raised here. With
    skip_malformed, a row of unexpected shape is left out of the decoded page and listed in
    its ``malformed`` instead of failing the whole page (the mirror counts them).
    """
    params = _usage_params(page, limit, sub_key_id, account_only)
    body = _request("GET", "/usage-logs", _account_key(), params=params, decoded=False)
    return UsageAnswer(body, skip_malformed)


def is_simulator():
    """GET /_sim/health without a key: whether the API base is our simulator (the probe notes it)."""
    try:
        payload = _request("GET", "/_sim/health", "", retry_reads=False)
    except DerouterError:
        return False
    return payload.get("ok") is True


# ---------------------------------------------------------------- client-key endpoints


def get_client_balance(client_key):
    """GET /sub-key/balance: a Client Key's own budget, limits and usage, in display units."""
    payload = _request("GET", "/sub-key/balance", client_key)
    usage = get_field(payload, "usage")
    return ClientBalance(
        label=parse_text(payload.get("label")),
        budget=parse_money(get_field(payload, "budget")),
        spent=parse_money(get_field(payload, "spent")),
        remaining=parse_money(get_field(payload, "remaining")),
        rpm_limit=parse_integer(get_field(payload, "rpmLimit")),
        concurrent_limit=parse_integer(get_field(payload, "concurrentLimit")),
        today=parse_usage_summary(get_field(usage, "today")),
        week=parse_usage_summary(get_field(usage, "week")),
        month=parse_usage_summary(get_field(usage, "month")),
        total=parse_usage_summary(get_field(usage, "total")),
    )


def get_client_usage_logs(client_key, page=1, limit=20):
    """GET /sub-key/usage-logs: a Client Key's own logs, in display units."""
    params = _usage_params(page, limit)
    return parse_usage_page(_request("GET", "/sub-key/usage-logs", client_key, params=params))
