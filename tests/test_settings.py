"""Settings come from the environment, fail loudly on bad values and pass the deploy check."""

import os
import subprocess
import sys
from pathlib import Path

from django.http import HttpResponse
from django.test import RequestFactory

import pytest

from tests.secret_scan import SecretLeak, SecretScanMiddleware

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "SECRET_KEY": "a-production-secret-key-that-is-long-enough-" + "z" * 20,
    "ALLOWED_HOSTS": "dashboard.example.com",
    "DJANGO_SETTINGS_MODULE": "config.settings",
}


def _manage(*args, **env):
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO_ALLOW_ASYNC_UNSAFE", "DEROUTER_", "DEBUG", "SECRET_KEY", "SECURE_", "SESSION_", "CSRF_", "ALLOWED_HOSTS"))}
    clean.update(PRODUCTION_ENV)
    clean.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60)


def test_deploy_check_passes_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stderr


def test_debug_is_off_by_default():
    result = _manage("shell", "-c", "from django.conf import settings; print(settings.DEBUG)")
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_missing_secret_key_fails_loudly():
    result = _manage("check", SECRET_KEY="")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEBUG", "maybe"), ("DEROUTER_READ_TIMEOUT", "soon"), ("DEROUTER_READ_TIMEOUT", "-1"), ("LOGIN_ATTEMPTS_LIMIT", "many")],
)
def test_bad_values_fail_loudly_naming_the_variable(name, value):
    result = _manage("check", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr


def test_secret_scanner_catches_the_account_key_in_a_response(settings):
    leaking = SecretScanMiddleware(lambda request: HttpResponse(f"key={settings.DEROUTER_ACCOUNT_KEY}"))
    with pytest.raises(SecretLeak):
        leaking(RequestFactory().get("/"))


def test_secret_scanner_catches_the_account_key_in_a_header(settings):
    def view(request):
        response = HttpResponse("fine")
        response["X-Debug"] = settings.DEROUTER_ACCOUNT_KEY
        return response

    with pytest.raises(SecretLeak):
        SecretScanMiddleware(view)(RequestFactory().get("/"))


def test_local_only_commands_need_no_production_configuration():
    result = _manage("runsim", "--help", SECRET_KEY="", ALLOWED_HOSTS="")
    assert result.returncode == 0, result.stderr
    assert "--account-key" in result.stdout


def test_production_pages_render_before_collectstatic(tmp_path):
    script = (
        "from django.test import Client; "
        "response = Client().get('/login/', HTTP_HOST='dashboard.example.com', secure=True); "
        "print(response.status_code, 'css/app.css' in response.content.decode())"
    )
    result = _manage("shell", "-c", script, STATIC_ROOT=str(tmp_path / "empty"))
    assert result.stdout.strip().splitlines()[-1] == "200 True", result.stderr


def test_gunicorn_outlasts_the_deadline_of_a_writing_request(settings):
    # Read in a process of its own: the file sets up metrics folders as it loads.
    timeout = subprocess.run(
        [sys.executable, "-c", "import runpy; print(runpy.run_path('gunicorn.conf.py')['timeout'])"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    # The write deadline bounds every upstream call of the request; the rest is our own work.
    assert int(timeout) >= settings.DEROUTER_WRITE_DEADLINE + 15
