"""Run the whole product locally: the simulated derouter with demo data and the dashboard."""

import json
import logging
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
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from accounts.models import ConsoleProfile, Role
from derouter import client

DEMO_USERS = (("owner", Role.OWNER), ("staff", Role.STAFF))
# The processes' logs at WARNING unless --verbose: the welcome printed last stays on screen.
QUIET_LOG_LEVEL = "WARNING"


def _free_port(preferred=0):
    """``preferred`` when it is free (so printed URLs stay the same between runs), else any free port."""
    with socket.socket() as sock:
        # As the simulator's server does: a port the last run left in TIME_WAIT is free to listen on.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Command(BaseCommand):
    help = "Migrate, create demo users, start the simulator with demo data and a Huey consumer, serve the dashboard."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default="127.0.0.1:8000", help="Where the dashboard listens.")
        parser.add_argument("--state", default=str(Path(settings.BASE_DIR) / "var" / "demo-sim.sqlite3"))
        parser.add_argument(
            "--fresh", action="store_true",
            help="Start from new demo data: a new simulator state and an emptied database (the users keep their passwords).",
        )
        parser.add_argument("--seed-keys", type=int, default=0, help="Also seed this many extra keys (scale demo).")
        parser.add_argument(
            "--credentials", default=str(Path(settings.BASE_DIR) / "var" / "demo-credentials.json"),
            help="Where the demo keeps its passwords between runs (and writes what it prints last).",
        )
        parser.add_argument(
            "--sim-port", type=int, default=8001,
            help="Where the simulated derouter listens (its /openai/v1 base URL is printed); another port if taken.",
        )
        parser.add_argument("--verbose", action="store_true", help="Show every log line (worker and requests at INFO).")

    def handle(self, *args, addr, state, fresh, seed_keys, credentials, sim_port, verbose, **options):
        state_path = Path(state)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:
            for path in state_path.parent.glob(state_path.name + "*"):
                path.unlink()
        if not verbose:
            os.environ["LOG_LEVEL"] = QUIET_LOG_LEVEL
            logging.getLogger().setLevel(QUIET_LOG_LEVEL)
        call_command("migrate", interactive=False, verbosity=0)
        if fresh:
            self._forget_old_data()
        credentials_path = Path(credentials)
        kept = _read_credentials(credentials_path)
        passwords = {
            username: self._ensure_user(username, role, kept.get("passwords", {}).get(username))
            for username, role in DEMO_USERS
        }

        account_key = settings.DEROUTER_ACCOUNT_KEY or "sk-ant-demo-" + secrets.token_urlsafe(24)
        # Stopped by a signal (timeout, a supervisor), the demo stops its processes as on Ctrl-C.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        port = _free_port(sim_port)
        simulator = self._start_simulator(port, account_key, state_path, seed_keys)
        consumer = localstripe = receiver = server = None
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
            # The local receiver is on loopback: the demo lets webhooks go there (here and in the consumer).
            settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
            os.environ.update(WEBHOOK_ALLOW_HTTP="true", WEBHOOK_ALLOW_PRIVATE_TARGETS="true")
            receiver_port = _free_port()
            # The story (automation, a layer above this one, reached by its command's name).
            webhook_secret = call_command(
                "demo_story", receiver_url=f"http://127.0.0.1:{receiver_port}/webhooks", stdout=StringIO()
            )
            receiver = self._start_receiver(receiver_port, webhook_secret)
            consumer = self._start_consumer()
            self._probe_conventions()
            server = self._start_server(addr)
            sample = self._sample_key()
            welcome = self._welcome(addr, passwords, money_in, sample)
            _write_credentials(credentials_path, passwords, welcome, client_key=sample.secret.reveal() if sample else "")
            self.stdout.write("\n".join(["", *welcome, f"  (kept in {credentials_path})", "Stop with Ctrl-C.", ""]))
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            for process in (server, receiver):
                if process is not None:
                    _stop(process)
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

    def _ensure_user(self, username, role, kept_password=None):
        password = kept_password or secrets.token_urlsafe(9)
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

    def _forget_old_data(self):
        """New demo data: what the database says of the old simulator state would contradict it.

        Not only the mirror: the ledger and the audit trail name keys and money of the old state (the
        story's top-ups would stand in the ledger with derouter knowing nothing of them, and
        reconciliation would report them), and so do the rules, codes and orders. The database is
        emptied; the users are made again with the passwords kept in the credentials file.
        """
        if not settings.DEBUG:
            raise CommandError("--fresh empties the database: it runs only with DEBUG on (the demo's own settings).")
        call_command("flush", interactive=False, verbosity=0)
        cache.clear()

    def _start_consumer(self):
        """One Huey consumer (periodic tasks on): its first refresh is the mirror's first sync.

        A demo stopped mid-sync leaves its leases to expire (work.leases); nothing to flush.
        """
        return subprocess.Popen(
            [sys.executable, "manage.py", "run_huey"], cwd=settings.BASE_DIR, env=self._upstream_environment()
        )

    def _upstream_environment(self):
        """The environment of the demo's dashboard and worker: this run's simulator (its key never on a command line)."""
        return {
            **os.environ,
            "DEROUTER_API_BASE": settings.DEROUTER_API_BASE,
            "DEROUTER_INFERENCE_BASE": settings.DEROUTER_INFERENCE_BASE,
            "DEROUTER_ACCOUNT_KEY": settings.DEROUTER_ACCOUNT_KEY,
        }

    def _stop_consumer(self, consumer):
        # SIGINT lets the consumer finish the task in hand; a sync resumes from its checkpoint anyway.
        consumer.send_signal(signal.SIGINT)
        try:
            consumer.wait(timeout=15)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()

    def _start_receiver(self, port, webhook_secret):
        """The local webhook receiver; its secret through the environment, never the command line."""
        environment = {**os.environ, "DEMO_WEBHOOK_SECRET": webhook_secret}
        process = subprocess.Popen(
            [sys.executable, "manage.py", "demo_webhook_receiver", "--port", str(port)],
            cwd=settings.BASE_DIR, env=environment,
        )
        _wait_for_port(process, port, "the webhook receiver")
        return process

    def _start_server(self, addr):
        """The dashboard (runserver, no reloader) in its own process, so the welcome can be printed after its banner."""
        host, _, port = addr.rpartition(":")
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", addr, "--noreload"],
            cwd=settings.BASE_DIR, env=self._upstream_environment(), stdout=subprocess.DEVNULL,
        )
        _wait_for_port(process, int(port), "the dashboard", host=host or "127.0.0.1")
        return process

    def _sample_key(self):
        """The Client Key the demo offers for the portal: the first by label, the same every run."""
        sub_keys = sorted(client.list_sub_keys(), key=lambda key: key.label)
        return sub_keys[0] if sub_keys else None

    def _welcome(self, addr, passwords, money_in, sample):
        """The lines printed last: where to go, how to sign in, the portal key and the inference base URL."""
        base = f"http://{addr}"
        lines = [
            "derouter reseller dashboard demo",
            f"  Console:  {base}/login/",
            f"    owner / {passwords['owner']}",
            f"    staff / {passwords['staff']}",
            f"  Portal:   {base}/portal/login/",
        ]
        if sample:
            lines.append(f"    Client Key of {sample.label}: {sample.secret.reveal()}")
        lines += [f"    {line}" for line in money_in.splitlines()]
        lines += [
            f"  OpenAI-compatible base URL (the simulator): {settings.DEROUTER_INFERENCE_BASE}",
            f"  Simulated derouter: {settings.DEROUTER_API_BASE}",
        ]
        return lines


def _exit_on_signal(signum, frame):
    raise SystemExit(0)


def _read_credentials(path):
    """What an earlier run kept (its passwords above all); nothing when there is no readable file."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_credentials(path, passwords, welcome, client_key=""):
    """Keep the passwords for the next run and the welcome for whoever lost the terminal; readable by the user only.

    The portal's Client Key is kept too, for bench/screenshots.py.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.write_text(json.dumps({"passwords": passwords, "client_key": client_key, "welcome": welcome}, indent=2) + "\n")


def _wait_for_port(process, port, name, host="127.0.0.1"):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CommandError(f"{name} exited during start-up; see its output above.")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise CommandError(f"{name} did not start within 60 seconds.")


def _stop(process):
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
