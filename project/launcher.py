"""`make run`: embedded services (unless URLs are set), migrate, seed, admin user, then web,
workers and beat under one supervisor. Ctrl-C stops everything it started."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from project import embedded

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
    env = dict(os.environ)
    started = embedded.ensure_started()
    if started.database_url:
        env["DATABASE_URL"] = started.database_url
    if started.redis_url:
        env["REDIS_URL"] = started.redis_url
    _say(f"database: {env['DATABASE_URL']}")
    _say(f"redis:    {env['REDIS_URL']}")

    children: list[subprocess.Popen] = []

    def shutdown(*_):
        _say("stopping…")
        for child in children:
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 30
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
        embedded.stop(postgres=started.started_postgres, redis=started.started_redis)
        _say("stopped")

    def interrupt(*_):
        raise KeyboardInterrupt

    # Installed explicitly: a shell that starts us in the background leaves SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    try:
        _manage("migrate", "--no-input", "-v", "0", env=env)
        _manage("collectstatic", "--no-input", "-v", "0", env=env)
        _manage("setup_periodic_tasks", env=env)
        _ensure_admin(env)
        port = env.get("PORT", "8000")
        web = ["gunicorn", "project.wsgi:application", "--config", "python:project.gunicorn_conf"]
        bindir = Path(sys.executable).parent
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        for command in (web, ["bash", "start_workers.sh"]):
            children.append(subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True))
        base = f"http://127.0.0.1:{port}"
        print(f"\n    Admin:    {base}/admin/\n    API docs: {base}/api/docs/\n    Health:   {base}/api/health/\n"
              f"    Stop with Ctrl-C.\n", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        _say("a process exited; stopping the rest")
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        shutdown()


if __name__ == "__main__":
    sys.exit(main())
