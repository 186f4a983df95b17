"""Measure the dashboard under gunicorn with production settings against simulators at three scales.

    bench/run [--rounds 15] [--latencies 0,150] [--journeys 5] [--export-rows 100000] [--sync-runs 3]

Starts, on loopback, one simulator per scale (50, 5,000 and 20,000 Client Keys; the
50-key one also holds a key with --export-rows usage rows) and, per scale, a deployment of
its own as production runs it: a database (SQLite files in a temporary folder, or one
PostgreSQL database per scale beside DATABASE_URL's), a Huey queue (REDIS_URL if set) and
cache prefix, the mirror filled by `manage.py sync`, a Huey worker and a gunicorn
(gunicorn.conf.py, production settings). Then, for each upstream latency of --latencies
(the simulators restarted on the same state with `--latency-ms`, so derouter answers as
from that far away), it measures in one run, interleaving what it compares, and prints a
table of medians and ratios:

- each page's time to its complete first response against the empty signed-in page's, with
  the upstream calls it made (as the dashboard's own metrics count them), and its own time
  (the CPU time of the gunicorn thread that answered it, which the machine's other load does
  not move: bench/cpu_settings.py adds it as a header) against the empty page's and against
  the same page at 50 keys;
- the staff top-up journey (form, amount, confirm: three requests) against the same at 50
  keys, with the upstream calls each step made one after the other;

and once, at the first latency: the portal CSV export of the heavy key (written by the
Huey worker, from the click to the downloaded file) against paging /sub-key/usage-logs
directly, with the worker's peak RSS growth; and the usage sync (a first sync of
--export-rows rows, incremental syncs of 1,000 new rows) against paging /usage-logs
directly, run by bench/mirror_at_scale.py once the deployments are stopped: in its own
process, on SQLite, as the worker runs it; and usage freshness (--freshness-keys keys each
make a request, derouter --freshness-latency-ms away: when the last row is visible after
the worker's pass), by bench/usage_freshness.py, the same way.
"""

import argparse
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SCALES = (50, 5000, 20000)
HEAVY_LABEL = "Load Test heavy"
PAGES = (  # (name, path ({key}: a light key's id), uses the portal session)
    ("empty signed-in page (ledger)", "/dashboard/topups/", False),
    ("overview", "/dashboard/", False),
    ("key list", "/dashboard/keys/", False),
    ("key list by spend", "/dashboard/keys/?sort=-spent", False),
    ("key page", "/dashboard/keys/{key}/", False),
    ("usage log", "/dashboard/logs/", False),
    ("analytics", "/dashboard/analytics/", False),
    ("portal home (heavy key)", "/portal/", True),
)
# Pages that must not wait for derouter: at any latency, within 1.5x of the empty page's time.
NO_WAIT_PAGES = ("overview", "key page", "portal home (heavy key)")
FLAT_PAGES = ("overview", "key list", "key list by spend", "key page")
JOURNEY_STEPS = ("form", "amount", "confirm")
TOKEN_FIELD = re.compile(r'name="token" value="([0-9a-f-]{36})"')
# Labels may hold braces (the endpoint "/sub-keys/{id}"): a series ends at its last "} ".
UPSTREAM_SUM = re.compile(r"^dashboard_upstream_request_seconds_sum\{.*\} (\S+)$", re.MULTILINE)
UPSTREAM_COUNT = re.compile(r"^dashboard_upstream_request_seconds_count\{.*\} (\S+)$", re.MULTILINE)
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# A row of bench/mirror_at_scale.py's sync table: what, raw paging rows/s, sync rows/s, ratio.
SYNC_ROW = re.compile(
    r"^\| ((?:first sync|incremental)[^|]*) \| ([\d,]+) rows/s \| ([\d,]+) rows/s \| ([\d.]+)x \|$", re.MULTILINE
)

# The pass row of bench/usage_freshness.py's table: keys, in flight, last row visible after, pass, lag, keys/s.
FRESHNESS_ROW = re.compile(
    r"^\| pass \| ([\d,]+) \| (\d+) \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+) s \| ([\d.]+) \|$", re.MULTILINE
)
FRESHNESS_GOAL_SECONDS = 30
# bench/cpu_settings.py's header: the CPU time the gunicorn thread spent on the request, in ms.
CPU_TIME_HEADER = "X-Bench-CPU-ms"
# Rounds of page requests not counted: gunicorn runs a worker per CPU and one more, and a
# worker's first request of a page compiles its templates and opens its connections. Which
# worker answers is the kernel's choice: five rounds leave few pages that one worker has not
# seen yet (three left one cold sample in some page's nine).
WARM_UP_ROUNDS = 5


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url, process, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:4]} exited with {process.returncode}")
        try:
            requests.get(url, timeout=5)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass
class Deployment:
    """One simulator and the gunicorn that talks to it."""

    scale: int
    simulator_url: str
    dashboard_url: str
    gunicorn: subprocess.Popen
    worker: subprocess.Popen | None = None
    console: requests.Session = field(default_factory=requests.Session)
    portal: requests.Session = field(default_factory=requests.Session)
    heavy_key: str = ""
    light_key_id: str = ""
    simulator: subprocess.Popen | None = None
    simulator_port: int = 0


class Bench:
    def __init__(self, options, workdir, stack):
        self.options = options
        self.workdir = workdir
        self.stack = stack
        self.account_key = "sk-ant-bench-" + secrets.token_urlsafe(24)
        self.metrics_token = secrets.token_urlsafe(24)
        self.environment = {
            **os.environ,
            # Production's settings, with each response's CPU time in a header (bench/cpu_settings.py).
            "DJANGO_SETTINGS_MODULE": "bench.cpu_settings",
            "DEBUG": "false",
            "SECRET_KEY": secrets.token_urlsafe(60),
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "SESSION_COOKIE_SECURE": "false",
            "CSRF_COOKIE_SECURE": "false",
            "SECURE_HSTS_SECONDS": "0",
            "DEROUTER_ACCOUNT_KEY": self.account_key,
            "METRICS_TOKEN": self.metrics_token,
            "LOG_LEVEL": "WARNING",
            "EXPORT_DIR": str(workdir / "exports"),
            # Pages read the mirror; the bench fills it before measuring, and a refresh of
            # 20,000 keys every 30 s in the middle of the timings would only add noise.
            "MIRROR_REFRESH_SECONDS": "3600",
            "MIRROR_STALE_AFTER_SECONDS": "86400",
            "DEROUTER_READ_TIMEOUT": "120",
        }

    # -- setting up ---------------------------------------------------------------------------

    def deployment_environment(self, scale, simulator_url):
        """The environment of one scale's deployment: its own database, queue, cache prefix and simulator."""
        environment = {
            **self.environment,
            "DEROUTER_API_BASE": simulator_url,
            "DATABASE_URL": database_for(scale, self.workdir),
            "HUEY_SQLITE_PATH": str(self.workdir / f"huey-{scale}.sqlite3"),
            "HUEY_QUEUE_NAME": f"dashboard-bench-{scale}",
            "CACHE_KEY_PREFIX": f"dashboard-bench-{scale}",
        }
        return environment

    def start_simulator(self, scale, port=None, latency_ms=0):
        """A simulator for the scale; on a port it had before (and its state), restarted at another latency."""
        port = port or free_port()
        command = [PYTHON, "-m", "derouter.simulator", "--port", str(port), "--balance", "1000000",
                   "--state", str(self.workdir / f"sim-{scale}.sqlite3"), "--seed-keys", str(scale),
                   "--latency-ms", str(latency_ms)]
        if scale == self.options.scales[0]:
            command += ["--seed-usage-rows", str(self.options.export_rows)]
        process = subprocess.Popen(command, cwd=ROOT, env=self.environment, stdout=subprocess.DEVNULL)
        self.stack.callback(stop, process)
        return process, f"http://127.0.0.1:{port}"

    def set_latency(self, deployments, latency_ms):
        """Restart every simulator on its port and state, answering after latency_ms."""
        for deployment in deployments:
            stop(deployment.simulator)
            deployment.simulator, _ = self.start_simulator(deployment.scale, deployment.simulator_port, latency_ms)
        for deployment in deployments:
            wait_until_up(f"{deployment.simulator_url}/_sim/health", deployment.simulator, seconds=600)

    def start_gunicorn(self, environment, name):
        port = free_port()
        environment = {**environment, "GUNICORN_BIND": f"127.0.0.1:{port}",
                       "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"prometheus-{name}")}
        log = open(self.workdir / f"gunicorn-{name}.log", "w")  # noqa: SIM115 - closed with the stack
        self.stack.callback(log.close)
        process = subprocess.Popen([PYTHON, "-m", "gunicorn", "config.wsgi"], cwd=ROOT, env=environment,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.stack.callback(stop, process)
        return process, f"http://127.0.0.1:{port}"

    def start_worker(self, environment, name):
        """The deployment's Huey consumer: it keeps the mirror and writes long exports."""
        log = open(self.workdir / f"huey-{name}.log", "w")  # noqa: SIM115 - closed with the stack
        self.stack.callback(log.close)
        process = subprocess.Popen([PYTHON, "manage.py", "run_huey"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env=environment)
        self.stack.callback(stop, process)
        return process

    def manage(self, environment, *arguments):
        subprocess.run([PYTHON, "manage.py", *arguments], cwd=ROOT, env=environment, check=True,
                       stdout=subprocess.DEVNULL)

    def console_session_cookie(self, environment):
        """Create an owner and a signed-in session for it directly in the database; return the session key."""
        script = (
            "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY;"
            "from django.contrib.auth.models import User;"
            "from django.contrib.sessions.backends.db import SessionStore;"
            "from accounts.models import ConsoleProfile, Role;"
            f"user = User.objects.create_user('bench-owner-{secrets.token_hex(4)}', password=None);"
            "ConsoleProfile.objects.create(user=user, role=Role.OWNER);"
            "session = SessionStore();"
            "session[SESSION_KEY] = str(user.pk);"
            "session[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend';"
            "session[HASH_SESSION_KEY] = user.get_session_auth_hash();"
            "session.create();"
            "print(session.session_key)"
        )
        result = subprocess.run([PYTHON, "manage.py", "shell", "-c", script], cwd=ROOT, env=environment,
                                check=True, capture_output=True, text=True)
        return result.stdout.strip().splitlines()[-1]

    def portal_sign_in(self, deployment, client_key):
        login = f"{deployment.dashboard_url}/portal/login/"
        token = CSRF_FIELD.search(deployment.portal.get(login, timeout=30).text).group(1)
        response = deployment.portal.post(login, data={"csrfmiddlewaretoken": token, "client_key": client_key},
                                          timeout=30, allow_redirects=False)
        if response.status_code != 302:
            raise RuntimeError(f"portal sign-in answered {response.status_code}")

    def bench_keys(self, simulator_url):
        """(the heavy key's secret, a light key's id): the portal's key, and the key the console pages and top up."""
        keys = requests.get(f"{simulator_url}/sub-keys", headers={"Authorization": f"Bearer {self.account_key}"},
                            timeout=60).json()["subKeys"]
        heavy = next((item["key"] for item in keys if item["label"] == HEAVY_LABEL), keys[0]["key"])
        light = next(item["id"] for item in keys if item["label"] != HEAVY_LABEL)
        return heavy, light

    def set_up(self):
        started = time.perf_counter()
        simulators = {scale: self.start_simulator(scale) for scale in self.options.scales}
        for process, url in simulators.values():
            wait_until_up(f"{url}/_sim/health", process, seconds=600)
        deployments = []
        for scale, (simulator, simulator_url) in simulators.items():
            environment = self.deployment_environment(scale, simulator_url)
            prepare_database(environment["DATABASE_URL"])
            self.manage(environment, "migrate", "--noinput")
            # The mirror the pages read: every key, and the usage of the scale with the heavy key.
            self.manage(environment, "sync", *(() if scale == self.options.scales[0] else ("--key", "account")))
            print(f"{scale:,} keys mirrored at {time.perf_counter() - started:.0f} s", file=sys.stderr)
            session_key = self.console_session_cookie(environment)
            gunicorn, dashboard_url = self.start_gunicorn(environment, str(scale))
            wait_until_up(f"{dashboard_url}/healthz", gunicorn)
            deployment = Deployment(scale, simulator_url, dashboard_url, gunicorn, simulator=simulator,
                                    simulator_port=int(urlsplit(simulator_url).port))
            deployment.worker = self.start_worker(environment, str(scale))
            deployment.console.cookies.set("sessionid", session_key)
            deployment.heavy_key, deployment.light_key_id = self.bench_keys(simulator_url)
            self.portal_sign_in(deployment, deployment.heavy_key)
            deployments.append(deployment)
        print(f"set up in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        return deployments

    # -- measuring -----------------------------------------------------------------------------

    def upstream_seconds(self, deployment):
        """(seconds, calls) the dashboard has spent in upstream calls so far, from its own metrics."""
        text = requests.get(f"{deployment.dashboard_url}/metrics", timeout=30,
                            headers={"Authorization": f"Bearer {self.metrics_token}"}).text
        return (sum(float(value) for value in UPSTREAM_SUM.findall(text)),
                sum(float(value) for value in UPSTREAM_COUNT.findall(text)))

    def page_times(self, deployments):
        """{(scale, page): ([page ms], [upstream ms], [calls], [CPU ms])}, pages and scales interleaved in every round."""
        samples = {}
        for round_number in range(self.options.rounds + WARM_UP_ROUNDS):
            for deployment in deployments:
                for name, path, portal in PAGES:
                    session = deployment.portal if portal else deployment.console
                    before, calls_before = self.upstream_seconds(deployment)
                    started = time.perf_counter()
                    url = deployment.dashboard_url + path.format(key=deployment.light_key_id)
                    response = session.get(url, timeout=120, allow_redirects=False)
                    elapsed = time.perf_counter() - started
                    after, calls_after = self.upstream_seconds(deployment)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} at {deployment.scale} keys answered {response.status_code}")
                    if round_number < WARM_UP_ROUNDS:
                        continue  # warm-up: first imports, caches, connections, in each gunicorn worker
                    page, upstream, calls, cpu = samples.setdefault((deployment.scale, name), ([], [], [], []))
                    page.append(elapsed * 1000)
                    upstream.append((after - before) * 1000)
                    calls.append(calls_after - calls_before)
                    cpu.append(cpu_ms(response))
        return samples

    def journey_step(self, deployment, method, url, data=None):
        """(response, ms, upstream calls) of one step of the top-up journey (its CPU ms: the response's header)."""
        _, calls_before = self.upstream_seconds(deployment)
        started = time.perf_counter()
        response = deployment.console.request(method, url, data=data, timeout=120, allow_redirects=False)
        elapsed = (time.perf_counter() - started) * 1000
        _, calls_after = self.upstream_seconds(deployment)
        return response, elapsed, calls_after - calls_before

    def top_up_journey(self, deployment):
        """{step: (ms, upstream calls)} of a staff top-up of $0.01 to the light key: form, amount, confirm."""
        url = f"{deployment.dashboard_url}/dashboard/keys/{deployment.light_key_id}/topup/"
        form, form_ms, form_calls = self.journey_step(deployment, "GET", url)
        body = form.text
        data = {"csrfmiddlewaretoken": CSRF_FIELD.search(body).group(1), "token": TOKEN_FIELD.search(body).group(1),
                "amount": "0.01", "note": "bench"}
        review, review_ms, review_calls = self.journey_step(deployment, "POST", url, data)
        confirm, confirm_ms, confirm_calls = self.journey_step(deployment, "POST", url, {**data, "confirm": "1"})
        statuses = (form.status_code, review.status_code, confirm.status_code)
        if statuses != (200, 200, 302):
            raise RuntimeError(f"the top-up journey at {deployment.scale} keys answered {statuses}")
        return {"form": (form_ms, form_calls, cpu_ms(form)), "amount": (review_ms, review_calls, cpu_ms(review)),
                "confirm": (confirm_ms, confirm_calls, cpu_ms(confirm))}

    def journeys(self, deployments):
        """{scale: [journey]}, scales interleaved in every round (one warm-up round first)."""
        samples = {}
        for round_number in range(self.options.journeys + 1):
            for deployment in deployments:
                journey = self.top_up_journey(deployment)
                if round_number:
                    samples.setdefault(deployment.scale, []).append(journey)
        return samples

    def raw_paging(self, deployment):
        """Rows per second walking /sub-key/usage-logs 100 at a time with the heavy key, as a client would."""
        rows = 0
        started = time.perf_counter()
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {deployment.heavy_key}"
            page = 1
            while True:
                body = session.get(f"{deployment.simulator_url}/sub-key/usage-logs",
                                   params={"page": page, "limit": 100}, timeout=60).json()
                rows += len(body["data"])
                if page >= body["pagination"]["pages"]:
                    break
                page += 1
        return rows, rows / (time.perf_counter() - started)

    def export(self, deployment):
        """(data rows, rows per second, peak RSS growth in MB) of the portal CSV export of the heavy key.

        Past EXPORT_STREAM_MAX_ROWS the export is written by the Huey worker: the time runs from
        the click to the last byte downloaded, and the RSS growth is the worker's.
        """
        base = deployment.dashboard_url
        before = rss_kib(deployment.worker.pid, "VmRSS")
        started = time.perf_counter()
        response = deployment.portal.get(f"{base}/portal/logs/export.csv", timeout=120, allow_redirects=False)
        if response.status_code == 302:
            status_url = base + response.headers["Location"]
            while "Your file is ready" not in (page := deployment.portal.get(status_url, timeout=60).text):
                if "The export failed" in page:
                    raise RuntimeError("the export failed")
                time.sleep(0.2)
            download = base + re.search(r'href="(/portal/exports/[^"]+/download/)"', page).group(1)
            response = deployment.portal.get(download, stream=True, timeout=600)
        if response.status_code != 200:
            raise RuntimeError(f"the export answered {response.status_code}")
        lines = sum(chunk.count(b"\n") for chunk in response.iter_content(chunk_size=65536))
        elapsed = time.perf_counter() - started
        growth = (rss_kib(deployment.worker.pid, "VmHWM") - before) / 1024
        return lines - 1, (lines - 1) / elapsed, growth

    def export_against_paging(self, deployment):
        paging, exports = [], []
        for _ in range(2):
            paging.append(self.raw_paging(deployment))
            exports.append(self.export(deployment))
        return paging, exports


def database_for(scale, workdir):
    """One database per scale: a SQLite file, or a PostgreSQL database named after DATABASE_URL's."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        return f"sqlite:///{workdir / f'dashboard-{scale}.sqlite3'}"
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}_bench_{scale}"))


def prepare_database(url):
    """An empty PostgreSQL database for a run (SQLite files start empty in the temporary folder)."""
    if not url.startswith("postgres"):
        return
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(urlunsplit(parts._replace(path="/postgres")), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')


def cpu_ms(response):
    """The CPU time the gunicorn thread spent on the response (bench/cpu_settings.py's header), in ms."""
    return float(response.headers[CPU_TIME_HEADER])


def rss_kib(pid, field_name):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for process {pid}")


def machine():
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    database = os.environ.get("DATABASE_URL", "sqlite").split(":", 1)[0]
    return (f"{cpu}, {os.cpu_count()} CPUs, {memory} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, database {database}, "
            f"cache {'Redis' if os.environ.get('REDIS_URL') else 'database'}")


def ratio(value, goal=None, higher_is_better=False):
    text = f"{value:.2f}x"
    if goal is None:
        return text
    met = value >= goal if higher_is_better else value <= goal
    return f"{text} ({'met' if met else 'NOT met'}: {'≥' if higher_is_better else '≤'} {goal}x)"


def sync_against_paging(options):
    """(what, raw rows/s, sync rows/s, ratio) of a first and an incremental sync, by bench/mirror_at_scale.py."""
    command = [PYTHON, "bench/mirror_at_scale.py", "--skip-keys", "--rows", str(options.export_rows),
               "--new-rows", "1000", "--sync-runs", str(options.sync_runs),
               "--incremental-runs", str(options.incremental_runs)]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rows = SYNC_ROW.findall(output)
    if len(rows) != 2:
        raise RuntimeError(f"bench/mirror_at_scale.py printed no sync table:\n{output}")
    return [(what, raw, mirrored, float(value)) for what, raw, mirrored, value in rows]


def usage_freshness(options):
    """(keys, in flight, last row visible after s, pass s, lag s) of the worker's pass, by bench/usage_freshness.py."""
    command = [PYTHON, "bench/usage_freshness.py", "--keys", str(options.freshness_keys), "--latency-ms",
               str(options.freshness_latency_ms), "--runs", str(options.sync_runs), "--sequential-keys", "0"]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    found = FRESHNESS_ROW.search(output)
    if found is None:
        raise RuntimeError(f"bench/usage_freshness.py printed no table:\n{output}")
    keys, in_flight, visible, seconds, lag, _ = found.groups()
    return int(keys.replace(",", "")), int(in_flight), float(visible), float(seconds), float(lag)


def round_ratio(values, bases):
    """The median of the rounds' ratios, each value to the base measured in the same round.

    A page and the page it is compared with are measured a moment apart in every round, so
    whatever slows the machine for a while (its other work, a neighbour on the same host)
    slows both: their ratio holds still where the ratio of two medians, each of its own
    rounds, moved by ±0.15x from one run to the next.
    """
    return statistics.median(value / base for value, base in zip(values, bases, strict=True))


def page_table(options, latency_ms, samples):
    median = statistics.median
    lines = [
        f"Upstream latency {latency_ms} ms: medians of {options.rounds} interleaved rounds (a ratio: the median of the"
        " rounds' ratios, each to the page it compares with in the same round); page ms = the wall clock to "
        "the complete response; own time = the CPU time of the gunicorn thread that answered (the response's "
        f"{CPU_TIME_HEADER} header, bench/cpu_settings.py), which other load on the machine does not move.",
        "",
        "| scale | page | page ms | page / empty page | upstream ms (calls) | own CPU ms | own / empty page "
        f"| own / same page at {options.scales[0]:,} keys |",
        "|---|---|---|---|---|---|---|---|",
    ]
    floor_name = PAGES[0][0]
    for scale in options.scales:
        floor_page, _, _, floor_own = samples[(scale, floor_name)]
        for name, _, _ in PAGES:
            page, upstream, calls, cpu = samples[(scale, name)]
            own = median(cpu)
            own_at_50 = samples[(options.scales[0], name)][3]
            if name == floor_name:
                versus_floor_page = versus_floor_own = "1.00x"
            else:
                versus_floor_page = ratio(round_ratio(page, floor_page), 1.5 if name in NO_WAIT_PAGES else None)
                versus_floor_own = ratio(round_ratio(cpu, floor_own), 1.5)
            versus_small = "" if scale == options.scales[0] else ratio(round_ratio(cpu, own_at_50), 1.2 if name in FLAT_PAGES else None)
            lines.append(f"| {scale:,} keys | {name} | {median(page):.1f} | {versus_floor_page} "
                         f"| {median(upstream):.1f} ({median(calls):.0f}) | {own:.2f} | {versus_floor_own} | {versus_small} |")
    return lines


def journey_table(options, latency_ms, journeys):
    median = statistics.median
    lines = [
        "",
        f"Top-up journey at {latency_ms} ms (form, amount, confirm of $0.01 to a light key), medians of "
        f"{options.journeys} interleaved rounds (ratios as the pages'); calls are upstream calls made one after the other; CPU = the three "
        "steps' own time, as the pages'.",
        "",
        f"| scale | form ms (calls) | amount ms (calls) | confirm ms (calls) | journey ms | journey / at {options.scales[0]:,} keys "
        f"| journey CPU ms | CPU / at {options.scales[0]:,} keys | most calls in a step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    # Per round, as the journeys were made: each scale's journey of a round beside the others'.
    totals = {scale: [sum(step[0] for step in journey.values()) for journey in journeys[scale]] for scale in options.scales}
    cpu = {scale: [sum(step[2] for step in journey.values()) for journey in journeys[scale]] for scale in options.scales}
    for scale in options.scales:
        steps = [f"{median([j[step][0] for j in journeys[scale]]):.1f} ({median([j[step][1] for j in journeys[scale]]):.0f})"
                 for step in JOURNEY_STEPS]
        most = max(calls for journey in journeys[scale] for _, calls, _ in journey.values())
        first = scale == options.scales[0]
        versus_small = "1.00x" if first else ratio(round_ratio(totals[scale], totals[options.scales[0]]), 1.3)
        cpu_versus_small = "1.00x" if first else ratio(round_ratio(cpu[scale], cpu[options.scales[0]]), 1.3)
        lines.append(f"| {scale:,} keys | {' | '.join(steps)} | {median(totals[scale]):.1f} | {versus_small} "
                     f"| {median(cpu[scale]):.1f} | {cpu_versus_small} | {most:.0f} ({'met' if most <= 2 else 'NOT met'}: ≤ 2) |")
    return lines


def report(options, phases, paging, exports, syncs, freshness):
    median = statistics.median
    lines = [f"Measured by `bench/run` on {time.strftime('%Y-%m-%d', time.gmtime())}: {machine()}."]
    for latency_ms, samples, journeys in phases:
        lines += ["", *page_table(options, latency_ms, samples), *journey_table(options, latency_ms, journeys)]
    rows = exports[0][0]
    export_rate = median([rate for _, rate, _ in exports])
    paging_rate = median([rate for _, rate in paging])
    growth = max(growth for _, _, growth in exports)
    lines += [
        "",
        f"At {phases[0][0]} ms upstream latency:",
        "",
        "| measure | dashboard | baseline | ratio |",
        "|---|---|---|---|",
        f"| portal CSV export, {rows:,} rows | {export_rate:,.0f} rows/s | paging `/sub-key/usage-logs` directly "
        f"{paging_rate:,.0f} rows/s | {ratio(export_rate / paging_rate, 0.9, higher_is_better=True)} |",
        f"| export: complete every time | {', '.join(f'{r:,}' for r, _, _ in exports)} rows | "
        f"{', '.join(f'{r:,}' for r, _ in paging)} rows | {'met' if all(r == paging[0][0] for r, _, _ in exports) else 'NOT met'} |",
        f"| export: peak RSS growth of the Huey worker | {growth:.1f} MB | | {'met' if growth < 30 else 'NOT met'}: < 30 MB |",
    ]
    lines += [
        f"| usage sync: {what} | {mirrored} rows/s | paging `/usage-logs?subKeyId=` directly {raw} rows/s "
        f"| {ratio(value, 0.8, higher_is_better=True)} |"
        for what, raw, mirrored, value in syncs
    ]
    keys, in_flight, visible, seconds, lag = freshness
    lines += [
        "",
        f"Usage freshness at {options.freshness_latency_ms} ms upstream latency ({keys:,} keys, each made a request;"
        f" the worker's pass, {in_flight} requests in flight; medians of {options.sync_runs} runs):",
        "",
        "| measure | dashboard | goal |",
        "|---|---|---|",
        f"| every row visible, after the requests | {visible:.1f} s (pass {seconds:.1f} s, lag shown {lag:.1f} s) "
        f"| {'met' if visible <= FRESHNESS_GOAL_SECONDS else 'NOT met'}: ≤ {FRESHNESS_GOAL_SECONDS} s |",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds of page timings")
    parser.add_argument("--scales", default=",".join(map(str, SCALES)),
                        help="numbers of Client Keys, comma separated, smallest first (the others compare with it)")
    parser.add_argument("--latencies", default="0,150", help="upstream latencies in ms, comma separated")
    parser.add_argument("--journeys", type=int, default=5, help="interleaved rounds of the top-up journey")
    parser.add_argument("--export-rows", type=int, default=100_000, help="usage rows of the heavy key")
    parser.add_argument("--sync-runs", type=int, default=3, help="interleaved first syncs, and runs of the freshness pass")
    parser.add_argument("--incremental-runs", type=int, default=25, help="interleaved incremental syncs of 1,000 rows")
    parser.add_argument("--freshness-keys", type=int, default=2000, help="keys each making a request before a pass")
    parser.add_argument("--freshness-latency-ms", type=int, default=150, help="upstream latency of the freshness run")
    options = parser.parse_args()
    options.scales = tuple(int(value) for value in options.scales.split(","))
    latencies = [int(value) for value in options.latencies.split(",")]
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    try:
        with ExitStack() as stack:
            bench = Bench(options, workdir, stack)
            deployments = bench.set_up()
            phases = []
            for latency_ms in latencies:
                if latency_ms:
                    bench.set_latency(deployments, latency_ms)
                samples = bench.page_times(deployments)
                journeys = bench.journeys(deployments)
                phases.append((latency_ms, samples, journeys))
                print(f"pages and top-ups at {latency_ms} ms measured at {time.perf_counter() - started:.0f} s",
                      file=sys.stderr)
                if latency_ms == latencies[0]:
                    paging, exports = bench.export_against_paging(deployments[0])
                    print(f"export measured at {time.perf_counter() - started:.0f} s", file=sys.stderr)
        # With the deployments stopped: their workers' periodic passes would run beside it.
        syncs = sync_against_paging(options)
        print(f"syncs measured at {time.perf_counter() - started:.0f} s", file=sys.stderr)
        freshness = usage_freshness(options)
        print(f"usage freshness measured at {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print(report(options, phases, paging, exports, syncs, freshness))
        print(f"\n(total run time {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
