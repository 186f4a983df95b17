"""Test settings: production settings with HTTPS-only bits relaxed and a secret scanner."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("CSRF_COOKIE_SECURE", "false")
os.environ.setdefault("SECURE_HSTS_SECONDS", "0")
# The tests' simulator fixture sets the real base URL and key once it has started.
os.environ.setdefault("DEROUTER_ACCOUNT_KEY", "sk-ant-test-account-key-not-started")
os.environ.setdefault("DEROUTER_READ_TIMEOUT", "5")
# Unit tests run tasks in the caller; the worker tests start real consumers with this off.
os.environ.setdefault("HUEY_IMMEDIATE", "true")
# A queue of this test run's own (a file, or a name in Redis), shared with the consumers
# the worker tests start; never the demo's queue or another run's.
_TEST_RUN = os.environ.setdefault("DASHBOARD_TEST_RUN", os.urandom(4).hex())
os.environ.setdefault("HUEY_SQLITE_PATH", os.path.join(tempfile.gettempdir(), f"dashboard-test-huey-{_TEST_RUN}.sqlite3"))
os.environ.setdefault("HUEY_QUEUE_NAME", f"dashboard-test-{_TEST_RUN}")
# Test receivers listen on plain http; private targets stay refused unless a test allows them.
os.environ.setdefault("WEBHOOK_ALLOW_HTTP", "true")

from config.settings import *  # noqa: E402,F403

MIDDLEWARE = ["tests.secret_scan.SecretScanMiddleware", *MIDDLEWARE]  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file rather than memory: the worker tests' consumer processes open the same database.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"dashboard-test-db-{_TEST_RUN}.sqlite3")
    }
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CACHES["default"]["KEY_PREFIX"] = "test-" + os.urandom(4).hex()  # noqa: F405
