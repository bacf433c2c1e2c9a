"""Where the embedded PostgreSQL and Redis of a checkout are found (`make run`, `make services`).

devserver.embedded starts them and writes their URLs to `.local/services.env`; local settings read
that file (or, before anything was started, the ports last used) when DATABASE_URL / REDIS_URL are
unset. Reading only, and the standard library only: this module is imported by both."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = Path(os.environ.get("LOCAL_DIR", BASE_DIR / ".local"))
SERVICES_ENV = LOCAL_DIR / "services.env"
PG_PORT_FILE = LOCAL_DIR / "pg.port"
REDIS_PORT_FILE = LOCAL_DIR / "redis.port"
REDIS_PASSWORD_FILE = LOCAL_DIR / "redis.password"
POSTGRES_PASSWORD_FILE = LOCAL_DIR / "postgres.password"
APP_PASSWORD_FILE = LOCAL_DIR / "app.password"
DATABASE_NAME = "app"
# The role the service connects as: owner of its database, not a superuser (devserver.embedded).
APP_ROLE = "app"
# Ports away from the usual 5432/6379 so an installed server is never hit by mistake.
PREFERRED_PG_PORT = 54329
PREFERRED_REDIS_PORT = 63799


def remembered_port(state_file: Path, preferred: int) -> int:
    """The port a server was last started on."""
    try:
        return int(state_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return preferred


def redis_password() -> str:
    """The embedded Redis's password, generated on its first start."""
    try:
        return REDIS_PASSWORD_FILE.read_text().strip()
    except FileNotFoundError:
        return ""


def postgres_password() -> str:
    """The embedded PostgreSQL superuser's password, generated on its first start."""
    try:
        return POSTGRES_PASSWORD_FILE.read_text().strip()
    except FileNotFoundError:
        return ""


def app_password() -> str:
    """The application role's password, generated on the embedded server's first start."""
    try:
        return APP_PASSWORD_FILE.read_text().strip()
    except FileNotFoundError:
        return ""


def postgres_url() -> str:
    """The service's URL: the application role, which is not a superuser."""
    password = app_password()
    auth = f"{APP_ROLE}:{password}@" if password else f"{APP_ROLE}@"
    return f"postgres://{auth}127.0.0.1:{remembered_port(PG_PORT_FILE, PREFERRED_PG_PORT)}/{DATABASE_NAME}"


def postgres_superuser_url() -> str:
    """The operator's URL (the `postgres` superuser): for psql and for what the service may not do."""
    password = postgres_password()
    auth = f"postgres:{password}@" if password else "postgres@"
    return f"postgres://{auth}127.0.0.1:{remembered_port(PG_PORT_FILE, PREFERRED_PG_PORT)}/{DATABASE_NAME}"


def redis_url() -> str:
    password = redis_password()
    auth = f":{password}@" if password else ""
    return f"redis://{auth}127.0.0.1:{remembered_port(REDIS_PORT_FILE, PREFERRED_REDIS_PORT)}/0"


def services_env_read() -> dict[str, str]:
    if not SERVICES_ENV.exists():
        return {}
    pairs = (line.split("=", 1) for line in SERVICES_ENV.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


# manage.py commands that need neither server, so they run in a clone whose services never started.
OFFLINE_COMMANDS = frozenset({"help", "version", "check", "makemigrations", "diffsettings", "collectstatic",
                              "spectacular", "startapp", "sqlmigrate"})


def unstarted_refusal(*, argv: list[str], environ: dict[str, str]) -> str | None:
    """Why `manage.py` stops before running a command, or None. A checkout whose embedded servers
    were never started knows no address for them but the default ports, which on a shared machine
    may be another checkout's servers: it says so rather than talk to them."""
    if environ.get("DJANGO_ENV") == "production":
        return None  # production settings demand their URLs themselves
    command = argv[1] if len(argv) > 1 else "help"
    if command in OFFLINE_COMMANDS or command.startswith("-"):
        return None
    written = services_env_read()
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not environ.get(name) and not written.get(name)]
    if not missing:
        return None
    return (f"manage.py {command}: this checkout's PostgreSQL and Redis have not been started, and "
            f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. Start them with `make run` "
            f"or `make services` (or `python -m devserver.embedded start`), or set {' and '.join(missing)}.")
