"""What derouter answers, as typed results, and the parsing of its JSON into them.

Money is read as Decimal from numbers or strings, never floats. Used by derouter.client (the
only module that talks to derouter); the types are re-exported there.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from derouter.errors import UnexpectedResponse


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
class SkippedKey:
    """A key-list item left out for its shape: its id if it had a usable one (never its secret), and why."""

    id: str
    problem: str


class KeyList(list):
    """The Client Keys of GET /sub-keys; ``skipped`` lists the SkippedKey items of an unexpected shape left out."""

    def __init__(self, keys, skipped=()):
        super().__init__(keys)
        self.skipped = list(skipped)


@dataclass(frozen=True)
class CreatedSubKey:
    """The answer to creating a Client Key: the only time the full key is sent.

    ``display_multiplier`` is the one derouter reports (or, without a report, the one asked for).
    """

    id: str
    label: str
    key_id: str
    secret: Secret = field(repr=False, compare=False)
    budget: Decimal
    rpm_limit: int
    concurrent_limit: int
    display_multiplier: Decimal = Decimal(1)


@dataclass(frozen=True)
class Answer:
    """What derouter answered one call: for the probe's evidence (see recording_answers)."""

    method: str
    endpoint: str
    status: int
    had_body: bool


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
        return parse_usage_page(parse_json_object(self.body), self.skip_malformed)


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


def parse_json_object(content):
    """A successful answer's body: a JSON object, its decimals as Decimal."""
    try:
        payload = json.loads(content, parse_float=Decimal)
    except ValueError:
        payload = None
    if not isinstance(payload, dict):
        raise UnexpectedResponse("derouter answered with a body that is not JSON.", 200)
    return payload


def parse_money(value):
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


def parse_integer(value):
    if isinstance(value, bool):
        raise UnexpectedResponse("derouter sent a boolean where a number belongs.")
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise UnexpectedResponse("derouter sent a count that is not a whole number.")


def parse_text(value):
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UnexpectedResponse("derouter sent text of an unexpected type.")
    return value


def parse_timestamp(value):
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


def get_field(payload, name):
    try:
        return payload[name]
    except (KeyError, TypeError):
        raise UnexpectedResponse(f"derouter's answer lacks the field {name!r}.") from None


def parse_sub_key(item, conventions):
    """A key-list item as a SubKey in real dollars (converted when derouter sends customer units)."""
    if not isinstance(item, dict):
        raise UnexpectedResponse("derouter sent a key that is not an object.")
    multiplier = parse_money(item.get("displayMultiplier", 1))
    if multiplier <= 0:
        raise UnexpectedResponse("derouter sent a displayMultiplier that is not positive.")
    return SubKey(
        id=parse_text(get_field(item, "id")),
        label=parse_text(item.get("label")),
        key_id=parse_text(get_field(item, "keyId")),
        secret=Secret(parse_text(get_field(item, "key"))),
        budget=conventions.to_real(parse_money(get_field(item, "budgetVirtual")), multiplier),
        spent=conventions.to_real(parse_money(get_field(item, "spentVirtual")), multiplier),
        remaining=conventions.to_real(parse_money(get_field(item, "remainingVirtual")), multiplier),
        rpm_limit=parse_integer(get_field(item, "rpmLimit")),
        concurrent_limit=parse_integer(get_field(item, "concurrentLimit")),
        display_multiplier=multiplier,
        created_at=parse_timestamp(item.get("createdAt")),
    )


def parse_skipped(item, problem):
    key_id = item.get("id") if isinstance(item, dict) else None
    return SkippedKey(key_id[:128] if isinstance(key_id, str) else "", problem)


def parse_usage_log(item):
    return UsageLog(
        request_id=parse_text(get_field(item, "request_id")),
        model=parse_text(get_field(item, "model")),
        input_tokens=parse_integer(get_field(item, "input_tokens")),
        output_tokens=parse_integer(get_field(item, "output_tokens")),
        cache_read_tokens=parse_integer(item.get("cache_read_tokens", 0)),
        cache_write_tokens=parse_integer(item.get("cache_write_tokens", 0)),
        cost=parse_money(get_field(item, "cost_usdc")),
        duration_ms=parse_integer(get_field(item, "duration_ms")),
        created_at=parse_timestamp(get_field(item, "created_at")),
        key_id=item.get("key_id") if isinstance(item.get("key_id"), str) else None,
    )


def parse_usage_page(payload, skip_malformed=False):
    rows = get_field(payload, "data")
    pagination = get_field(payload, "pagination")
    if not isinstance(rows, list) or not isinstance(pagination, dict):
        raise UnexpectedResponse("derouter sent usage logs of an unexpected shape.")
    logs, malformed = [], []
    for row in rows:
        try:
            logs.append(parse_usage_log(row))
        except UnexpectedResponse as error:
            if not skip_malformed:
                raise
            malformed.append(MalformedRow(_malformed_row_id(row), error.message))
    return UsagePage(
        logs=logs,
        malformed=malformed,
        page=parse_integer(get_field(pagination, "page")),
        limit=parse_integer(get_field(pagination, "limit")),
        total=parse_integer(get_field(pagination, "total")),
        pages=parse_integer(get_field(pagination, "pages")),
    )


def _malformed_row_id(row):
    request_id = row.get("request_id") if isinstance(row, dict) else None
    return request_id[:128] if isinstance(request_id, str) else ""


def parse_usage_summary(item):
    return UsageSummary(
        requests=parse_integer(get_field(item, "requests")),
        input_tokens=parse_integer(get_field(item, "inputTokens")),
        output_tokens=parse_integer(get_field(item, "outputTokens")),
        total_tokens=parse_integer(get_field(item, "totalTokens")),
        cost=parse_money(get_field(item, "cost")),
    )
