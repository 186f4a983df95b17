"""HTTP server of the simulated derouter upstream: management API, inference and test controls.

This module holds the HTTP plumbing, routing, startup and CLI; the route families live in
management.py, inference.py and controls.py, and what they share in api.py. Behaviour follows
/work/shared/derouter-api.md, including its "Semantics the project assumes" section.
Standard library only, so it runs without Django.
"""

import argparse
import json
import os
import random
import re
import secrets
import signal
import socket
import sqlite3
import sys
import tempfile
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import anthropic, controls, inference, management, responses, seed
from .api import (
    ACCOUNT,
    CLIENT,
    EITHER,
    MAX_MONEY,
    NONE,
    PLAIN_NUMBER,
    ApiError,
    Caller,
    bad_request,
    encode_json,
    has_at_most_places,
    parse_json_body,
)
from .controls import FaultRules
from .conventions import APPLIED, CUSTOMER, IGNORED, REAL, REFUSED, WRITE_ANSWERS, Conventions
from .inference import Limiter
from .store import InsufficientBalance, Store, decimal_to_micro

MAX_BODY_BYTES = 10 * 1024 * 1024
HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,8}")
ROUTES = management.ROUTES + inference.ROUTES + anthropic.ROUTES + responses.ROUTES


class ConfigError(Exception):
    """The simulator was started with unusable options."""


class SimulatorHandler(BaseHTTPRequestHandler):
    """Answers one HTTP request against the simulator state held by the server."""

    protocol_version = "HTTP/1.1"
    server_version = "derouter-simulator/1.0"

    def setup(self):
        super().setup()
        # Answers go out as soon as they are written. With Nagle's algorithm on, a small write
        # that follows another waits for the client's delayed ACK: ~40 ms on every kept-alive call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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

    def do_HEAD(self):
        # A GET without its body: send_bytes leaves the body out for HEAD.
        self._dispatch("GET")

    def do_OPTIONS(self):
        self._dispatch("OPTIONS")

    def log_message(self, format, *args):
        if self.server.verbose:
            super().log_message(format, *args)

    # -- what route handlers use ----------------------------------------------------

    def json_body(self):
        """The request body parsed as a JSON object with exact numbers; 400 if it is not one."""
        return parse_json_body(self._raw_body)

    def send_bytes(self, status, data, content_type, headers=None):
        """Answer with a complete body: status line, headers and body in one write."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        body = data if self.command != "HEAD" else b""
        if self.request_version == "HTTP/0.9":  # an answer without status line or headers
            self.wfile.write(body)
            return
        # end_headers() would write the headers on their own; the body joins them instead.
        self._headers_buffer.extend((b"\r\n", body))
        self.flush_headers()

    def send_json(self, status, payload, headers=None):
        self.send_bytes(status, encode_json(payload).encode("utf-8"), "application/json", headers)

    def send_error(self, code, message=None, explain=None):
        """Answer the errors http.server finds itself (bad request line, unknown method) in JSON too."""
        self.close_connection = True
        self.send_json(code, {"error": message or self.responses.get(code, ("Error",))[0]})

    def send_chunked(self, status, content_type, pieces, headers=None):
        """Send each piece as it is produced, in chunked transfer encoding."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for data in pieces:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-stream; the connection is unusable for another request.
            self.close_connection = True

    # -- plumbing -------------------------------------------------------------------

    def _dispatch(self, method):
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        route = None
        try:
            self._raw_body = self._read_body()
            fault = None
            if not path.startswith("/_sim/"):
                self.server.wait_latency()
                fault = self._take_fault(method, path)
                if fault is not None and controls.act_out_fault(self, fault):
                    return
            route, match = self._find_route(path)
            if method == "OPTIONS":
                self._send_options(route)
                return
            handler = route.methods.get(method)
            if handler is None:
                raise ApiError(405, f"Method {method} not allowed", headers={"Allow": allowed_methods(route)})
            caller = self._authenticate(route)
            # Blank parameters (page=&accountOnly=) are dropped: they count as not given.
            answer_lost = fault is not None and fault["mode"] in controls.AFTER_MODES
            try:
                result = handler(self, caller=caller, query=parse_qs(parts.query), **match.groupdict())
            except ApiError:
                if not answer_lost:
                    raise
                result = None
            if result is not None:
                self._journal(method, path, result)
            if answer_lost and controls.act_out_after_fault(self, fault):
                return
            if result is not None:
                self._send_result(method, route, result)
        except ApiError as error:
            self._send_error(error, route)
        except sqlite3.Error:
            # The state file failed (locked past the timeout, disk full...): the upstream's 500.
            self._send_error(ApiError(500, "Internal server error", "server_error"), route)

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length_text = self.headers.get("Content-Length", "0")
        if not length_text.isdigit():
            self.close_connection = True
            raise bad_request("Invalid Content-Length")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise bad_request("Request body too large")
        return self.rfile.read(length) if length else b""

    def _read_chunked_body(self):
        """Read a body sent in chunked transfer encoding (as requests does for a generator)."""
        data = b""
        while True:
            size_text = self.rfile.readline(1024).split(b";")[0].strip()
            if not HEX_SIZE.fullmatch(size_text):
                self.close_connection = True
                raise bad_request("Invalid chunked body")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(data) + size > MAX_BODY_BYTES:
                self.close_connection = True
                raise bad_request("Request body too large")
            data += self.rfile.read(size)
            self.rfile.readline(1024)  # the CRLF closing the chunk
        while self.rfile.readline(1024).strip():  # optional trailers, up to the blank line
            pass
        return data

    def _find_route(self, path):
        routes = ROUTES + (controls.HEALTH_ROUTE, controls.CONVENTIONS_ROUTE)
        if self.server.faults is not None:
            routes += controls.FAULT_ROUTES
        for route in routes:
            match = route.pattern.fullmatch(path)
            if match:
                return route, match
        raise ApiError(404, "Not found", code="not_found")

    def _take_fault(self, method, path):
        """The injected fault rule for this request, a random Cloudflare fault (--cloudflare-faults), or None."""
        rule = self.server.faults.take(method, path) if self.server.faults is not None else None
        rate = self.server.conventions.cloudflare_faults
        if rule is None and rate and random.random() < rate:
            rule = controls.random_cloudflare_fault(method)
        return rule

    def _journal(self, method, path, result):
        """With --faults, keep every applied management write for tests (GET /_sim/journal)."""
        if self.server.journal is not None and controls.is_journaled(method, path):
            body = json.loads(self._raw_body or b"{}", parse_float=str, parse_int=str)
            self.server.journal.record(method, path, body, json.loads(encode_json(result), parse_float=str))

    def _send_result(self, method, route, result):
        """A successful answer: 200 with JSON, or a management write answered as the conventions say (201/204).

        The simulator's own controls (/_sim/, no key) are not derouter's: they always answer 200 with JSON.
        """
        if route.is_inference or method == "GET" or route.auth == NONE:
            self.send_json(200, result)
            return
        status, with_body = self.server.conventions.write_status(method)
        if with_body:
            self.send_json(status, result)
        else:
            self.send_response(status)
            if status != 204:
                self.send_header("Content-Length", "0")
            self.end_headers()

    def _send_options(self, route):
        """Answer OPTIONS on a known path with the methods it accepts; no key needed."""
        self.send_response(204)
        self.send_header("Allow", allowed_methods(route))
        self.end_headers()

    def _authenticate(self, route):
        if route.auth == NONE:
            return None
        header = self.headers.get("Authorization", "")
        if not header and route.anthropic and self.headers.get("x-api-key"):
            header = "Bearer " + self.headers["x-api-key"]  # how the Anthropic SDK sends the key
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("no Bearer key was given")
        if secrets.compare_digest(token.encode(), self.server.account_key.encode()):
            if route.auth in (ACCOUNT, EITHER):
                return Caller()
            raise unauthorized("this endpoint accepts only a Client Key")
        sub_key = self.server.store.key_by_secret(token)
        if sub_key is None:
            raise unauthorized("the key is unknown or was deleted")
        if route.auth in (CLIENT, EITHER):
            return Caller(sub_key)
        raise unauthorized("this endpoint accepts only the Account Key")

    def _send_error(self, error, route):
        if route is not None and route.anthropic:
            payload = {"type": "error", "error": {"type": error.err_type, "message": error.message}}
        elif route is not None and route.openai:
            payload = {"error": {"message": error.message, "type": error.err_type, "code": error.code}}
        else:
            payload = {"error": error.message}
        self.send_json(error.status, payload, error.headers)


def allowed_methods(route):
    """The Allow header of a route: its methods, HEAD wherever GET is, and OPTIONS."""
    methods = list(route.methods)
    if "GET" in methods:
        methods.append("HEAD")
    return ", ".join(methods + ["OPTIONS"])


def unauthorized(reason):
    """A 401 whose body is always the reference's {"error": "Invalid API key"}.

    The reason goes in the WWW-Authenticate header, so the body stays exactly as documented.
    """
    return ApiError(401, "Invalid API key", code="invalid_api_key",
                    headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'})


class SimulatorServer(ThreadingHTTPServer):
    """A threading HTTP server carrying the simulator's state for its handlers."""

    daemon_threads = True
    request_queue_size = 128  # bursts of concurrent test requests must not overflow the backlog

    def __init__(self, address, store, account_key, faults, verbose=False, latency_ms=0, jitter_ms=0,
                 conventions=None):
        super().__init__(address, SimulatorHandler)
        self.conventions = conventions or Conventions()
        self.store = store
        self.account_key = account_key
        self.faults = FaultRules() if faults else None
        self.journal = controls.Journal() if faults else None
        self.limiter = Limiter()
        self.verbose = verbose
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms

    def wait_latency(self):
        """Hold this request for the configured distance: N ms, give or take up to M ms.

        Each request sleeps in its own thread, so concurrent requests overlap as over a real network.
        """
        delay_ms = self.latency_ms + random.uniform(-self.jitter_ms, self.jitter_ms)
        if delay_ms > 0:
            time.sleep(delay_ms / 1000)

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


def check_latency(latency_ms, jitter_ms):
    """Refuse a latency or jitter that is negative or absurd (over ten minutes)."""
    for name, value in (("--latency-ms", latency_ms), ("--jitter-ms", jitter_ms)):
        if not 0 <= value <= 600_000:
            raise ConfigError(f"{name} must be between 0 and 600000 milliseconds")


def make_server(host, port, account_key, balance, state_path, demo=False, seed_keys=0, faults=False,
                verbose=False, seed_usage_rows=0, latency_ms=0, jitter_ms=0, conventions=None):
    """Open (or create and seed) the state file and return a bound, not yet serving, server."""
    if not account_key:
        raise ConfigError("an account key is required (--account-key or DEROUTER_ACCOUNT_KEY)")
    check_latency(latency_ms, jitter_ms)
    starting_balance = parse_starting_balance(balance)

    def seed_new_state(conn):
        if demo:
            seed.seed_demo(conn)
        if seed_keys:
            seed.seed_load_keys(conn, seed_keys)
        if seed_usage_rows:
            seed.seed_heavy_key(conn, seed_usage_rows)

    store = Store(state_path)
    try:
        store.initialize(starting_balance, seed_new_state)
    except InsufficientBalance as error:
        raise ConfigError(f"the balance cannot fund {seed_keys} load-test keys") from error
    return SimulatorServer((host, port), store, account_key, faults, verbose, latency_ms, jitter_ms, conventions)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(host, port, account_key, balance, state_path, demo=False, seed_keys=0, faults=False, verbose=False,
          seed_usage_rows=0, latency_ms=0, jitter_ms=0, conventions=None):
    """Run the simulator until SIGTERM or Ctrl-C; announce the address on stdout first."""
    server = make_server(host, port, account_key, balance, state_path, demo, seed_keys, faults, verbose,
                         seed_usage_rows, latency_ms, jitter_ms, conventions)
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
    parser.add_argument("--seed-usage-rows", type=int, default=0,
                        help='seed one key, "Load Test heavy", with N usage rows over 30 days (new state only)')
    parser.add_argument("--faults", action="store_true", help="enable /_sim/faults and /_sim/usage")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument("--latency-ms", type=int, default=0, metavar="N",
                        help="delay every answer of the API and inference by N milliseconds, as a distant "
                             "derouter would (each request waits in its own thread, so concurrent ones overlap; "
                             "/_sim/ controls are not delayed)")
    parser.add_argument("--jitter-ms", type=int, default=0, metavar="M",
                        help="vary each delay uniformly by up to M milliseconds either way (never below 0)")
    played = parser.add_argument_group(
        "conventions", "play a derouter that differs from the reference's reading (see derouter-public-pages.md)")
    played.add_argument("--amounts", choices=(REAL, CUSTOMER), default=REAL,
                        help="units of budgetVirtual/spentVirtual/remainingVirtual/addBudgetVirtual/"
                             "reduceBudgetVirtual/refundedVirtual: real dollars (default), or the customer's "
                             "(real times the key's displayMultiplier: $100 at 1.25x debits $80)")
    played.add_argument("--multiplier-at-creation", choices=(APPLIED, IGNORED), default=APPLIED,
                        help="displayMultiplier in POST /sub-keys: applied (default) or ignored (the key is 1x)")
    played.add_argument("--multiplier-after-creation", choices=(APPLIED, IGNORED, REFUSED), default=APPLIED,
                        help="displayMultiplier in PUT /sub-keys/:id: applied (default), ignored (200, unchanged) "
                             "or refused (400)")
    played.add_argument("--fixed-limits", action="store_true",
                        help="rate limits fixed at 60 rpm / 5 concurrent: rpmLimit in POST and PUT is ignored")
    played.add_argument("--write-answers", choices=WRITE_ANSWERS, default="reference",
                        help="successful writes answer: reference (200 with JSON, default), created (POST 201 "
                             "with JSON, PUT and DELETE 204 without body) or empty (201/204, never a body)")
    played.add_argument("--reclaim", choices=(APPLIED, IGNORED, REFUSED), default=APPLIED,
                        help="reduceBudgetVirtual in PUT /sub-keys/:id (takes unspent budget back to the "
                             "balance): applied (default), ignored (200, unchanged) or refused (400)")
    played.add_argument("--cloudflare-faults", default="0", metavar="SHARE",
                        help="answer this share (0 to 1) of API requests as Cloudflare in front of derouter "
                             "may: HTML 403 challenge, 429 'error code: 1015' with Retry-After, HTML 520/522/524, "
                             "and for writes also a 524 sent after the write was applied. The same faults can "
                             "be injected one by one with --faults (modes cloudflare, applied-then-cloudflare)")


def serve_from_options(options):
    """Run serve() from parsed CLI options (a dict); raise ConfigError on unusable options."""
    if options["seed_keys"] < 0 or options["seed_usage_rows"] < 0:
        raise ConfigError("--seed-keys and --seed-usage-rows must not be negative")
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
        seed_usage_rows=options["seed_usage_rows"],
        latency_ms=options["latency_ms"],
        jitter_ms=options["jitter_ms"],
        conventions=conventions_from_options(options),
    )


def conventions_from_options(options):
    """The Conventions the CLI options ask for; ConfigError on an unusable share of Cloudflare faults."""
    try:
        share = Decimal(str(options["cloudflare_faults"]))
    except ArithmeticError:
        share = Decimal(-1)
    if not share.is_finite() or not 0 <= share <= 1:
        raise ConfigError("--cloudflare-faults must be a number from 0 to 1")
    return Conventions(
        amounts=options["amounts"],
        multiplier_at_creation=options["multiplier_at_creation"],
        multiplier_after_creation=options["multiplier_after_creation"],
        fixed_limits=options["fixed_limits"],
        write_answers=options["write_answers"],
        reclaim=options["reclaim"],
        cloudflare_faults=share,
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
