"""Run the whole product locally: the simulated derouter with demo data and the dashboard."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ConsoleProfile, Role
from derouter import client
from mirror.models import DailyRollup, KeySnapshot, SyncState, TaskRun, UsageRecord
from payments import codes as redemption_codes
from payments.models import CodeBatch, Package, StripeSettings

DEMO_USERS = (("owner", Role.OWNER), ("staff", Role.STAFF))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Command(BaseCommand):
    help = "Migrate, create demo users, start the simulator with demo data and a Huey consumer, serve the dashboard."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Where the dashboard listens.")
        parser.add_argument("--state", default=str(Path(settings.BASE_DIR) / "var" / "demo-sim.sqlite3"))
        parser.add_argument("--fresh", action="store_true", help="Start from a new simulator state.")
        parser.add_argument("--seed-keys", type=int, default=0, help="Also seed this many extra keys (scale demo).")

    def handle(self, *args, addr, state, fresh, seed_keys, **options):
        state_path = Path(state)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            for path in state_path.parent.glob(state_path.name + "*"):
                path.unlink()
        call_command("migrate", interactive=False, verbosity=0)
        if fresh:
            self._forget_mirror()
        passwords = {username: self._ensure_user(username, role) for username, role in DEMO_USERS}

        account_key = settings.DEROUTER_ACCOUNT_KEY or "sk-ant-demo-" + secrets.token_urlsafe(24)
        port = _free_port()
        simulator = self._start_simulator(port, account_key, state_path, seed_keys)
        consumer = localstripe = None
        try:
            settings.DEROUTER_API_BASE = f"http://127.0.0.1:{port}"
            settings.DEROUTER_INFERENCE_BASE = f"http://127.0.0.1:{port}/openai/v1"
            settings.DEROUTER_ACCOUNT_KEY = account_key
            # Card payments against localstripe (a fake Stripe, about a second to start): on unless STRIPE_DEMO=0.
            if os.environ.get("STRIPE_DEMO", "1") != "0":
                localstripe = self._start_localstripe(addr)
            consumer = self._start_consumer(account_key)
            self._print_welcome(addr, passwords, demo_code=self._make_demo_codes())
            call_command("runserver", addr, use_reloader=False)
        finally:
            if consumer is not None:
                self._stop_consumer(consumer)
            if localstripe is not None:
                localstripe.terminate()
                localstripe.wait(timeout=10)
            simulator.terminate()
            simulator.wait(timeout=10)

    def _ensure_user(self, username, role):
        password = secrets.token_urlsafe(9)
        user, _ = User.objects.get_or_create(username=username)
        user.set_password(password)
        user.save()
        ConsoleProfile.objects.update_or_create(user=user, defaults={"role": role})
        return password

    def _start_simulator(self, port, account_key, state_path, seed_keys):
        command = [
            sys.executable, "manage.py", "runsim",
            "--port", str(port),
            "--state", str(state_path),
            "--demo",
        ]
        if seed_keys:
            command += ["--seed-keys", str(seed_keys)]
        # The key goes through the environment: a command line is visible to every user in ps.
        environment = {**os.environ, "DEROUTER_ACCOUNT_KEY": account_key}
        process = subprocess.Popen(command, cwd=settings.BASE_DIR, env=environment, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise CommandError("The simulator exited during start-up; see its output above.")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return process
            except OSError:
                time.sleep(0.2)
        process.kill()
        raise CommandError("The simulator did not start within 60 seconds.")

    def _start_localstripe(self, addr):
        """localstripe on a free port, card payments set up against it (demo keys) with two packages and its webhook."""
        port = _free_port()
        executable = Path(sys.executable).with_name("localstripe")
        process = subprocess.Popen([str(executable), "--port", str(port), "--from-scratch"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise CommandError("localstripe did not start; run with STRIPE_DEMO=0 to leave card payments out.") from None
                time.sleep(0.2)
        settings.STRIPE_API_BASE = base
        settings.STRIPE_JS_URL = f"{base}/js.stripe.com/v3/"
        os.environ.update(STRIPE_API_BASE=settings.STRIPE_API_BASE, STRIPE_JS_URL=settings.STRIPE_JS_URL)
        webhook_secret = "whsec_demo_" + secrets.token_urlsafe(16)
        row = StripeSettings.load()
        row.enabled, row.publishable_key = True, "pk_test_demo"
        row.set_secret_key("sk_test_demo_" + secrets.token_urlsafe(12))
        row.set_webhook_secret(webhook_secret)
        row.save()
        if not Package.objects.exists():
            Package.objects.create(name="Starter", price=Decimal("20.00"), currency="usd", credit=Decimal("25"))
            Package.objects.create(name="Pro", price=Decimal("50.00"), currency="usd", credit=Decimal("70"))
        body = json.dumps({"url": f"http://{addr}/payments/stripe/webhook/", "secret": webhook_secret}).encode()
        request = urllib.request.Request(f"{base}/_config/webhooks/demo", data=body, headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).close()
        return process

    def _make_demo_codes(self):
        """A batch of three codes worth 10 in the customer's units; one is printed (codes are shown only once)."""
        owner = User.objects.get(username="owner")
        _, texts = redemption_codes.create_batch(owner, 3, Decimal("10"), CodeBatch.Unit.CUSTOMER, note="Demo codes")
        return texts[0]

    def _forget_mirror(self):
        """New demo data: the mirror of the old simulator state would only confuse it."""
        for model in (UsageRecord, DailyRollup, SyncState, TaskRun, KeySnapshot):
            model.objects.all().delete()

    def _start_consumer(self, account_key):
        """One Huey consumer (periodic tasks on): its first refresh is the mirror's first sync.

        A demo stopped mid-sync leaves its leases to expire (mirror.leases); nothing to flush.
        """
        environment = {
            **os.environ,
            "DEROUTER_API_BASE": settings.DEROUTER_API_BASE,
            "DEROUTER_INFERENCE_BASE": settings.DEROUTER_INFERENCE_BASE,
            "DEROUTER_ACCOUNT_KEY": account_key,
        }
        return subprocess.Popen(
            [sys.executable, "manage.py", "run_huey"], cwd=settings.BASE_DIR, env=environment
        )

    def _stop_consumer(self, consumer):
        # SIGINT lets the consumer finish the task in hand; a sync resumes from its checkpoint anyway.
        consumer.send_signal(signal.SIGINT)
        try:
            consumer.wait(timeout=15)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()

    def _print_welcome(self, addr, passwords, demo_code):
        sub_keys = client.list_sub_keys()
        sample = sub_keys[0] if sub_keys else None
        base = f"http://{addr}"
        lines = [
            "",
            "derouter reseller dashboard demo",
            f"  Console:  {base}/login/",
            f"    owner / {passwords['owner']}",
            f"    staff / {passwords['staff']}",
            f"  Portal:   {base}/portal/login/",
        ]
        if sample:
            lines.append(f"    Client Key of {sample.label}: {sample.secret.reveal()}")
        lines.append(f"    A redemption code worth 10 (Redeem a code): {demo_code}")
        if StripeSettings.load().is_ready and settings.STRIPE_API_BASE != "https://api.stripe.com":
            lines.append(f"    Buy credit: card 4242 4242 4242 4242, any future expiry, any CVC (localstripe at {settings.STRIPE_API_BASE})")
        lines += [f"  Simulated derouter: {settings.DEROUTER_API_BASE}", "Stop with Ctrl-C.", ""]
        self.stdout.write("\n".join(lines))
