"""Measure the dashboard under gunicorn with production settings against simulators at three scales.

    bench/run [--rounds 9] [--seconds 4] [--clients 32] [--export-rows 100000] [--sync-runs 3]

Starts, on loopback, one simulator per scale (50, 5,000 and 20,000 Client Keys; the
50-key one also holds a key with --export-rows usage rows) and, per scale, a deployment of
its own as production runs it: a database (SQLite files in a temporary folder, or one
PostgreSQL database per scale beside DATABASE_URL's), a Huey queue (REDIS_URL if set) and
cache prefix, the mirror filled by `manage.py sync`, a Huey worker and a gunicorn
(gunicorn.conf.py, production settings). Then it measures in one run, interleaving what it
compares, and prints one markdown table of medians and ratios:

- each page's own time (the page minus the upstream calls it made, as the dashboard's own
  metrics count them) against the empty signed-in page's, and against the same page at 50 keys;
- portal home throughput against the simulator's own /sub-key/balance throughput, same key,
  same number of concurrent clients;
- the portal CSV export of the heavy key (written by the Huey worker, from the click to the
  downloaded file) against paging /sub-key/usage-logs directly, and the worker's peak RSS growth;
- the usage sync (a first sync of --export-rows rows, incremental syncs of 1,000 new rows)
  against paging /usage-logs directly, run by bench/mirror_at_scale.py once the deployments
  are stopped: in its own process, on SQLite, as the worker runs it.
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
import threading
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
PAGES = (  # (name, path, uses the portal session)
    ("empty signed-in page (ledger)", "/dashboard/topups/", False),
    ("overview", "/dashboard/", False),
    ("key list", "/dashboard/keys/", False),
    ("key list by spend", "/dashboard/keys/?sort=-spent", False),
    ("usage log", "/dashboard/logs/", False),
    ("analytics", "/dashboard/analytics/", False),
    ("portal home (heavy key)", "/portal/", True),
)
UPSTREAM_SUM = re.compile(r"^dashboard_upstream_request_seconds_sum\{[^}]*\} (\S+)$", re.MULTILINE)
UPSTREAM_COUNT = re.compile(r"^dashboard_upstream_request_seconds_count\{[^}]*\} (\S+)$", re.MULTILINE)
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# A row of bench/mirror_at_scale.py's sync table: what, raw paging rows/s, sync rows/s, ratio.
SYNC_ROW = re.compile(
    r"^\| ((?:first sync|incremental)[^|]*) \| ([\d,]+) rows/s \| ([\d,]+) rows/s \| ([\d.]+)x \|$", re.MULTILINE
)


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


class Bench:
    def __init__(self, options, workdir, stack):
        self.options = options
        self.workdir = workdir
        self.stack = stack
        self.account_key = "sk-ant-bench-" + secrets.token_urlsafe(24)
        self.metrics_token = secrets.token_urlsafe(24)
        self.environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
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

    def start_simulator(self, scale):
        port = free_port()
        command = [PYTHON, "-m", "derouter.simulator", "--port", str(port), "--balance", "1000000",
                   "--state", str(self.workdir / f"sim-{scale}.sqlite3"), "--seed-keys", str(scale)]
        if scale == SCALES[0]:
            command += ["--seed-usage-rows", str(self.options.export_rows)]
        process = subprocess.Popen(command, cwd=ROOT, env=self.environment, stdout=subprocess.DEVNULL)
        self.stack.callback(stop, process)
        return process, f"http://127.0.0.1:{port}"

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

    def heavy_key(self, simulator_url):
        keys = requests.get(f"{simulator_url}/sub-keys", headers={"Authorization": f"Bearer {self.account_key}"},
                            timeout=60).json()["subKeys"]
        return next((item["key"] for item in keys if item["label"] == HEAVY_LABEL), keys[0]["key"])

    def set_up(self):
        started = time.perf_counter()
        simulators = {scale: self.start_simulator(scale) for scale in SCALES}
        for process, url in simulators.values():
            wait_until_up(f"{url}/_sim/health", process, seconds=600)
        deployments = []
        for scale, (_, simulator_url) in simulators.items():
            environment = self.deployment_environment(scale, simulator_url)
            prepare_database(environment["DATABASE_URL"])
            self.manage(environment, "migrate", "--noinput")
            # The mirror the pages read: every key, and the usage of the scale with the heavy key.
            self.manage(environment, "sync", *(() if scale == SCALES[0] else ("--key", "account")))
            print(f"{scale:,} keys mirrored at {time.perf_counter() - started:.0f} s", file=sys.stderr)
            session_key = self.console_session_cookie(environment)
            gunicorn, dashboard_url = self.start_gunicorn(environment, str(scale))
            wait_until_up(f"{dashboard_url}/healthz", gunicorn)
            deployment = Deployment(scale, simulator_url, dashboard_url, gunicorn)
            deployment.worker = self.start_worker(environment, str(scale))
            deployment.console.cookies.set("sessionid", session_key)
            deployment.heavy_key = self.heavy_key(simulator_url)
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
        """{(scale, page): ([page ms], [upstream ms], calls)}, pages and scales interleaved in every round."""
        samples = {}
        for round_number in range(self.options.rounds + 1):
            for deployment in deployments:
                for name, path, portal in PAGES:
                    session = deployment.portal if portal else deployment.console
                    before, calls_before = self.upstream_seconds(deployment)
                    started = time.perf_counter()
                    response = session.get(deployment.dashboard_url + path, timeout=120, allow_redirects=False)
                    elapsed = time.perf_counter() - started
                    after, calls_after = self.upstream_seconds(deployment)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path} at {deployment.scale} keys answered {response.status_code}")
                    if round_number == 0:
                        continue  # warm-up: first imports, caches, connections
                    page, upstream, _ = samples.setdefault((deployment.scale, name), ([], [], []))
                    page.append(elapsed * 1000)
                    upstream.append((after - before) * 1000)
                    samples[(deployment.scale, name)][2].append(calls_after - calls_before)
        return samples

    def throughput(self, url, headers=None, cookies=None):
        """Requests per second that --clients concurrent clients get from url in --seconds."""
        deadline = time.monotonic() + self.options.seconds
        counts = []
        failures = []

        def client():
            done = 0
            with requests.Session() as session:
                if cookies:
                    session.cookies.update(cookies)
                while time.monotonic() < deadline:
                    response = session.get(url, headers=headers, timeout=60, allow_redirects=False)
                    if response.status_code != 200:
                        failures.append(response.status_code)
                    done += 1
            counts.append(done)

        started = time.monotonic()
        threads = [threading.Thread(target=client) for _ in range(self.options.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise RuntimeError(f"{url} failed {len(failures)} times under load, e.g. {failures[0]}")
        return sum(counts) / (time.monotonic() - started)

    def portal_throughput(self, deployment):
        simulator, portal = [], []
        for _ in range(3):
            simulator.append(self.throughput(f"{deployment.simulator_url}/sub-key/balance",
                                             headers={"Authorization": f"Bearer {deployment.heavy_key}"}))
            portal.append(self.throughput(f"{deployment.dashboard_url}/portal/", cookies=deployment.portal.cookies))
        return statistics.median(portal), statistics.median(simulator)

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
               "--new-rows", "1000", "--sync-runs", str(options.sync_runs)]
    output = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rows = SYNC_ROW.findall(output)
    if len(rows) != 2:
        raise RuntimeError(f"bench/mirror_at_scale.py printed no sync table:\n{output}")
    return [(what, raw, mirrored, float(value)) for what, raw, mirrored, value in rows]


def report(options, samples, throughput, paging, exports, syncs):
    median = statistics.median
    lines = [
        f"Measured by `bench/run` on {time.strftime('%Y-%m-%d', time.gmtime())}: {machine()}.",
        f"Medians of {options.rounds} interleaved rounds; own time = page minus the upstream calls it made "
        "(as the dashboard's metrics time them, JSON decoding included).",
        "",
        "| scale | page | page ms | upstream ms (calls) | own ms | own / empty page | own / same page at 50 keys |",
        "|---|---|---|---|---|---|---|",
    ]
    floor_name = PAGES[0][0]
    for scale in SCALES:
        floor_own = median(samples[(scale, floor_name)][0])
        for name, _, _ in PAGES:
            page, upstream, calls = samples[(scale, name)]
            own = median([p - u for p, u in zip(page, upstream)])
            own_at_50 = median([p - u for p, u in zip(*samples[(SCALES[0], name)][:2])])
            versus_floor = "1.00x" if name == floor_name else ratio(own / floor_own, 1.5)
            versus_small = "" if scale == SCALES[0] else ratio(own / own_at_50, 1.2 if name in ("overview", "key list", "key list by spend") else None)
            lines.append(f"| {scale:,} keys | {name} | {median(page):.1f} | {median(upstream):.1f} ({median(calls):.0f}) "
                         f"| {own:.1f} | {versus_floor} | {versus_small} |")
    portal_rate, simulator_rate = throughput
    rows = exports[0][0]
    export_rate = median([rate for _, rate, _ in exports])
    paging_rate = median([rate for _, rate in paging])
    growth = max(growth for _, _, growth in exports)
    lines += [
        "",
        "| measure | dashboard | baseline | ratio |",
        "|---|---|---|---|",
        f"| portal home, {options.clients} clients, heavy key | {portal_rate:.0f} req/s | simulator `/sub-key/balance` "
        f"{simulator_rate:.0f} req/s | {ratio(portal_rate / simulator_rate, 0.5, higher_is_better=True)} |",
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
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds of page timings")
    parser.add_argument("--seconds", type=float, default=4, help="length of each throughput round")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients in the throughput rounds")
    parser.add_argument("--export-rows", type=int, default=100_000, help="usage rows of the heavy key")
    parser.add_argument("--sync-runs", type=int, default=3, help="interleaved first syncs (three incremental each)")
    options = parser.parse_args()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    try:
        with ExitStack() as stack:
            bench = Bench(options, workdir, stack)
            deployments = bench.set_up()
            samples = bench.page_times(deployments)
            print(f"pages measured at {time.perf_counter() - started:.0f} s", file=sys.stderr)
            throughput = bench.portal_throughput(deployments[0])
            print(f"throughput measured at {time.perf_counter() - started:.0f} s", file=sys.stderr)
            paging, exports = bench.export_against_paging(deployments[0])
        # With the deployments stopped: their workers' periodic passes would run beside it.
        syncs = sync_against_paging(options)
        print(f"syncs measured at {time.perf_counter() - started:.0f} s", file=sys.stderr)
        print(report(options, samples, throughput, paging, exports, syncs))
        print(f"\n(total run time {time.perf_counter() - started:.0f} s)", file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
