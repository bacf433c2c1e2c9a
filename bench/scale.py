"""What a large table costs the web tier: every list, a deep page, the stats and /metrics, asked
over HTTP of a gunicorn started as `make run` starts it, first with a small runs table and then
with --runs runs and as many task results; p50 and p99 of each side by side. Then one user's
slow pages (eight admin searches at once, each reading every run) beside another user's list.

    python bench/scale.py [--runs 1000000] [--small 1000] [--requests 30]

The rows it adds are marked (correlation id and task name `bench.scale`) and deleted at the end.
Their ends predate the tallies' mark, so /metrics' counters never count them.
"""

from __future__ import annotations

import base64
import logging
import os
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

# Run as a script: the project's packages are found from the checkout, with `make run`'s settings.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
import django  # noqa: E402

django.setup()
import httpx  # noqa: E402
from django.db import connection  # noqa: E402

from bench.support import bench_options, free_port, percentile, start_web, stop_web  # noqa: E402
from core.pagination import PAGE_NUMBER_MAX_OFFSET  # noqa: E402
from jobs.models import JobRun, RunStatus  # noqa: E402
from jobs.registry import kinds_all  # noqa: E402

MARK = "bench.scale"
# Rows are inserted by one INSERT … SELECT per slice: a slice is one statement's worth of WAL.
FILL_SLICE = 100_000
LIST_TARGET_MS = 200
STATS_TARGET_MS = 100
SLOW_CALLERS = 8


def _insert_sql(model, instance, overrides: dict[str, str]) -> tuple[str, dict]:
    """An INSERT … SELECT of every column of `model` over generate_series(g) from %(low)s to
    %(high)s: a SQL expression for the columns in `overrides`, else `instance`'s value."""
    names, values, params = [], [], {}
    for field in model._meta.concrete_fields:
        names.append(connection.ops.quote_name(field.column))
        if field.column in overrides:
            values.append(overrides[field.column])
        else:
            values.append(f"%(p{len(params)})s")
            params[f"p{len(params)}"] = field.get_db_prep_save(getattr(instance, field.attname), connection)
    return (f"INSERT INTO {model._meta.db_table} ({', '.join(names)}) SELECT {', '.join(values)} "
            f"FROM generate_series(%(low)s, %(high)s) g"), params


def fill(*, start: int, end: int, owners: list[int], ended_before) -> None:
    """Runs start..end (finished, spread over the month before `ended_before`), and a task result each."""
    from django_celery_results.models import TaskResult

    kinds = sorted(spec.kind for spec in kinds_all())
    queues = {spec.kind: spec.queue for spec in kinds_all()}
    kind_sql = "(ARRAY[" + ", ".join(f"'{k}'" for k in kinds) + f"])[1 + g %% {len(kinds)}]"
    queue_sql = "(ARRAY[" + ", ".join(f"'{queues[k]}'" for k in kinds) + f"])[1 + g %% {len(kinds)}]"
    owner_sql = "(ARRAY[" + ", ".join(str(o) for o in owners) + f"])[1 + g %% {len(owners)}]"
    at = "(%(before)s::timestamptz - make_interval(secs => g * 2.5))"
    template = JobRun(kind=kinds[0], queue="jobs", status=RunStatus.SUCCESS, attempts=1, args={}, result={"ok": True},
                      attempt_log=[], correlation_id=MARK, progress_current=1, progress_total=1)
    runs_sql, runs_params = _insert_sql(JobRun, template, {
        "id": "gen_random_uuid()", "kind": kind_sql, "queue": queue_sql, "owner_id": owner_sql,
        "status": "CASE WHEN g %% 50 = 0 THEN 'FAILURE' WHEN g %% 97 = 0 THEN 'REVOKED' ELSE 'SUCCESS' END",
        "dead": "g %% 100 = 0", "error": "CASE WHEN g %% 50 = 0 THEN 'timeout after 30 s' ELSE '' END",
        "created_at": f"{at} - interval '2 seconds'", "dispatched_at": f"{at} - interval '2 seconds'",
        "started_at": f"{at} - interval '1 second'", "heartbeat_at": at, "finished_at": at,
    })
    result = TaskResult(task_id="x", task_name=MARK, status="SUCCESS", result='{"ok": true}', content_type="application/json",
                        content_encoding="utf-8", worker="bench@host")
    results_sql, results_params = _insert_sql(TaskResult, result, {
        "id": "nextval(pg_get_serial_sequence('django_celery_results_taskresult', 'id'))",
        "task_id": "'bench-scale-' || g", "date_created": at, "date_done": at})
    with connection.cursor() as cursor:
        for low in range(start, end, FILL_SLICE):
            bounds = {"low": low, "high": min(low + FILL_SLICE, end) - 1, "before": ended_before}
            cursor.execute(runs_sql, {**bounds, **runs_params})
            cursor.execute(results_sql, {**bounds, **results_params})
            print(f"\r  filled {min(low + FILL_SLICE, end):,} of {end:,} runs", end="", flush=True)
        cursor.execute("ANALYZE jobs_jobrun")
        cursor.execute("ANALYZE django_celery_results_taskresult")
    print()


def remove() -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobs_jobrun WHERE correlation_id = %s", [MARK])
        cursor.execute("DELETE FROM django_celery_results_taskresult WHERE task_name = %s", [MARK])


def clients(base: str):
    """A staff client (token and admin session) and an owner's client."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    staff, _ = User.objects.get_or_create(username="bench-scale-staff", defaults={"is_staff": True, "is_superuser": True})
    owner, _ = User.objects.get_or_create(username="bench-scale-owner")
    session = SessionStore()
    session["_auth_user_id"] = str(staff.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = staff.get_session_auth_hash()
    session.create()
    staff_client = httpx.Client(base_url=base, timeout=60, headers={
        "Authorization": f"Token {Token.objects.get_or_create(user=staff)[0].key}"},
        cookies={"sessionid": session.session_key})
    owner_client = httpx.Client(base_url=base, timeout=60, headers={
        "Authorization": f"Token {Token.objects.get_or_create(user=owner)[0].key}"})
    return staff, owner, staff_client, owner_client


def deep_cursor() -> str:
    """A cursor halfway down the staff list, as a `next` link there would carry."""
    middle = JobRun.objects.order_by("-created_at").values_list("created_at", flat=True)[
        JobRun.objects.count() // 2]
    return quote(base64.b64encode(urlencode({"p": str(middle)}).encode()).decode())


def requests_measured(staff_client, owner_client) -> dict[str, tuple]:
    """{name: (client, path, target ms)}, asked in this order."""
    kind = sorted(spec.kind for spec in kinds_all())[0]
    runs = JobRun.objects.count()
    deepest_numbered = min(PAGE_NUMBER_MAX_OFFSET // 50, runs // 50)
    deepest_admin = min(PAGE_NUMBER_MAX_OFFSET // 100, runs // 100)  # the admin shows 100 a page
    return {
        "staff list": (staff_client, "/api/runs/", LIST_TARGET_MS),
        "staff list, status=FAILURE": (staff_client, "/api/runs/?status=FAILURE", LIST_TARGET_MS),
        f"staff list, kind={kind}": (staff_client, f"/api/runs/?kind={kind}", LIST_TARGET_MS),
        "staff list, dead letters": (staff_client, "/api/runs/?dead_letter=true", LIST_TARGET_MS),
        # The deepest page a number reaches (page 200 of a large table, the last of a small one).
        "staff list, deepest page by number": (staff_client, f"/api/runs/?page={deepest_numbered}", LIST_TARGET_MS),
        "staff list, deep page (cursor, halfway)": (staff_client, f"/api/runs/?cursor={deep_cursor()}",
                                                    LIST_TARGET_MS),
        "owner list": (owner_client, "/api/runs/", LIST_TARGET_MS),
        "admin runs changelist": (staff_client, "/admin/jobs/jobrun/", LIST_TARGET_MS),
        "admin runs changelist, failed": (staff_client, "/admin/jobs/jobrun/?status__exact=FAILURE", LIST_TARGET_MS),
        "admin runs changelist, deepest page": (staff_client, f"/admin/jobs/jobrun/?p={deepest_admin}",
                                                LIST_TARGET_MS),
        "admin task results changelist": (staff_client, "/admin/django_celery_results/taskresult/", LIST_TARGET_MS),
        "staff stats": (staff_client, "/api/runs/stats/", STATS_TARGET_MS),
        "owner stats": (owner_client, "/api/runs/stats/", STATS_TARGET_MS),
        "/metrics": (staff_client, "/metrics", STATS_TARGET_MS),
    }


def measure(measured: dict, n: int) -> dict[str, tuple[float, float]]:
    figures = {}
    for name, (client, path, _) in measured.items():
        times = []
        for _ in range(n):
            started = time.perf_counter()
            answer = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
            if answer.status_code != 200:
                raise SystemExit(f"{name}: {path} answered {answer.status_code}: {answer.text[:300]}")
        figures[name] = (percentile(times, 0.5), percentile(times, 0.99))
    return figures


def slow_neighbour(staff_client, owner_client, n: int) -> tuple[float, float, Counter]:
    """Another user's list p50, alone and while SLOW_CALLERS admin searches (each reading every
    run's error text) are asked at once by one staff user, who waits as a 429's Retry-After says."""
    def p50() -> float:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            owner_client.get("/api/runs/")
            times.append((time.perf_counter() - started) * 1000)
        return percentile(times, 0.5)

    alone = p50()
    stop, answers = threading.Event(), Counter()

    def slow() -> None:
        while not stop.is_set():
            answer = staff_client.get("/admin/jobs/jobrun/?q=timeout")
            answers[answer.status_code] += 1
            if answer.status_code == 429:
                time.sleep(float(answer.headers.get("Retry-After", "1")))

    callers = [threading.Thread(target=slow) for _ in range(SLOW_CALLERS)]
    for caller in callers:
        caller.start()
    time.sleep(2)
    beside = p50()
    stop.set()
    for caller in callers:
        caller.join()
    return alone, beside, answers


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    options = bench_options(runs=1_000_000, small=1_000, requests=30)
    from django.core.management import call_command

    from jobs.services.counts import run_counts_refresh
    from jobs.services.tallies import run_tallies_fold

    call_command("collectstatic", "--noinput", verbosity=0)  # the admin's pages, as `make run` serves them
    remove()  # an earlier interrupted run's rows
    ended_before = run_tallies_fold() - timedelta(seconds=1)
    port = free_port()
    web = start_web(port, name="scale")
    try:
        staff, owner, staff_client, owner_client = clients(f"http://127.0.0.1:{port}")
        owners = [owner.pk, staff.pk, owner.pk, staff.pk]
        print(f"filling {options.small:,} runs (the small table)")
        fill(start=0, end=options.small, owners=owners, ended_before=ended_before)
        small = measure(requests_measured(staff_client, owner_client), options.requests)
        print(f"filling to {options.runs:,} runs and as many task results")
        started = time.monotonic()
        fill(start=options.small, end=options.runs, owners=owners, ended_before=ended_before)
        print(f"  filled in {time.monotonic() - started:.0f} s")
        started = time.monotonic()
        run_counts_refresh(force=True)  # as the watchdog does every RUN_COUNTS_EVERY_SECONDS
        print(f"  ended runs recounted (the stats' background count) in {time.monotonic() - started:.2f} s")
        measured = requests_measured(staff_client, owner_client)
        targets = {name: target for name, (_, _, target) in measured.items()}
        large = measure(measured, options.requests)
        alone, beside, answers = slow_neighbour(staff_client, owner_client, options.requests)
    finally:
        stop_web(web)
        print("removing the bench's rows")
        remove()
        run_counts_refresh(force=True)

    print(f"\nms over HTTP, p50 / p99 ({options.requests} requests each; small = {options.small:,} runs, "
          f"large = {options.runs:,} runs and task results, beside what the database held)")
    print(f"{'request':<44} {'small':>15} {'large':>15} {'ratio':>6}  target")
    met = True
    for name, target in targets.items():
        (s50, s99), (l50, l99) = small[name], large[name]
        ok = l50 < target
        met &= ok
        print(f"{name:<44} {s50:>6.1f} / {s99:>6.1f} {l50:>6.1f} / {l99:>6.1f} {l50 / s50:>6.2f}  "
              f"< {target} ms: {'met' if ok else 'NOT met'}")
    ok = beside < STATS_TARGET_MS
    print(f"\nanother user's list beside {SLOW_CALLERS} slow admin searches: p50 {alone:.1f} ms alone, "
          f"{beside:.1f} ms beside them (target < {STATS_TARGET_MS} ms: {'met' if ok else 'NOT met'}); "
          f"the searches answered {answers[200]} times, refused (429) {answers[429]} times")
    print("all targets met" if met and ok else "some targets NOT met")


if __name__ == "__main__":
    main()
