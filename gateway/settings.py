"""modelgate settings: one file, every value read from the environment (django-environ).

Defaults make a fresh checkout run with nothing installed: SQLite next to the code, DEBUG off,
a secret key generated once into a file beside the database. Production differs only by
environment variables (DATABASE_URL, DJANGO_SECRET_KEY, ALLOWED_HOSTS, MODELGATE_MASTER_KEY ...).
"""

from __future__ import annotations

import os
import secrets
import warnings
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _env_or_fail(cast, name: str, default):
    """Read one variable; a value that does not parse fails at start, naming the variable."""
    try:
        return cast(name, default=default)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"Environment variable {name} has an invalid value: {exc}") from exc


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, default: bool) -> bool:
    """A strict boolean: 'perhaps' is an error, not False."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"Environment variable {name} must be true or false, not {raw!r}.")


# --- Core ---------------------------------------------------------------------------------------------------------
DEBUG = _bool("DEBUG", False)
ALLOWED_HOSTS = _env_or_fail(env.list, "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
DATA_DIR = Path(env.str("MODELGATE_DATA_DIR", default=str(BASE_DIR)))


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else a key generated once and kept in DATA_DIR/.secret_key (mode 0600)."""
    value = env.str("DJANGO_SECRET_KEY", default="")
    if value:
        return value
    path = DATA_DIR / ".secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = secrets.token_urlsafe(50)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(value)
        return value


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "gateway",
    "accounts",
    "models_registry",
]

MIDDLEWARE = [
    "gateway.middleware.RelayFastPathMiddleware",  # chat completions skip the rest (see its docstring)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # the admin's CSS and JS, with DEBUG off (no nginx needed)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "gateway.urls"
WSGI_APPLICATION = "gateway.wsgi.application"
# LiteLLM clients call /chat/completions and /key/generate without a trailing slash; never redirect them.
APPEND_SLASH = False

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
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------------------------
if not env.str("DATABASE_URL", default=""):  # unset or empty: the embedded default
    os.environ["DATABASE_URL"] = f"sqlite:///{DATA_DIR / 'modelgate.sqlite3'}"
DATABASES = {"default": _env_or_fail(env.db, "DATABASE_URL", None)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # One small pool per process, shared by its threads (gthread workers run many threads; a connection per
    # thread would exhaust PostgreSQL's max_connections). Django's pool needs CONN_MAX_AGE = 0.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "pool",
        {"min_size": 1, "max_size": _env_or_fail(env.int, "MODELGATE_DB_POOL_SIZE", 8), "timeout": 10},
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", _env_or_fail(env.int, "CONN_MAX_AGE", 60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several gunicorn workers share the file: wait for a lock instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 20)
    DATABASES["default"]["OPTIONS"].setdefault("init_command", "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")
    DATABASES["default"]["OPTIONS"].setdefault("transaction_mode", "IMMEDIATE")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Static files and i18n ----------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(DATA_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves static files straight from the apps' static folders, so `modelgate serve` needs no collectstatic
# step; a collected STATIC_ROOT (`modelgate manage collectstatic`) is served too when it exists.
WHITENOISE_USE_FINDERS = True
warnings.filterwarnings("ignore", message="No directory at: ")  # WhiteNoise on a STATIC_ROOT not collected: fine
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security -----------------------------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _bool("BEHIND_TLS_PROXY", False) else None
CSRF_TRUSTED_ORIGINS = _env_or_fail(env.list, "CSRF_TRUSTED_ORIGINS", [])

# --- REST framework (management API) ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_PARSER_CLASSES": ["gateway.parsers.LenientJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "gateway.errors.drf_exception_handler",
}

# --- modelgate ----------------------------------------------------------------------------------------------------
# The config file `modelgate serve --config` loaded; read again here only for general_settings.master_key.
MODELGATE_CONFIG = env.str("MODELGATE_CONFIG", default="")
MODELGATE_MASTER_KEY = env.str("MODELGATE_MASTER_KEY", default="")
# How long a process may serve a key, team or route table from memory (SPEC §3: 5 seconds).
MODELGATE_AUTH_CACHE_TTL = _env_or_fail(env.float, "MODELGATE_AUTH_CACHE_TTL", 5.0)
# Largest request body the relay accepts (SPEC §6: 413 above it).
MODELGATE_MAX_BODY_BYTES = _env_or_fail(env.int, "MODELGATE_MAX_BODY_BYTES", 10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MODELGATE_MAX_BODY_BYTES
# Default upstream timeout in seconds when a deployment sets none.
MODELGATE_UPSTREAM_TIMEOUT = _env_or_fail(env.float, "MODELGATE_UPSTREAM_TIMEOUT", 600.0)
MODELGATE_UPSTREAM_CONNECT_TIMEOUT = _env_or_fail(env.float, "MODELGATE_UPSTREAM_CONNECT_TIMEOUT", 10.0)
MODELGATE_UPSTREAM_POOL_SIZE = _env_or_fail(env.int, "MODELGATE_UPSTREAM_POOL_SIZE", 100)

# Budgets and rate limits: counters in Redis when REDIS_URL is set (needed across machines), else in the database.
REDIS_URL = env.str("REDIS_URL", default="")
MODELGATE_REDIS_PREFIX = env.str("MODELGATE_REDIS_PREFIX", default="modelgate:")
# Request log: "thread" writes in a background thread per process; "manual" only on accounting.flush() (tests).
MODELGATE_ACCOUNTING = env.str("MODELGATE_ACCOUNTING", default="thread")
if MODELGATE_ACCOUNTING not in ("thread", "manual"):
    raise ImproperlyConfigured("MODELGATE_ACCOUNTING must be 'thread' or 'manual'.")
# Keep request and response bodies in the request log (off: bodies are never stored).
MODELGATE_LOG_BODIES = _bool("MODELGATE_LOG_BODIES", False)

# --- Logging ------------------------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}
