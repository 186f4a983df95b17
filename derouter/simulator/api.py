"""What every route family of the simulator shares: errors, route declarations, exact JSON and numbers."""

import json
import re
from json.encoder import encode_basestring_ascii
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .store import decimal_to_micro

MAX_MONEY = Decimal(1_000_000_000)
PLAIN_NUMBER = re.compile(r"\s*-?\d+(\.\d+)?\s*")

# Which key a route accepts.
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


def bad_request(message):
    return ApiError(400, message)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the Account Key (sub_key None) or a Client Key."""

    sub_key: object = None


@dataclass(frozen=True)
class Route:
    """A path and the handler of each HTTP method it accepts.

    A handler is called as handler(request, caller=..., query=..., **path groups), request being
    the SimulatorHandler answering; it returns the JSON payload of a 200, or None if it answered itself.
    """

    pattern: re.Pattern
    methods: dict  # HTTP method -> handler function
    auth: str
    openai: bool = False  # errors in OpenAI's shape
    anthropic: bool = False  # errors in Anthropic's shape; the key may come as x-api-key

    @property
    def is_inference(self):
        return self.openai or self.anthropic


class JsonNumber(str):
    """The exact text of a number, written into JSON as it is: a number, not a string."""


def fixed_point(units, places):
    """units * 10**-places as a JsonNumber in Decimal.normalize()'s plain form: (25_000_000, 6) -> 25, (10_000, 6) -> 0.01.

    Integer arithmetic: a list of 20,000 keys has 80,000 such amounts.
    """
    whole, fraction = divmod(abs(units), 10 ** places)
    fraction_text = f"{fraction:0{places}d}".rstrip("0")
    sign = "-" if units < 0 else ""
    return JsonNumber(f"{sign}{whole}.{fraction_text}" if fraction_text else f"{sign}{whole}")


def encode_json(value):
    """Serialize to JSON, writing Decimals as plain numbers from their exact decimal text.

    The output equals json.dumps' compact form (ASCII, "," and ":" without spaces) but for
    Decimals. Values are written into one list by type, without a json.dumps call or a
    recursive call per scalar: a list of 20,000 keys is 220,000 scalars.
    """
    parts = []
    _write_json(value, parts.append)
    return "".join(parts)


def _decimal_text(value):
    return format(value.normalize(), "f")


def _bool_text(value):
    return "true" if value else "false"


# How each scalar type is written; anything else goes through json.dumps.
SCALAR_WRITERS = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    bool: _bool_text,
    Decimal: _decimal_text,
    JsonNumber: str.__str__,
    type(None): lambda value: "null",
}


def _write_json(value, write):
    scalar = SCALAR_WRITERS.get(type(value))
    if scalar is not None:
        write(scalar(value))
    elif isinstance(value, dict):
        _write_object(value, write)
    elif isinstance(value, (list, tuple)):
        write("[")
        for index, item in enumerate(value):
            if index:
                write(",")
            _write_json(item, write)
        write("]")
    else:
        write(json.dumps(value))


def _write_object(value, write):
    """Write a dict; its scalar values are formatted in one pass, only nested ones recurse."""
    writers = SCALAR_WRITERS
    write("{")
    first = True
    for name, item in value.items():
        if not first:
            write(",")
        first = False
        write(encode_basestring_ascii(str(name)))
        write(":")
        scalar = writers.get(type(item))
        if scalar is not None:
            write(scalar(item))
        else:
            _write_json(item, write)
    write("}")


def _reject_constant(name):
    raise ValueError(f"{name} is not a valid JSON number here")


def parse_json_body(raw):
    """Parse a request body as a JSON object, reading every number as int or Decimal.

    No body at all counts as {}: a PUT whose fields are all optional may send none.
    """
    if not raw.strip():
        return {}
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
