"""Shared fixtures: one live simulated derouter per test session, a secret scanner, a browser."""

import logging
import os
import secrets

import pytest
import requests
from django.conf import settings

from tests.helpers import CHROMIUM, CHROMIUM_ARGS, new_page, start_simulator, stop_simulator
from tests.secret_scan import SecretScanLogHandler

# Playwright's sync API runs an event loop in the test thread; the tests' own
# database access there is safe, so let Django allow it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


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


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts in the default language: a request in Chinese leaves its language active in this thread."""
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.deactivate()


@pytest.fixture(scope="session")
def browser():
    """Headless Debian Chromium driven by Playwright."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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
    """Create a Client Key in the simulator through the client; returns the CreatedSubKey.

    The key snapshot is refreshed after, as the worker would, so pages that read it show the key.
    """
    from decimal import Decimal

    from derouter import client as derouter_client
    from mirror import snapshot as mirror_snapshot

    def make(budget="10", label="Test client", rpm_limit=None):
        created = derouter_client.create_sub_key(Decimal(budget), label=label, rpm_limit=rpm_limit)
        mirror_snapshot.refresh_snapshot()
        return created

    return make


@pytest.fixture
def sync_mirror(simulator):
    """Bring the mirror up to date with the simulator as the worker would, for the given keys.

    Pass sub-key ids, and/or "account" for the Account Key's own use; the snapshot is refreshed first.
    """
    from mirror import snapshot as mirror_snapshot
    from mirror import sync

    def run(*scopes):
        mirror_snapshot.refresh_snapshot()
        for scope in scopes:
            sync.sync_scope(scope)

    return run


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
def private_simulators(tmp_path, settings):
    """start(balance="1000", wire=True, probe=False, **conventions) -> a private simulator (with faults) playing
    those conventions; wired into the settings unless wire=False, then probed by check_upstream if probe=True."""
    from io import StringIO

    from django.core.management import call_command

    from derouter.simulator.conventions import Conventions
    from tests.simulator_helpers import simulator_in_thread

    opened = []

    def start(balance="1000", wire=True, probe=False, **conventions):
        folder = tmp_path / f"sim{len(opened)}"
        folder.mkdir()
        context = simulator_in_thread(folder, balance=balance, faults=True, conventions=Conventions(**conventions))
        opened.append(context)
        private = context.__enter__()
        if wire:
            settings.DEROUTER_API_BASE = private.base_url
            settings.DEROUTER_ACCOUNT_KEY = private.account_key
        if probe:
            call_command("check_upstream", stdout=StringIO())
        return private

    yield start
    for context in opened:
        context.__exit__(None, None, None)


@pytest.fixture
def webhook_receiver(settings):
    """A receiver on loopback; only tests that use it allow webhooks to private targets."""
    from tests.webhook_receiver import start_receiver

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    receiver, server = start_receiver()
    yield receiver
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def localstripe():
    """A fresh localstripe for the session (only started when a test asks for it)."""
    from tests.stripe_helpers import start_localstripe, stop_localstripe

    server = start_localstripe()
    previous = (settings.STRIPE_API_BASE, settings.STRIPE_JS_URL)
    settings.STRIPE_API_BASE = server.base_url
    settings.STRIPE_JS_URL = server.js_url
    yield server
    settings.STRIPE_API_BASE, settings.STRIPE_JS_URL = previous
    stop_localstripe(server)
