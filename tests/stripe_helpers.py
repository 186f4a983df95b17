"""localstripe (a stateful fake Stripe) for the payment tests and the demo, and Stripe-style event signing.

localstripe is started from scratch on a free port; the SDK is pointed at it through the
STRIPE_API_BASE setting and pages load its stripe.js stand-in (``/js.stripe.com/v3/``).
It signs the webhooks it sends as Stripe does; ``signed_event`` signs events the tests
build themselves (localstripe sends no charge.refunded), with the same scheme.
"""

import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.helpers import free_port


@dataclass
class LocalStripe:
    base_url: str
    process: subprocess.Popen

    @property
    def js_url(self):
        return f"{self.base_url}/js.stripe.com/v3/"

    def register_webhook(self, url, secret, events=None):
        data = {"url": url, "secret": secret}
        if events:
            data["events"] = events
        requests.post(f"{self.base_url}/_config/webhooks/{secrets.token_hex(4)}", json=data, timeout=5).raise_for_status()


def start_localstripe():
    port = free_port()
    executable = Path(sys.executable).with_name("localstripe")
    process = subprocess.Popen(
        [str(executable), "--port", str(port), "--from-scratch"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("localstripe exited at start")
        try:
            requests.get(f"{base_url}/v1/customers", auth=("sk_test_probe", ""), timeout=1)
            return LocalStripe(base_url, process)
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("localstripe did not start within 30 s")


def stop_localstripe(localstripe):
    localstripe.process.terminate()
    try:
        localstripe.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        localstripe.process.kill()


def signature_header(payload, secret, timestamp=None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def signed_event(event_type, obj, secret, event_id=None, timestamp=None, **fields):
    """(body, Stripe-Signature header) of an event as Stripe would send it."""
    event = {
        "id": event_id or "evt_" + secrets.token_hex(12),
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "livemode": False,
        "api_version": "2024-06-20",
        "data": {"object": obj},
        **fields,
    }
    body = json.dumps(event).encode()
    return body, signature_header(body, secret, timestamp)
