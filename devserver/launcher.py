"""`make run`: embedded services (unless URLs are set), migrate, seed, admin user, then web,
workers and beat under one supervisor (processes.supervisor): a process that dies is restarted, and
Ctrl-C stops everything it started, letting running work finish or go back to the queue."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from core.configuration import environment
from devserver import embedded
from processes.supervisor import Program, Supervisor, run_until_signalled
from processes.workers import worker_env, worker_programs

BASE_DIR = Path(__file__).resolve().parent.parent
ADMIN_FILE = embedded.LOCAL_DIR / "admin.txt"


def _say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _manage(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", *args], check=True, cwd=BASE_DIR, env=env)


def _ensure_admin(env: dict) -> None:
    if ADMIN_FILE.exists():
        _say(f"admin credentials: see {ADMIN_FILE}")
        return
    password = secrets.token_urlsafe(12)
    script = (
        "from django.contrib.auth import get_user_model;"
        "User = get_user_model();"
        "u = User.objects.filter(username='admin').first() or User(username='admin', email='admin@localhost');"
        "u.is_staff = u.is_superuser = True;"
        f"u.set_password({password!r}); u.save()"
    )
    _manage("shell", "-c", script, env=env)
    ADMIN_FILE.write_text(f"username: admin\npassword: {password}\n")
    ADMIN_FILE.chmod(0o600)
    print(f"\n    Admin user created (shown once, kept in {ADMIN_FILE}):\n"
          f"      username: admin\n      password: {password}\n", flush=True)


def main() -> int:
    os.umask(embedded.OWNER_ONLY_UMASK)  # what web, workers and beat write under .local/ (logs, uploads)
    env = environment()  # the process's variables over .env, handed to every program
    started = embedded.ensure_started()
    if started.database_url:
        env["DATABASE_URL"] = started.database_url
    if started.redis_url:
        env["REDIS_URL"] = started.redis_url
    _say(f"database: {embedded.url_without_password(env['DATABASE_URL'])}")
    _say(f"redis:    {embedded.url_without_password(env['REDIS_URL'])}")
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    port = env.get("PORT", "8000")
    web = Program("web", [str(bindir / "gunicorn"), "project.asgi:application", "--config",
                          "python:project.gunicorn_conf"])
    supervisor = Supervisor([web, *worker_programs()], env=worker_env(env), cwd=BASE_DIR)
    try:
        _manage("migrate", "--no-input", "-v", "0", env=env)
        _manage("collectstatic", "--no-input", "-v", "0", env=env)
        _manage("setup_periodic_tasks", env=env)
        _ensure_admin(env)
    except (subprocess.CalledProcessError, KeyboardInterrupt):
        embedded.stop(postgres=started.started_postgres, redis=started.started_redis)
        return 1
    base = f"http://127.0.0.1:{port}"
    print(f"\n    Admin:    {base}/admin/\n    API docs: {base}/api/docs/\n    Health:   {base}/api/health/\n"
          f"    Stop with Ctrl-C.\n", flush=True)
    try:
        return run_until_signalled(supervisor)
    finally:
        embedded.stop(postgres=started.started_postgres, redis=started.started_redis)


if __name__ == "__main__":
    sys.exit(main())
