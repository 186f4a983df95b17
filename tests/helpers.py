"""Helpers shared by the test files: the simulator process, the browser, signing in, reading derouter.

Test files import these from here; conftest.py only holds fixtures (and imports
what they need from here too).
"""

import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Simulator:
    """A running simulator process and the means to steer its faults."""

    base_url: str
    account_key: str
    process: subprocess.Popen
    state_path: Path

    @property
    def inference_base(self):
        return f"{self.base_url}/openai/v1"

    def inject(self, mode, **rule):
        """Add a fault rule: mode is slow, error, nonjson or drop (see the simulator)."""
        response = requests.post(f"{self.base_url}/_sim/faults", json={"mode": mode, **rule}, timeout=5)
        response.raise_for_status()

    def clear_faults(self):
        requests.delete(f"{self.base_url}/_sim/faults", timeout=5).raise_for_status()

    def add_usage(self, sub_key_id, cost, count=1, **fields):
        """Record usage rows for a key directly, faster than real requests; fields such as inputTokens."""
        body = {"subKeyId": sub_key_id, "cost": cost, **fields}
        for _ in range(count):
            requests.post(f"{self.base_url}/_sim/usage", json=body, timeout=5).raise_for_status()

    def chat(self, api_key, count=1, text="hi"):
        """Make inference requests with a key, as a customer would."""
        for _ in range(count):
            requests.post(
                f"{self.inference_base}/chat/completions",
                headers={"Authorization": f"Bearer {api_key}"},
                json={"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": text}]},
                timeout=10,
            ).raise_for_status()


def start_simulator(state_path, account_key, balance="100000", extra_args=()):
    """Start ``manage.py runsim`` on a free port and wait until it answers."""
    port = free_port()
    command = [
        sys.executable, "manage.py", "runsim",
        "--port", str(port),
        "--balance", balance,
        "--state", str(state_path),
        "--faults",
        *extra_args,
    ]
    # The key goes through the environment: a command line is visible to every user in ps.
    environment = {**os.environ, "DEROUTER_ACCOUNT_KEY": account_key}
    process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the simulator exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if requests.get(f"{base_url}/_sim/health", timeout=1).ok:
                return Simulator(base_url, account_key, process, Path(state_path))
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the simulator did not start within 30 s")


def stop_simulator(simulator):
    simulator.process.terminate()
    try:
        simulator.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        simulator.process.kill()


def new_page(browser, **context_options):
    """A page in a context of its own, failing a step after 10 s."""
    page = browser.new_context(**context_options).new_page()
    page.set_default_timeout(10_000)
    return page


def sign_in(page, live_server, username, password):
    """Sign in to the console through its login page and land on the dashboard, its scripts run.

    The menus' keyboard handling (Escape) and the copy buttons are in the deferred app.js: a
    key pressed before it has run does nothing (the More menu's Escape test failed so once in CI).
    """
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    page.wait_for_load_state("load")


def budget_of(sub_key_id):
    """A Client Key's budget as derouter has it now."""
    from derouter import client as derouter_client

    return next(sub_key.budget for sub_key in derouter_client.list_sub_keys() if sub_key.id == sub_key_id)


def find_key(sub_key_id):
    """A Client Key as derouter lists it now, or None."""
    from derouter import client as derouter_client

    return next((sub_key for sub_key in derouter_client.list_sub_keys() if sub_key.id == sub_key_id), None)


def keys_labelled(label):
    """Every Client Key derouter lists with this label."""
    from derouter import client as derouter_client

    return [key for key in derouter_client.list_sub_keys() if key.label == label]


def eventually(condition, timeout=5):
    """Wait for a write that timed out on our side to land in the simulator, so it cannot touch later tests."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the slow write never landed"
        time.sleep(0.1)


def database_url_for_subprocesses():
    """The test database as a DATABASE_URL the consumer processes can open."""
    database = connection.settings_dict
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{database['NAME']}"
    credentials = database["USER"] + (f":{database['PASSWORD']}" if database["PASSWORD"] else "")
    return f"postgres://{credentials}@{database['HOST'] or '127.0.0.1'}:{database['PORT'] or 5432}/{database['NAME']}"


def tiny_png():
    """A valid 1x1 PNG, made here so the test needs no image library."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x3b\x5b\xdb")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def query_plan(queryset):
    """The database's plan for a queryset, one line per step, on SQLite or PostgreSQL.

    On PostgreSQL sorting and sequential scans are priced out: a plan still sorts, or scans
    the whole table, only when no index can do instead.
    """
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row[-1]) for row in cursor.fetchall())


# Every management path but the simulator's own controls: a page that asked derouter anything would wait.
MANAGEMENT_PATHS = ("/balance", "/sub-key", "/usage-logs")


def hang_derouter(simulator, seconds=60):
    """Make derouter hang on every management request (the simulator's slow fault) until the faults are cleared."""
    for path in MANAGEMENT_PATHS:
        simulator.inject("slow", path=path, delay=seconds, times=0)
