"""Bad settings stop start-up with a message that names the variable to fix."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

# Each case starts manage.py in a process of its own.
pytestmark = pytest.mark.integration

BASE_DIR = Path(__file__).resolve().parents[2]


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_ENV", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS",
                                                               "DJANGO_SETTINGS_MODULE")}
    full_env.update(env)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=full_env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"CELERY_VISIBILITY_TIMEOUT": "60"}, "CELERY_VISIBILITY_TIMEOUT"),
        ({"CELERY_TASK_SERIALIZER": "pickle"}, "CELERY_TASK_SERIALIZER"),
        ({"CELERY_ACCEPT_CONTENT": "json,pickle"}, "CELERY_ACCEPT_CONTENT"),
        ({"CELERY_TASK_SOFT_TIME_LIMIT": "900"}, "CELERY_TASK_SOFT_TIME_LIMIT"),
        ({"DJANGO_ENV": "production"}, "SECRET_KEY"),
        ({"DJANGO_ENV": "production", "ALLOWED_HOSTS": "example.com",
          "SECRET_KEY": "change-me-to-at-least-50-random-characters-0123456789abcdef"}, "SECRET_KEY"),
        ({"EMBEDDING_BACKEND": "openai", "EMBEDDING_API_URL": "http://127.0.0.1:9", "EMBEDDING_DIMENSIONS": "1536"},
         "EMBEDDING_DIMENSIONS"),
        ({"EMBEDDING_BACKEND": "openai"}, "EMBEDDING_API_URL"),
        ({"AI_RETRY_DELAYS": "5,soon"}, "AI_RETRY_DELAYS"),
        ({"RUN_HEARTBEAT_SECONDS": "10", "RUN_HEARTBEAT_TIMEOUT_SECONDS": "15"}, "RUN_HEARTBEAT_TIMEOUT_SECONDS"),
        ({"CELERY_WORKER_MAX_TASKS_PER_CHILD": "0"}, "CELERY_WORKER_MAX_TASKS_PER_CHILD"),
        ({"CELERY_TASK_MAX_RETRIES": "-2"}, "CELERY_TASK_MAX_RETRIES"),
        ({"CELERY_TASK_DEFAULT_RETRY_DELAY": "100000"}, "CELERY_TASK_DEFAULT_RETRY_DELAY"),
        ({"CELERY_RESULT_EXPIRES": "0"}, "CELERY_RESULT_EXPIRES"),
        ({"DJANGO_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(64), "DEBUG": "true",
          "ALLOWED_HOSTS": "example.com"}, "DEBUG"),
        ({"DJANGO_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(64), "ALLOWED_HOSTS": "*"},
         "ALLOWED_HOSTS"),
    ],
)
def test_bad_setting_stops_start_up_naming_the_variable(env, variable):
    result = manage("check", **env)
    assert result.returncode != 0
    assert variable in result.stderr


def test_production_settings_pass_check_deploy():
    result = manage("check", "--deploy", "--fail-level", "WARNING", DJANGO_ENV="production",
                    SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="api.example.com")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def _fresh_clone_env(local_dir: Path) -> dict[str, str]:
    """The environment of a fresh clone: no URLs set, nothing started, an empty .local/."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_ENV", "SECRET_KEY",
                        "DJANGO_SETTINGS_MODULE")}
    env["LOCAL_DIR"] = str(local_dir)
    return env


def test_a_fresh_clone_passes_check_before_anything_is_started_and_writes_nothing(tmp_path):
    local = tmp_path / "local"
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=_fresh_clone_env(local),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout
    assert not local.exists()


def test_with_the_embedded_database_stopped_the_error_says_how_to_start_it(tmp_path):
    import socket

    with socket.socket() as probe:  # a port nothing listens on: the server was stopped
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    local = tmp_path / "local"
    local.mkdir()
    (local / "pg.port").write_text(str(closed_port))
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                             "from django.db import connection; connection.ensure_connection()"],
                            cwd=BASE_DIR, env=_fresh_clone_env(local), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "make services" in result.stderr and "python -m devserver.embedded start" in result.stderr


@pytest.mark.parametrize("command", [["health"], ["shell", "-c", "print(1)"], ["celery_check"]])
def test_in_a_clone_never_started_commands_say_so_and_talk_to_no_server(tmp_path, command):
    """The default ports may be another checkout's servers: nothing connects to them."""
    import socket

    local = tmp_path / "local"
    local.mkdir()
    with socket.socket() as listener:  # what listens on the ports this clone would guess
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = str(listener.getsockname()[1])
        (local / "pg.port").write_text(port)
        (local / "redis.port").write_text(port)
        result = subprocess.run([sys.executable, "manage.py", *command], cwd=BASE_DIR, env=_fresh_clone_env(local),
                                capture_output=True, text=True, timeout=120)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody knocked
    assert result.returncode == 1 and result.stdout == ""
    assert "have not been started" in result.stderr and "make run" in result.stderr


def test_a_commands_stdout_is_its_output_and_its_logs_go_to_stderr():
    result = manage("shell", "-v", "0", "-c", "import logging; logging.getLogger('jobs').warning('a log line'); print('output')")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "output\n"
    assert '"message": "a log line"' in result.stderr
