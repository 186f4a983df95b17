"""Shared fixtures: one live simulated derouter per test session, a secret scanner, a browser."""

import logging
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.secret_scan import SecretScanLogHandler

# Playwright's sync API runs an event loop in the test thread; the tests' own
# database access there is safe, so let Django allow it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

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


@pytest.fixture(scope="session", autouse=True)
def simulator(tmp_path_factory):
    """The live simulated derouter for the whole session, wired into the settings."""
    account_key = "sk-ant-acct-" + secrets.token_urlsafe(24)
    sim = start_simulator(tmp_path_factory.mktemp("sim") / "state.sqlite3", account_key)
    previous = (settings.DEROUTER_API_BASE, settings.DEROUTER_INFERENCE_BASE, settings.DEROUTER_ACCOUNT_KEY)
    settings.DEROUTER_API_BASE = sim.base_url
    settings.DEROUTER_INFERENCE_BASE = sim.inference_base
    settings.DEROUTER_ACCOUNT_KEY = account_key
    yield sim
    settings.DEROUTER_API_BASE, settings.DEROUTER_INFERENCE_BASE, settings.DEROUTER_ACCOUNT_KEY = previous
    stop_simulator(sim)


@pytest.fixture(autouse=True)
def no_faults_left(simulator):
    """Each test starts and ends with no fault rules in the simulator."""
    yield
    simulator.clear_faults()


@pytest.fixture(scope="session", autouse=True)
def log_secret_scanner():
    handler = SecretScanLogHandler()
    root = logging.getLogger()
    previous_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous_level)


@pytest.fixture(autouse=True)
def no_account_key_in_logs(log_secret_scanner):
    """Fail the test in which any log line carried the Account Key."""
    before = len(log_secret_scanner.leaks)
    yield
    leaks = log_secret_scanner.leaks[before:]
    assert not leaks, f"the Account Key was logged: {leaks}"


@pytest.fixture(autouse=True)
def fresh_cache():
    """Throttles and cached lists never leak from one test into the next.

    The database cache is rolled back with each test's transaction; Redis is not.
    """
    yield
    if "redis" in settings.CACHES["default"]["BACKEND"].lower():
        from django.core.cache import cache

        cache.clear()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def new_page(browser, **context_options):
    """A page in a context of its own, failing a step after 10 s."""
    page = browser.new_context(**context_options).new_page()
    page.set_default_timeout(10_000)
    return page


@pytest.fixture
def page(browser):
    page = new_page(browser, accept_downloads=True)
    yield page
    page.context.close()


@pytest.fixture
def page_without_javascript(browser):
    page = new_page(browser, java_script_enabled=False)
    yield page
    page.context.close()


def sign_in(page, live_server, username, password):
    """Sign in to the console through its login page and land on the dashboard."""
    from playwright.sync_api import expect

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("main button[type=submit]")
    expect(page).to_have_url(re.compile(r"/dashboard/$"))


@pytest.fixture
def owner(django_user_model):
    from accounts.models import ConsoleProfile, Role

    user = django_user_model.objects.create_user("olivia", password="owner-pass-1234")
    ConsoleProfile.objects.create(user=user, role=Role.OWNER)
    return user


@pytest.fixture
def staff(django_user_model):
    from accounts.models import ConsoleProfile, Role

    user = django_user_model.objects.create_user("sam", password="staff-pass-1234")
    ConsoleProfile.objects.create(user=user, role=Role.STAFF)
    return user


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def make_key(simulator):
    """Create a Client Key in the simulator through the client; returns the CreatedSubKey."""
    from decimal import Decimal

    from derouter import client as derouter_client

    def make(budget="10", label="Test client", rpm_limit=None):
        return derouter_client.create_sub_key(Decimal(budget), label=label, rpm_limit=rpm_limit)

    return make


def budget_of(sub_key_id):
    """A Client Key's budget as derouter has it now."""
    from derouter import client as derouter_client

    return next(sub_key.budget for sub_key in derouter_client.list_sub_keys() if sub_key.id == sub_key_id)


# A no-op "slow" rule (delay 0) per management path: each request there uses up one of its
# times, so the rules count every upstream call the console makes.
COUNTER_TIMES = 100_000
COUNTED_PATHS = ("/balance", "/sub-keys", "/usage-logs")


@pytest.fixture
def upstream_calls(simulator):
    """A function returning how many management API requests were made since the fixture started."""
    for path in COUNTED_PATHS:
        simulator.inject("slow", path=path, delay=0, times=COUNTER_TIMES)

    def count():
        faults = requests.get(f"{simulator.base_url}/_sim/faults", timeout=5).json()["faults"]
        counters = [rule for rule in faults if rule["mode"] == "slow" and rule["delay"] in (0, "0")]
        return sum(COUNTER_TIMES - rule["times"] for rule in counters)

    return count


@pytest.fixture
def webhook_receiver(settings):
    """A receiver on loopback; only tests that use it allow webhooks to private targets."""
    from tests.webhook_receiver import start_receiver

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()
