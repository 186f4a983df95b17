"""Run the whole product locally: the simulated derouter with demo data and the dashboard."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ConsoleProfile, Role
from derouter import client
from mirror.models import DailyRollup, KeySnapshot, SyncState, UsageRecord
from work.models import TaskRun

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
                localstripe = self._start_localstripe()
            # Money in (payments, a layer above this one, reached by its command's name): codes, and card payments if on.
            money_in = call_command(
                "demo_money_in", webhook_url=f"http://{addr}/payments/stripe/webhook/", cards=localstripe is not None,
                stdout=StringIO(),
            )
            consumer = self._start_consumer(account_key)
            self._probe_conventions()
            self._print_welcome(addr, passwords, money_in=money_in)
            call_command("runserver", addr, use_reloader=False)
        finally:
            if consumer is not None:
                self._stop_consumer(consumer)
            if localstripe is not None:
                localstripe.terminate()
                localstripe.wait(timeout=10)
            simulator.terminate()
            simulator.wait(timeout=10)

    def _probe_conventions(self):
        """Let the console learn the simulator's conventions, as a reseller does with the real derouter."""
        try:
            call_command("check_upstream", stdout=StringIO())
        except CommandError as error:
            self.stderr.write(f"check_upstream against the simulator failed: {error}")

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

    def _start_localstripe(self):
        """localstripe on a free port; the SDK and the payment page pointed at it (here and in the consumer)."""
        port = _free_port()
        executable = Path(sys.executable).with_name("localstripe")
        process = subprocess.Popen([str(executable), "--port", str(port), "--from-scratch"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        base = f"http://127.0.0.1:{port}"
        settings.STRIPE_API_BASE = base
        settings.STRIPE_JS_URL = f"{base}/js.stripe.com/v3/"
        os.environ.update(STRIPE_API_BASE=settings.STRIPE_API_BASE, STRIPE_JS_URL=settings.STRIPE_JS_URL)
        return process

    def _forget_mirror(self):
        """New demo data: the mirror of the old simulator state would only confuse it."""
        for model in (UsageRecord, DailyRollup, SyncState, TaskRun, KeySnapshot):
            model.objects.all().delete()

    def _start_consumer(self, account_key):
        """One Huey consumer (periodic tasks on): its first refresh is the mirror's first sync.

        A demo stopped mid-sync leaves its leases to expire (work.leases); nothing to flush.
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

    def _print_welcome(self, addr, passwords, money_in):
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
        lines += [f"    {line}" for line in money_in.splitlines()]
        lines += [f"  Simulated derouter: {settings.DEROUTER_API_BASE}", "Stop with Ctrl-C.", ""]
        self.stdout.write("\n".join(lines))
