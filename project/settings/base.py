"""Settings every environment shares, all from the environment (django-environ).

Development defaults work with nothing set; local.py, production.py and test.py add what differs
(see project/settings/__init__.py for which one runs). Variables come from the process's environment
over the checkout's `.env` (core.configuration); docs/configuration.md lists every one with its
default. Importing settings reads the environment, `.env` and `.local/`, and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from core import local_services
from core.configuration import environment
from core.queues import Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
env.ENVIRON = environment()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"DJANGO_ENV must be 'development' or 'production', not {DJANGO_ENV!r}.")

# Unset URLs fall back to the embedded servers started by `make services` (`python -m devserver.embedded
# start`), read from the URLs they left in .local/services.env; nothing is started or written here.
_embedded = local_services.services_env_read()
EMBEDDED_DATABASE = not env.str("DATABASE_URL", default="")
DATABASE_URL = env.str("DATABASE_URL", default="") or _embedded.get("DATABASE_URL", local_services.postgres_url())
REDIS_URL = env.str("REDIS_URL", default="") or _embedded.get("REDIS_URL", local_services.redis_url())

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",
    "axes",
    "core",
    "jobs",
    "documents",
    "chat",
    "research",
]

MIDDLEWARE = [
    "core.middleware.RequestIdMiddleware",
    # Outermost after the request id: whatever answers an /api/ error below, the client gets JSON.
    "core.middleware.ApiErrorShapeMiddleware",
    "core.middleware.NulRejectingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ContentSecurityPolicyMiddleware",
    # Static files from the app itself (gunicorn, compose): compressed, and cached for good once hashed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication (it counts per user): one caller's costly pages never hold every thread.
    "core.middleware.CostlyRequestLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login before the view runs.
    "axes.middleware.AxesMiddleware",
    "core.middleware.DatabaseUnavailableMiddleware",
]

# Pages load scripts, styles, images and fonts from this host only, and run no inline script or
# event handler (the admin's scripts are static files; Swagger UI's set-up is served apart, ReDoc
# reads its element's attributes), so an injected <script> or onclick= runs nothing. Inline styles
# are allowed: the docs UIs set them, and a style runs no code. blob: workers are ReDoc's search.
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
            "frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
)

# Admin login lockout (django-axes): this many failures for one user name from one address lock
# that pair for the cool-off; a success resets the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("LOGIN_LOCKOUT_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# The lockout answers 429 with Retry-After, as every other throttle does.
AXES_LOCKOUT_CALLABLE = "core.auth.login_lockout_response"

ROOT_URLCONF = "project.urls"
# The error page masks passwords inside URLs too (DATABASE_URL, REDIS_URL, the cache location).
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.safe_reports.SecretsReporterFilter"
WSGI_APPLICATION = "project.wsgi.application"
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
                "jobs.dashboard.dashboard_context",
            ]
        },
    }
]

DATABASES = {"default": env.db_url_config(DATABASE_URL)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The same backend, guarded against a server that stops answering (core.db).
    DATABASES["default"]["ENGINE"] = "core.db"
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A PostgreSQL that stops answering (frozen, or a dropped network) costs a request under a second
# (core.db.guard): a wait on the server longer than DATABASE_STALL_SECONDS has the server asked
# whether it is alive, with DATABASE_PROBE_SECONDS to answer; silent, the wait is cut (503) and the
# server skipped for BREAKER_SECONDS. A new connection gives up after DATABASE_CONNECT_TIMEOUT_SECONDS.
DATABASE_STALL_SECONDS = env.float("DATABASE_STALL_SECONDS", default=0.3)
DATABASE_PROBE_SECONDS = env.float("DATABASE_PROBE_SECONDS", default=0.4)
DATABASE_CONNECT_TIMEOUT_SECONDS = env.float("DATABASE_CONNECT_TIMEOUT_SECONDS", default=0.7)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Every Redis client in a process that answers requests (the cache, publishing a run, the health
# probe, the beat lock) gives up connecting, and waiting for each answer, after this: a Redis that
# is down or frozen costs a request this once, then its breaker (core.breaker) skips it for
# BREAKER_SECONDS. Workers and beat wait longer on their broker connection (WORKER_BROKER_TIMEOUT_SECONDS).
REDIS_TIMEOUT_SECONDS = env.float("REDIS_TIMEOUT_SECONDS", default=0.2)
BREAKER_SECONDS = env.float("BREAKER_SECONDS", default=5.0)
WORKER_BROKER_TIMEOUT_SECONDS = env.float("WORKER_BROKER_TIMEOUT_SECONDS", default=10.0)

# Shared by web and workers (the LLM health memo lives here), so it is not per-process while Redis
# answers; while it does not, each process falls back to its own memory (core.cache).
CACHES = {"default": {"BACKEND": "core.cache.FailSoftRedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "app",
                      "OPTIONS": {"serializer": "core.cache.JsonSerializer", "socket_timeout": REDIS_TIMEOUT_SECONDS,
                                  "socket_connect_timeout": REDIS_TIMEOUT_SECONDS}}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Times to the second everywhere the admin shows them (project/formats/en/formats.py).
FORMAT_MODULE_PATH = ["project.formats"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

LOCAL_DIR = local_services.LOCAL_DIR
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(LOCAL_DIR / "static")))
# Before collectstatic has run (tests, manage.py shell) a file is named without its hash.
WHITENOISE_MANIFEST_STRICT = False
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(LOCAL_DIR / "media")))
# Uploaded originals are every user's documents: the local storage keeps them its owner's alone,
# whatever the umask of the process that saved them.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# Files: local by default, S3 (or any S3-compatible server) when a bucket is named.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
AWS_DEFAULT_ACL = None
AWS_S3_FILE_OVERWRITE = False
STORAGES = {
    "default": (
        {"BACKEND": "storages.backends.s3.S3Storage"}
        if AWS_STORAGE_BUCKET_NAME
        else {"BACKEND": "django.core.files.storage.FileSystemStorage"}
    ),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.auth.TokenOrBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Signed in; and another user's object is acted on only with the model's permission (core.permissions).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "core.permissions.OwnerOrModelPermission"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.ListPagination",
    "PAGE_SIZE": env.int("API_PAGE_SIZE", default=50),
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    # JSON bodies are JSON only; the one upload endpoint takes multipart itself.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # DRF's test client sends what the API accepts.
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "core.api_errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.RequestThrottle",
    ],
    # "N/second|minute|hour|day" each; uploads, chat messages and summaries start costly work.
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="60/minute"),
        "user": env.str("THROTTLE_USER", default="600/minute"),
        "uploads": env.str("THROTTLE_UPLOADS", default="30/minute"),
        "chat": env.str("THROTTLE_CHAT", default="30/minute"),
        "summaries": env.str("THROTTLE_SUMMARIES", default="20/hour"),
        # Wrong tokens per address (core.throttling): a guess a few seconds, not thousands a minute.
        "auth_failures": env.str("THROTTLE_AUTH_FAILURES", default="20/minute"),
    },
}
# Modules of more tracked kinds to register in every process (web, workers, beat), comma-separated.
TASK_MODULES_EXTRA = env.list("TASK_MODULES_EXTRA", default=[])
# /metrics (Prometheus): with METRICS_TOKEN set, only "Authorization: Bearer <token>" may read it;
# without it, only clients on this host's loopback.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Anonymous /api/health/ answers from a result at most this old (one real probe per process per period).
HEALTH_ANON_CACHE_SECONDS = env.float("HEALTH_ANON_CACHE_SECONDS", default=5.0)
# A scheduled job of a user who is not an operator (core.permissions) may not run more often than this.
JOB_MIN_INTERVAL_SECONDS = env.int("JOB_MIN_INTERVAL_SECONDS", default=300)
SPECTACULAR_SETTINGS = {
    "TITLE": "Background work API",
    "DESCRIPTION": "Documents, chat and jobs run on Celery workers: recorded, observable, cancellable, retryable.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request and response components apart: an upload's file is binary going in, a name coming out.
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc from the app (drf-spectacular-sidecar): no page loads anything from outside.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # ReDoc's bundle from the sidecar, served by core.docs without its remote logo.
    "REDOC_DIST": "/api/redoc/assets",
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "jobs.models.RunStatus",
        "DocumentStatusEnum": "documents.models.DocumentStatus",
        "MessageStatusEnum": "chat.models.MessageStatus",
    },
}

# --- Celery -------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = "jobs.results:RunBackend"
CELERY_RESULT_EXTENDED = True
CELERY_CACHE_BACKEND = "django-cache"
CELERY_TASK_SERIALIZER = env.str("CELERY_TASK_SERIALIZER", default="json")
CELERY_RESULT_SERIALIZER = env.str("CELERY_RESULT_SERIALIZER", default="json")
CELERY_ACCEPT_CONTENT = env.list("CELERY_ACCEPT_CONTENT", default=["json"])
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=1)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=840)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=900)
CELERY_BROKER_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_BROKER_VISIBILITY_TIMEOUT,
    # Fail fast when the broker is down (one connection attempt, no retry loop): the run stays
    # QUEUED and the watchdog publishes it later. Workers and beat wait longer (project.celery).
    "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
    "socket_timeout": REDIS_TIMEOUT_SECONDS,
    "max_retries": 0,
}
# Two places in line on each queue (jobs.broker): resumed work first, then fresh work. On Redis kombu
# keeps a list per step and reads step 0 first; RabbitMQ queues are declared with x-max-priority.
if CELERY_BROKER_URL.split("://", 1)[0] in ("redis", "rediss", "sentinel"):
    CELERY_BROKER_TRANSPORT_OPTIONS.update({"priority_steps": [0, 9], "sep": "\x06\x16",
                                            "queue_order_strategy": "priority"})
else:
    CELERY_TASK_QUEUE_MAX_PRIORITY = 9
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's task events (received, started, succeeded…) cost the worker's main process a broker publish
# each, nearly half its time on short tasks (bench/task_overhead.py, profiled), and nothing here reads
# them: runs keep their own record. Flower switches them on in every worker when it starts (and
# keeps them on while it runs); set this to keep them on without it. Worker heartbeats, which
# workers' presence is read from, are sent either way.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=False)
# Switched on by Flower or `celery control enable_events`, task events go off again in each worker
# once nobody has asked for them for this long and no reader is bound (jobs.events).
TASK_EVENTS_IDLE_SECONDS = env.float("TASK_EVENTS_IDLE_SECONDS", default=45.0)
# A pool process loads its kinds' models before it takes a message (jobs.runner warm-up); Celery's
# 4 s default for a process to come up would kill it mid-load.
CELERY_WORKER_PROC_ALIVE_TIMEOUT = env.float("CELERY_WORKER_PROC_ALIVE_TIMEOUT", default=120.0)
# Off only where start-up speed matters more than the first run's (the test suite's many restarts).
WORKER_WARM_UP = env.bool("WORKER_WARM_UP", default=True)
# A "task-sent" event is one more publish per enqueue, for a state Flower alone would show: a run
# waiting is shown as QUEUED by the API and the admin.
CELERY_TASK_SEND_SENT_EVENT = env.bool("CELERY_TASK_SEND_SENT_EVENT", default=False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "jobs.beat:LockedDatabaseScheduler"
# Back within seconds of the broker, not after up to 30 s of Celery's back-off (jobs.consumer).
CELERY_WORKER_CONSUMER = "jobs.consumer:PromptlyReconnectingConsumer"
# Recovery that needs no operator (see jobs.services.maintenance.watchdog); beat keeps it in its table.
WATCHDOG_INTERVAL_SECONDS = env.int("WATCHDOG_INTERVAL_SECONDS", default=15)


def beat_schedule(*, watchdog_interval: float) -> dict:
    return {"jobs-watchdog": {"task": "jobs.watchdog", "schedule": float(watchdog_interval),
                              "options": {"expires": watchdog_interval * 4}}}


CELERY_BEAT_SCHEDULE = beat_schedule(watchdog_interval=WATCHDOG_INTERVAL_SECONDS)
CELERY_TIMEZONE = TIME_ZONE
# A pool process is replaced after this many tasks, so a leak in a library we do not own stays
# bounded. Celery's command line reads the same variable. The documents worker is replaced by its
# memory cap instead (processes/workers.py).
CELERY_WORKER_MAX_TASKS_PER_CHILD = env.int("CELERY_WORKER_MAX_TASKS_PER_CHILD", default=1000)
# The retry policy of a kind that declares none (jobs.registry.default_retry_policy): by default one
# attempt, as before; set the count and every such kind retries after the delay.
CELERY_TASK_MAX_RETRIES = env.int("CELERY_TASK_MAX_RETRIES", default=0)
CELERY_TASK_DEFAULT_RETRY_DELAY = env.int("CELERY_TASK_DEFAULT_RETRY_DELAY", default=180)
CELERY_TASK_DEFAULT_QUEUE = str(Queue.JOBS)
# Every queue work is published to, declared: so `celery purge`, `inspect active_queues` and Flower
# know all five, not only the default one (Celery would create the others unseen on first use).
# (As Celery's own declarations by name: a direct exchange of the queue's name, its name as the key.)
CELERY_TASK_QUEUES = {str(queue): {"exchange": str(queue), "routing_key": str(queue)} for queue in Queue}
# The longest countdown we schedule (retry delays, Retry-After caps); must stay under the visibility timeout.
MAX_RETRY_COUNTDOWN = env.int("MAX_RETRY_COUNTDOWN", default=600)

# --- Runs -------------------------------------------------------------------------
# A worker refreshes the heartbeat of the run it holds this often; a run silent for the timeout
# has lost its worker and is taken over (re-queued or failed by its policy).
RUN_HEARTBEAT_SECONDS = env.float("RUN_HEARTBEAT_SECONDS", default=10.0)
RUN_HEARTBEAT_TIMEOUT_SECONDS = env.float("RUN_HEARTBEAT_TIMEOUT_SECONDS", default=30.0)
# A run whose message is not in the broker this long after it was sent (or due) is published again.
RUN_MESSAGE_LOST_AFTER_SECONDS = env.int("RUN_MESSAGE_LOST_AFTER_SECONDS", default=20)
# Where the broker cannot be read (not Redis), only runs this old are published again.
RUN_REDISPATCH_AFTER_SECONDS = env.int("RUN_REDISPATCH_AFTER_SECONDS", default=600)
# How long a worker that lost the database mid-attempt waits for it before giving up the attempt.
RUN_DATABASE_WAIT_SECONDS = env.int("RUN_DATABASE_WAIT_SECONDS", default=120)
# A cancelled body still running this long after the cancel is terminated.
CANCEL_GRACE_SECONDS = env.int("CANCEL_GRACE_SECONDS", default=10)
# Seconds a task result is kept: Celery's result_expires, applied by our cleanup_results job (our
# beat scheduler, jobs.beat, adds no celery.backend_cleanup of its own).
# RESULTS_RETENTION_DAYS is the same in days.
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=env.int("RESULTS_RETENTION_DAYS", default=7) * 86400)
RUNS_RETENTION_DAYS = env.int("RUNS_RETENTION_DAYS", default=30)
DEAD_RUNS_RETENTION_DAYS = env.int("DEAD_RUNS_RETENTION_DAYS", default=90)
BEAT_LOCK_TTL_SECONDS = env.int("BEAT_LOCK_TTL_SECONDS", default=30)

# --- Documents -------------------------------------------------------------------
DOCUMENT_MAX_BYTES = env.int("DOCUMENT_MAX_BYTES", default=25 * 1024 * 1024)
DOCUMENT_MAX_PAGES = env.int("DOCUMENT_MAX_PAGES", default=500)
# Per user: documents not yet ready or failed, and bytes uploaded in the last 24 hours (429 beyond).
DOCUMENT_MAX_IN_FLIGHT = env.int("DOCUMENT_MAX_IN_FLIGHT", default=20)
DOCUMENT_MAX_BYTES_PER_DAY = env.int("DOCUMENT_MAX_BYTES_PER_DAY", default=500 * 1024 * 1024)
# Per user: ingestions waiting in the broker at once; the rest follow as those finish.
DOCUMENT_FAIR_SHARE = env.int("DOCUMENT_FAIR_SHARE", default=2)
# A long ingestion yields its worker after working this long and continues behind the ingestions
# waiting meanwhile, so one large document never holds the queue (each slice resumes at its checkpoint).
INGEST_SLICE_SECONDS = env.float("INGEST_SLICE_SECONDS", default=30.0)
# What an ingestion may work in all, slices together: sized to the document (about 4x what the
# largest measured texts need on one CPU thread), never below the floor.
INGEST_SECONDS_PER_MB = env.int("INGEST_SECONDS_PER_MB", default=1200)
INGEST_MIN_CAP_SECONDS = env.int("INGEST_MIN_CAP_SECONDS", default=900)
# Extraction runs in a child process bounded by these (documents.pipeline.bounded).
EXTRACT_MAX_MEMORY_MB = env.int("EXTRACT_MAX_MEMORY_MB", default=512)
EXTRACT_MAX_SECONDS = env.int("EXTRACT_MAX_SECONDS", default=60)
EXTRACT_MAX_CHARS = env.int("EXTRACT_MAX_CHARS", default=5_000_000)
EXTRACT_MAX_DECODED_MB = env.int("EXTRACT_MAX_DECODED_MB", default=200)
EXTRACT_MAX_HTML_ELEMENTS = env.int("EXTRACT_MAX_HTML_ELEMENTS", default=200_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
EMBEDDING_BACKEND = env.str("EMBEDDING_BACKEND", default="local")
EMBEDDING_DIMENSIONS = env.int("EMBEDDING_DIMENSIONS", default=384)
EMBEDDING_API_URL = env.str("EMBEDDING_API_URL", default="")
EMBEDDING_API_KEY = env.str("EMBEDDING_API_KEY", default="")
EMBEDDING_MODEL = env.str("EMBEDDING_MODEL", default="all-MiniLM-L6-v2")
EMBEDDING_THREADS = env.int("EMBEDDING_THREADS", default=1)
# Where the vector half of search looks: "pgvector" (the chunk rows; needs nothing) or "pinecone"
# (PINECONE_API_KEY, PINECONE_INDEX_HOST and PINECONE_NAMESPACE; keyword search stays in PostgreSQL).
VECTOR_STORE = env.str("VECTOR_STORE", default="pgvector")
if VECTOR_STORE not in ("pgvector", "pinecone"):
    raise ImproperlyConfigured(f"VECTOR_STORE must be 'pgvector' or 'pinecone', not {VECTOR_STORE!r}.")
PINECONE_API_KEY = env.str("PINECONE_API_KEY", default="")
PINECONE_INDEX_HOST = env.str("PINECONE_INDEX_HOST", default="")
PINECONE_NAMESPACE = env.str("PINECONE_NAMESPACE", default="documents")
PINECONE_TIMEOUT = env.float("PINECONE_TIMEOUT", default=10.0)
if VECTOR_STORE == "pinecone" and not (PINECONE_API_KEY and PINECONE_INDEX_HOST):
    raise ImproperlyConfigured("VECTOR_STORE=pinecone needs PINECONE_API_KEY and PINECONE_INDEX_HOST "
                               "(the index's data plane host, from the Pinecone console).")

# --- Research digests -------------------------------------------------------------
# At most this many of one digest's children wait in the broker at once; the rest follow as
# those end, so one user's large digest does not take the research queue from everyone else.
RESEARCH_MAX_CHILDREN_IN_FLIGHT = env.int("RESEARCH_MAX_CHILDREN_IN_FLIGHT", default=4)
# The most documents one digest may read (its max_documents is bounded by this).
RESEARCH_MAX_DOCUMENTS = env.int("RESEARCH_MAX_DOCUMENTS", default=100)

# --- Live events (core.streams, jobs.live) ---------------------------------------------
# How long a streamed reply's text stays in Redis after its last word, for clients that come back.
RUN_EVENTS_KEEP_SECONDS = env.int("RUN_EVENTS_KEEP_SECONDS", default=3600)
# A comment this often keeps an idle stream open through proxies (most close idle ones after 60 s).
STREAM_KEEPALIVE_SECONDS = env.float("STREAM_KEEPALIVE_SECONDS", default=15.0)
# Open streams per user, across web processes (429 with Retry-After beyond).
STREAM_MAX_PER_USER = env.int("STREAM_MAX_PER_USER", default=20)
# Events waiting for one stream's client, and how long one write may wait for it: a client that does
# not read is dropped (and comes back with Last-Event-ID), never buffered without bound.
STREAM_BUFFER_EVENTS = env.int("STREAM_BUFFER_EVENTS", default=1000)
STREAM_SEND_TIMEOUT_SECONDS = env.float("STREAM_SEND_TIMEOUT_SECONDS", default=10.0)
# How long opening a stream may wait for the database before answering 503.
STREAM_OPEN_SECONDS = env.float("STREAM_OPEN_SECONDS", default=0.8)

# --- LLM server ----------------------------------------------------------------------
AI_SERVER_URL = env.str("AI_SERVER_URL", default="").rstrip("/")
# Every OpenAI-compatible server lists its models; a 404 here means "no health endpoint", and an
# empty value turns the probe off.
AI_HEALTH_PATH = env.str("AI_HEALTH_PATH", default="/v1/models")
AI_HEALTH_TTL = env.int("AI_HEALTH_TTL", default=30)
AI_MODEL = env.str("AI_MODEL", default="default")
AI_API_KEY = env.str("AI_API_KEY", default="")
AI_USERNAME = env.str("AI_USERNAME", default="")
AI_PASSWORD = env.str("AI_PASSWORD", default="")
AI_TIMEOUT = env.float("AI_TIMEOUT", default=90.0)
AI_CONNECT_TIMEOUT = env.float("AI_CONNECT_TIMEOUT", default=5.0)
try:
    AI_RETRY_DELAYS = [float(x) for x in env.list("AI_RETRY_DELAYS", default=["5", "15", "30"])]
except ValueError:
    raise ImproperlyConfigured("AI_RETRY_DELAYS must be comma-separated seconds, e.g. 5,15,30.")
AI_APOLOGY_TEXT = env.str(
    "AI_APOLOGY_TEXT",
    default="Sorry, I could not get an answer from the assistant service. Please try again later.",
)

# --- Errors -------------------------------------------------------------------------
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default=DJANGO_ENV)

# --- Logging: JSON lines on stdout carrying the request's correlation id --------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"correlation": {"()": "core.logging.CorrelationIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(correlation_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    # Logs on stderr: a command's stdout is its output alone, for a pipe or a script to read.
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["correlation"],
                   "stream": "ext://sys.stderr"}
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "celery": {"level": LOG_LEVEL},
        # Its start-up banner ("AXES: BEGIN …") on every process, `manage.py` commands' stdout included;
        # lockouts are warnings and still logged.
        "axes.apps": {"level": "WARNING"},
    },
}
