"""One configuration for every command of a checkout: the process's environment over `.env`.

`make run`, start_workers.sh, manage.py, gunicorn and the `celery` command all read their variables
through `environment()`: a variable set in the process wins (as docker compose and
cookiecutter-django have it), then `.env` at the checkout's root, then each setting's default.
ENV_FILE names another file; set to nothing, no file is read (the test suite does so, to stay
apart from a developer's `.env`). Reading only: nothing is written to os.environ, so importing
settings changes nothing. docs/configuration.md lists every variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent


def dotenv_path(*, process_environ: Mapping[str, str] | None = None) -> Path | None:
    """The `.env` file this process reads, or None when ENV_FILE is set to nothing."""
    named = (os.environ if process_environ is None else process_environ).get("ENV_FILE")
    if named is None:
        return BASE_DIR / ".env"
    return Path(named) if named else None


def dotenv_read(path: Path | None) -> dict[str, str]:
    """The variables of a dotenv file, parsed by django-environ's reader (quotes, `export`, comments);
    {} when there is no such file."""
    if path is None or not path.is_file():
        return {}

    class _Collected(environ.Env):
        ENVIRON: dict[str, str] = {}

    _Collected.read_env(str(path), overwrite=True)
    return dict(_Collected.ENVIRON)


def environment(*, process_environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every variable this process is configured by: its own environment over its `.env` file."""
    process_environ = os.environ if process_environ is None else process_environ
    return {**dotenv_read(dotenv_path(process_environ=process_environ)), **process_environ}


def value_sources(names: list[str], *, process_environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Where each named variable's value comes from: "environment", the `.env` file's path, or
    "default" (unset: the setting's default applies). Names only, never values."""
    process_environ = os.environ if process_environ is None else process_environ
    path = dotenv_path(process_environ=process_environ)
    from_file = dotenv_read(path)
    return {name: "environment" if name in process_environ else str(path) if name in from_file else "default"
            for name in names}


# What `manage.py health` says the source of: the settings a first run is about.
FIRST_SETTINGS = ("DJANGO_ENV", "DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "AI_SERVER_URL", "AI_API_KEY",
                  "AI_MODEL", "AWS_STORAGE_BUCKET_NAME", "PORT")


def configuration_report() -> dict:
    """The `.env` file read (or None) and where each first setting came from: names, never values.
    An unset database or Redis URL is the embedded server's, read from the file `make run` wrote."""
    from core import local_services

    path = dotenv_path()
    sources = value_sources(list(FIRST_SETTINGS))
    embedded = local_services.services_env_read()
    for name, source in sources.items():
        if source == "default" and name in embedded:
            sources[name] = f"{local_services.SERVICES_ENV} (the embedded server)"
    return {"env_file": str(path) if path is not None and path.is_file() else None, "sources": sources}
