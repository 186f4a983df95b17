"""Run the dashboard under gunicorn with its own gunicorn.conf.py, as production does, and read its logs."""

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Gunicorn:
    base_url: str
    process: subprocess.Popen
    log_path: Path

    def logs(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_gunicorn(tmp_path, **environment):
    """gunicorn on a free port, one worker; stdout and stderr both go to one log file."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": "gunicorn-test-secret-key-" + "g" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        **environment,
    }
    log_path = tmp_path / "gunicorn.log"
    log = log_path.open("wb")
    # No control socket: it lives at one path per user, and a test must not take over a running one.
    command = [sys.executable, "-m", "gunicorn", "config.wsgi", "-c", "gunicorn.conf.py", "--no-control-socket"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Gunicorn(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.logs()[-3000:]}")
        try:
            requests.get(f"{server.base_url}/healthz", timeout=5)
            return server
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.1)
    server.stop()
    raise RuntimeError("gunicorn did not start within 60 s")
