"""Helpers for tests of the simulated derouter upstream: HTTP calls, keys, usage, private simulators."""

import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal

import requests

from derouter.simulator import make_server


def decode(response):
    """The response's JSON with every non-integer number as a Decimal."""
    return json.loads(response.text, parse_float=Decimal)


def call(simulator, method, path, key=None, **kwargs):
    headers = {"Authorization": f"Bearer {key or simulator.account_key}", **kwargs.pop("headers", {})}
    return requests.request(method, simulator.base_url + path, headers=headers, timeout=10, **kwargs)


def balance(simulator):
    """(balance, locked, available) as Decimals."""
    body = call(simulator, "GET", "/balance").json()
    return tuple(Decimal(body[name]) for name in ("balance", "locked_balance", "available"))


def create_key(simulator, **fields):
    response = call(simulator, "POST", "/sub-keys", json={"budgetVirtual": 5, **fields})
    assert response.status_code == 200, response.text
    return decode(response)


def list_keys(simulator):
    return decode(call(simulator, "GET", "/sub-keys"))["subKeys"]


def listed(simulator, key_id):
    return next((item for item in list_keys(simulator) if item["id"] == key_id), None)


def inject_usage(simulator, cost, sub_key_id=None, **fields):
    body = {"cost": str(cost), **fields}
    if sub_key_id:
        body["subKeyId"] = sub_key_id
    response = requests.post(f"{simulator.base_url}/_sim/usage", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return decode(response)["row"]


@dataclass(frozen=True)
class PrivateSimulator:
    base_url: str
    account_key: str


@contextmanager
def simulator_in_thread(tmp_path, **options):
    """A private simulator served from a thread of this process, for options the shared one lacks."""
    server = make_server("127.0.0.1", 0, "sk-ant-private-account", options.pop("balance", "100"),
                         tmp_path / "private.sqlite3", **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield PrivateSimulator(f"http://127.0.0.1:{server.server_address[1]}", "sk-ant-private-account")
    finally:
        server.shutdown()
        server.server_close()
