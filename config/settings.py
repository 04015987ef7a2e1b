"""One settings module. Every knob comes from the environment; unset means a safe embedded default.

The embedded default (nothing set) is SQLite, local files, Celery's filesystem broker and the database as cache,
lock and rate-limit store, so `make run` needs no server. Each variable read here is recorded in ENV_VARS, which
the README table and docker-compose.yml are checked against.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

ENV_VARS: dict[str, str] = {}  # name -> one-line meaning; filled by the helpers below


def env_str(name: str, default: str = "", *, doc: str) -> str:
    ENV_VARS[name] = doc
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool, *, doc: str) -> bool:
    raw = env_str(name, "", doc=doc).lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false or on/off)")


def env_list(name: str, default: list[str], *, doc: str) -> list[str]:
    raw = env_str(name, "", doc=doc)
    return [part.strip() for part in raw.split(",") if part.strip()] if raw else default


DJANGO_ENV = env_str("DJANGO_ENV", "dev", doc="dev or production (secure cookies, HSTS, SSL redirect)")
if DJANGO_ENV not in {"dev", "production"}:
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r}: use 'dev' or 'production'")
PRODUCTION = DJANGO_ENV == "production"

VAR_DIR = Path(env_str("DJANGO_VAR_DIR", str(BASE_DIR / "var"), doc="where the embedded default keeps its state"))


def _dev_secret_key() -> str:
    """A key generated once and kept in var/, so sessions survive restarts without anyone choosing a key."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("DJANGO_SECRET_KEY", doc="Django secret key (dev: generated once into var/)")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_ENV=production")
    SECRET_KEY = _dev_secret_key()

DEBUG = env_bool("DJANGO_DEBUG", False, doc="Django debug mode")
ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"], doc="comma-separated host names served"
)
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [], doc="comma-separated origins behind a proxy")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "django_htmx",
    "template_partials",
    # Our apps, lowest layer first (the README's architecture section; import-linter enforces the order).
    "core",
    "notifications",
    "lineage",
    "market",
    "brokers",
    "signals_app",
    "orders",
    "portfolio",
    "trading",
    "replays",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "core.middleware.UserTimeZoneMiddleware",
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
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL", doc="postgres://user@host:5432/name or sqlite:///path (default SQLite in var/)")


def _database(url: str) -> dj_database_url.DBConfig:
    if not url:
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
    scheme = urlparse(url).scheme
    if scheme not in {"postgres", "postgresql", "sqlite"}:
        raise ImproperlyConfigured(f"DATABASE_URL scheme {scheme!r} is not supported: use postgres:// or sqlite://")
    config = dj_database_url.parse(url, conn_max_age=60, conn_health_checks=True)
    if scheme == "sqlite":
        # WAL lets the web, worker and beat read while one writes; IMMEDIATE takes the write lock at BEGIN so two
        # writers queue on the busy timeout instead of failing with "database is locked" mid-transaction.
        config["CONN_MAX_AGE"] = 0
        # The test database is a file beside this one, not memory: the tests' threads and worker processes share it.
        config["TEST"] = {"NAME": str(Path(config["NAME"]).with_suffix("")) + "-test.sqlite3"}
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    return config


DATABASES = {"default": _database(DATABASE_URL)}
DATABASE_IS_SQLITE = DATABASES["default"]["ENGINE"].endswith("sqlite3")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache, locks and rate limits ------------------------------------------------------------------------------

REDIS_URL = env_str("REDIS_URL", doc="Redis for cache, locks and rate limits (default: the database does these)")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"}}
# Sessions are read on every page: from Redis when there is one (written through to the database, so a flushed
# cache signs nobody out); the embedded default keeps them in the database only.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db" if REDIS_URL else "django.contrib.sessions.backends.db"

# --- Celery -------------------------------------------------------------------------------------------------------


def _empty_exchange_tables(folder: Path, exchanges: tuple[str, ...]) -> None:
    """kombu's filesystem transport creates an exchange's table file on first use without a lock held from the
    start: a worker and beat booting together could read it empty and the worker died (JSONDecodeError). Each table
    starts here as an empty list, put in place atomically (a link never replaces a table another process wrote)."""
    for exchange in exchanges:
        table = folder / f"{exchange}.exchange"
        if table.exists():
            continue
        draft = folder / f".{exchange}.exchange.{os.getpid()}"
        draft.write_text("[]")
        try:
            os.link(draft, table)
        except FileExistsError:
            pass
        finally:
            draft.unlink(missing_ok=True)


CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", doc="Celery broker, a Redis URL (default: filesystem under var/)")
if not CELERY_BROKER_URL:
    _queue_dir = VAR_DIR / "celery-broker"
    for _sub in ("queue", "processed", "control"):
        (_queue_dir / _sub).mkdir(parents=True, exist_ok=True)
    _empty_exchange_tables(_queue_dir / "control", ("celery", "replays", "charts", "analysis", "orders"))
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "control_folder": str(_queue_dir / "control"),  # broadcasts (pidbox); default is the working directory
        "store_processed": False,
    }
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is delivered again; tasks are written to resume safely
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False, doc="run tasks inline (tests, debugging)")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Replays run on a worker of their own (Procfile, docker-compose.yml): a two-year replay never takes a slot a
# scheduled run is waiting for, and its worker's thread pool lets it start the chart process pool (a prefork
# worker's children are daemonic, and may have no children of their own).
REPLAY_QUEUE = "replays"
CELERY_TASK_ROUTES = {"replays.replay_run": {"queue": REPLAY_QUEUE}}

# --- Storage ------------------------------------------------------------------------------------------------------

AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME", doc="S3/MinIO bucket for charts (default: var/media)")
AWS_S3_ENDPOINT_URL = env_str("AWS_S3_ENDPOINT_URL", doc="S3-compatible endpoint, e.g. http://minio:9000") or None
AWS_ACCESS_KEY_ID = env_str("AWS_ACCESS_KEY_ID", doc="S3 access key")
AWS_SECRET_ACCESS_KEY = env_str("AWS_SECRET_ACCESS_KEY", doc="S3 secret key")
AWS_S3_REGION_NAME = env_str("AWS_S3_REGION_NAME", "us-east-1", doc="S3 region")

MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]

if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "access_key": AWS_ACCESS_KEY_ID or None,
            "secret_key": AWS_SECRET_ACCESS_KEY or None,
            "region_name": AWS_S3_REGION_NAME,
            "default_acl": None,
            "file_overwrite": False,
            "querystring_auth": True,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": MEDIA_URL},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Outside services -------------------------------------------------------------------------------------------

IBKR_GATEWAY_URL = env_str("IBKR_GATEWAY_URL", doc="Client Portal gateway, e.g. https://localhost:5000/v1/api")
IBKR_ACCOUNT_ID = env_str("IBKR_ACCOUNT_ID", doc="IBKR account id used when a connection names none")
IBKR_VERIFY_TLS = env_str("IBKR_VERIFY_TLS", "true", doc="true, false, or a CA-bundle path for the gateway's TLS")
IBKR_TIMEOUT_SECONDS = float(
    env_str("IBKR_TIMEOUT_SECONDS", "15", doc="seconds to wait for the IBKR gateway on each call (an order POST too)")
)
if IBKR_TIMEOUT_SECONDS <= 0:
    raise ImproperlyConfigured(f"IBKR_TIMEOUT_SECONDS={IBKR_TIMEOUT_SECONDS}: use a positive number of seconds")

# The order guard. IBKR's questions o163 (price band), o383 (size), o451 (value) and o10331 (stop risk) are answered
# yes only because these same checks ran first (orders/services.py).
ORDER_PRICE_BAND = float(
    env_str("ORDER_PRICE_BAND", "0.03", doc="how far (fraction of the last price) a limit or stop price may be from it")
)
if not 0 < ORDER_PRICE_BAND < 1:
    raise ImproperlyConfigured(f"ORDER_PRICE_BAND={ORDER_PRICE_BAND}: use a fraction between 0 and 1, e.g. 0.03")
ORDER_MAX_QUANTITY = int(env_str("ORDER_MAX_QUANTITY", "5000", doc="most shares one order may carry"))
ORDER_MAX_NOTIONAL = int(env_str("ORDER_MAX_NOTIONAL", "100000", doc="largest value (quantity x price) of one order"))
if ORDER_MAX_QUANTITY <= 0 or ORDER_MAX_NOTIONAL <= 0:
    raise ImproperlyConfigured("ORDER_MAX_QUANTITY and ORDER_MAX_NOTIONAL must be positive")

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY", doc="Anthropic API key (never logged)")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL", doc="Anthropic API base URL override")
LLM_MODEL = env_str("LLM_MODEL", "claude-sonnet-5-5", doc="default Anthropic model")
LLM_MAX_TOKENS = int(env_str("LLM_MAX_TOKENS", "4096", doc="cap on an analysis answer's tokens, thinking included"))
if not 256 <= LLM_MAX_TOKENS <= 16000:
    # Above ~21k the SDK refuses a non-streaming call; an analysis answer never needs that much.
    raise ImproperlyConfigured(f"LLM_MAX_TOKENS={LLM_MAX_TOKENS}: use 256 to 16000")
LLM_EFFORT = env_str("LLM_EFFORT", "low", doc="Anthropic output_config.effort: low, medium, high, xhigh or max")
if LLM_EFFORT not in {"low", "medium", "high", "xhigh", "max"}:
    raise ImproperlyConfigured(f"LLM_EFFORT={LLM_EFFORT!r}: use low, medium, high, xhigh or max")
LLM_TIMEOUT_SECONDS = float(env_str("LLM_TIMEOUT_SECONDS", "120", doc="timeout of one LLM request, in seconds"))
SIGNAL_PRICE_BAND = float(
    env_str("SIGNAL_PRICE_BAND", "0.10", doc="how far (fraction of the last close) a signal's prices may be from it")
)
if not 0 < SIGNAL_PRICE_BAND < 1:
    raise ImproperlyConfigured(f"SIGNAL_PRICE_BAND={SIGNAL_PRICE_BAND}: use a fraction between 0 and 1, e.g. 0.10")
# USD per million tokens, matched on the longest model-id prefix (a dated id like claude-sonnet-5-5-20260928 uses
# claude-sonnet-5-5). A model missing here is recorded with no cost rather than a guessed one.
_PRICE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
LLM_PRICES: dict[str, dict[str, str]] = {
    "claude-fable-5-2": dict(zip(_PRICE_FIELDS, ("8", "40", "10", "16", "0.20"), strict=True)),
    "claude-fable-5-1": dict(zip(_PRICE_FIELDS, ("10", "50", "12.50", "20", "0.25"), strict=True)),
    "claude-opus-5-5": dict(zip(_PRICE_FIELDS, ("4", "20", "5", "8", "0.20"), strict=True)),
    "claude-opus-5": dict(zip(_PRICE_FIELDS, ("5", "25", "6.25", "10", "0.50"), strict=True)),
    "claude-opus-4-8": dict(zip(_PRICE_FIELDS, ("5", "25", "6.25", "10", "0.50"), strict=True)),
    "claude-opus-4-7": dict(zip(_PRICE_FIELDS, ("5", "25", "6.25", "10", "0.50"), strict=True)),
    "claude-opus-4-6": dict(zip(_PRICE_FIELDS, ("5", "25", "6.25", "10", "0.50"), strict=True)),
    "claude-opus-4-5": dict(zip(_PRICE_FIELDS, ("5", "25", "6.25", "10", "0.50"), strict=True)),
    "claude-sonnet-5-5": dict(zip(_PRICE_FIELDS, ("2", "10", "2.50", "4", "0.10"), strict=True)),
    "claude-sonnet-5": dict(zip(_PRICE_FIELDS, ("2", "10", "2.50", "4", "0.20"), strict=True)),
    "claude-sonnet-4-6": dict(zip(_PRICE_FIELDS, ("3", "15", "3.75", "6", "0.30"), strict=True)),
    "claude-sonnet-4-5": dict(zip(_PRICE_FIELDS, ("3", "15", "3.75", "6", "0.30"), strict=True)),
    "claude-haiku-5-5": dict(zip(_PRICE_FIELDS, ("0.10", "0.50", "0.125", "0.20", "0.01"), strict=True)),
    "claude-haiku-4-5": dict(zip(_PRICE_FIELDS, ("1", "5", "1.25", "2", "0.10"), strict=True)),
}

OPENAI_BASE_URL = env_str("OPENAI_BASE_URL", doc="OpenAI-compatible server, e.g. http://localhost:11434/v1")
OPENAI_API_KEY = env_str("OPENAI_API_KEY", doc="key for the OpenAI-compatible server")
OPENAI_MODEL = env_str("OPENAI_MODEL", doc="model name on the OpenAI-compatible server")

TRADING_KILL_SWITCH = env_bool("TRADING_KILL_SWITCH", False, doc="on blocks every new entry order")
STOP_WATCH_ALLOWANCE = float(
    env_str("STOP_WATCH_ALLOWANCE", "0.005", doc="stop/target watch exits: limit = last price less this fraction")
)
if not 0 <= STOP_WATCH_ALLOWANCE < 0.05:
    raise ImproperlyConfigured(f"STOP_WATCH_ALLOWANCE={STOP_WATCH_ALLOWANCE}: use a fraction between 0 and 0.05")
PIPELINE_SPLIT_QUEUES = env_bool(
    "PIPELINE_SPLIT_QUEUES",
    False,
    doc="strategy runs hop to the charts, analysis and orders queues (workers must consume them); off: one queue",
)

# --- Notifications --------------------------------------------------------------------------------------------------

EMAIL_URL = env_str("EMAIL_URL", doc="smtp://user:pass@host:587?tls=true (default: console backend)")
NOTIFY_URLS = env_list(
    "NOTIFY_URLS",
    [],
    doc="comma-separated Apprise URLs (tgram://, discord://, slack://, ...): the server's default channels",
)
NOTIFY_WEBHOOK_URL = env_str(
    "NOTIFY_WEBHOOK_URL",
    doc='http(s) URL: a default channel posting {"event", "subject", "text", "user", "data"} (a json:// alias)',
)
NOTIFY_ALLOW_PRIVATE_HOSTS = env_bool(
    "NOTIFY_ALLOW_PRIVATE_HOSTS", False, doc="true lets users' channels point at loopback or private network hosts"
)
SITE_URL = env_str("SITE_URL", doc="the address traders open, for links in notifications (none without it)")
if SITE_URL and not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL={SITE_URL!r} must start with http:// or https://")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "trading@localhost", doc="sender of notification mail")


def _email(url: str) -> dict:
    if not url:
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    parts = urlparse(url)
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    if parts.scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if parts.scheme == "locmem":
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if parts.scheme not in {"smtp", "smtps"}:
        raise ImproperlyConfigured(f"EMAIL_URL scheme {parts.scheme!r} is not supported: use smtp://, smtps://")
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": parts.hostname or "localhost",
        "EMAIL_PORT": parts.port or (465 if parts.scheme == "smtps" else 587),
        "EMAIL_HOST_USER": unquote(parts.username or ""),
        "EMAIL_HOST_PASSWORD": unquote(parts.password or ""),
        "EMAIL_USE_SSL": parts.scheme == "smtps",
        "EMAIL_USE_TLS": options.get("tls", "true" if parts.scheme == "smtp" else "false") == "true",
        "EMAIL_TIMEOUT": 10,
    }


globals().update(_email(EMAIL_URL))

# --- Auth, i18n, API ------------------------------------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"  # enforced by a system check: every stored datetime is aware UTC
USE_I18N = True
USE_TZ = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Trading API",
    "DESCRIPTION": "Strategies, signals, orders, portfolio and lineage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models share field names with different choices (status, source): name each choice set once.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "orders.statuses.OrderStatus",
        "ExecutionStatusEnum": "trading.models.ExecutionStatus",
        "LLMCallStatusEnum": "signals_app.models.LLMCallStatus",
        "OrderSourceEnum": "orders.models.OrderSource",
        "TimeInForceEnum": "orders.models.TimeInForce",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO", doc="root log level")},
    # Apprise's messages go to the delivery they concern (notifications.apprise_client), not the server log; and
    # urllib3's debug lines name every URL it opens, a Telegram bot token or a webhook's secret path among them.
    "loggers": {
        "apprise": {"handlers": [], "propagate": False, "level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

# --- Production hardening -----------------------------------------------------------------------------------------

_ssl_redirect = env_bool("DJANGO_SECURE_SSL_REDIRECT", True, doc="production: redirect http to https")
if PRODUCTION:
    SECURE_SSL_REDIRECT = _ssl_redirect
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
