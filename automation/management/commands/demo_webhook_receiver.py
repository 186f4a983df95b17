"""The demo's local webhook receiver: answers 204 to a delivery signed with the secret it was given, 400 otherwise.

Started by ``manage.py demo`` (the secret comes through the environment, never the command
line), so a webhook delivery succeeds on a laptop as it would at a reseller's own endpoint.
"""

import hmac
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from django.core.management.base import BaseCommand, CommandError

from automation import webhooks

# A signature older than this is refused, as a receiver should (the sender signs at each attempt).
TOLERANCE_SECONDS = 300


def is_signed_by(secret, header, body, now=None):
    """True when the ``t=<unix>,v1=<hex>`` header signs ``body`` under ``secret`` within the tolerance."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now or time.time()) - timestamp) > TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(webhooks.sign(secret, timestamp, body), parts.get("v1", ""))


def _handler_for(secret):
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            signed = is_signed_by(secret, self.headers.get(webhooks.SIGNATURE_HEADER, ""), body)
            self.send_response(204 if signed else 400)
            self.end_headers()

        def log_message(self, format, *args):
            """Quiet: the console's Webhooks page shows each delivery."""

    return Receiver


class Command(BaseCommand):
    help = "Receive the demo's webhooks on 127.0.0.1:PORT, checking each signature with DEMO_WEBHOOK_SECRET."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, required=True)

    def handle(self, *args, port, **options):
        secret = os.environ.get("DEMO_WEBHOOK_SECRET")
        if not secret:
            raise CommandError("Set DEMO_WEBHOOK_SECRET to the endpoint's signing secret.")
        with HTTPServer(("127.0.0.1", port), _handler_for(secret)) as server:
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
