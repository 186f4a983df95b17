"""Settings for the derouter reseller dashboard, read from the environment.

Every value comes from an environment variable through a tiny helper that fails
loudly on a bad value; the defaults are safe for local use.
"""

import os
from decimal import Decimal, InvalidOperation
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default=None):
    """Return a string variable, or the default; fail if required and missing."""
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable.")
    return value


def env_bool(name, default):
    """Return a boolean variable written as true/false, 1/0, yes/no or on/off."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}.")


def env_int(name, default):
    """Return a non-negative integer variable."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}.") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} must not be negative.")
    return number


def env_decimal(name, default):
    """Return a positive decimal variable (seconds, amounts)."""
    value = os.environ.get(name)
    if value is None or value == "":
        return Decimal(default)
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}.") from None
    if not number.is_finite() or number <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive number.")
    return number


def env_list(name, default):
    """Return a comma-separated list variable."""
    value = os.environ.get(name, default)
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)

if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY", "insecure-local-development-key-do-not-use-in-production")
else:
    SECRET_KEY = env_str("SECRET_KEY")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long.")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "huey.contrib.djhuey",
    "derouter",
    "lib",
    "work",
    "ledger",
    "accounts",
    "dashboard",
    "portal",
    "branding",
    "mirror",
    "analytics",
    "ops",
    "exports",
    "automation",
    "payments",
]

MIDDLEWARE = [
    "ops.request_id.RequestIdMiddleware",
    "lib.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.sessions.SessionEpochMiddleware",
    "branding.language.LanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "dashboard.middleware.UpstreamErrorMiddleware",
    "lib.toasts.HtmxToastsMiddleware",
    "dashboard.middleware.NoStoreMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.csp_nonce",
                "accounts.context_processors.console_role",
                "analytics.context_processors.margins",
                "branding.context_processors.branding",
                "lib.language.language_menu",
                "dashboard.context_processors.page_chrome",
                "automation.context_processors.budget_request_count",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Write transactions take SQLite's lock up front, so two concurrent top-ups
    # queue instead of failing with "database is locked" halfway.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    # Write-ahead logging: pages keep reading while the worker writes the mirror, and a
    # commit is one append instead of a journal rewrite (synchronous=NORMAL is safe in WAL).
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    # Redis down is a cache that misses (pages serve from the database), found out within
    # a second rather than after the operating system's connect timeout.
    CACHES = {
        "default": {
            "BACKEND": "lib.cache_backends.ForgivingRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "derouter-dashboard"),
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    # The database cache is shared by every gunicorn worker, so login
    # throttling and the key-list cache hold across processes without Redis.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "dashboard_cache",
        }
    }

# Background work runs on Huey consumers (`manage.py run_huey`). Without REDIS_URL the
# queue is a SQLite file beside the database, so the embedded default needs no server;
# with it, every consumer on every machine shares one Redis queue.
HUEY_SQLITE_PATH = env_str("HUEY_SQLITE_PATH", str(BASE_DIR / "huey.sqlite3"))
HUEY = {
    "name": env_str("HUEY_QUEUE_NAME", "derouter-dashboard"),
    "huey_class": "huey.RedisHuey" if REDIS_URL else "huey.SqliteHuey",
    "connection": {"url": REDIS_URL} if REDIS_URL else {"filename": HUEY_SQLITE_PATH},
    # Immediate mode runs tasks in the caller: only for unit tests, never in a web process.
    "immediate": env_bool("HUEY_IMMEDIATE", False),
    "results": False,
    "utc": True,
    "consumer": {
        "workers": env_int("HUEY_WORKERS", 2),
        "worker_type": "thread",
        "check_worker_health": True,
        "health_check_interval": 10,
        # An idle consumer polls a SQLite queue ever less often, up to this: a task queued
        # by a click (an export, a refresh) starts within a quarter second, for four cheap
        # reads a second while idle. Redis queues block on the queue instead of polling.
        "max_delay": 0.25,
    },
}
# How often the worker refreshes the key snapshot and syncs usage; pages call the
# snapshot stale (and say so) past the staleness limit.
MIRROR_REFRESH_SECONDS = env_int("MIRROR_REFRESH_SECONDS", 30)
MIRROR_STALE_AFTER_SECONDS = env_int("MIRROR_STALE_AFTER_SECONDS", 300)
# Requests to derouter a usage pass keeps in flight at most (mirror.passes); the client keeps a
# connection for each. derouter publishes limits for inference only (5 in flight and 60 a minute
# per key); a usage read is one Management API call with the Account Key. 32 syncs 2,000 keys that
# each made a request in under 20 s even at 300 ms a call (the far end of derouter's distance);
# a 429 halves it, pauses, and it grows back.
MIRROR_SYNC_MAX_IN_FLIGHT = env_int("MIRROR_SYNC_MAX_IN_FLIGHT", 32)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
LOGOUT_REDIRECT_URL = "/login/"

LANGUAGE_CODE = "en"
# English, and Chinese in both scripts for the customers of this market; each has a complete
# catalog in locale/ (tests/test_translations.py fails on an untranslated or fuzzy entry).
LANGUAGES = [
    ("en", "English"),
    ("zh-hans", "简体中文"),
    ("zh-hant", "繁體中文"),
]
LOCALE_PATHS = [BASE_DIR / "locale"]
FORMAT_MODULE_PATH = ["config.formats"]
LANGUAGE_COOKIE_NAME = "language"
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_HTTPONLY = True
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "dashboard.storage.ForgivingManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Serve from the app folders too, so pages keep their styles if collectstatic
# was not run (hashed, compressed files from STATIC_ROOT when it was).
WHITENOISE_USE_FINDERS = True

# Security. Production is the default; DEBUG=true relaxes what needs HTTPS.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
# Probes and the scraper talk plain HTTP to the server itself, not through the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY", False) else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 12 * 60 * 60)
SESSION_ENGINE = "django.contrib.sessions.backends.db"
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    }
}

# Log lines are JSON objects in production (one per line, for a log shipper) and plain text
# with DEBUG; both carry the id of the request they belong to (the X-Request-ID header).
LOG_FORMAT = env_str("LOG_FORMAT", "text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "ops.request_id.RequestIdFilter"},
        "redact_secret_paths": {"()": "ops.log_redaction.RedactSecretPathsFilter"},
        "database_outage": {"()": "ops.database_outage.DatabaseOutageLogFilter"},
    },
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id", "redact_secret_paths", "database_outage"],
            "formatter": LOG_FORMAT,
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # urllib3 logs request lines at DEBUG; keep it quiet so nothing key-like leaks.
        "urllib3": {"level": "WARNING"},
        # The SDK logs whole request and answer bodies at DEBUG (client secrets among them).
        "stripe": {"level": "WARNING"},
        # run_huey adds a plain-text handler of its own to a "huey" logger without one, and
        # every consumer line would then be written twice; ours keeps them JSON, once.
        "huey": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO"), "propagate": False},
        # Django's own loggers without their default handlers (configuring a logger here drops
        # them), through the root's: with DEBUG Django's console handler would print every
        # warning and error a second time (no ADMINS, so its mail handler sent nothing). The
        # development server's request lines follow LOG_LEVEL too (the demo runs at WARNING).
        "django": {"level": env_str("LOG_LEVEL", "INFO")},
        "django.server": {"level": env_str("LOG_LEVEL", "INFO"), "propagate": True},
    },
}

# CSV exports longer than this many rows are written to a file by the worker (with a progress
# page) instead of streamed; the files live in EXPORT_DIR and are deleted after the retention.
EXPORT_STREAM_MAX_ROWS = env_int("EXPORT_STREAM_MAX_ROWS", 5000)
EXPORT_DIR = Path(env_str("EXPORT_DIR", str(BASE_DIR / "exports-data")))
EXPORT_RETENTION_SECONDS = env_int("EXPORT_RETENTION_SECONDS", 60 * 60)
# An export that has not moved for this long is shown as failed (its worker went away).
EXPORT_STALL_SECONDS = env_int("EXPORT_STALL_SECONDS", 5 * 60)

# /metrics answers only a scraper sending "Authorization: Bearer <METRICS_TOKEN>"; unset, it is a 404.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# The derouter upstream. The Account Key lives here and nowhere else.
DEROUTER_API_BASE = env_str("DEROUTER_API_BASE", "https://cf-api.derouter.ai").rstrip("/")
DEROUTER_INFERENCE_BASE = env_str("DEROUTER_INFERENCE_BASE", "https://api.derouter.ai/openai/v1").rstrip("/")
DEROUTER_ACCOUNT_KEY = env_str("DEROUTER_ACCOUNT_KEY", "")
DEROUTER_CONNECT_TIMEOUT = float(env_decimal("DEROUTER_CONNECT_TIMEOUT", "3.05"))
DEROUTER_READ_TIMEOUT = float(env_decimal("DEROUTER_READ_TIMEOUT", "15"))
# A request that writes (create, edit, delete, top up) spends at most this long on
# derouter in all, well inside gunicorn's timeout (gunicorn.conf.py), so a worker is
# never killed between a write and its record. Its reads wait at most the shorter
# DEROUTER_PREWRITE_READ_TIMEOUT each, so the write, made last, keeps its time.
DEROUTER_WRITE_DEADLINE = float(env_decimal("DEROUTER_WRITE_DEADLINE", "20"))
DEROUTER_PREWRITE_READ_TIMEOUT = float(env_decimal("DEROUTER_PREWRITE_READ_TIMEOUT", "5"))
# A write whose outcome is unknown counts as "not applied" once this long has passed
# without derouter showing it (its request cannot be running any more).
WRITE_SETTLE_SECONDS = env_int("WRITE_SETTLE_SECONDS", 60)
# A top-up settled "not applied" that derouter shows applied within this long after it was
# sent is re-settled as applied (a late write), with an audit event that says so; the
# worker's settling keeps reading the key list (once a minute) for that long.
LATE_WRITE_HORIZON_SECONDS = env_int("LATE_WRITE_HORIZON_SECONDS", 60 * 60)
DEROUTER_GET_RETRIES = env_int("DEROUTER_GET_RETRIES", 2)
# Only with this on do upstream calls read HTTPS_PROXY / NO_PROXY / .netrc from the environment.
DEROUTER_USE_ENV_PROXIES = env_bool("DEROUTER_USE_ENV_PROXIES", False)

# Console behaviour.
STAFF_DAILY_TOPUP_CAP = env_decimal("STAFF_DAILY_TOPUP_CAP", "500")
LOW_BUDGET_THRESHOLD = env_decimal("LOW_BUDGET_THRESHOLD", "0.10")
# Printed at the top of the monthly statements clients receive when Branding names no product;
# empty (the default), a statement carries no name of ours: the reseller's brand or nothing.
RESELLER_NAME = env_str("RESELLER_NAME", "")
LOGIN_ATTEMPTS_LIMIT = env_int("LOGIN_ATTEMPTS_LIMIT", 5)
LOGIN_ATTEMPTS_WINDOW = env_int("LOGIN_ATTEMPTS_WINDOW", 15 * 60)
# Failures for one username from all addresses together; past it only a correct
# password plus a valid second factor still signs in, so guessing cannot lock an owner out.
LOGIN_USERNAME_ATTEMPTS_LIMIT = env_int("LOGIN_USERNAME_ATTEMPTS_LIMIT", 50)

# Money typed into the console, in USD.
MAX_KEY_BUDGET = env_decimal("MAX_KEY_BUDGET", "100000")
CONFIRM_BUDGET_ABOVE = env_decimal("CONFIRM_BUDGET_ABOVE", "1000")

# Two-factor sign-in and invitations.
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "derouter reseller")
INVITATION_MAX_AGE = env_int("INVITATION_MAX_AGE", 3 * 24 * 60 * 60)

# Client portal sessions.
PORTAL_IDLE_TIMEOUT = env_int("PORTAL_IDLE_TIMEOUT", 30 * 60)
PORTAL_ABSOLUTE_TIMEOUT = env_int("PORTAL_ABSOLUTE_TIMEOUT", 12 * 60 * 60)
PORTAL_LOGIN_ATTEMPTS_LIMIT = env_int("PORTAL_LOGIN_ATTEMPTS_LIMIT", 10)
PORTAL_LOGIN_ATTEMPTS_WINDOW = env_int("PORTAL_LOGIN_ATTEMPTS_WINDOW", 15 * 60)
# Redemption codes typed in the portal, counted per key and per address like sign-in attempts.
PORTAL_REDEEM_ATTEMPTS_LIMIT = env_int("PORTAL_REDEEM_ATTEMPTS_LIMIT", 10)
PORTAL_REDEEM_ATTEMPTS_WINDOW = env_int("PORTAL_REDEEM_ATTEMPTS_WINDOW", 15 * 60)

# Card payments: Stripe's API and stripe.js (localstripe's in tests and the demo). The keys are the owner's, saved in the console.
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com").rstrip("/")
STRIPE_JS_URL = env_str("STRIPE_JS_URL", "https://js.stripe.com/v3/")
STRIPE_TIMEOUT = int(env_int("STRIPE_TIMEOUT", 20))
STRIPE_NETWORK_RETRIES = env_int("STRIPE_NETWORK_RETRIES", 2)
# Orders left unpaid this long are asked about once more, then expired.
ORDER_EXPIRES_AFTER_SECONDS = env_int("ORDER_EXPIRES_AFTER_SECONDS", 24 * 60 * 60)
PORTAL_PAY_ATTEMPTS_LIMIT = env_int("PORTAL_PAY_ATTEMPTS_LIMIT", 20)
PORTAL_PAY_ATTEMPTS_WINDOW = env_int("PORTAL_PAY_ATTEMPTS_WINDOW", 60 * 60)

# Email (alerts, customers' budget request decisions, expiry reminders). The demo and
# DEBUG print mail to the console; production sends through SMTP.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "derouter dashboard <noreply@localhost>")

# Automation: how often the worker evaluates alert, top-up, allowance and expiry rules,
# and how webhooks are sent. Webhook targets must be https and public addresses; the two
# WEBHOOK_ALLOW_* switches exist for local receivers in tests and the demo only.
AUTOMATION_EVALUATE_MINUTES = env_int("AUTOMATION_EVALUATE_MINUTES", 1) or 1
# An automatic top-up or allowance refill settled "not applied" is tried again after this many
# seconds, doubling each time up to the maximum, at most AUTOMATION_RETRY_ATTEMPTS times in all.
AUTOMATION_RETRY_BASE_SECONDS = env_int("AUTOMATION_RETRY_BASE_SECONDS", 60)
AUTOMATION_RETRY_MAX_SECONDS = env_int("AUTOMATION_RETRY_MAX_SECONDS", 60 * 60)
AUTOMATION_RETRY_ATTEMPTS = env_int("AUTOMATION_RETRY_ATTEMPTS", 6) or 1
WEBHOOK_TIMEOUT = float(env_decimal("WEBHOOK_TIMEOUT", "5"))
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6) or 1
WEBHOOK_RETRY_BASE_SECONDS = env_int("WEBHOOK_RETRY_BASE_SECONDS", 30)
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", DEBUG)
WEBHOOK_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
